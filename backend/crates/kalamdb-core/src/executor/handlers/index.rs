//! CREATE INDEX and DROP INDEX (SHOW INDEXES is in `show.rs`), and the
//! unique indexes of CREATE TABLE's UNIQUE constraints.
//!
//! A new index is added `building` (every commit from then on maintains
//! it), its entries for the rows already there are written by an IndexBuild
//! job while the table stays writable, and the statement returns when the
//! job has finished: the index is then `ready` and queries read it, or the
//! job failed (a UNIQUE index over duplicate values) and the index is gone.

use super::resolve_name;
use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::indexes::indexable;
use crate::jobs::model::{JobOptions, JobStatus, JobType};
use crate::result::StatementResult;
use kalamdb_commons::ids::validate_identifier;
use kalamdb_commons::{IndexDefinition, IndexState, TableDefinition, TableType, now_ms};
use kalamdb_sql::QualifiedName;
use kalamdb_store::Batch;

/// `CREATE [UNIQUE] INDEX [IF NOT EXISTS] [name] ON t (columns)`.
pub async fn create_index(
    app: &AppContext,
    ctx: &ExecutionContext,
    name: Option<String>,
    table: &QualifiedName,
    columns: &[String],
    unique: bool,
    if_not_exists: bool,
) -> CoreResult<StatementResult> {
    let (ns, table_name) = resolve_name(ctx, table);
    let (index, table_id) = {
        let _ddl = app.ddl_lock.lock().await;
        let Some(cached) = app.schema_registry.get_table(&ns, &table_name) else {
            if !app.schema_registry.namespace_exists(&ns) {
                return Err(CoreError::NamespaceNotFound(ns));
            }
            return Err(CoreError::TableNotFound(format!("{ns}.{table_name}")));
        };
        let mut def = cached.definition.clone();
        let name = name.unwrap_or_else(|| default_name(&def.name, columns, unique));
        if let Some(owner) = index_owner(app, &ns, &name) {
            let message = format!("Index '{ns}.{name}' already exists (on table '{owner}')");
            return if if_not_exists {
                Ok(StatementResult::message(message))
            } else {
                Err(CoreError::AlreadyExists(message))
            };
        }
        let index = new_index(&mut def, name, columns, unique, IndexState::Building)?;
        let mut batch = Batch::new();
        app.meta.put_table(&mut batch, &def)?;
        let table_id = def.table_id;
        app.schema_registry.commit_table(batch, def)?;
        (index, table_id)
    };
    let job_id = app.job_manager.create_job(
        JobType::IndexBuild,
        JobOptions {
            parameters: serde_json::json!({
                "table_id": table_id.0,
                "index_id": index.index_id,
            }),
            idempotency_key: Some(format!("index:{}:{}", table_id.0, index.index_id)),
            namespace_id: Some(ns.clone()),
            table_name: Some(table_name.clone()),
            max_retries: Some(3),
            ..JobOptions::default()
        },
    );
    let job_id = match job_id {
        Ok(id) => id,
        Err(e) => {
            crate::jobs::executors::index_build::drop_index(app, table_id, index.index_id).await?;
            return Err(e);
        }
    };
    let job = app.job_manager.finished(&job_id).await?;
    let outcome = job.message.clone().unwrap_or_default();
    match job.status {
        JobStatus::Completed => Ok(StatementResult::message(format!(
            "Index '{ns}.{}' created on '{ns}.{table_name}' (job {job_id}: {outcome})",
            index.name
        ))),
        _ => {
            // the job drops an index it could not build; make sure of it
            crate::jobs::executors::index_build::drop_index(app, table_id, index.index_id).await?;
            let unique_failure = job
                .exception_trace
                .as_deref()
                .is_some_and(|t| t.starts_with("UniqueViolation"));
            let reason = outcome
                .strip_prefix("IndexBuild refused: ")
                .unwrap_or(&outcome)
                .to_string();
            if unique_failure {
                Err(CoreError::UniqueViolation(reason))
            } else {
                Err(CoreError::Execution(format!(
                    "Index '{ns}.{}' was not created (job {job_id}: {reason})",
                    index.name
                )))
            }
        }
    }
}

/// PostgreSQL's naming: `t_a_b_idx`, `t_a_key` for a unique index.
pub(crate) fn default_name(table: &str, columns: &[String], unique: bool) -> String {
    let suffix = if unique { "key" } else { "idx" };
    let mut name = format!("{table}_{}_{suffix}", columns.join("_"));
    name.truncate(kalamdb_commons::ids::MAX_NAME_LEN);
    name
}

/// The table in namespace `ns` that has an index called `name`.
pub(crate) fn index_owner(app: &AppContext, ns: &str, name: &str) -> Option<String> {
    app.schema_registry
        .tables(Some(ns))
        .into_iter()
        .find(|t| t.definition.index(name).is_some())
        .map(|t| t.definition.name.clone())
}

/// Adds the index `name` over `columns` to `def` (checked: the columns
/// exist, can be indexed, and the table is a USER or SHARED table).
pub fn new_index(
    def: &mut TableDefinition,
    name: String,
    columns: &[String],
    unique: bool,
    state: IndexState,
) -> CoreResult<IndexDefinition> {
    validate_identifier("index", &name).map_err(CoreError::InvalidSql)?;
    match def.table_type {
        TableType::User | TableType::Shared => {}
        TableType::Stream => {
            return Err(CoreError::NotSupported(format!(
                "STREAM table '{}' cannot be indexed: its rows live in memory and expire",
                def.table_ref()
            )));
        }
        TableType::System => {
            return Err(CoreError::PermissionDenied(
                "System tables cannot be indexed".into(),
            ));
        }
    }
    let mut column_ids = Vec::with_capacity(columns.len());
    for column in columns {
        let Some(found) = def.columns.iter().find(|c| &c.name == column) else {
            return Err(CoreError::InvalidSql(format!(
                "Column '{column}' does not exist in table '{}'",
                def.table_ref()
            )));
        };
        if !indexable(found.data_type) {
            return Err(CoreError::NotSupported(format!(
                "Column '{column}' is {}, which cannot be indexed (indexable: integers, TEXT, UUID, BYTES, BOOLEAN, DATE, TIMESTAMP)",
                found.data_type
            )));
        }
        column_ids.push(found.column_id);
    }
    let index = IndexDefinition {
        index_id: def.next_index_id,
        name,
        column_ids,
        unique,
        state,
        created_at: now_ms(),
    };
    def.next_index_id += 1;
    def.indexes.push(index.clone());
    Ok(index)
}

/// `DROP INDEX [IF EXISTS] [ns.]name [ON t]`.
pub async fn drop_index(
    app: &AppContext,
    ctx: &ExecutionContext,
    index: &QualifiedName,
    table: Option<&QualifiedName>,
    if_exists: bool,
) -> CoreResult<StatementResult> {
    let ns = match table {
        Some(table) => resolve_name(ctx, table).0,
        None => resolve_name(ctx, index).0,
    };
    let found = {
        let _ddl = app.ddl_lock.lock().await;
        if !app.schema_registry.namespace_exists(&ns) {
            return Err(CoreError::NamespaceNotFound(ns));
        }
        let owner = match table {
            Some(table) => {
                let (_, name) = resolve_name(ctx, table);
                let Some(t) = app.schema_registry.get_table(&ns, &name) else {
                    return Err(CoreError::TableNotFound(format!("{ns}.{name}")));
                };
                t.definition.index(&index.name).is_some().then_some(t)
            }
            None => app
                .schema_registry
                .tables(Some(&ns))
                .into_iter()
                .find(|t| t.definition.index(&index.name).is_some()),
        };
        match owner {
            Some(owner) => {
                let mut def = owner.definition.clone();
                let dropped = def.index(&index.name).map(|i| i.index_id);
                def.indexes.retain(|i| i.name != index.name);
                let mut batch = Batch::new();
                app.meta.put_table(&mut batch, &def)?;
                let table_id = def.table_id;
                app.schema_registry.commit_table(batch, def)?;
                dropped.map(|id| (table_id, id))
            }
            None => None,
        }
    };
    match found {
        Some((table_id, index_id)) => {
            crate::jobs::executors::index_build::delete_entries(app, table_id, index_id)?;
            Ok(StatementResult::message(format!(
                "Index '{ns}.{}' dropped",
                index.name
            )))
        }
        None if if_exists => Ok(StatementResult::message(format!(
            "Index '{ns}.{}' does not exist",
            index.name
        ))),
        None => Err(CoreError::NotFound(format!(
            "Index '{ns}.{}' does not exist",
            index.name
        ))),
    }
}
