//! `UnifiedJobManager`: creates jobs, runs them through their executors with
//! a concurrency limit, retries with exponential backoff, cancels them,
//! recovers them after a crash, and schedules periodic maintenance.
//!
//! Every transition is persisted (`system.jobs`) before it takes effect and
//! logged to `jobs.log` as `[JobId] LEVEL event`. Active jobs (New, Queued,
//! Running, Retrying) are also held in memory: a queue ordered by priority
//! then creation, a retry set ordered by due time, and the idempotency keys
//! they hold. The dispatch loop sleeps until a job is created, a slot frees,
//! a retry or schedule falls due, or shutdown; it never polls.

use super::executor::{Clock, JOBS_LOG_TARGET, JobContext, JobDecision, JobExecutor, JobRegistry};
use super::model::{Job, JobOptions, JobStatus, JobType, new_job_id, normalize_parameters};
use crate::error::{CoreError, CoreResult};
use crate::meta_store::MetaStore;
use futures::FutureExt;
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Jobs running at once; the rest wait Queued.
    pub max_concurrent: usize,
    /// First retry delay; doubled for each further retry.
    pub retry_backoff_ms: u64,
    /// Default `max_retries` of a job.
    pub max_retries: u32,
    pub node_id: u16,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 4,
            retry_backoff_ms: 1000,
            max_retries: 3,
            node_id: 0,
        }
    }
}

/// A job created every `interval_ms`, at most once per window.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub job_type: JobType,
    pub interval_ms: i64,
    pub options: JobOptions,
    /// Prefix of the idempotency key `<key_prefix>:<window>`.
    pub key_prefix: String,
}

/// (priority, highest first; creation sequence; id).
type QueueKey = (Reverse<i32>, u64, String);

#[derive(Default)]
struct State {
    /// New, Queued, Running and Retrying jobs.
    active: HashMap<String, Job>,
    /// Queued jobs in the order they run.
    queue: BTreeSet<QueueKey>,
    /// Creation sequence of each active job (ties in `created_at` keep
    /// creation order; recovered jobs are numbered by `created_at`).
    seqs: HashMap<String, u64>,
    next_seq: u64,
    /// Retrying jobs by due time.
    retries: BTreeSet<(i64, String)>,
    /// Idempotency key → the active job holding it.
    keys: HashMap<String, String>,
    running: HashMap<String, CancellationToken>,
    /// Next time each schedule fires.
    schedules: Vec<(Schedule, i64)>,
}

pub struct UnifiedJobManager<A> {
    meta: MetaStore,
    config: JobsConfig,
    clock: Arc<dyn Clock>,
    registry: RwLock<JobRegistry<A>>,
    state: Mutex<State>,
    wake: Notify,
    idle: Notify,
    stop: CancellationToken,
    app: OnceLock<Weak<A>>,
}

fn log_event(level: tracing::Level, job_id: &str, message: &str) {
    match level {
        tracing::Level::ERROR => {
            tracing::error!(target: JOBS_LOG_TARGET, job_id = %job_id, "{message}")
        }
        tracing::Level::WARN => {
            tracing::warn!(target: JOBS_LOG_TARGET, job_id = %job_id, "{message}")
        }
        _ => tracing::info!(target: JOBS_LOG_TARGET, job_id = %job_id, "{message}"),
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".into())
}

impl State {
    fn enqueue(&mut self, job: &Job) {
        let seq = match self.seqs.get(&job.job_id) {
            Some(seq) => *seq,
            None => {
                self.next_seq += 1;
                self.seqs.insert(job.job_id.clone(), self.next_seq);
                self.next_seq
            }
        };
        self.queue
            .insert((Reverse(job.priority), seq, job.job_id.clone()));
    }

    fn dequeue(&mut self, job: &Job) {
        if let Some(seq) = self.seqs.get(&job.job_id) {
            self.queue
                .remove(&(Reverse(job.priority), *seq, job.job_id.clone()));
        }
    }

    /// Forgets a job that is no longer active.
    fn retire(&mut self, job: &Job) {
        self.seqs.remove(&job.job_id);
        if let Some(key) = &job.idempotency_key
            && self.keys.get(key) == Some(&job.job_id)
        {
            self.keys.remove(key);
        }
    }
}

impl<A: Send + Sync + 'static> UnifiedJobManager<A> {
    pub fn new(
        meta: MetaStore,
        config: JobsConfig,
        clock: Arc<dyn Clock>,
        registry: JobRegistry<A>,
    ) -> Self {
        Self {
            meta,
            config,
            clock,
            registry: RwLock::new(registry),
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            idle: Notify::new(),
            stop: CancellationToken::new(),
            app: OnceLock::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn executor(&self, job_type: JobType) -> Option<Arc<dyn JobExecutor<A>>> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(job_type)
    }

    /// Adds a periodic job (before or after `start`).
    pub fn add_schedule(&self, schedule: Schedule) {
        let first = self.clock.now_ms() + schedule.interval_ms;
        self.state().schedules.push((schedule, first));
        self.wake.notify_one();
    }

    /// Stores a job whose status just changed (every call is a transition).
    fn persist(&self, job: &Job) -> CoreResult<()> {
        self.meta.put_job(job)?;
        metrics::counter!(
            "kalamdb_jobs_total",
            "type" => job.job_type.as_str(),
            "status" => job.status.as_str()
        )
        .increment(1);
        Ok(())
    }

    /// Creates a job: validates its parameters, checks its idempotency key
    /// against active jobs, persists it New then Queued, and wakes the
    /// dispatcher. Returns the job id.
    pub fn create_job(&self, job_type: JobType, options: JobOptions) -> CoreResult<String> {
        let executor = self.executor(job_type).ok_or_else(|| {
            CoreError::NotSupported(format!("No executor is registered for {job_type} jobs"))
        })?;
        let parameters =
            normalize_parameters(options.parameters).map_err(CoreError::InvalidParameter)?;
        executor.validate_params(&parameters)?;
        let mut state = self.state();
        if let Some(key) = &options.idempotency_key
            && let Some(holder) = state.keys.get(key).and_then(|id| state.active.get(id))
        {
            return Err(CoreError::IdempotentConflict(format!(
                "Job already running: {} (status: {}, created: {})",
                holder.job_id,
                holder.status,
                rfc3339(holder.created_at)
            )));
        }
        let job_id = loop {
            let id = new_job_id(job_type);
            if !state.active.contains_key(&id) && self.meta.job(&id)?.is_none() {
                break id;
            }
        };
        let now = self.clock.now_ms();
        let mut job = Job {
            job_id: job_id.clone(),
            job_type,
            status: JobStatus::New,
            namespace_id: options.namespace_id,
            table_name: options.table_name,
            parameters,
            message: None,
            exception_trace: None,
            idempotency_key: options.idempotency_key,
            retry_count: 0,
            max_retries: options.max_retries.unwrap_or(self.config.max_retries),
            queue: "default".into(),
            priority: options.priority,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
            next_attempt_at: None,
            node_id: self.config.node_id,
        };
        self.persist(&job)?;
        job.status = JobStatus::Queued;
        self.persist(&job)?;
        if let Some(key) = &job.idempotency_key {
            state.keys.insert(key.clone(), job_id.clone());
        }
        state.enqueue(&job);
        state.active.insert(job_id.clone(), job);
        drop(state);
        log_event(
            tracing::Level::INFO,
            &job_id,
            &format!("queued ({job_type})"),
        );
        self.wake.notify_one();
        Ok(job_id)
    }

    /// Loads persisted jobs: Running ones were cut short by a crash and are
    /// failed (or re-queued when their executor may resume); New, Queued and
    /// Retrying ones resume.
    fn recover(&self) -> CoreResult<()> {
        let now = self.clock.now_ms();
        let mut state = self.state();
        let mut jobs = self.meta.jobs()?;
        jobs.sort_by(|a, b| (a.created_at, &a.job_id).cmp(&(b.created_at, &b.job_id)));
        for mut job in jobs {
            match job.status {
                JobStatus::Running => {
                    let resume = self
                        .executor(job.job_type)
                        .is_some_and(|e| e.safe_to_resume());
                    job.updated_at = now;
                    if resume {
                        job.status = JobStatus::Queued;
                        log_event(
                            tracing::Level::WARN,
                            &job.job_id,
                            "re-queued: the server restarted during execution",
                        );
                    } else {
                        job.status = JobStatus::Failed;
                        job.message = Some("Server restarted during execution".into());
                        job.finished_at = Some(now);
                        log_event(
                            tracing::Level::ERROR,
                            &job.job_id,
                            "failed: Server restarted during execution",
                        );
                    }
                    self.persist(&job)?;
                }
                JobStatus::New => {
                    job.status = JobStatus::Queued;
                    job.updated_at = now;
                    self.persist(&job)?;
                }
                _ => {}
            }
            match job.status {
                JobStatus::Queued => {
                    state.enqueue(&job);
                }
                JobStatus::Retrying => {
                    state
                        .retries
                        .insert((job.next_attempt_at.unwrap_or(now), job.job_id.clone()));
                }
                _ => continue,
            }
            if let Some(key) = &job.idempotency_key {
                state.keys.insert(key.clone(), job.job_id.clone());
            }
            state.active.insert(job.job_id.clone(), job);
        }
        Ok(())
    }

    /// Recovers persisted jobs and starts the dispatch loop.
    pub fn start(self: &Arc<Self>, app: &Arc<A>) -> CoreResult<()> {
        if self.app.set(Arc::downgrade(app)).is_err() {
            return Err(CoreError::Internal(
                "the job manager is already started".into(),
            ));
        }
        self.recover()?;
        let manager = Arc::clone(self);
        tokio::spawn(async move { manager.run().await });
        Ok(())
    }

    /// Re-checks due retries and schedules now (after a test moves its
    /// clock, for instance).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    async fn run(self: Arc<Self>) {
        loop {
            let next = self.dispatch();
            let wait = next
                .map(|at| (at - self.clock.now_ms()).clamp(0, 60_000) as u64)
                .unwrap_or(60_000);
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                _ = self.stop.cancelled() => break,
            }
        }
    }

    /// Fires due schedules, moves due retries to the queue and starts queued
    /// jobs while slots are free. Returns when something next falls due.
    fn dispatch(self: &Arc<Self>) -> Option<i64> {
        let now = self.clock.now_ms();
        let due_schedules: Vec<Schedule> = {
            let mut state = self.state();
            let mut due = Vec::new();
            for (schedule, at) in state.schedules.iter_mut() {
                if *at <= now {
                    due.push(schedule.clone());
                    *at = now + schedule.interval_ms;
                }
            }
            due
        };
        for schedule in due_schedules {
            let mut options = schedule.options.clone();
            options.idempotency_key = Some(format!(
                "{}:{}",
                schedule.key_prefix,
                now / schedule.interval_ms.max(1)
            ));
            match self.create_job(schedule.job_type, options) {
                Ok(_) | Err(CoreError::IdempotentConflict(_)) => {}
                Err(e) => {
                    tracing::error!(target: JOBS_LOG_TARGET, job_id = "-", "cannot schedule a {} job: {e}", schedule.job_type)
                }
            }
        }
        let mut state = self.state();
        while let Some((at, id)) = state.retries.first().cloned() {
            if at > now {
                break;
            }
            state.retries.pop_first();
            if let Some(job) = state.active.get(&id).cloned() {
                state.enqueue(&job);
            }
        }
        if self.stop.is_cancelled() {
            return None;
        }
        while state.running.len() < self.config.max_concurrent.max(1) {
            let Some((_, _, id)) = state.queue.first().cloned() else {
                break;
            };
            let Some(mut job) = state.active.get(&id).cloned() else {
                state.queue.pop_first();
                continue;
            };
            state.dequeue(&job);
            job.status = JobStatus::Running;
            job.started_at = Some(now);
            job.updated_at = now;
            job.next_attempt_at = None;
            if let Err(e) = self.persist(&job) {
                tracing::error!(target: JOBS_LOG_TARGET, job_id = %id, "cannot persist Running: {e}");
                state.enqueue(&job);
                break;
            }
            let token = self.stop.child_token();
            state.running.insert(id.clone(), token.clone());
            state.active.insert(id, job.clone());
            let manager = Arc::clone(self);
            tokio::spawn(async move { manager.run_job(job, token).await });
        }
        let next_retry = state.retries.first().map(|(at, _)| *at);
        let next_schedule = state.schedules.iter().map(|(_, at)| *at).min();
        match (next_retry, next_schedule) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn run_job(self: Arc<Self>, job: Job, token: CancellationToken) {
        let attempt = job.retry_count + 1;
        log_event(
            tracing::Level::INFO,
            &job.job_id,
            &format!("started ({}, attempt {attempt})", job.job_type),
        );
        let executor = self.executor(job.job_type);
        let app = self.app.get().and_then(Weak::upgrade);
        let decision = match (executor, app) {
            (Some(executor), Some(app)) => {
                let ctx = JobContext::new(
                    app,
                    token.clone(),
                    Arc::clone(&self.clock),
                    job.job_id.clone(),
                );
                let run = AssertUnwindSafe(executor.execute(&ctx, &job))
                    .catch_unwind()
                    .await;
                match run {
                    Ok(decision) => decision,
                    Err(panic) => {
                        let text = panic_text(panic.as_ref());
                        JobDecision::Failed {
                            message: format!("Executor panicked: {text}"),
                            exception_trace: Some(format!(
                                "panic in the {} executor: {text}",
                                executor.name()
                            )),
                        }
                    }
                }
            }
            (None, _) => JobDecision::Failed {
                message: format!("No executor is registered for {} jobs", job.job_type),
                exception_trace: None,
            },
            (_, None) => JobDecision::Failed {
                message: "The database was closed before the job ran".into(),
                exception_trace: None,
            },
        };
        self.finish(&job.job_id, decision, token.is_cancelled());
    }

    /// Records the outcome of a run.
    fn finish(&self, job_id: &str, decision: JobDecision, cancelled: bool) {
        let now = self.clock.now_ms();
        let mut state = self.state();
        state.running.remove(job_id);
        let Some(mut job) = state.active.remove(job_id) else {
            return;
        };
        job.updated_at = now;
        let shutting_down = self.stop.is_cancelled();
        let (level, event) = match decision {
            JobDecision::Completed { message } => {
                job.status = JobStatus::Completed;
                job.exception_trace = None;
                let event = format!("completed: {message}");
                job.message = Some(message);
                (tracing::Level::INFO, event)
            }
            _ if cancelled && shutting_down => {
                job.status = JobStatus::Failed;
                job.message = Some("Server shut down during execution".into());
                (
                    tracing::Level::WARN,
                    "failed: Server shut down during execution".into(),
                )
            }
            _ if cancelled => {
                job.status = JobStatus::Cancelled;
                job.message = Some("Cancelled while running".into());
                (tracing::Level::WARN, "cancelled while running".into())
            }
            JobDecision::Retry {
                message,
                backoff_ms,
                exception_trace,
            } if job.retry_count < job.max_retries => {
                job.retry_count += 1;
                let exponential = self
                    .config
                    .retry_backoff_ms
                    .saturating_mul(1u64 << (job.retry_count - 1).min(30));
                let delay = exponential.max(backoff_ms);
                job.status = JobStatus::Retrying;
                job.next_attempt_at = Some(now + delay as i64);
                job.exception_trace = exception_trace;
                let event = format!(
                    "retry (attempt {}/{}, delay {delay} ms): {message}",
                    job.retry_count, job.max_retries
                );
                job.message = Some(message);
                (tracing::Level::WARN, event)
            }
            JobDecision::Retry {
                message,
                exception_trace,
                ..
            }
            | JobDecision::Failed {
                message,
                exception_trace,
            } => {
                job.status = JobStatus::Failed;
                job.exception_trace = exception_trace;
                let event = format!("failed: {message}");
                job.message = Some(message);
                (tracing::Level::ERROR, event)
            }
        };
        if job.status != JobStatus::Retrying {
            job.finished_at = Some(now);
        }
        if let Some(started) = job.started_at {
            metrics::histogram!("kalamdb_job_duration_seconds", "type" => job.job_type.as_str())
                .record((now - started).max(0) as f64 / 1000.0);
        }
        if let Err(e) = self.persist(&job) {
            tracing::error!(target: JOBS_LOG_TARGET, job_id = %job_id, "cannot persist {}: {e}", job.status);
        }
        if job.status == JobStatus::Retrying {
            if let Some(at) = job.next_attempt_at {
                state.retries.insert((at, job.job_id.clone()));
            }
            state.active.insert(job.job_id.clone(), job);
        } else {
            state.retire(&job);
        }
        let now_idle = state.running.is_empty();
        drop(state);
        log_event(level, job_id, &event);
        self.wake.notify_one();
        if now_idle {
            self.idle.notify_waiters();
        }
    }

    /// `KILL JOB` / `CANCEL JOB`: a waiting job is cancelled at once; a
    /// running one is signalled and ends Cancelled at its next safe point.
    pub async fn cancel_job(&self, job_id: &str) -> CoreResult<String> {
        let running = self.state().running.get(job_id).cloned();
        if let Some(token) = running {
            token.cancel();
            log_event(tracing::Level::WARN, job_id, "cancellation requested");
            let job = self.state().active.get(job_id).cloned();
            if let (Some(job), Some(app)) = (job, self.app.get().and_then(Weak::upgrade))
                && let Some(executor) = self.executor(job.job_type)
            {
                let ctx = JobContext::new(app, token, Arc::clone(&self.clock), job_id.into());
                if let Err(e) = executor.cancel(&ctx, &job).await {
                    ctx.warn(&format!("cancel hook failed: {e}"));
                }
            }
            return Ok(format!("Job {job_id} is being cancelled"));
        }
        let now = self.clock.now_ms();
        let mut state = self.state();
        if let Some(mut job) = state.active.remove(job_id) {
            state.dequeue(&job);
            if let Some(at) = job.next_attempt_at {
                state.retries.remove(&(at, job_id.to_string()));
            }
            state.retire(&job);
            job.status = JobStatus::Cancelled;
            job.message = Some("Cancelled before it ran".into());
            job.updated_at = now;
            job.finished_at = Some(now);
            job.next_attempt_at = None;
            self.persist(&job)?;
            drop(state);
            log_event(tracing::Level::WARN, job_id, "cancelled");
            return Ok(format!("Job {job_id} cancelled"));
        }
        drop(state);
        match self.meta.job(job_id)? {
            Some(job) => Err(CoreError::Execution(format!(
                "Job {job_id} has already finished (status: {}) and cannot be cancelled",
                job.status
            ))),
            None => Err(CoreError::Execution(format!("Job {job_id} does not exist"))),
        }
    }

    /// Submits a Cleanup job reclaiming the storage of dropped tables; returns
    /// a note for the DROP statement's message. The drop itself is already
    /// committed, so a failure to submit is logged, not returned.
    pub fn submit_cleanup(
        &self,
        tables: &[kalamdb_commons::TableId],
        namespace: &str,
        table: Option<&str>,
    ) -> String {
        if tables.is_empty() {
            return String::new();
        }
        let ids: Vec<u64> = tables.iter().map(|t| t.0).collect();
        let options = JobOptions {
            parameters: serde_json::json!({ "table_ids": ids }),
            idempotency_key: Some(format!(
                "cleanup:{}",
                ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
            )),
            namespace_id: Some(namespace.to_string()),
            table_name: table.map(str::to_string),
            ..JobOptions::default()
        };
        match self.create_job(JobType::Cleanup, options) {
            Ok(id) => format!("; job {id} reclaims its storage"),
            Err(e) => {
                tracing::warn!(target: JOBS_LOG_TARGET, job_id = "-", "cannot submit a Cleanup job: {e}");
                String::new()
            }
        }
    }

    /// The persisted record of a job.
    pub fn job(&self, job_id: &str) -> CoreResult<Option<Job>> {
        self.meta.job(job_id)
    }

    /// Waits until a job has finished (completed, failed or cancelled)
    /// and returns its record; the job runs on whatever the caller does.
    pub async fn finished(&self, job_id: &str) -> CoreResult<Job> {
        if self.app.get().is_none() {
            return Err(CoreError::Execution(format!(
                "Job {job_id} is queued, but jobs are not running in this process"
            )));
        }
        let mut pause = Duration::from_millis(2);
        loop {
            if self.stop.is_cancelled() {
                return Err(CoreError::Execution(format!(
                    "The server is stopping: job {job_id} resumes when it starts again"
                )));
            }
            match self.meta.job(job_id)? {
                Some(job) if !job.status.is_active() => return Ok(job),
                Some(_) => {}
                None => {
                    return Err(CoreError::Internal(format!("job {job_id} disappeared")));
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Jobs running right now.
    pub fn running_count(&self) -> usize {
        self.state().running.len()
    }

    /// Stops dispatching, signals running jobs, and waits (up to `limit`) for
    /// them to stop; what does not stop in time is failed by recovery at the
    /// next start.
    pub async fn shutdown(&self, limit: Duration) {
        self.stop.cancel();
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.state().running.is_empty() {
                    return;
                }
                idle.await;
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            tracing::warn!(target: JOBS_LOG_TARGET, job_id = "-", "jobs still running at shutdown");
        }
    }
}
