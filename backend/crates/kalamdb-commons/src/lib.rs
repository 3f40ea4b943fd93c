//! Shared vocabulary of KalamDB: identifiers, roles, table kinds, column
//! types, table definitions, row values and the stable error codes.
//!
//! Every other crate depends on this one; it depends on nothing of ours.

pub mod data_type;
pub mod definition;
pub mod error_code;
pub mod ids;
pub mod metric_handles;
pub mod password;
pub mod role;
pub mod snowflake;
pub mod storage;
pub mod time;
pub mod value;

pub use data_type::KalamDataType;
pub use definition::{
    ColumnDefinition, IndexDefinition, IndexState, TableDefinition, TableOptions, TableType,
};
pub use error_code::ErrorCode;
pub use ids::{NamespaceId, TableId, TableRef, UserId};
pub use role::Role;
pub use storage::{StorageDefinition, StorageType};
pub use time::now_ms;
pub use value::Value;

/// Name of the system column holding each row's write sequence (a snowflake id).
pub const SEQ_COLUMN: &str = "_seq";
/// Name of the system column marking soft-deleted rows.
pub const DELETED_COLUMN: &str = "_deleted";
/// The namespace a session uses when none is chosen.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The namespace holding the server's own tables.
pub const SYSTEM_NAMESPACE: &str = "system";
/// The built-in storage every table uses unless told otherwise.
pub const LOCAL_STORAGE_ID: &str = "local";
