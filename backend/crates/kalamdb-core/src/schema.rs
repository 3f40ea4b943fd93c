//! Table definitions in memory: the [`SchemaRegistry`] and what it caches per
//! table.

pub mod cached_table;
pub mod registry;

pub use cached_table::CachedTable;
pub use registry::SchemaRegistry;
