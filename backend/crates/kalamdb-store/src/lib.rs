//! KalamDB's storage layer: RocksDB behind the narrow [`StorageBackend`]
//! trait, plus the two encodings everything persisted goes through.
//!
//! # Key layout (format version 1)
//!
//! Fixed column families ([`Partition`]); tables never get their own, so
//! thousands of tables stay cheap.
//!
//! | partition | key | value |
//! | --- | --- | --- |
//! | `meta` | `b"format"` | format version (`u8`) |
//! | `meta` | `b"ns/" name` | namespace record (version byte + JSON) |
//! | `meta` | `b"tbl/" ns 0x00 table` | current table definition (version byte + JSON) |
//! | `meta` | `b"tblv/" table_id(u64 BE) version(u32 BE)` | every schema version |
//! | `meta` | `b"usr/" username` | user record (version byte + JSON) |
//! | `meta` | `b"ctr/" name` | counters (`u64` BE), e.g. the next table id |
//! | `meta` | `b"aud/" audit_id(u64 BE)` | audit log entry (version byte + JSON) |
//! | `data` | `table_id(u64 BE) pk` | SHARED row |
//! | `data` | `table_id(u64 BE) user_id pk` | USER row |
//! | `index` | `table_id(u64 BE) index_id(u32 BE) [user_id] values… pk` | secondary index entry; value: `pk` (kalamdb-core `indexes.rs`) |
//! | `changelog` | reserved: change log |
//!
//! `user_id` and `pk` use the order-preserving encoding of [`keys`], so a
//! user's partition is one contiguous key range and `ORDER BY pk` is a plain
//! iteration. Keyless tables use `_seq` as `pk`. Row values use [`row`].

pub mod backend;
pub mod error;
pub mod keys;
pub mod overlay;
pub mod rocksdb_backend;
pub mod row;

pub use backend::{Batch, EngineStats, Partition, StorageBackend};
pub use error::{StoreError, StoreResult};
pub use overlay::OverlayBackend;
pub use rocksdb_backend::{RocksDbBackend, RocksDbOptions};

/// Version of the on-disk layout described above.
pub const STORAGE_FORMAT_VERSION: u8 = 1;
