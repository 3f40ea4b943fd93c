//! SHOW NAMESPACES, SHOW TABLES and DESCRIBE TABLE: queries over the system
//! tables, so their output obeys the same rules as any SELECT.

use super::query::run_query;
use super::{StatementHandler, StatementOptions, resolve_table, unexpected};
use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::result::StatementResult;
use async_trait::async_trait;
use datafusion::arrow::array::{Int32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use kalamdb_commons::TableDefinition;
use kalamdb_commons::ids::validate_identifier;
use kalamdb_sql::SqlStatement;
use kalamdb_sql::sqlparser::dialect::GenericDialect;
use kalamdb_sql::sqlparser::parser::Parser;
use std::sync::Arc;

/// SHOW … and DESCRIBE TABLE.
pub struct ShowHandler;

#[async_trait]
impl StatementHandler for ShowHandler {
    async fn execute(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        statement: SqlStatement,
        _options: &StatementOptions<'_>,
    ) -> CoreResult<StatementResult> {
        execute(app, ctx, statement).await
    }
}

/// The table `name` names, if the caller may read it.
fn readable_table(
    app: &AppContext,
    ctx: &ExecutionContext,
    name: &kalamdb_sql::QualifiedName,
) -> CoreResult<std::sync::Arc<crate::schema::CachedTable>> {
    let found = resolve_table(app, ctx, name)?;
    crate::table_access::authorize_table(ctx.role, &found.definition, false)?;
    Ok(found)
}

/// `DESCRIBE TABLE t HISTORY`: every schema version, oldest first.
fn history_of(app: &AppContext, def: &TableDefinition) -> CoreResult<StatementResult> {
    let versions = app.meta.table_versions(def.table_id)?;
    let describe = |d: &TableDefinition| {
        let key = d.primary_key_positions();
        let composite = key.len() > 1;
        let mut columns: Vec<String> = d
            .columns
            .iter()
            .map(|c| {
                let mut s = format!("{} {}", c.name, c.data_type);
                if c.primary_key && !composite {
                    s.push_str(" PRIMARY KEY");
                } else if !c.nullable {
                    s.push_str(" NOT NULL");
                }
                if let Some(d) = &c.default {
                    s.push_str(&format!(" DEFAULT {d}"));
                }
                s
            })
            .collect();
        if composite {
            let names: Vec<&str> = key.iter().map(|&k| d.columns[k].name.as_str()).collect();
            columns.push(format!("PRIMARY KEY ({})", names.join(", ")));
        }
        columns.join(", ")
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("schema_version", DataType::Int32, false),
        Field::new("column_count", DataType::Int32, false),
        Field::new("columns", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int32Array::from_iter_values(
                versions.iter().map(|v| v.schema_version as i32),
            )),
            Arc::new(Int32Array::from_iter_values(
                versions.iter().map(|v| v.columns.len() as i32),
            )),
            Arc::new(StringArray::from_iter_values(versions.iter().map(describe))),
        ],
    )
    .map_err(|e| CoreError::Internal(e.to_string()))?;
    Ok(StatementResult::rows(schema, vec![batch]))
}

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
        SqlStatement::ShowIndexes { table } => match table {
            Some(table) => {
                let found = readable_table(app, ctx, table)?;
                format!(
                    "SELECT index_name, table_name, columns, is_unique, state FROM system.indexes \
                     WHERE namespace_id = {} AND table_name = {} ORDER BY index_name",
                    literal("namespace", found.definition.namespace.as_str())?,
                    literal("table", &found.definition.name)?
                )
            }
            None => {
                let ns = ctx.namespace.to_string();
                if !app.schema_registry.namespace_exists(&ns) {
                    return Err(CoreError::NamespaceNotFound(ns));
                }
                format!(
                    "SELECT index_name, table_name, columns, is_unique, state FROM system.indexes \
                     WHERE namespace_id = {} ORDER BY table_name, index_name",
                    literal("namespace", &ns)?
                )
            }
        },
        SqlStatement::ShowStorages => {
            "SELECT storage_id, storage_name, storage_type, base_directory, description \
             FROM system.storages ORDER BY storage_id"
                .to_string()
        }
        SqlStatement::ShowBackups => {
            if !ctx.role.is_admin() {
                return Err(CoreError::PermissionDenied(format!(
                    "Role '{}' may not list backups",
                    ctx.role
                )));
            }
            "SELECT backup_id, namespace_id, path, tables, segments, bytes, created_at, finished_at \
             FROM system.backups ORDER BY created_at"
                .to_string()
        }
        SqlStatement::ShowStats { table } => {
            let found = readable_table(app, ctx, table)?;
            if !ctx.role.is_admin() {
                return Err(CoreError::PermissionDenied(format!(
                    "Role '{}' may not read table statistics",
                    ctx.role
                )));
            }
            format!(
                "SELECT metric_name, metric_value FROM system.stats \
                 WHERE namespace_id = {} AND table_name = {} ORDER BY metric_name",
                literal("namespace", found.definition.namespace.as_str())?,
                literal("table", &found.definition.name)?
            )
        }
        SqlStatement::DescribeTable { table, history } => {
            let found = readable_table(app, ctx, table)?;
            if *history {
                return history_of(app, &found.definition);
            }
            let (ns, name) = (
                found.definition.namespace.to_string(),
                found.definition.name.clone(),
            );
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
