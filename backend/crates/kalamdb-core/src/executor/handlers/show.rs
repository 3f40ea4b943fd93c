//! SHOW NAMESPACES, SHOW TABLES and DESCRIBE TABLE: queries over the system
//! tables, so their output obeys the same rules as any SELECT.

use super::query::run_query;
use super::{resolve_name, unexpected};
use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::executor::StatementResult;
use kalamdb_commons::ids::validate_identifier;
use kalamdb_sql::SqlStatement;
use kalamdb_sql::sqlparser::dialect::GenericDialect;
use kalamdb_sql::sqlparser::parser::Parser;

/// Quotes a validated identifier as a SQL string literal.
fn literal(kind: &str, name: &str) -> CoreResult<String> {
    validate_identifier(kind, name).map_err(CoreError::InvalidSql)?;
    Ok(format!("'{name}'"))
}

pub async fn execute(
    app: &AppContext,
    ctx: &ExecutionContext,
    statement: SqlStatement,
) -> CoreResult<StatementResult> {
    let sql = match &statement {
        SqlStatement::ShowNamespaces => {
            "SELECT namespace_id, table_count, created_at FROM system.namespaces ORDER BY namespace_id"
                .to_string()
        }
        SqlStatement::ShowTables { namespace } => {
            let ns = namespace.clone().unwrap_or_else(|| ctx.namespace.to_string());
            if !app.schema_registry.namespace_exists(&ns) {
                return Err(CoreError::NamespaceNotFound(ns));
            }
            format!(
                "SELECT namespace_id, table_name, table_type, created_at FROM system.tables \
                 WHERE namespace_id = {} ORDER BY table_name",
                literal("namespace", &ns)?
            )
        }
        SqlStatement::DescribeTable { table, history } => {
            if *history {
                return Err(CoreError::NotSupported(
                    "DESCRIBE TABLE ... HISTORY is not supported yet".into(),
                ));
            }
            let (ns, name) = resolve_name(ctx, table);
            let Some(found) = app.schema_registry.get_table(&ns, &name) else {
                return Err(if app.schema_registry.namespace_exists(&ns) {
                    CoreError::TableNotFound(format!("{ns}.{name}"))
                } else {
                    CoreError::NamespaceNotFound(ns)
                });
            };
            crate::executor::authorization::authorize_table(ctx.role, &found.definition, false)?;
            format!(
                "SELECT column_name, data_type, is_nullable, is_primary_key, default_expression \
                 FROM system.columns WHERE namespace_id = {} AND table_name = {} \
                 ORDER BY ordinal_position",
                literal("namespace", &ns)?,
                literal("table", &name)?
            )
        }
        other => return Err(unexpected(other)),
    };
    let dialect = GenericDialect {};
    let query = Parser::new(&dialect)
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_statement())
        .map_err(|e| CoreError::Internal(format!("internal query: {e}")))?;
    run_query(app, ctx, query, false, &[]).await
}
