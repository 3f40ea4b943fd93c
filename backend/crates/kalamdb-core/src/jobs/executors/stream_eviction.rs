//! StreamEviction (`SE`): removes STREAM rows older than their table's TTL
//! (reads stop seeing them the moment they expire; this reclaims their
//! memory) and brings tables past their row cap back under it. Scheduled
//! every `jobs.stream_eviction_interval_secs`. Parameters: none (every
//! STREAM table) or `{"table_ids": [n, ...]}`.

use crate::app_context::AppContext;
use crate::error::CoreResult;
use crate::jobs::executor::{JobContext, JobDecision, JobExecutor};
use crate::jobs::model::{Job, JobType};
use crate::stream_eviction::{Evict, enforce_row_caps, evict};
use async_trait::async_trait;
use kalamdb_commons::TableType;
use serde_json::Value as Json;

pub struct StreamEvictionExecutor;

impl StreamEvictionExecutor {
    async fn run(&self, ctx: &JobContext<AppContext>, job: &Job) -> CoreResult<Option<String>> {
        let only = super::table_ids(&job.parameters, self.name())?;
        let now = ctx.clock.now_ms();
        let mut tables = 0;
        let mut expired = 0;
        for table in ctx.app.schema_registry.tables(None) {
            let def = &table.definition;
            if def.table_type != TableType::Stream
                || only
                    .as_ref()
                    .is_some_and(|ids| !ids.contains(&def.table_id))
            {
                continue;
            }
            if ctx.is_cancelled() {
                return Ok(None);
            }
            let ttl_ms = def.options.ttl_seconds.unwrap_or(u64::MAX / 1000) * 1000;
            let before = now.saturating_sub(i64::try_from(ttl_ms).unwrap_or(i64::MAX));
            expired += evict(&ctx.app, &table, Evict::WrittenBefore(before)).await?;
            tables += 1;
        }
        let capped = enforce_row_caps(&ctx.app).await?;
        Ok(Some(format!(
            "Evicted {expired} expired row(s) from {tables} STREAM table(s), {capped} over the row cap"
        )))
    }
}

#[async_trait]
impl JobExecutor<AppContext> for StreamEvictionExecutor {
    fn job_type(&self) -> JobType {
        JobType::StreamEviction
    }

    fn name(&self) -> &'static str {
        "StreamEviction"
    }

    fn validate_params(&self, params: &Json) -> CoreResult<()> {
        super::table_ids(params, self.name()).map(drop)
    }

    async fn execute(&self, ctx: &JobContext<AppContext>, job: &Job) -> JobDecision {
        let outcome = self.run(ctx, job).await;
        JobDecision::of_run(self.name(), outcome)
    }

    /// Evicting again is harmless.
    fn safe_to_resume(&self) -> bool {
        true
    }
}
