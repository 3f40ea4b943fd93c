//! CREATE/DROP NAMESPACE and USE.

use super::{StatementHandler, StatementOptions, unexpected};
use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::meta_store::NamespaceRecord;
use crate::result::StatementResult;
use crate::table_store::delete_all_rows;
use async_trait::async_trait;
use kalamdb_commons::ids::validate_identifier;
use kalamdb_commons::now_ms;
use kalamdb_commons::{NamespaceId, SYSTEM_NAMESPACE};
use kalamdb_sql::SqlStatement;
use kalamdb_store::Batch;

pub struct NamespaceHandler;

const RESERVED: [&str; 2] = [SYSTEM_NAMESPACE, "information_schema"];

#[async_trait]
impl StatementHandler for NamespaceHandler {
    async fn execute(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        statement: SqlStatement,
        _options: &StatementOptions<'_>,
    ) -> CoreResult<StatementResult> {
        match statement {
            SqlStatement::CreateNamespace {
                name,
                if_not_exists,
            } => create(app, &name, if_not_exists).await,
            SqlStatement::DropNamespace {
                name,
                if_exists,
                cascade,
            } => drop(app, &name, if_exists, cascade).await,
            SqlStatement::UseNamespace { name } => {
                if !app.schema_registry.namespace_exists(&name) && name != SYSTEM_NAMESPACE {
                    return Err(CoreError::NamespaceNotFound(name));
                }
                ctx.namespace = NamespaceId::new(&name);
                Ok(StatementResult::message(format!(
                    "Using namespace '{name}'"
                )))
            }
            other => Err(unexpected(&other)),
        }
    }
}

async fn create(app: &AppContext, name: &str, if_not_exists: bool) -> CoreResult<StatementResult> {
    validate_identifier("namespace", name).map_err(CoreError::InvalidSql)?;
    if RESERVED.contains(&name) {
        return Err(CoreError::AlreadyExists(format!(
            "Namespace '{name}' is reserved"
        )));
    }
    let _ddl = app.ddl_lock.lock().await;
    if app.schema_registry.namespace_exists(name) {
        return if if_not_exists {
            Ok(StatementResult::message(format!(
                "Namespace '{name}' already exists"
            )))
        } else {
            Err(CoreError::AlreadyExists(format!(
                "Namespace '{name}' already exists"
            )))
        };
    }
    let record = NamespaceRecord {
        name: NamespaceId::new(name),
        created_at: now_ms(),
    };
    let mut batch = Batch::new();
    app.meta.put_namespace(&mut batch, &record)?;
    app.schema_registry.commit_namespace(batch, record)?;
    Ok(StatementResult::message(format!(
        "Namespace '{name}' created"
    )))
}

async fn drop(
    app: &AppContext,
    name: &str,
    if_exists: bool,
    cascade: bool,
) -> CoreResult<StatementResult> {
    let _ddl = app.ddl_lock.lock().await;
    if !app.schema_registry.namespace_exists(name) {
        return if if_exists {
            Ok(StatementResult::message(format!(
                "Namespace '{name}' does not exist"
            )))
        } else {
            Err(CoreError::NamespaceNotFound(name.to_string()))
        };
    }
    let tables = app.schema_registry.tables(Some(name));
    if !tables.is_empty() && !cascade {
        return Err(CoreError::Execution(format!(
            "Namespace '{name}' still has {} table(s); drop them first or use DROP NAMESPACE {name} CASCADE",
            tables.len()
        )));
    }
    let mut batch = Batch::new();
    for table in &tables {
        delete_all_rows(&mut batch, table.definition.table_id);
        app.meta.delete_table(&mut batch, &table.definition);
    }
    app.meta.delete_namespace(&mut batch, name);
    app.schema_registry.commit_drop_namespace(batch, name)?;
    let ids: Vec<_> = tables.iter().map(|t| t.definition.table_id).collect();
    let cleanup = app.job_manager.submit_cleanup(&ids, name, None);
    Ok(StatementResult::message(format!(
        "Namespace '{name}' dropped{}{cleanup}",
        if tables.is_empty() {
            String::new()
        } else {
            format!(" with {} table(s)", tables.len())
        }
    )))
}
