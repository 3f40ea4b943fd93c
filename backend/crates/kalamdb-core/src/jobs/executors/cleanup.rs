//! Cleanup (`CL`): reclaims the storage of dropped tables and namespaces.
//!
//! DROP TABLE / DROP NAMESPACE remove the metadata and range-delete the rows
//! in one atomic batch, so the data is gone from every query at once; the
//! range delete only writes a tombstone, though. This job then re-applies the
//! (idempotent) range delete and compacts each dropped table's key range, so
//! its rows stop taking disk space. Cold-tier files join it with the cold
//! tier. Parameters: `{"table_ids": [n, ...]}`.

use crate::app_context::AppContext;
use crate::error::{CoreError, CoreResult};
use crate::jobs::executor::{JobContext, JobDecision, JobExecutor};
use crate::jobs::model::{Job, JobType};
use async_trait::async_trait;
use kalamdb_commons::TableId;
use serde_json::Value as Json;

pub struct CleanupExecutor;

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
        let outcome = self
            .reclaim(ctx, job)
            .map(|done| done.map(|n| format!("Reclaimed the storage of {n} dropped table(s)")));
        JobDecision::of_run(self.name(), outcome)
    }

    /// Deleting and compacting again is harmless.
    fn safe_to_resume(&self) -> bool {
        true
    }
}
