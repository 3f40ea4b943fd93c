//! CREATE TABLE and DROP TABLE; FLUSH and STORAGE COMPACT.

use super::{StatementHandler, StatementOptions, resolve_name, unexpected};
use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::result::StatementResult;
use crate::rows::defaults::compile_default;
use crate::table_store::delete_all_rows;
use async_trait::async_trait;
use kalamdb_commons::ids::validate_identifier;
use kalamdb_commons::now_ms;
use kalamdb_commons::{ColumnDefinition, NamespaceId, SYSTEM_NAMESPACE, TableDefinition, TableId};
use kalamdb_sql::{CreateTableStatement, SqlStatement};
use kalamdb_store::Batch;

pub struct TableDdlHandler;

#[async_trait]
impl StatementHandler for TableDdlHandler {
    async fn execute(
        &self,
        app: &AppContext,
        ctx: &mut ExecutionContext,
        statement: SqlStatement,
        _options: &StatementOptions<'_>,
    ) -> CoreResult<StatementResult> {
        match statement {
            SqlStatement::CreateTable(create) => create_table(app, ctx, *create).await,
            SqlStatement::CreateIndex {
                name,
                table,
                columns,
                unique,
                if_not_exists,
            } => {
                super::index::create_index(app, ctx, name, &table, &columns, unique, if_not_exists)
                    .await
            }
            SqlStatement::DropIndex {
                index,
                table,
                if_exists,
            } => super::index::drop_index(app, ctx, &index, table.as_ref(), if_exists).await,
            SqlStatement::FlushTable { table } => {
                let table = super::resolve_table(app, ctx, &table)?;
                if let Some(why) = crate::jobs::executors::flush::refusal(&table) {
                    return Err(CoreError::NotSupported(why));
                }
                let job_id = crate::jobs::executors::flush::create_flush_job(app, &table)?;
                Ok(StatementResult::message(format!(
                    "Flush started for table '{}'. Job ID: {job_id}",
                    table.definition.table_ref()
                )))
            }
            SqlStatement::FlushAll { namespace } => {
                let refusal = crate::jobs::executors::flush::refusal;
                let create = crate::jobs::executors::flush::create_flush_job;
                for_all_tables(
                    app,
                    namespace,
                    "Flush",
                    "already flushing",
                    &|t| refusal(t).is_none(),
                    &create,
                )
            }
            SqlStatement::CompactTable { table } => {
                let table = super::resolve_table(app, ctx, &table)?;
                if let Some(why) = crate::jobs::executors::compact::refusal(&table) {
                    return Err(CoreError::NotSupported(why));
                }
                let job_id = crate::jobs::executors::compact::create_compact_job(app, &table)?;
                Ok(StatementResult::message(format!(
                    "Compaction started for table '{}'. Job ID: {job_id}",
                    table.definition.table_ref()
                )))
            }
            SqlStatement::CompactAll { namespace } => {
                let refusal = crate::jobs::executors::compact::refusal;
                let create = crate::jobs::executors::compact::create_compact_job;
                let backend = app.table_store.backend();
                let cold = app.table_store.cold();
                // only tables that have flushed something have segments
                for_all_tables(
                    app,
                    namespace,
                    "Compaction",
                    "already compacting",
                    &|t| {
                        refusal(t).is_none()
                            && cold
                                .has_cold(backend.as_ref(), t.definition.table_id.0)
                                .unwrap_or(true)
                    },
                    &create,
                )
            }
            SqlStatement::Standard(s) => match *s {
                kalamdb_sql::sqlparser::ast::Statement::AlterTable(alter) => {
                    super::alter_table::alter_table(app, ctx, &alter).await
                }
                other => Err(unexpected(&SqlStatement::Standard(Box::new(other)))),
            },
            SqlStatement::DropTable {
                table,
                table_type,
                if_exists,
            } => {
                let (ns, name) = resolve_name(ctx, &table);
                let _ddl = app.ddl_lock.lock().await;
                let Some(existing) = app.schema_registry.get_table(&ns, &name) else {
                    if !app.schema_registry.namespace_exists(&ns) && !if_exists {
                        return Err(CoreError::NamespaceNotFound(ns));
                    }
                    return if if_exists {
                        Ok(StatementResult::message(format!(
                            "Table '{ns}.{name}' does not exist"
                        )))
                    } else {
                        Err(CoreError::TableNotFound(format!("{ns}.{name}")))
                    };
                };
                let def = &existing.definition;
                if let Some(kind) = table_type
                    && kind != def.table_type
                {
                    return Err(CoreError::InvalidSql(format!(
                        "Table '{ns}.{name}' is a {} table, not {kind}",
                        def.table_type
                    )));
                }
                let cleanup = drop_table_now(app, def)?;
                Ok(StatementResult::message(format!(
                    "Table '{ns}.{name}' dropped{cleanup}"
                )))
            }
            other => Err(unexpected(&other)),
        }
    }
}

/// Drops table `def` (the caller holds the DDL lock): its definition and
/// rows go in one batch, its files by a Cleanup job. Returns what the job
/// says of itself, for the reply.
pub(crate) fn drop_table_now(app: &AppContext, def: &TableDefinition) -> CoreResult<String> {
    let (ns, name) = (def.namespace.as_str(), def.name.as_str());
    let mut batch = Batch::new();
    delete_all_rows(&mut batch, def.table_id);
    app.meta.delete_table(&mut batch, def);
    app.schema_registry.commit_drop_table(batch, ns, name)?;
    Ok(app
        .job_manager
        .submit_cleanup(&[def.table_id], ns, Some(name)))
}

/// Starts a job (`create`) for every table of `namespace` (or all) that
/// `eligible` accepts; a table whose job is still active is named, not an
/// error.
fn for_all_tables(
    app: &AppContext,
    namespace: Option<String>,
    what: &str,
    running_label: &str,
    eligible: &dyn Fn(&crate::schema::CachedTable) -> bool,
    create: &dyn Fn(&AppContext, &crate::schema::CachedTable) -> CoreResult<String>,
) -> CoreResult<StatementResult> {
    if let Some(ns) = &namespace
        && !app.schema_registry.namespace_exists(ns)
    {
        return Err(CoreError::NamespaceNotFound(ns.clone()));
    }
    let mut started = Vec::new();
    let mut running = Vec::new();
    for table in app.schema_registry.tables(namespace.as_deref()) {
        if !eligible(&table) {
            continue;
        }
        match create(app, &table) {
            Ok(id) => started.push(id),
            Err(CoreError::IdempotentConflict(_)) => {
                running.push(table.definition.table_ref().to_string())
            }
            Err(e) => return Err(e),
        }
    }
    let mut message = format!(
        "{what} started for {} table(s). Job IDs: [{}]",
        started.len(),
        started.join(", ")
    );
    if !running.is_empty() {
        message.push_str(&format!("; {running_label}: {}", running.join(", ")));
    }
    Ok(StatementResult::message(message))
}

async fn create_table(
    app: &AppContext,
    ctx: &ExecutionContext,
    create: CreateTableStatement,
) -> CoreResult<StatementResult> {
    let (ns, name) = resolve_name(ctx, &create.table);
    validate_identifier("table", &name).map_err(CoreError::InvalidSql)?;
    if ns == SYSTEM_NAMESPACE {
        return Err(CoreError::PermissionDenied(
            "Tables cannot be created in the system namespace".into(),
        ));
    }
    // UNIQUE constraints: column ones first, then the table's
    let mut unique: Vec<(Option<String>, Vec<String>)> = create
        .columns
        .iter()
        .filter(|c| c.unique)
        .map(|c| (None, vec![c.name.clone()]))
        .collect();
    unique.extend(create.unique.into_iter().map(|u| (u.name, u.columns)));
    // the key's columns by id, in key order (ids are positions + 1 here)
    let key_columns: Vec<u32> = create
        .primary_key
        .iter()
        .filter_map(|name| create.columns.iter().position(|c| &c.name == name))
        .map(|i| i as u32 + 1)
        .collect();
    let columns: Vec<ColumnDefinition> = create
        .columns
        .into_iter()
        .enumerate()
        .map(|(i, c)| ColumnDefinition {
            column_id: i as u32 + 1,
            name: c.name,
            data_type: c.data_type,
            nullable: c.nullable,
            primary_key: c.primary_key,
            default: c.default,
            backfill: None,
        })
        .collect();
    for column in &columns {
        // A bad default fails the CREATE, not every later INSERT.
        compile_default(column)?;
    }

    let _ddl = app.ddl_lock.lock().await;
    app.table_store
        .cold()
        .storages()
        .require(&create.options.storage_id)?;
    if !app.schema_registry.namespace_exists(&ns) {
        return Err(CoreError::NamespaceNotFound(ns));
    }
    if app.schema_registry.get_table(&ns, &name).is_some() {
        return if create.if_not_exists {
            Ok(StatementResult::message(format!(
                "Table '{ns}.{name}' already exists"
            )))
        } else {
            Err(CoreError::AlreadyExists(format!(
                "Table '{ns}.{name}' already exists"
            )))
        };
    }
    let mut batch = Batch::new();
    let table_id = TableId(app.meta.next_counter(&mut batch, "table_id")?);
    let mut definition = TableDefinition {
        table_id,
        namespace: NamespaceId::new(&ns),
        name: name.clone(),
        table_type: create.table_type,
        columns,
        schema_version: 1,
        options: create.options,
        created_at: now_ms(),
        indexes: Vec::new(),
        next_index_id: 1,
        key_columns,
    };
    // an empty table's unique indexes are built from the start
    for (constraint, columns) in unique {
        let index_name =
            constraint.unwrap_or_else(|| super::index::default_name(&name, &columns, true));
        if let Some(owner) = super::index::index_owner(app, &ns, &index_name)
            .or_else(|| definition.index(&index_name).map(|_| name.clone()))
        {
            return Err(CoreError::AlreadyExists(format!(
                "Index '{ns}.{index_name}' already exists (on table '{owner}')"
            )));
        }
        super::index::new_index(
            &mut definition,
            index_name,
            &columns,
            true,
            kalamdb_commons::IndexState::Ready,
        )?;
    }
    app.meta.put_table(&mut batch, &definition)?;
    let kind = definition.table_type;
    app.schema_registry.commit_table(batch, definition)?;
    Ok(StatementResult::message(format!(
        "{kind} table '{ns}.{name}' created"
    )))
}
