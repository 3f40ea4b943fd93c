//! The executor contract: one implementation per job type, registered in a
//! [`JobRegistry`]; the manager hands each run a [`JobContext`].

use super::model::{Job, JobType};
use crate::error::{CoreError, CoreResult};
use async_trait::async_trait;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The `tracing` target of job events; `jobs.log` receives exactly these.
pub const JOBS_LOG_TARGET: &str = "kalamdb::jobs";

/// What an executor says about one run.
#[derive(Debug, Clone, PartialEq)]
pub enum JobDecision {
    Completed {
        message: String,
    },
    /// Try again after a backoff (the manager uses the larger of this and its
    /// exponential backoff), while retries remain.
    Retry {
        message: String,
        backoff_ms: u64,
        exception_trace: Option<String>,
    },
    Failed {
        message: String,
        exception_trace: Option<String>,
    },
}

impl JobDecision {
    /// The decision of one run of the executor `name`, the one mapping every
    /// executor uses: `Ok(Some(summary))` did the work; `Ok(None)` stopped at
    /// a cancellation point; a storage engine error is retried (the
    /// engine may recover); any other error fails at once (running again cannot change
    /// it: bad parameters, a refused request).
    pub fn of_run(name: &str, outcome: CoreResult<Option<String>>) -> Self {
        match outcome {
            Ok(Some(message)) => Self::Completed { message },
            Ok(None) => Self::Failed {
                message: "Cancelled between steps".into(),
                exception_trace: None,
            },
            Err(
                e @ (CoreError::Store(kalamdb_store::StoreError::Engine(_))
                | CoreError::ColdTier(_)),
            ) => Self::Retry {
                message: format!("{name} failed: {e}"),
                backoff_ms: 0,
                exception_trace: Some(format!("{e:?}")),
            },
            Err(e) => Self::Failed {
                message: format!("{name} refused: {e}"),
                exception_trace: Some(format!("{e:?}")),
            },
        }
    }
}

/// Wall-clock milliseconds; injectable so tests never sleep.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        kalamdb_commons::now_ms()
    }
}

/// What a running executor gets: the application (`A`: the database's
/// `AppContext`), its cancellation token, a logger that prefixes every line
/// with the job id, and the clock.
pub struct JobContext<A> {
    pub app: Arc<A>,
    pub cancel: CancellationToken,
    pub clock: Arc<dyn Clock>,
    job_id: String,
}

impl<A> JobContext<A> {
    pub fn new(
        app: Arc<A>,
        cancel: CancellationToken,
        clock: Arc<dyn Clock>,
        job_id: String,
    ) -> Self {
        Self {
            app,
            cancel,
            clock,
            job_id,
        }
    }

    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A progress line in `jobs.log`: `[JobId] INFO message`.
    pub fn info(&self, message: &str) {
        tracing::info!(target: JOBS_LOG_TARGET, job_id = %self.job_id, "{message}");
    }

    pub fn warn(&self, message: &str) {
        tracing::warn!(target: JOBS_LOG_TARGET, job_id = %self.job_id, "{message}");
    }
}

/// One job type's work, run against the application `A`.
#[async_trait]
pub trait JobExecutor<A: Send + Sync + 'static>: Send + Sync {
    fn job_type(&self) -> JobType;
    fn name(&self) -> &'static str;
    /// Refuses bad parameters at creation, before anything is queued.
    fn validate_params(&self, params: &Json) -> CoreResult<()>;
    /// Does the work. Long work checks `ctx.cancel` at safe points.
    async fn execute(&self, ctx: &JobContext<A>, job: &Job) -> JobDecision;
    /// Called when a running job is cancelled (after its token is).
    async fn cancel(&self, _ctx: &JobContext<A>, _job: &Job) -> CoreResult<()> {
        Ok(())
    }
    /// Whether a job left Running by a crash may simply run again.
    fn safe_to_resume(&self) -> bool {
        false
    }
}

/// Executors by job type.
pub struct JobRegistry<A> {
    executors: HashMap<JobType, Arc<dyn JobExecutor<A>>>,
}

impl<A: Send + Sync + 'static> Default for JobRegistry<A> {
    fn default() -> Self {
        Self {
            executors: HashMap::new(),
        }
    }
}

impl<A: Send + Sync + 'static> JobRegistry<A> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the executor of its job type.
    pub fn register(&mut self, executor: Arc<dyn JobExecutor<A>>) {
        self.executors.insert(executor.job_type(), executor);
    }

    pub fn get(&self, job_type: JobType) -> Option<Arc<dyn JobExecutor<A>>> {
        self.executors.get(&job_type).cloned()
    }
}
