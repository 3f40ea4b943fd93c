//! Opening a database: the [`AppContext`] with KalamDB's executor and job
//! executors, and the schedules they run on.

use crate::app_context::{AppContext, CoreOptions};
use crate::error::CoreResult;
use crate::executor::SqlExecutor;
use crate::jobs::executors::{
    BackupExecutor, CleanupExecutor, CompactExecutor, FlushExecutor, IndexBuildExecutor,
    RestoreExecutor, RetentionExecutor, StreamEvictionExecutor, UserCleanupExecutor,
};
use crate::jobs::{JobOptions, JobRegistry, JobType, Schedule};
use kalamdb_store::StorageBackend;
use std::sync::Arc;

impl AppContext {
    /// Opens the database on `backend` (bootstrapping it on first start).
    pub fn open(backend: Arc<dyn StorageBackend>, options: &CoreOptions) -> CoreResult<Arc<Self>> {
        let mut jobs = JobRegistry::new();
        jobs.register(Arc::new(CleanupExecutor));
        jobs.register(Arc::new(FlushExecutor::default()));
        jobs.register(Arc::new(CompactExecutor::default()));
        jobs.register(Arc::new(IndexBuildExecutor));
        jobs.register(Arc::new(BackupExecutor::default()));
        jobs.register(Arc::new(RestoreExecutor));
        jobs.register(Arc::new(StreamEvictionExecutor));
        jobs.register(Arc::new(RetentionExecutor {
            default_retention_ms: options.deleted_retention_ms,
        }));
        jobs.register(Arc::new(UserCleanupExecutor {
            grace_ms: options.user_deletion_grace_ms,
        }));
        let app = Self::assemble(backend, options, Arc::new(SqlExecutor::new()), jobs)?;
        for (job_type, interval_ms, key_prefix) in [
            (
                JobType::UserCleanup,
                options.user_cleanup_interval_ms,
                "user_cleanup",
            ),
            (
                JobType::StreamEviction,
                options.stream_eviction_interval_ms,
                "stream_eviction",
            ),
            (
                JobType::Retention,
                options.retention_interval_ms,
                "retention",
            ),
            (JobType::Compact, options.compaction_interval_ms, "compact"),
        ] {
            // an interval of 0 turns the schedule off
            if interval_ms > 0 {
                app.job_manager.add_schedule(Schedule {
                    job_type,
                    interval_ms,
                    options: JobOptions::default(),
                    key_prefix: key_prefix.into(),
                });
            }
        }
        Ok(app)
    }
}
