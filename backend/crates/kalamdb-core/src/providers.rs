//! DataFusion adapters: the catalog that maps namespaces to schemas, the
//! provider for USER/SHARED tables and the stream that scans them.

pub mod catalog;
pub mod cooperative;
pub mod key_order;
pub mod key_range;
pub mod row_table;
pub mod scan;
mod segment_scan;
pub mod system_table;

pub use catalog::KalamCatalog;
pub use row_table::RowTableProvider;

/// The DataFusion catalog name all namespaces live in.
pub const CATALOG_NAME: &str = "kalam";
