//! The caller's identity as seen by table providers.
//!
//! DataFusion resolves tables through our catalog without passing the caller
//! along, so each query plans against a catalog bound to a [`QueryScope`]
//! (see `providers::catalog`); the providers it hands out are already bound
//! to that caller. A provider made without a scope can describe its schema
//! but scans nothing.

use kalamdb_commons::{Role, UserId};

#[derive(Debug, Clone)]
pub struct QueryScope {
    pub user_id: UserId,
    pub role: Role,
    /// The query names `_seq` or `_deleted`, so tables expose them.
    pub include_system_columns: bool,
}
