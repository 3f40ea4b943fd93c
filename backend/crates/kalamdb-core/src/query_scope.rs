//! The caller's identity as seen by table providers while a query is planned.
//!
//! DataFusion resolves tables through our catalog without passing the caller
//! along, so the executor runs planning inside [`QUERY_SCOPE`]; the catalog
//! then hands out providers already bound to that caller. A provider resolved
//! outside any scope can describe its schema but scans nothing.

use kalamdb_commons::{Role, UserId};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct QueryScope {
    pub user_id: UserId,
    pub role: Role,
    /// The query names `_seq` or `_deleted`, so tables expose them.
    pub include_system_columns: bool,
}

tokio::task_local! {
    pub static QUERY_SCOPE: Arc<QueryScope>;
}

pub fn current_scope() -> Option<Arc<QueryScope>> {
    QUERY_SCOPE.try_with(Arc::clone).ok()
}
