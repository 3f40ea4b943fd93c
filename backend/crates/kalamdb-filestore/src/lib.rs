//! The cold tier's files. A table's rows (per user, for a USER table) move
//! from RocksDB into immutable Parquet **segments** on the table's storage;
//! this crate writes and reads them and defines the **manifest** that lists
//! them. It knows nothing of tables, users or SQL: kalamdb-core's row
//! reader and flush job call it with rows in key order.
//!
//! A segment (format 1) holds one row per key, sorted by the row's storage
//! key (the same order-preserving bytes RocksDB orders by, so merging a
//! segment with hot rows is a byte comparison and never depends on how a
//! key type sorts in Arrow):
//!
//! ```text
//! _key      Binary   the row's storage key (partition prefix + primary key)
//! _seq      Int64    the version's _seq
//! _deleted  Boolean  a tombstone (kept: it hides older versions)
//! <column>  …        one field per table column, named as the column and
//!                    tagged with its column id (field metadata
//!                    `kalamdb.column_id`), so a segment written under an
//!                    older schema version reads under a newer one
//! ```
//!
//! Row groups hold [`ROW_GROUP_ROWS`] rows; the footer's key-value metadata
//! carries the format version, the schema version and the first key of
//! every row group (so a key range maps to row groups without trusting
//! truncated statistics). `_key` has a bloom filter; pages hold at most
//! [`PAGE_ROWS`] rows, and the page index lets a point read decode one page
//! per column.
//!
//! Segments are written once, through `object_store`, to a unique path
//! (`seg-<id>.parquet`) and never renamed or rewritten.

mod cache;
mod error;
mod manifest;
mod reader;
mod stats;
mod storage;
mod writer;

pub use cache::GroupCache;
pub use error::{FileStoreError, FileStoreResult};
pub use manifest::{MANIFEST_FILE, MANIFEST_FORMAT_VERSION, Manifest, SegmentMeta};
pub use reader::{RangeScan, SegmentCursor, SegmentFile};
pub use stats::{ColumnStats, MAX_TEXT_BOUND};
pub use storage::{Listed, Storage, io_runtime};
pub use writer::{SegmentColumn, SegmentWriter};

/// The segment file format this build writes and reads.
pub const SEGMENT_FORMAT_VERSION: u32 = 1;
/// Rows per row group.
pub const ROW_GROUP_ROWS: usize = 16 * 1024;
/// Rows per data page (what a point read decodes per column at most).
pub const PAGE_ROWS: usize = 1024;

/// Field names of the system columns every segment starts with.
pub const KEY_FIELD: &str = "_key";
pub const SEQ_FIELD: &str = "_seq";
pub const DELETED_FIELD: &str = "_deleted";
/// Field metadata naming a table column's id.
pub const COLUMN_ID_META: &str = "kalamdb.column_id";

const META_FORMAT: &str = "kalamdb.segment_format";
const META_SCHEMA_VERSION: &str = "kalamdb.schema_version";
const META_FIRST_KEYS: &str = "kalamdb.row_group_first_keys";

#[cfg(test)]
mod tests;
