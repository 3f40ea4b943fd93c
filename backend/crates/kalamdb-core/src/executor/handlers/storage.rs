//! CREATE / ALTER / DROP STORAGE. A storage is checked before it is
//! committed: its options are valid, its location overlaps no other
//! storage's (a sweep of one would take the other's segments for orphans),
//! and it answers. Credentials are stored, never shown back: messages,
//! the audit log and `system.storages` carry none.

use super::{StatementHandler, StatementOptions, unexpected};
use crate::app_context::AppContext;
use crate::context::ExecutionContext;
use crate::error::{CoreError, CoreResult};
use crate::result::StatementResult;
use async_trait::async_trait;
use kalamdb_commons::storage::{
    Credentials, DEFAULT_SHARED_TEMPLATE, DEFAULT_USER_TEMPLATE, parse_storage_options,
};
use kalamdb_commons::{LOCAL_STORAGE_ID, StorageDefinition, StorageType, now_ms};
use kalamdb_sql::SqlStatement;
use kalamdb_sql::StorageOptions;
use kalamdb_store::Batch;

pub struct StorageHandler;

#[async_trait]
impl StatementHandler for StorageHandler {
    async fn execute(
        &self,
        app: &AppContext,
        _ctx: &mut ExecutionContext,
        statement: SqlStatement,
        _options: &StatementOptions<'_>,
    ) -> CoreResult<StatementResult> {
        match statement {
            SqlStatement::CreateStorage {
                storage_id,
                if_not_exists,
                options,
            } => create(app, &storage_id, if_not_exists, options).await,
            SqlStatement::AlterStorage {
                storage_id,
                options,
            } => alter(app, &storage_id, options).await,
            SqlStatement::DropStorage {
                storage_id,
                if_exists,
            } => drop_storage(app, &storage_id, if_exists).await,
            other => Err(unexpected(&other)),
        }
    }
}

fn invalid(message: String) -> CoreError {
    CoreError::InvalidParameter(message)
}

fn built_in(what: &str) -> CoreError {
    CoreError::NotSupported(format!(
        "The built-in storage '{LOCAL_STORAGE_ID}' cannot be {what}"
    ))
}

async fn create(
    app: &AppContext,
    id: &str,
    if_not_exists: bool,
    options: StorageOptions,
) -> CoreResult<StatementResult> {
    kalamdb_commons::ids::validate_identifier("storage", id).map_err(CoreError::InvalidSql)?;
    let storages = app.table_store.cold().storages();
    let _ddl = app.ddl_lock.lock().await;
    if storages.exists(id) {
        let message = format!("Storage '{id}' already exists");
        return if if_not_exists {
            Ok(StatementResult::message(message))
        } else {
            Err(CoreError::AlreadyExists(message))
        };
    }
    let storage_type = options
        .storage_type
        .as_deref()
        .ok_or_else(|| invalid("CREATE STORAGE needs a TYPE (filesystem, s3, gcs or azure)".into()))
        .and_then(|t| StorageType::parse(t).map_err(invalid))?;
    let path = options
        .path
        .clone()
        .ok_or_else(|| invalid("CREATE STORAGE needs a PATH".into()))?;
    let now = now_ms();
    let mut def = StorageDefinition {
        storage_id: id.to_string(),
        name: id.to_string(),
        description: None,
        storage_type,
        base_directory: path,
        shared_tables_template: DEFAULT_SHARED_TEMPLATE.into(),
        user_tables_template: DEFAULT_USER_TEMPLATE.into(),
        config: Default::default(),
        credentials: Credentials::default(),
        created_at: now,
        updated_at: now,
    };
    apply(&mut def, &options)?;
    check(app, &def).await?;
    let mut batch = Batch::new();
    app.meta.put_storage(&mut batch, &def)?;
    app.meta.backend().write(batch)?;
    storages.put(def);
    Ok(StatementResult::message(format!(
        "Storage '{id}' created ({}: {})",
        storage_type.as_str(),
        options.path.as_deref().unwrap_or("")
    )))
}

/// Applies the options other than TYPE (and PATH's presence) to `def`.
fn apply(def: &mut StorageDefinition, options: &StorageOptions) -> CoreResult<()> {
    if let Some(name) = &options.name {
        def.name = name.clone();
    }
    if let Some(description) = &options.description {
        def.description = (!description.is_empty()).then(|| description.clone());
    }
    if let Some(path) = &options.path {
        def.base_directory = path.clone();
    }
    if let Some(t) = &options.shared_tables_template {
        def.shared_tables_template = t.clone();
    }
    if let Some(t) = &options.user_tables_template {
        def.user_tables_template = t.clone();
    }
    if let Some(config) = &options.config {
        def.config = parse_storage_options("CONFIG", config).map_err(invalid)?;
    }
    if let Some(credentials) = &options.credentials {
        def.credentials = Credentials(
            parse_storage_options("CREDENTIALS", &credentials.0)
                // the parser's message may quote the text: name only the problem
                .map_err(|_| {
                    invalid("Storage CREDENTIALS must be a JSON object of strings".into())
                })?,
        );
    }
    def.validate().map_err(invalid)
}

/// Opens `def`, refuses a location overlapping another storage's, and
/// checks that it answers.
async fn check(app: &AppContext, def: &StorageDefinition) -> CoreResult<()> {
    let storages = app.table_store.cold().storages();
    let storage = storages
        .build(def)
        .map_err(|e| invalid(format!("Storage '{}': {e}", def.storage_id)))?;
    let location = storage.location();
    for other in storages.all() {
        if other.storage_id == def.storage_id {
            continue;
        }
        let Ok(theirs) = storages.storage(&other.storage_id) else {
            continue;
        };
        let theirs = theirs.location();
        if location.starts_with(&theirs) || theirs.starts_with(&location) {
            return Err(invalid(format!(
                "Storage '{}' would overlap storage '{}': each needs a location of its own",
                def.storage_id, other.storage_id
            )));
        }
    }
    storage.check().await.map_err(|e| {
        CoreError::Execution(format!("Storage '{}' does not answer: {e}", def.storage_id))
    })
}

/// The tables writing to storage `id`, and whether any segment lives on it.
fn users_of(app: &AppContext, id: &str) -> CoreResult<(Vec<String>, bool)> {
    let tables = app.schema_registry.tables(None);
    let writing: Vec<String> = tables
        .iter()
        .filter(|t| t.definition.options.storage_id == id)
        .map(|t| t.definition.table_ref().to_string())
        .collect();
    let backend = app.table_store.backend();
    for table in &tables {
        for manifest in crate::cold::manifests_of(backend.as_ref(), table.definition.table_id.0)? {
            if manifest.segments.iter().any(|s| s.storage == id) {
                return Ok((writing, true));
            }
        }
    }
    Ok((writing, false))
}

fn in_use(id: &str, what: &str, (tables, segments): (Vec<String>, bool)) -> CoreResult<()> {
    if tables.is_empty() && !segments {
        return Ok(());
    }
    let mut why = Vec::new();
    if !tables.is_empty() {
        let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
        let more = tables.len().saturating_sub(shown.len());
        why.push(format!(
            "table(s) {}{} use it",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    if segments {
        why.push("flushed segments live on it".into());
    }
    Err(CoreError::Execution(format!(
        "Storage '{id}' cannot be {what}: {}",
        why.join("; ")
    )))
}

async fn alter(app: &AppContext, id: &str, options: StorageOptions) -> CoreResult<StatementResult> {
    if id == LOCAL_STORAGE_ID {
        return Err(built_in("altered"));
    }
    let storages = app.table_store.cold().storages();
    let _ddl = app.ddl_lock.lock().await;
    let current = storages
        .definition(id)
        .ok_or_else(|| CoreError::NotFound(format!("Storage '{id}' does not exist")))?;
    if let Some(t) = &options.storage_type
        && StorageType::parse(t).map_err(invalid)? != current.storage_type
    {
        return Err(CoreError::NotSupported(format!(
            "Storage '{id}' cannot change its TYPE: create another storage"
        )));
    }
    let mut def = current.clone();
    apply(&mut def, &options)?;
    let moved = def.base_directory != current.base_directory;
    if moved {
        in_use(id, "moved to another PATH", users_of(app, id)?)?;
    }
    def.updated_at = now_ms();
    check(app, &def).await?;
    let mut batch = Batch::new();
    app.meta.put_storage(&mut batch, &def)?;
    app.meta.backend().write(batch)?;
    storages.put(def);
    if moved && let Some(cache) = storages.cache_dir(id) {
        let _ = std::fs::remove_dir_all(cache);
    }
    Ok(StatementResult::message(format!("Storage '{id}' altered")))
}

async fn drop_storage(app: &AppContext, id: &str, if_exists: bool) -> CoreResult<StatementResult> {
    if id == LOCAL_STORAGE_ID {
        return Err(built_in("dropped"));
    }
    let storages = app.table_store.cold().storages();
    let _ddl = app.ddl_lock.lock().await;
    if !storages.exists(id) {
        let message = format!("Storage '{id}' does not exist");
        return if if_exists {
            Ok(StatementResult::message(message))
        } else {
            Err(CoreError::NotFound(message))
        };
    }
    in_use(id, "dropped", users_of(app, id)?)?;
    let mut batch = Batch::new();
    app.meta.delete_storage(&mut batch, id);
    app.meta.backend().write(batch)?;
    storages.remove(id);
    if let Some(cache) = storages.cache_dir(id) {
        let _ = std::fs::remove_dir_all(cache);
    }
    Ok(StatementResult::message(format!("Storage '{id}' dropped")))
}
