//! One file per job type.

pub mod backup;
pub mod cleanup;
pub mod compact;
pub mod flush;
pub mod index_build;
pub mod restore;
pub mod retention;
pub mod stream_eviction;
pub mod user_cleanup;

pub use backup::BackupExecutor;
pub use cleanup::CleanupExecutor;
pub use compact::CompactExecutor;
pub use flush::FlushExecutor;
pub use index_build::IndexBuildExecutor;
pub use restore::RestoreExecutor;
pub use retention::RetentionExecutor;
pub use stream_eviction::StreamEvictionExecutor;
pub use user_cleanup::UserCleanupExecutor;

use crate::error::{CoreError, CoreResult};
use kalamdb_commons::TableId;
use serde_json::Value as Json;

/// A job's optional `{"table_ids": [n, ...]}` parameter (`None`: every
/// table the job applies to).
fn table_ids(params: &Json, job: &str) -> CoreResult<Option<Vec<TableId>>> {
    let Some(ids) = params.get("table_ids") else {
        return Ok(None);
    };
    let ids = ids.as_array().ok_or_else(|| {
        CoreError::InvalidParameter(format!("{job}: 'table_ids' must be an array of table ids"))
    })?;
    ids.iter()
        .map(|v| {
            v.as_u64().map(TableId).ok_or_else(|| {
                CoreError::InvalidParameter(format!("{job}: '{v}' is not a table id"))
            })
        })
        .collect::<CoreResult<Vec<_>>>()
        .map(Some)
}

/// Creates a job of `job_type` for one table (`{"table_id": n}`) with the
/// idempotency key `<key>:<table id>`: one already active is an
/// `IdempotentConflict` naming it.
fn create_table_job(
    app: &crate::app_context::AppContext,
    job_type: crate::jobs::JobType,
    key: &str,
    table: &crate::schema::CachedTable,
) -> CoreResult<String> {
    let def = &table.definition;
    app.job_manager.create_job(
        job_type,
        crate::jobs::JobOptions {
            parameters: serde_json::json!({ "table_id": def.table_id.0 }),
            idempotency_key: Some(format!("{key}:{}", def.table_id.0)),
            namespace_id: Some(def.namespace.as_str().to_string()),
            table_name: Some(def.name.clone()),
            max_retries: Some(3),
            ..crate::jobs::JobOptions::default()
        },
    )
}
