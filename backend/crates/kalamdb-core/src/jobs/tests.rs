//! The job system's acceptance scenarios, driven by test executors and a
//! fake clock: backoff and schedules advance by moving the clock, never by
//! sleeping.

use super::executor::{Clock, JobContext, JobDecision, JobExecutor, JobRegistry};
use super::manager::{JobsConfig, Schedule, UnifiedJobManager};
use super::model::{Job, JobOptions, JobStatus, JobType};
use crate::app_context::{AppContext, CoreOptions};
use crate::error::{CoreError, CoreResult};
use async_trait::async_trait;
use kalamdb_store::{RocksDbBackend, RocksDbOptions};
use serde_json::{Value as Json, json};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct FakeClock(AtomicI64);

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl FakeClock {
    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

/// What the test executor does, read from the job's `mode` parameter:
/// `complete`, `fail`, `retry` (always), `retry_then_complete` (fails the
/// first `n` attempts), `panic`, `panic_string`, `block` (until released or
/// cancelled).
struct TestExecutor {
    job_type: JobType,
    release: tokio::sync::Notify,
    runs: AtomicUsize,
    order: Mutex<Vec<String>>,
    resumable: bool,
}

impl TestExecutor {
    fn new(job_type: JobType) -> Arc<Self> {
        Arc::new(Self {
            job_type,
            release: tokio::sync::Notify::new(),
            runs: AtomicUsize::new(0),
            order: Mutex::new(Vec::new()),
            resumable: false,
        })
    }
}

#[async_trait]
impl JobExecutor<AppContext> for TestExecutor {
    fn job_type(&self) -> JobType {
        self.job_type
    }

    fn name(&self) -> &'static str {
        "test"
    }

    fn validate_params(&self, params: &Json) -> CoreResult<()> {
        if params.get("mode") == Some(&json!("invalid")) {
            return Err(CoreError::InvalidParameter(
                "mode 'invalid' is refused".into(),
            ));
        }
        Ok(())
    }

    async fn execute(&self, ctx: &JobContext<AppContext>, job: &Job) -> JobDecision {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.order.lock().unwrap().push(job.job_id.clone());
        let mode = job.parameters["mode"].as_str().unwrap_or("complete");
        match mode {
            "fail" => JobDecision::Failed {
                message: "disk on fire".into(),
                exception_trace: Some("disk on fire\n  caused by: smoke".into()),
            },
            "retry" => JobDecision::Retry {
                message: format!("transient error {}", job.retry_count + 1),
                backoff_ms: job.parameters["backoff_ms"].as_u64().unwrap_or(0),
                exception_trace: Some(format!("trace {}", job.retry_count + 1)),
            },
            "retry_then_complete" => {
                let failures = job.parameters["n"].as_u64().unwrap_or(1) as u32;
                if job.retry_count < failures {
                    JobDecision::Retry {
                        message: "not yet".into(),
                        backoff_ms: 0,
                        exception_trace: Some("try again".into()),
                    }
                } else {
                    JobDecision::Completed {
                        message: format!("done after {} retries", job.retry_count),
                    }
                }
            }
            "panic" => panic!("executor exploded"),
            "panic_string" => std::panic::panic_any(format!("exploded with {}", 42)),
            "block" => {
                tokio::select! {
                    _ = self.release.notified() => JobDecision::Completed { message: "released".into() },
                    _ = ctx.cancel.cancelled() => JobDecision::Failed {
                        message: "stopped at a safe point".into(),
                        exception_trace: None,
                    },
                }
            }
            _ => JobDecision::Completed {
                message: format!("did {}", job.job_id),
            },
        }
    }

    fn safe_to_resume(&self) -> bool {
        self.resumable
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    app: Arc<AppContext>,
    clock: Arc<FakeClock>,
    manager: Arc<UnifiedJobManager<AppContext>>,
    executor: Arc<TestExecutor>,
}

fn fixture_with(config: JobsConfig, executor: Arc<TestExecutor>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
    let app = AppContext::open(backend, &CoreOptions::default()).unwrap();
    start_manager(dir, app, config, executor)
}

fn start_manager(
    dir: tempfile::TempDir,
    app: Arc<AppContext>,
    config: JobsConfig,
    executor: Arc<TestExecutor>,
) -> Fixture {
    let clock = Arc::new(FakeClock(AtomicI64::new(1_700_000_000_000)));
    let mut registry = JobRegistry::new();
    registry.register(executor.clone());
    let manager = Arc::new(UnifiedJobManager::new(
        app.meta.clone(),
        config,
        clock.clone(),
        registry,
    ));
    manager.start(&app).unwrap();
    Fixture {
        _dir: dir,
        app,
        clock,
        manager,
        executor,
    }
}

fn fixture() -> Fixture {
    fixture_with(JobsConfig::default(), TestExecutor::new(JobType::Flush))
}

/// Runs `sql` as a caller with `role`; returns the rows of its last result.
async fn query(app: &AppContext, role: kalamdb_commons::Role, sql: &str) -> Vec<Vec<Json>> {
    let mut ctx = crate::ExecutionContext::new(
        kalamdb_commons::UserId::new(if role == kalamdb_commons::Role::System {
            "root"
        } else {
            "u_1"
        }),
        if role == kalamdb_commons::Role::System {
            "root"
        } else {
            "someone"
        },
        role,
    );
    let results = app
        .execute(&mut ctx, sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = Vec::new();
    for batch in &results.last().unwrap().batches {
        crate::rows::json::append_rows(batch, &mut rows);
    }
    rows
}

/// A started manager with one real executor on `app`'s store.
fn real_executor(
    dir: tempfile::TempDir,
    app: &Arc<AppContext>,
    executor: Arc<dyn JobExecutor<AppContext>>,
) -> Fixture {
    let clock = Arc::new(FakeClock(AtomicI64::new(kalamdb_commons::now_ms())));
    let mut registry = JobRegistry::new();
    registry.register(executor);
    let manager = Arc::new(UnifiedJobManager::new(
        app.meta.clone(),
        JobsConfig::default(),
        clock.clone(),
        registry,
    ));
    manager.start(app).unwrap();
    Fixture {
        _dir: dir,
        app: Arc::clone(app),
        clock,
        manager,
        executor: TestExecutor::new(JobType::Flush),
    }
}

fn with_mode(mode: &str) -> JobOptions {
    JobOptions {
        parameters: json!({ "mode": mode }),
        ..JobOptions::default()
    }
}

impl Fixture {
    fn create(&self, options: JobOptions) -> String {
        self.manager.create_job(JobType::Flush, options).unwrap()
    }

    fn job(&self, id: &str) -> Job {
        self.manager.job(id).unwrap().unwrap()
    }

    /// Waits (bounded) until the job reaches `status`.
    async fn until(&self, id: &str, status: JobStatus) -> Job {
        for _ in 0..5000 {
            let job = self.job(id);
            if job.status == status {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("{id} never reached {status}: {:?}", self.job(id));
    }

    async fn until_running(&self, n: usize) {
        for _ in 0..5000 {
            if self.manager.running_count() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("never {n} running");
    }

    /// Moves the clock past a retry delay and lets the manager see it.
    fn advance(&self, ms: i64) {
        self.clock.advance(ms);
        self.manager.wake();
    }
}

// ---------------------------------------------------------------- lifecycle

#[tokio::test]
async fn a_job_goes_new_queued_running_completed_with_timestamps() {
    let f = fixture();
    let id = f.create(with_mode("complete"));
    assert!(id.starts_with("FL-"));
    let job = f.until(&id, JobStatus::Completed).await;
    assert_eq!(job.message.as_deref(), Some(format!("did {id}").as_str()));
    assert!(job.started_at.is_some() && job.finished_at.is_some());
    assert!(job.created_at <= job.started_at.unwrap());
    assert_eq!(job.retry_count, 0);
    assert_eq!(job.max_retries, 3, "default max_retries");
    assert_eq!(job.exception_trace, None);
}

#[tokio::test]
async fn at_most_max_concurrent_jobs_run_and_the_rest_wait_queued() {
    let f = fixture_with(
        JobsConfig {
            max_concurrent: 5,
            ..JobsConfig::default()
        },
        TestExecutor::new(JobType::Flush),
    );
    let ids: Vec<String> = (0..10).map(|_| f.create(with_mode("block"))).collect();
    f.until_running(5).await;
    let statuses: Vec<JobStatus> = ids.iter().map(|id| f.job(id).status).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == JobStatus::Running)
            .count(),
        5
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == JobStatus::Queued).count(),
        5
    );
    for _ in 0..10 {
        // release one blocked job at a time; the next queued one starts
        f.until_running(f.manager.running_count().max(1)).await;
        f.executor.release.notify_one();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // release whatever is still blocked until every job has finished
    for _ in 0..5000 {
        if ids
            .iter()
            .all(|id| f.job(id).status == JobStatus::Completed)
        {
            break;
        }
        f.executor.release.notify_one();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for id in &ids {
        assert_eq!(f.job(id).status, JobStatus::Completed, "{id}");
    }
}

#[tokio::test]
async fn queued_jobs_run_by_priority_then_creation_order() {
    let f = fixture_with(
        JobsConfig {
            max_concurrent: 1,
            ..JobsConfig::default()
        },
        TestExecutor::new(JobType::Flush),
    );
    let blocker = f.create(with_mode("block"));
    f.until(&blocker, JobStatus::Running).await;
    let low = f.create(with_mode("complete"));
    let high = f.create(JobOptions {
        priority: 10,
        ..with_mode("complete")
    });
    let low2 = f.create(with_mode("complete"));
    f.executor.release.notify_one();
    f.until(&low2, JobStatus::Completed).await;
    let order = f.executor.order.lock().unwrap().clone();
    assert_eq!(order, vec![blocker, high, low, low2]);
}

// ------------------------------------------------------------- cancellation

#[tokio::test]
async fn a_running_job_stops_at_a_safe_point_and_ends_cancelled() {
    let f = fixture();
    let id = f.create(with_mode("block"));
    f.until(&id, JobStatus::Running).await;
    let message = f.manager.cancel_job(&id).await.unwrap();
    assert!(message.contains(&id));
    let job = f.until(&id, JobStatus::Cancelled).await;
    assert_eq!(job.message.as_deref(), Some("Cancelled while running"));
    assert!(job.finished_at.is_some());
}

#[tokio::test]
async fn a_queued_job_is_cancelled_before_it_runs() {
    let f = fixture_with(
        JobsConfig {
            max_concurrent: 1,
            ..JobsConfig::default()
        },
        TestExecutor::new(JobType::Flush),
    );
    let blocker = f.create(with_mode("block"));
    f.until(&blocker, JobStatus::Running).await;
    let waiting = f.create(with_mode("complete"));
    f.manager.cancel_job(&waiting).await.unwrap();
    let job = f.job(&waiting);
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.message.as_deref(), Some("Cancelled before it ran"));
    f.executor.release.notify_one();
    f.until(&blocker, JobStatus::Completed).await;
    assert_eq!(
        f.executor.runs.load(Ordering::SeqCst),
        1,
        "the cancelled job never ran"
    );
}

#[tokio::test]
async fn finished_and_unknown_jobs_cannot_be_cancelled() {
    let f = fixture();
    let id = f.create(with_mode("complete"));
    f.until(&id, JobStatus::Completed).await;
    let e = f.manager.cancel_job(&id).await.unwrap_err().to_string();
    assert!(
        e.contains("already finished") && e.contains("Completed"),
        "{e}"
    );
    let e = f
        .manager
        .cancel_job("FL-nothere1")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
}

// -------------------------------------------------------------- idempotency

fn keyed(key: &str, mode: &str) -> JobOptions {
    JobOptions {
        idempotency_key: Some(key.into()),
        ..with_mode(mode)
    }
}

#[tokio::test]
async fn idempotency_conflict_with_an_active_job_names_it_and_its_status() {
    let f = fixture();
    let id = f.create(keyed("flush:app:t:1", "block"));
    f.until(&id, JobStatus::Running).await;
    let e = f
        .manager
        .create_job(JobType::Flush, keyed("flush:app:t:1", "complete"))
        .unwrap_err();
    assert!(matches!(e, CoreError::IdempotentConflict(_)));
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "Job already running: {id} (status: Running, created: "
        )),
        "{text}"
    );
    f.executor.release.notify_one();
}

#[tokio::test]
async fn idempotency_key_is_free_again_after_completion() {
    let f = fixture();
    let id = f.create(keyed("k", "complete"));
    f.until(&id, JobStatus::Completed).await;
    let again = f.create(keyed("k", "complete"));
    assert_ne!(again, id);
}

#[tokio::test]
async fn idempotency_key_is_free_again_after_failure() {
    let f = fixture();
    let id = f.create(keyed("k", "fail"));
    f.until(&id, JobStatus::Failed).await;
    f.create(keyed("k", "complete"));
}

#[tokio::test]
async fn idempotency_key_is_free_again_after_cancellation() {
    let f = fixture();
    let id = f.create(keyed("k", "block"));
    f.until(&id, JobStatus::Running).await;
    f.manager.cancel_job(&id).await.unwrap();
    f.until(&id, JobStatus::Cancelled).await;
    f.create(keyed("k", "complete"));
}

#[tokio::test]
async fn without_a_key_there_is_no_check() {
    let f = fixture();
    let a = f.create(with_mode("block"));
    let b = f.create(with_mode("block"));
    assert_ne!(a, b);
    f.executor.release.notify_waiters();
}

#[tokio::test]
async fn a_retrying_job_still_holds_its_key_and_other_keys_do_not_conflict() {
    let f = fixture();
    let id = f.create(keyed("k", "retry"));
    f.until(&id, JobStatus::Retrying).await;
    let e = f
        .manager
        .create_job(JobType::Flush, keyed("k", "complete"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("status: Retrying"), "{e}");
    f.create(keyed("other", "complete"));
}

// --------------------------------------------- message and exception_trace

#[tokio::test]
async fn completed_sets_the_message_and_no_trace() {
    let f = fixture();
    let id = f.create(with_mode("complete"));
    let job = f.until(&id, JobStatus::Completed).await;
    assert!(job.message.is_some() && job.exception_trace.is_none());
}

#[tokio::test]
async fn failed_sets_message_and_trace() {
    let f = fixture();
    let id = f.create(with_mode("fail"));
    let job = f.until(&id, JobStatus::Failed).await;
    assert_eq!(job.message.as_deref(), Some("disk on fire"));
    assert_eq!(
        job.exception_trace.as_deref(),
        Some("disk on fire\n  caused by: smoke")
    );
    assert_eq!(job.retry_count, 0, "a Failed decision is not retried");
}

#[tokio::test]
async fn success_after_a_retry_clears_the_trace() {
    let f = fixture();
    let id = f.create(JobOptions {
        parameters: json!({"mode": "retry_then_complete", "n": 1}),
        ..JobOptions::default()
    });
    let job = f.until(&id, JobStatus::Retrying).await;
    assert_eq!(job.exception_trace.as_deref(), Some("try again"));
    assert_eq!(job.message.as_deref(), Some("not yet"));
    f.advance(1_000);
    let job = f.until(&id, JobStatus::Completed).await;
    assert_eq!(job.exception_trace, None);
    assert_eq!(job.message.as_deref(), Some("done after 1 retries"));
}

#[tokio::test]
async fn a_panic_fails_the_job_with_its_message_and_trace() {
    let f = fixture();
    let id = f.create(with_mode("panic"));
    let job = f.until(&id, JobStatus::Failed).await;
    assert_eq!(
        job.message.as_deref(),
        Some("Executor panicked: executor exploded")
    );
    assert!(
        job.exception_trace
            .as_deref()
            .unwrap()
            .contains("executor exploded")
    );
}

#[tokio::test]
async fn a_panic_with_a_formatted_payload_keeps_its_text() {
    let f = fixture();
    let id = f.create(with_mode("panic_string"));
    let job = f.until(&id, JobStatus::Failed).await;
    assert!(job.message.as_deref().unwrap().contains("exploded with 42"));
}

#[tokio::test]
async fn after_a_panic_the_manager_keeps_running_jobs() {
    let f = fixture();
    let bad = f.create(with_mode("panic"));
    f.until(&bad, JobStatus::Failed).await;
    let good = f.create(with_mode("complete"));
    f.until(&good, JobStatus::Completed).await;
}

#[tokio::test]
async fn exhausted_retries_fail_with_the_last_message_and_trace() {
    let f = fixture();
    let id = f.create(JobOptions {
        max_retries: Some(1),
        ..with_mode("retry")
    });
    f.until(&id, JobStatus::Retrying).await;
    f.advance(1_000);
    let job = f.until(&id, JobStatus::Failed).await;
    assert_eq!(job.message.as_deref(), Some("transient error 2"));
    assert_eq!(job.exception_trace.as_deref(), Some("trace 2"));
}

#[tokio::test]
async fn a_cancelled_job_says_so() {
    let f = fixture();
    let id = f.create(with_mode("block"));
    f.until(&id, JobStatus::Running).await;
    f.manager.cancel_job(&id).await.unwrap();
    let job = f.until(&id, JobStatus::Cancelled).await;
    assert!(job.message.as_deref().unwrap().contains("Cancelled"));
}

#[tokio::test]
async fn system_jobs_shows_message_and_trace_of_failed_jobs() {
    let f = fixture();
    let id = f.create(with_mode("fail"));
    f.until(&id, JobStatus::Failed).await;
    let rows = query(
        &f.app,
        kalamdb_commons::Role::System,
        "SELECT job_id, job_type, message, exception_trace FROM system.jobs WHERE status = 'Failed'",
    )
    .await;
    assert_eq!(
        rows,
        vec![vec![
            json!(id),
            json!("Flush"),
            json!("disk on fire"),
            json!("disk on fire\n  caused by: smoke")
        ]]
    );
    // other roles see no jobs
    let rows = query(
        &f.app,
        kalamdb_commons::Role::User,
        "SELECT count(*) FROM system.jobs",
    )
    .await;
    assert_eq!(rows, vec![vec![json!("0")]]);
}

// ---------------------------------------------------------------- retries

#[tokio::test]
async fn retries_count_up_to_max_retries_then_fail() {
    let f = fixture();
    let id = f.create(with_mode("retry"));
    for attempt in 1..=3u32 {
        let job = f.until(&id, JobStatus::Retrying).await;
        assert_eq!(job.retry_count, attempt);
        f.advance(60_000);
        if attempt < 3 {
            // wait for the next run to happen
            for _ in 0..5000 {
                if f.job(&id).retry_count > attempt {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    let job = f.until(&id, JobStatus::Failed).await;
    assert_eq!(job.retry_count, 3);
    assert_eq!(
        f.executor.runs.load(Ordering::SeqCst),
        4,
        "1 run + 3 retries"
    );
}

#[tokio::test]
async fn max_retries_zero_fails_at_the_first_retry() {
    let f = fixture();
    let id = f.create(JobOptions {
        max_retries: Some(0),
        ..with_mode("retry")
    });
    let job = f.until(&id, JobStatus::Failed).await;
    assert_eq!((job.retry_count, job.max_retries), (0, 0));
}

#[tokio::test]
async fn max_retries_is_configurable_per_job() {
    let f = fixture();
    let id = f.create(JobOptions {
        max_retries: Some(7),
        ..with_mode("complete")
    });
    assert_eq!(f.until(&id, JobStatus::Completed).await.max_retries, 7);
}

#[tokio::test]
async fn backoff_is_exponential_and_a_retry_waits_for_it() {
    let f = fixture_with(
        JobsConfig {
            retry_backoff_ms: 100,
            ..JobsConfig::default()
        },
        TestExecutor::new(JobType::Flush),
    );
    let id = f.create(with_mode("retry"));
    let mut expected = 100;
    for attempt in 1..=3u32 {
        let job = f.until(&id, JobStatus::Retrying).await;
        assert_eq!(job.retry_count, attempt);
        let delay = job.next_attempt_at.unwrap() - f.clock.now_ms();
        assert_eq!(delay, expected, "attempt {attempt}");
        // not yet due: nothing runs
        f.advance(delay - 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(f.executor.runs.load(Ordering::SeqCst), attempt as usize);
        f.advance(1);
        for _ in 0..5000 {
            if f.executor.runs.load(Ordering::SeqCst) > attempt as usize {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        expected *= 2;
    }
    f.until(&id, JobStatus::Failed).await;
}

#[tokio::test]
async fn an_executor_backoff_longer_than_the_exponential_one_wins() {
    let f = fixture();
    let id = f.create(JobOptions {
        parameters: json!({"mode": "retry", "backoff_ms": 30_000}),
        ..JobOptions::default()
    });
    let job = f.until(&id, JobStatus::Retrying).await;
    assert_eq!(job.next_attempt_at.unwrap() - f.clock.now_ms(), 30_000);
}

// ------------------------------------------------------------- parameters

#[tokio::test]
async fn parameters_are_a_json_object_and_legacy_arrays_are_mapped() {
    let f = fixture();
    let id = f.create(JobOptions {
        parameters: json!(["complete", "x"]),
        ..JobOptions::default()
    });
    assert_eq!(
        f.job(&id).parameters,
        json!({"arg0": "complete", "arg1": "x"})
    );
    let e = f
        .manager
        .create_job(JobType::Flush, with_mode("invalid"))
        .unwrap_err();
    assert!(e.to_string().contains("refused"), "{e}");
    let e = f
        .manager
        .create_job(
            JobType::Flush,
            JobOptions {
                parameters: json!(3),
                ..JobOptions::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("JSON object"), "{e}");
    let e = f
        .manager
        .create_job(JobType::Backup, JobOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("No executor"), "{e}");
}

// ---------------------------------------------------------- crash recovery

/// A job record as a previous run of the server left it.
fn stored_job(id: &str, status: JobStatus) -> Job {
    let now = kalamdb_commons::now_ms();
    Job {
        job_id: id.into(),
        job_type: JobType::Flush,
        status,
        namespace_id: None,
        table_name: None,
        parameters: json!({"mode": "complete"}),
        message: None,
        exception_trace: None,
        idempotency_key: Some(format!("key-{id}")),
        retry_count: 0,
        max_retries: 3,
        queue: "default".into(),
        priority: 0,
        created_at: now,
        updated_at: now,
        started_at: None,
        finished_at: None,
        next_attempt_at: Some(0),
        node_id: 0,
    }
}

#[tokio::test]
async fn at_start_running_jobs_fail_and_queued_and_retrying_jobs_resume() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
    let app = AppContext::open(backend, &CoreOptions::default()).unwrap();
    for (id, status) in [
        ("FL-running1", JobStatus::Running),
        ("FL-queued01", JobStatus::Queued),
        ("FL-retrying", JobStatus::Retrying),
    ] {
        app.meta.put_job(&stored_job(id, status)).unwrap();
    }
    let f = start_manager(
        dir,
        app,
        JobsConfig::default(),
        TestExecutor::new(JobType::Flush),
    );
    let crashed = f.until("FL-running1", JobStatus::Failed).await;
    assert_eq!(
        crashed.message.as_deref(),
        Some("Server restarted during execution")
    );
    f.until("FL-queued01", JobStatus::Completed).await;
    f.until("FL-retrying", JobStatus::Completed).await;
    // the failed job's key is free, the others were held until they finished
    f.create(keyed("key-FL-running1", "complete"));
}

#[tokio::test]
async fn a_resumable_executor_runs_its_interrupted_job_again() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
    let app = AppContext::open(backend, &CoreOptions::default()).unwrap();
    let mut job = stored_job("FL-resume01", JobStatus::Running);
    job.started_at = Some(job.created_at);
    app.meta.put_job(&job).unwrap();
    let executor = Arc::new(TestExecutor {
        resumable: true,
        ..Arc::into_inner(TestExecutor::new(JobType::Flush)).unwrap()
    });
    let f = start_manager(dir, app, JobsConfig::default(), executor);
    f.until("FL-resume01", JobStatus::Completed).await;
}

// --------------------------------------------------------------- schedules

#[tokio::test]
async fn schedules_create_one_job_per_window() {
    let f = fixture();
    f.manager.add_schedule(Schedule {
        job_type: JobType::Flush,
        interval_ms: 60_000,
        options: with_mode("complete"),
        key_prefix: "flush:app:t".into(),
    });
    f.advance(60_000);
    let mut first = None;
    for _ in 0..5000 {
        first = f.app.meta.jobs().unwrap().into_iter().next();
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let first = first.expect("a scheduled job");
    assert!(
        first
            .idempotency_key
            .as_deref()
            .unwrap()
            .starts_with("flush:app:t:")
    );
    f.until(&first.job_id, JobStatus::Completed).await;
    f.advance(60_000);
    for _ in 0..5000 {
        if f.app.meta.jobs().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(f.app.meta.jobs().unwrap().len(), 2);
}

// ------------------------------------------------------------- UserCleanup

#[tokio::test]
async fn user_cleanup_purges_a_dropped_users_rows_after_the_grace_period() {
    use super::executors::UserCleanupExecutor;
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
    let app = AppContext::open(backend, &CoreOptions::default()).unwrap();
    let root = || {
        crate::ExecutionContext::new(
            kalamdb_commons::UserId::new("root"),
            "root",
            kalamdb_commons::Role::System,
        )
    };
    let run = |ctx: crate::ExecutionContext, sql: &'static str| {
        let app = Arc::clone(&app);
        async move {
            let mut ctx = ctx;
            app.execute(&mut ctx, sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    };
    run(
        root(),
        "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT); \
         CREATE USER 'ann' WITH PASSWORD 'ann-pass-123' ROLE user; \
         CREATE USER 'ben' WITH PASSWORD 'ben-pass-123' ROLE user",
    )
    .await;
    let user = |name: &str| {
        let u = app.meta.user(name).unwrap().unwrap();
        crate::ExecutionContext::new(u.user_id, name, kalamdb_commons::Role::User)
    };
    run(
        user("ann"),
        "INSERT INTO app.notes VALUES (1, 'a'), (2, 'b')",
    )
    .await;
    run(user("ben"), "INSERT INTO app.notes VALUES (1, 'c')").await;
    let ann = user("ann");
    run(root(), "DROP USER 'ann'").await;

    let day = 24 * 3600 * 1000;
    let f = real_executor(
        dir,
        &app,
        Arc::new(UserCleanupExecutor { grace_ms: 7 * day }),
    );
    let count = |ctx: crate::ExecutionContext| {
        let app = Arc::clone(&app);
        async move {
            let mut ctx = ctx;
            let r = app
                .execute(&mut ctx, "SELECT count(*) FROM app.notes", &[])
                .await
                .unwrap();
            let mut rows = Vec::new();
            crate::rows::json::append_rows(&r[0].batches[0], &mut rows);
            rows[0][0].clone()
        }
    };
    // within the grace period nothing is purged
    let early = f
        .manager
        .create_job(JobType::UserCleanup, JobOptions::default())
        .unwrap();
    let job = f.until(&early, JobStatus::Completed).await;
    assert_eq!(
        job.message.as_deref(),
        Some("Purged 0 dropped user(s) from 1 USER table(s)")
    );
    assert_eq!(count(ann.clone()).await, json!("2"));
    // after it, ann's rows go; ben's stay
    f.clock.advance(7 * day + 1);
    let late = f
        .manager
        .create_job(JobType::UserCleanup, JobOptions::default())
        .unwrap();
    let job = f.until(&late, JobStatus::Completed).await;
    assert_eq!(
        job.message.as_deref(),
        Some("Purged 1 dropped user(s) from 1 USER table(s)")
    );
    assert_eq!(count(ann).await, json!("0"));
    assert_eq!(count(user("ben")).await, json!("1"));
    assert!(app.meta.user("ann").unwrap().is_none());
    assert!(app.meta.dropped_users().unwrap().is_empty());
}

// ----------------------------------------------------------------- Cleanup

#[tokio::test]
async fn cleanup_reclaims_the_rows_of_dropped_tables_and_refuses_live_ones() {
    use super::executors::CleanupExecutor;
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
    let app = AppContext::open(backend, &CoreOptions::default()).unwrap();
    let mut root = crate::ExecutionContext::new(
        kalamdb_commons::UserId::new("root"),
        "root",
        kalamdb_commons::Role::System,
    );
    app.execute(
        &mut root,
        "CREATE NAMESPACE app; CREATE SHARED TABLE app.gone (id INT PRIMARY KEY); \
             CREATE SHARED TABLE app.kept (id INT PRIMARY KEY); \
             INSERT INTO app.gone VALUES (1), (2), (3); INSERT INTO app.kept VALUES (1)",
        &[],
    )
    .await
    .unwrap();
    let gone = app.schema_registry.get_table("app", "gone").unwrap();
    let kept = app.schema_registry.get_table("app", "kept").unwrap();
    let results = app
        .execute(&mut root, "DROP TABLE app.gone", &[])
        .await
        .unwrap();
    let message = results[0].message.clone().unwrap();
    assert!(message.contains("; job CL-"), "{message}");
    let job_id = message
        .split("job ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    // the server's manager is not started here: a started one picks the job up
    let f = real_executor(dir, &app, Arc::new(CleanupExecutor));
    let job = f.until(&job_id, JobStatus::Completed).await;
    assert_eq!(
        job.message.as_deref(),
        Some("Reclaimed the storage of 1 dropped table(s)")
    );
    assert_eq!(job.table_name.as_deref(), Some("gone"));
    let rows_of = |id: kalamdb_commons::TableId| {
        let (start, end) = crate::table_store::table_range(id);
        let mut n = 0;
        app.table_store
            .backend()
            .scan(kalamdb_store::Partition::Data, &start, &end, &mut |_, _| {
                n += 1;
                Ok(true)
            })
            .unwrap();
        n
    };
    assert_eq!(rows_of(gone.definition.table_id), 0);
    assert_eq!(rows_of(kept.definition.table_id), 1);
    // a live table is never cleaned up
    let refused = f
        .manager
        .create_job(
            JobType::Cleanup,
            JobOptions {
                parameters: json!({ "table_ids": [kept.definition.table_id.0] }),
                ..JobOptions::default()
            },
        )
        .unwrap();
    let job = f.until(&refused, JobStatus::Failed).await;
    assert!(job.message.unwrap().contains("still exists"));
    assert_eq!(rows_of(kept.definition.table_id), 1);
    let e = f
        .manager
        .create_job(
            JobType::Cleanup,
            JobOptions {
                parameters: json!({ "table_ids": ["x"] }),
                ..JobOptions::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("is not a table id"), "{e}");
}

#[test]
fn every_executor_maps_its_outcome_to_a_decision_the_same_way() {
    use kalamdb_store::StoreError;
    assert_eq!(
        JobDecision::of_run("X", Ok(Some("done".into()))),
        JobDecision::Completed {
            message: "done".into()
        }
    );
    assert!(matches!(
        JobDecision::of_run("X", Ok(None)),
        JobDecision::Failed { message, .. } if message.contains("Cancelled")
    ));
    let engine = CoreError::Store(StoreError::Engine("disk busy".into()));
    assert!(matches!(
        JobDecision::of_run("X", Err(engine)),
        JobDecision::Retry { message, exception_trace: Some(_), .. } if message == "X failed: storage engine error: disk busy"
    ));
    let corrupt = CoreError::Store(StoreError::Corrupt("bad row".into()));
    assert!(matches!(
        JobDecision::of_run("X", Err(corrupt)),
        JobDecision::Failed { .. }
    ));
    assert!(matches!(
        JobDecision::of_run("X", Err(CoreError::Execution("table 9 still exists".into()))),
        JobDecision::Failed { message, .. } if message == "X refused: table 9 still exists"
    ));
}

// ---------------------------------------------------------- StreamEviction

/// Counts the changes published per operation.
#[derive(Default)]
struct Published(Mutex<Vec<crate::write_set::ChangeOp>>);

impl crate::write_set::ChangeSink for Published {
    fn publish(&self, sets: Vec<crate::write_set::WriteSet>) {
        let mut ops = self.0.lock().unwrap();
        ops.extend(sets.iter().flat_map(|s| s.changes.iter().map(|c| c.op)));
    }
}

fn fast_hashing() -> CoreOptions {
    CoreOptions {
        bcrypt_cost: 4,
        ..CoreOptions::default()
    }
}

/// A database opened on a fresh directory with `setup` run as root.
async fn stream_fixture(setup: &str) -> (tempfile::TempDir, Arc<RocksDbBackend>, Arc<AppContext>) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
    let app = AppContext::open(
        Arc::clone(&backend) as Arc<dyn kalamdb_store::StorageBackend>,
        &fast_hashing(),
    )
    .unwrap();
    let mut root = crate::ExecutionContext::new(
        kalamdb_commons::UserId::new("root"),
        "root",
        kalamdb_commons::Role::System,
    );
    app.execute(&mut root, setup, &[])
        .await
        .unwrap_or_else(|e| panic!("{setup}: {e}"));
    (dir, backend, app)
}

fn raw_rows(backend: &RocksDbBackend, id: kalamdb_commons::TableId) -> usize {
    use kalamdb_store::StorageBackend;
    let (start, end) = crate::table_store::table_range(id);
    let mut n = 0;
    backend
        .scan(kalamdb_store::Partition::Data, &start, &end, &mut |_, _| {
            n += 1;
            Ok(true)
        })
        .unwrap();
    n
}

#[tokio::test]
async fn stream_eviction_removes_rows_past_their_ttl_and_announces_them() {
    use super::executors::StreamEvictionExecutor;
    let (dir, backend, app) = stream_fixture(
        "CREATE NAMESPACE app; \
         CREATE STREAM TABLE app.typing (who TEXT) TTL 60; \
         CREATE USER TABLE app.notes (id INT PRIMARY KEY); \
         CREATE USER 'u_a' WITH PASSWORD 'pass-word-1' ROLE user; \
         CREATE USER 'u_b' WITH PASSWORD 'pass-word-1' ROLE user; \
         EXECUTE AS USER 'u_a' (INSERT INTO app.typing VALUES ('a'), ('b')); \
         EXECUTE AS USER 'u_b' (INSERT INTO app.typing VALUES ('c')); \
         EXECUTE AS USER 'u_a' (INSERT INTO app.notes VALUES (1))",
    )
    .await;
    let published = Arc::new(Published::default());
    assert!(app.writes.set_sink(published.clone()));
    let typing = app.schema_registry.get_table("app", "typing").unwrap();
    let notes = app.schema_registry.get_table("app", "notes").unwrap();
    let id = typing.definition.table_id;
    // the STREAM rows are in memory only; the USER row is on disk
    assert_eq!(app.streams.row_count(id), 3);
    assert_eq!(raw_rows(&backend, id), 0);
    assert_eq!(raw_rows(&backend, notes.definition.table_id), 1);

    let f = real_executor(dir, &app, Arc::new(StreamEvictionExecutor));
    let run = || async {
        let id = f
            .manager
            .create_job(JobType::StreamEviction, JobOptions::default())
            .unwrap();
        f.until(&id, JobStatus::Completed).await.message.unwrap()
    };
    // within the TTL nothing goes
    assert_eq!(
        run().await,
        "Evicted 0 expired row(s) from 1 STREAM table(s), 0 over the row cap"
    );
    assert_eq!(app.streams.row_count(id), 3);
    // past it, every user's rows go, each announced as a delete
    f.clock.advance(61_000);
    assert_eq!(
        run().await,
        "Evicted 3 expired row(s) from 1 STREAM table(s), 0 over the row cap"
    );
    assert_eq!(app.streams.row_count(id), 0);
    assert_eq!(app.streams.total_rows(), 0);
    assert_eq!(
        *published.0.lock().unwrap(),
        vec![crate::write_set::ChangeOp::Delete; 3]
    );
    assert_eq!(raw_rows(&backend, notes.definition.table_id), 1);
}

#[tokio::test]
async fn a_stream_table_past_its_row_cap_keeps_its_newest_rows() {
    let (_dir, _backend, app) = stream_fixture(
        "CREATE NAMESPACE app; \
         CREATE STREAM TABLE app.ev (n INT) WITH (TTL_SECONDS = 3600, MAX_ROWS = 10); \
         CREATE USER 'u_even' WITH PASSWORD 'pass-word-1' ROLE user; \
         CREATE USER 'u_odd' WITH PASSWORD 'pass-word-1' ROLE user",
    )
    .await;
    let mut root = crate::ExecutionContext::new(
        kalamdb_commons::UserId::new("root"),
        "root",
        kalamdb_commons::Role::System,
    );
    for n in 1..=15 {
        let user = if n % 2 == 0 { "u_even" } else { "u_odd" };
        app.execute(
            &mut root,
            &format!("EXECUTE AS USER '{user}' (INSERT INTO app.ev VALUES ({n}))"),
            &[],
        )
        .await
        .unwrap();
    }
    let id = app
        .schema_registry
        .get_table("app", "ev")
        .unwrap()
        .definition
        .table_id;
    assert_eq!(app.streams.row_count(id), 15);
    assert_eq!(
        crate::stream_eviction::enforce_row_caps(&app)
            .await
            .unwrap(),
        6
    );
    assert_eq!(app.streams.row_count(id), 9);
    // nothing is flagged again until the cap is passed again
    assert_eq!(
        crate::stream_eviction::enforce_row_caps(&app)
            .await
            .unwrap(),
        0
    );
    let mut kept: Vec<Json> = Vec::new();
    for user in ["u_even", "u_odd"] {
        let rows = query(
            &app,
            kalamdb_commons::Role::System,
            &format!("EXECUTE AS USER '{user}' (SELECT n FROM app.ev)"),
        )
        .await;
        kept.extend(rows.into_iter().map(|r| r[0].clone()));
    }
    kept.sort_by_key(|v| v.as_i64().unwrap());
    assert_eq!(kept, (7..=15).map(|n| json!(n)).collect::<Vec<_>>());
}

#[tokio::test]
async fn stream_rows_past_their_ttl_are_gone_from_reads_before_the_job_frees_them() {
    use super::executors::StreamEvictionExecutor;
    use crate::table_store::{RowScope, partition_prefix, seq_key};
    let (dir, _backend, app) = stream_fixture(
        "CREATE NAMESPACE app; CREATE STREAM TABLE app.ev (n INT) TTL 60; \
         CREATE USER 'u_a' WITH PASSWORD 'pass-word-1' ROLE user; \
         EXECUTE AS USER 'u_a' (INSERT INTO app.ev VALUES (1))",
    )
    .await;
    // a row written two minutes ago (its `_seq` says when), past the TTL
    let table = app.schema_registry.get_table("app", "ev").unwrap();
    let def = &table.definition;
    let user = app.meta.user("u_a").unwrap().unwrap().user_id;
    let written_ms = kalamdb_commons::now_ms() as u64 - 120_000;
    let old_seq = ((written_ms - kalamdb_commons::snowflake::EPOCH_MS) << 22) as i64;
    let key = seq_key(
        &partition_prefix(def.table_id, &RowScope::User(user.clone())),
        old_seq,
    );
    let value = kalamdb_store::row::encode_row(
        def.schema_version,
        old_seq,
        false,
        [(def.columns[0].column_id, &kalamdb_commons::Value::Int32(2))],
    );
    let mut batch = kalamdb_store::Batch::new();
    batch.put(kalamdb_store::Partition::Data, key, value);
    app.table_store.write(batch).unwrap();
    assert_eq!(app.streams.row_count(def.table_id), 2);
    let rows = query(
        &app,
        kalamdb_commons::Role::System,
        "EXECUTE AS USER 'u_a' (SELECT n FROM app.ev)",
    )
    .await;
    assert_eq!(rows, vec![vec![json!(1)]], "the expired row is not read");
    // the job frees it
    let f = real_executor(dir, &app, Arc::new(StreamEvictionExecutor));
    let id = f
        .manager
        .create_job(JobType::StreamEviction, JobOptions::default())
        .unwrap();
    let job = f.until(&id, JobStatus::Completed).await;
    assert_eq!(
        job.message.as_deref(),
        Some("Evicted 1 expired row(s) from 1 STREAM table(s), 0 over the row cap")
    );
    assert_eq!(app.streams.row_count(def.table_id), 1);

    // a keyed row past its TTL leaves its key free: an INSERT of that key
    // succeeds (no duplicate, no write conflict with the expired row)
    let mut ctx = crate::ExecutionContext::new(
        kalamdb_commons::UserId::new("root"),
        "root",
        kalamdb_commons::Role::System,
    );
    app.execute(
        &mut ctx,
        "CREATE STREAM TABLE app.keyed (id INT PRIMARY KEY, n INT) TTL 60",
        &[],
    )
    .await
    .unwrap();
    let table = app.schema_registry.get_table("app", "keyed").unwrap();
    let def = &table.definition;
    let prefix = partition_prefix(def.table_id, &RowScope::User(user));
    let key = crate::table_store::row_key(&prefix, [&kalamdb_commons::Value::Int32(7)]).unwrap();
    let value = kalamdb_store::row::encode_row(
        def.schema_version,
        old_seq,
        false,
        [
            (def.columns[0].column_id, &kalamdb_commons::Value::Int32(7)),
            (def.columns[1].column_id, &kalamdb_commons::Value::Int32(0)),
        ],
    );
    let mut batch = kalamdb_store::Batch::new();
    batch.put(kalamdb_store::Partition::Data, key, value);
    app.table_store.write(batch).unwrap();
    let rows = query(
        &app,
        kalamdb_commons::Role::System,
        "EXECUTE AS USER 'u_a' (INSERT INTO app.keyed VALUES (7, 1)); \
         EXECUTE AS USER 'u_a' (SELECT id, n FROM app.keyed)",
    )
    .await;
    assert_eq!(rows, vec![vec![json!(7), json!(1)]]);
}

/// `(primary key, _seq, soft-deleted)` of every stored row of `table`,
/// tombstones included.
fn stored_rows(app: &AppContext, table: &str) -> Vec<(Json, i64, bool)> {
    let table = app.schema_registry.get_table("app", table).unwrap();
    let reader =
        crate::row_reader::RowReader::all_partitions(Arc::clone(&table), app.table_store.clone());
    let mut rows = Vec::new();
    reader
        .scan_rows(reader.start(), true, &mut |_, row| {
            let values = reader.values_of(row)?;
            let kalamdb_commons::Value::Int32(id) = values[0] else {
                panic!("{values:?}")
            };
            rows.push((json!(id), row.seq, row.deleted));
            Ok(true)
        })
        .unwrap();
    rows
}

#[tokio::test]
async fn retention_purges_tombstones_past_the_retention_and_records_the_resume_horizon() {
    use super::executors::RetentionExecutor;
    let (dir, _backend, app) = stream_fixture(
        "CREATE NAMESPACE app; \
         CREATE SHARED TABLE app.s (id INT PRIMARY KEY); \
         CREATE USER TABLE app.u (id INT PRIMARY KEY) WITH (DELETED_RETENTION_HOURS = 1); \
         CREATE USER 'u_a' WITH PASSWORD 'pass-word-1' ROLE user; \
         INSERT INTO app.s VALUES (1), (2), (3); DELETE FROM app.s WHERE id < 3; \
         EXECUTE AS USER 'u_a' (INSERT INTO app.u VALUES (1), (2)); \
         EXECUTE AS USER 'u_a' (DELETE FROM app.u WHERE id = 1)",
    )
    .await;
    let f = real_executor(
        dir,
        &app,
        Arc::new(RetentionExecutor {
            default_retention_ms: 48 * 3_600_000,
        }),
    );
    let run = || async {
        let id = f
            .manager
            .create_job(JobType::Retention, JobOptions::default())
            .unwrap();
        f.until(&id, JobStatus::Completed).await.message.unwrap()
    };
    let s = app
        .schema_registry
        .get_table("app", "s")
        .unwrap()
        .definition
        .table_id;
    let u = app
        .schema_registry
        .get_table("app", "u")
        .unwrap()
        .definition
        .table_id;
    // within every retention nothing goes
    assert_eq!(run().await, "Purged 0 soft-deleted row(s) from 2 table(s)");
    assert_eq!(stored_rows(&app, "s").len(), 3);
    assert_eq!(stored_rows(&app, "u").len(), 2);
    // two hours on: past u's retention (1 h), not s's (the default, 48 h)
    f.clock.advance(2 * 3_600_000);
    let before = app.meta.resume_horizon(u).unwrap();
    assert_eq!(run().await, "Purged 1 soft-deleted row(s) from 2 table(s)");
    let u_rows = stored_rows(&app, "u");
    assert_eq!(u_rows.len(), 1, "{u_rows:?}");
    assert_eq!((u_rows[0].0.clone(), u_rows[0].2), (json!(2), false));
    assert_eq!(stored_rows(&app, "s").len(), 3, "s keeps its tombstones");
    // each run moves the horizon to its cutoff: the retention before the
    // job's clock
    let horizon = app.meta.resume_horizon(u).unwrap();
    assert!(horizon > before);
    let at = |horizon: i64| kalamdb_commons::snowflake::timestamp_ms(horizon) as i64;
    assert_eq!(at(horizon), f.clock.now_ms() - 3_600_000);
    assert_eq!(
        at(app.meta.resume_horizon(s).unwrap()),
        f.clock.now_ms() - 48 * 3_600_000
    );
    // past s's retention too: its two tombstones go, its live row stays
    f.clock.advance(48 * 3_600_000);
    assert_eq!(run().await, "Purged 2 soft-deleted row(s) from 2 table(s)");
    let s_rows = stored_rows(&app, "s");
    assert_eq!(s_rows.len(), 1);
    assert_eq!((s_rows[0].0.clone(), s_rows[0].2), (json!(3), false));
    let rows = query(&app, kalamdb_commons::Role::System, "SELECT id FROM app.s").await;
    assert_eq!(rows, vec![vec![json!(3)]]);
}

#[tokio::test]
async fn a_purge_leaves_a_key_written_again_since_its_tombstone_was_read() {
    let (_dir, _backend, app) = stream_fixture(
        "CREATE NAMESPACE app; CREATE SHARED TABLE app.s (id INT PRIMARY KEY); \
         INSERT INTO app.s VALUES (1), (2); DELETE FROM app.s",
    )
    .await;
    let table = app.schema_registry.get_table("app", "s").unwrap();
    let tombstones: Vec<(Vec<u8>, i64)> = {
        let reader = crate::row_reader::RowReader::all_partitions(
            Arc::clone(&table),
            app.table_store.clone(),
        );
        let mut out = Vec::new();
        reader
            .scan_rows(reader.start(), true, &mut |key, row| {
                assert!(row.deleted);
                out.push((key.to_vec(), row.seq));
                Ok(true)
            })
            .unwrap();
        out
    };
    // row 1 is written again after its tombstone was read
    query(
        &app,
        kalamdb_commons::Role::System,
        "INSERT INTO app.s VALUES (1)",
    )
    .await;
    let purged = app
        .writes
        .purge(&tombstones, kalamdb_store::Batch::new())
        .unwrap();
    assert_eq!(purged, 1, "only row 2's tombstone is still the one read");
    let rows = stored_rows(&app, "s");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].0.clone(), rows[0].2), (json!(1), false));
}
