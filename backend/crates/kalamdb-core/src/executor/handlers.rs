//! One handler per statement family. Handlers are small: they get the
//! application context, the caller's context and the parsed statement.

pub mod constant_select;
pub mod insert;
pub mod namespace;
pub mod point_lookup;
pub mod query;
pub mod show;
pub mod system_columns;
pub mod table_ddl;
pub mod update_delete;
pub mod user;

use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::executor::StatementResult;
use async_trait::async_trait;
use kalamdb_sql::{QualifiedName, SqlStatement};
use serde_json::Value as Json;

pub use insert::DmlHandler;
pub use namespace::NamespaceHandler;
pub use query::QueryHandler;
pub use table_ddl::TableDdlHandler;
pub use user::UserHandler;

/// Request-wide inputs a handler may need.
pub struct StatementOptions<'a> {
    /// Values for `$1..$n`.
    pub params: &'a [Json],
    /// The request text names `_seq` or `_deleted`.
    pub mentions_system_columns: bool,
}

#[async_trait]
pub trait StatementHandler: Send + Sync {
    async fn execute(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        statement: SqlStatement,
        options: &StatementOptions<'_>,
    ) -> CoreResult<StatementResult>;
}

/// `[ns.]t` with the session namespace filled in.
pub(crate) fn resolve_name(ctx: &ExecutionContext, name: &QualifiedName) -> (String, String) {
    (
        name.namespace
            .clone()
            .unwrap_or_else(|| ctx.namespace.to_string()),
        name.name.clone(),
    )
}

pub(crate) fn unexpected(statement: &SqlStatement) -> CoreError {
    CoreError::Internal(format!(
        "{} routed to the wrong handler",
        statement.kind_name()
    ))
}
