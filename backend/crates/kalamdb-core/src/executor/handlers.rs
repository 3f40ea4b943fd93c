//! One handler per statement family. Handlers are small: they get the
//! application context, the caller's context and the parsed statement.

pub mod alter_table;
pub mod constant_select;
pub mod correlated;
pub mod dml;
pub mod index;
pub mod insert;
pub mod job;
pub mod key_read;
pub mod live;
pub mod namespace;
pub mod output_names;
pub mod query;
pub mod returning;
pub mod show;
pub mod storage;
pub mod subquery;
pub mod system_columns;
pub mod table_ddl;
pub mod update_delete;
pub mod user;

use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::result::StatementResult;
use crate::schema::CachedTable;
use async_trait::async_trait;
use kalamdb_commons::{ColumnDefinition, TableDefinition, Value};
use kalamdb_sql::parsers::parse_qualified_name_from;
use kalamdb_sql::sqlparser::ast::ObjectName;
use kalamdb_sql::{QualifiedName, SqlStatement};
use serde_json::Value as Json;
use std::sync::Arc;

pub use dml::DmlHandler;
pub use job::JobHandler;
pub use live::LiveHandler;
pub use namespace::NamespaceHandler;
pub use query::QueryHandler;
pub use show::ShowHandler;
pub use storage::StorageHandler;
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

/// The USER/SHARED/STREAM table `name` names for the caller's session
/// ([`SchemaRegistry::resolve`](crate::schema::SchemaRegistry::resolve)).
pub(crate) fn resolve_table(
    app: &AppContext,
    ctx: &ExecutionContext,
    name: &QualifiedName,
) -> CoreResult<Arc<CachedTable>> {
    app.schema_registry.resolve(ctx.namespace.as_str(), name)
}

/// [`resolve_table`] for a name as the SQL parser gives it.
pub(crate) fn resolve_table_object(
    app: &AppContext,
    ctx: &ExecutionContext,
    name: &ObjectName,
) -> CoreResult<Arc<CachedTable>> {
    let name = parse_qualified_name_from(name).map_err(CoreError::InvalidSql)?;
    resolve_table(app, ctx, &name)
}

/// NOT NULL, as INSERT and UPDATE check it before writing anything.
pub(crate) fn check_not_null(
    def: &TableDefinition,
    column: &ColumnDefinition,
    value: &Value,
) -> CoreResult<()> {
    if value.is_null() && !column.nullable {
        return Err(CoreError::NotNullViolation(format!(
            "Column '{}' of table '{}' cannot be NULL",
            column.name,
            def.table_ref()
        )));
    }
    Ok(())
}

pub(crate) fn unexpected(statement: &SqlStatement) -> CoreError {
    CoreError::Internal(format!(
        "{} routed to the wrong handler",
        statement.kind_name()
    ))
}

/// What the fast paths' tests compare with the planned answer, and how
/// tests run SQL.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::result::StatementResult;
    use crate::rows::json::{append_rows, column_infos};
    use crate::{AppContext, ExecutionContext};

    /// Runs `sql` as `ctx`: each statement's rows as API JSON values, or
    /// the error's text.
    pub async fn run_sql(
        app: &AppContext,
        ctx: &ExecutionContext,
        sql: &str,
    ) -> Result<Vec<Vec<Vec<serde_json::Value>>>, String> {
        let mut ctx = ctx.clone();
        let results = app
            .execute(&mut ctx, sql, &[])
            .await
            .map_err(|e| e.to_string())?;
        Ok(results
            .into_iter()
            .map(|r| {
                let mut rows = Vec::new();
                for b in &r.batches {
                    append_rows(b, &mut rows);
                }
                rows
            })
            .collect())
    }

    /// A result's columns and rows as the API's JSON would carry them.
    pub fn json(result: &StatementResult) -> (String, String) {
        let schema = column_infos(result.schema.as_ref().unwrap());
        let mut rows = Vec::new();
        for b in &result.batches {
            append_rows(b, &mut rows);
        }
        (
            serde_json::to_string(&schema).unwrap(),
            serde_json::to_string(&rows).unwrap(),
        )
    }
}
