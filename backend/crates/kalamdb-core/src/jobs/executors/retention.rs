//! Retention (`RT`): purges soft-deleted rows once they are older than their
//! table's `DELETED_RETENTION_HOURS` (default `storage.deleted_retention_hours`)
//! from both tiers. Hot ones go here; a cold tombstone goes with the
//! compaction of its segments ([`super::compact`]), which this job starts
//! for a table whose segments hold tombstones under the new horizon. A hot
//! tombstone that hides a cold version stays until a flush moves it (then
//! compaction drops both): this job starts that flush too.
//!
//! A soft-deleted row is what lets a live query resuming from a cursor learn
//! that the row went, so before purging below a `_seq` the job records it as
//! the table's resume horizon (in its own batch, first): a resume from a
//! cursor under the horizon is refused with `RESUME_TOO_OLD` instead of
//! missing deletes. Each tombstone is removed at the write funnel's commit
//! point and only if it is still the one stored, so a key written again
//! meanwhile keeps its row. Scheduled every `jobs.retention_interval_secs`.
//! Parameters: none (every USER and SHARED table) or
//! `{"table_ids": [n, ...]}`.

use crate::app_context::AppContext;
use crate::error::{CoreError, CoreResult};
use crate::jobs::executor::{JobContext, JobDecision, JobExecutor};
use crate::jobs::model::{Job, JobType};
use crate::row_reader::RowReader;
use async_trait::async_trait;
use kalamdb_commons::TableType;
use kalamdb_commons::snowflake::first_id_at;
use kalamdb_store::Batch;
use serde_json::Value as Json;
use std::sync::Arc;

/// Tombstones one purge commit removes at most.
const PURGE_CHUNK: usize = 4096;

pub struct RetentionExecutor {
    /// How long soft-deleted rows are kept where the table sets no
    /// `DELETED_RETENTION_HOURS`.
    pub default_retention_ms: i64,
}

impl RetentionExecutor {
    async fn run(&self, ctx: &JobContext<AppContext>, job: &Job) -> CoreResult<Option<String>> {
        let app = &ctx.app;
        let only = super::table_ids(&job.parameters, self.name())?;
        let now = ctx.clock.now_ms();
        let mut tables = 0;
        let mut purged = 0;
        let mut followups = Vec::new();
        for table in app.schema_registry.tables(None) {
            let def = &table.definition;
            if def.table_type == TableType::Stream
                || def.table_type == TableType::System
                || only
                    .as_ref()
                    .is_some_and(|ids| !ids.contains(&def.table_id))
            {
                continue;
            }
            if ctx.is_cancelled() {
                return Ok(None);
            }
            let keep_ms = def
                .options
                .deleted_retention_hours
                .map_or(self.default_retention_ms, |hours| {
                    i64::try_from(hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX)
                });
            let cutoff = first_id_at(u64::try_from(now.saturating_sub(keep_ms)).unwrap_or(0));
            tables += 1;
            if cutoff <= app.meta.resume_horizon(def.table_id)? {
                // a run since already purged this far (or the clock went back)
                continue;
            }
            let mut horizon = Batch::new();
            app.meta
                .put_resume_horizon(&mut horizon, def.table_id, cutoff);
            app.writes.purge(&[], horizon)?;

            let mut table_purged = 0;
            let mut shadowed = 0;
            let reader = RowReader::all_partitions(Arc::clone(&table), app.table_store.clone());
            let mut start = reader.start().to_vec();
            loop {
                let mut due = Vec::new();
                let mut next = None;
                reader.scan_rows(&start, true, &mut |key, row| {
                    if due.len() == PURGE_CHUNK {
                        next = Some(key.to_vec());
                        return Ok(false);
                    }
                    if row.deleted && row.seq < cutoff {
                        due.push((key.to_vec(), row.seq));
                    }
                    Ok(true)
                })?;
                let gone = app.writes.purge(&due, Batch::new())?;
                table_purged += gone;
                shadowed += due.len() - gone;
                match next {
                    Some(key) => start = key,
                    None => break,
                }
                if ctx.is_cancelled() {
                    return Ok(None);
                }
            }
            purged += table_purged;
            let cold = app.table_store.cold();
            if cold.has_cold(app.table_store.backend().as_ref(), def.table_id.0)? {
                let due_cold =
                    crate::cold::manifests_of(app.table_store.backend().as_ref(), def.table_id.0)?
                        .iter()
                        .any(|m| super::compact::tombstones_due(m, cutoff));
                let mut start = |job: CoreResult<String>| match job {
                    Ok(id) => followups.push(id),
                    Err(CoreError::IdempotentConflict(_)) => {}
                    Err(e) => tracing::warn!("retention of {}: {e}", def.table_ref()),
                };
                if shadowed > 0 {
                    start(super::flush::create_flush_job(app, &table));
                }
                if due_cold {
                    start(super::compact::create_compact_job(app, &table));
                }
            }
        }
        let mut message = format!("Purged {purged} soft-deleted row(s) from {tables} table(s)");
        if !followups.is_empty() {
            message.push_str(&format!(
                "; started for the cold tier: [{}]",
                followups.join(", ")
            ));
        }
        Ok(Some(message))
    }
}

#[async_trait]
impl JobExecutor<AppContext> for RetentionExecutor {
    fn job_type(&self) -> JobType {
        JobType::Retention
    }

    fn name(&self) -> &'static str {
        "Retention"
    }

    fn validate_params(&self, params: &Json) -> CoreResult<()> {
        super::table_ids(params, self.name()).map(drop)
    }

    async fn execute(&self, ctx: &JobContext<AppContext>, job: &Job) -> JobDecision {
        let outcome = self.run(ctx, job).await;
        JobDecision::of_run(self.name(), outcome)
    }

    /// Purging again is harmless.
    fn safe_to_resume(&self) -> bool {
        true
    }
}
