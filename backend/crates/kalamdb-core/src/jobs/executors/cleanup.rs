//! Cleanup (`CL`): reclaims the storage of dropped tables and namespaces.
//!
//! DROP TABLE / DROP NAMESPACE remove the metadata and range-delete the rows
//! in one atomic batch, so the data is gone from every query at once; the
//! range delete only writes a tombstone, though. This job then re-applies the
//! (idempotent) range delete and compacts each dropped table's key range, so
//! its rows stop taking disk space, and removes the table's segment files
//! that no live table's manifest references (written more than
//! [`SWEEP_GRACE_MS`] ago: a table of the same name may be uploading one;
//! younger ones go at the next start). Parameters: `{"table_ids": [n, ...]}`.

use crate::app_context::AppContext;
use crate::error::{CoreError, CoreResult};
use crate::jobs::executor::{JobContext, JobDecision, JobExecutor};
use crate::jobs::model::{Job, JobType};
use async_trait::async_trait;
use kalamdb_commons::TableId;
use serde_json::Value as Json;

pub struct CleanupExecutor;

/// How old an unreferenced segment file must be before Cleanup removes it.
pub const SWEEP_GRACE_MS: i64 = 15 * 60 * 1000;

fn table_ids(params: &Json) -> CoreResult<Vec<TableId>> {
    super::table_ids(params, "Cleanup")?.ok_or_else(|| {
        CoreError::InvalidParameter("Cleanup: 'table_ids' must be an array of table ids".into())
    })
}

impl CleanupExecutor {
    fn reclaim(&self, ctx: &JobContext<AppContext>, job: &Job) -> CoreResult<Option<usize>> {
        let ids = table_ids(&job.parameters)?;
        for (done, id) in ids.iter().enumerate() {
            if ctx.is_cancelled() {
                return Ok(None);
            }
            if ctx.app.schema_registry.table_by_id(*id).is_some() {
                return Err(CoreError::Execution(format!(
                    "table {} still exists; refusing to clean it up",
                    id.0
                )));
            }
            ctx.app.table_store.purge_table(*id)?;
            ctx.info(&format!(
                "reclaimed table {} ({}/{})",
                id.0,
                done + 1,
                ids.len()
            ));
        }
        Ok(Some(ids.len()))
    }
}

/// Removes the dropped tables' segment files: those under the job's
/// namespace (and table) directory that no live table references.
async fn sweep(ctx: &JobContext<AppContext>, job: &Job) -> CoreResult<usize> {
    let app = &ctx.app;
    let Some(namespace) = &job.namespace_id else {
        return Ok(0);
    };
    // every storage: the dropped tables' definitions (and so their
    // storages) are gone; the templates say where their files lie
    let targets: Vec<(String, String)> = app
        .table_store
        .cold()
        .storages()
        .all()
        .into_iter()
        .flat_map(|s| {
            s.sweep_prefixes(namespace, job.table_name.as_deref())
                .into_iter()
                .map(move |prefix| (s.storage_id.clone(), prefix))
        })
        .collect();
    let live = app
        .schema_registry
        .tables(None)
        .iter()
        .map(|t| t.definition.table_id.0)
        .collect::<Vec<_>>();
    crate::cold::sweep_orphans(
        app.table_store.cold(),
        app.table_store.backend().as_ref(),
        live,
        &targets,
        ctx.clock.now_ms() - SWEEP_GRACE_MS,
    )
    .await
}

#[async_trait]
impl JobExecutor<AppContext> for CleanupExecutor {
    fn job_type(&self) -> JobType {
        JobType::Cleanup
    }

    fn name(&self) -> &'static str {
        "Cleanup"
    }

    fn validate_params(&self, params: &Json) -> CoreResult<()> {
        table_ids(params).map(drop)
    }

    async fn execute(&self, ctx: &JobContext<AppContext>, job: &Job) -> JobDecision {
        let outcome = match self.reclaim(ctx, job) {
            Ok(Some(n)) => sweep(ctx, job).await.map(|files| {
                let mut message = format!("Reclaimed the storage of {n} dropped table(s)");
                if files > 0 {
                    message.push_str(&format!(" and {files} segment file(s)"));
                }
                Some(message)
            }),
            other => other.map(|_| None),
        };
        JobDecision::of_run(self.name(), outcome)
    }

    /// Deleting and compacting again is harmless.
    fn safe_to_resume(&self) -> bool {
        true
    }
}
