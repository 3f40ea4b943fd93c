//! Metrics: the one Prometheus recorder every `metrics::counter!`,
//! `gauge!` and `histogram!` in the server records into, and `GET /metrics`.
//!
//! Adding a metric is one line where the event happens (`metrics::counter!(
//! "kalamdb_…_total", "label" => value).increment(1)`); figures a subsystem
//! already keeps (RocksDB's, the live layer's queues, the cold tier's
//! manifests, the process's) are read here when Prometheus scrapes. Names,
//! labels and meaning: `docs/operations.md`.
//!
//! Access: loopback clients, any client when `allow_remote`, or a request
//! with `Authorization: Bearer <token>`.

use crate::ApiState;
use crate::response::error;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use kalamdb_commons::ErrorCode;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

/// Who may scrape.
#[derive(Clone, Default)]
pub struct MetricsAccess {
    pub allow_remote: bool,
    pub token: Option<String>,
}

pub struct Metrics {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
    access: MetricsAccess,
}

/// Latency buckets (seconds) of requests and statements: 50 µs … 30 s.
const LATENCY_BUCKETS: [f64; 18] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Job durations (seconds): 10 ms … 2 h.
const JOB_BUCKETS: [f64; 11] = [
    0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 7200.0,
];

/// The process's recorder: installed once (a second server in the same
/// process, as in tests, shares it).
static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

impl Metrics {
    /// Installs the global recorder and describes every metric.
    pub fn install(access: MetricsAccess) -> Result<Self, String> {
        let handle = RECORDER
            .get_or_init(|| {
                let builder = PrometheusBuilder::new()
                    .set_buckets(&LATENCY_BUCKETS)
                    .and_then(|b| {
                        b.set_buckets_for_metric(
                            Matcher::Full("kalamdb_job_duration_seconds".into()),
                            &JOB_BUCKETS,
                        )
                    })
                    .map_err(|e| e.to_string())?;
                let handle = builder.install_recorder().map_err(|e| e.to_string())?;
                describe();
                Ok(handle)
            })
            .clone()?;
        let process = metrics_process::Collector::default();
        process.describe();
        Ok(Self {
            handle,
            process,
            access,
        })
    }

    /// Folds recorded histogram samples into their buckets; run it every few
    /// seconds so samples never pile up between scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The exposition text, after reading the figures kept elsewhere.
    pub fn render(&self, state: &ApiState) -> String {
        collect(state);
        self.process.collect();
        self.handle.render()
    }
}

impl MetricsAccess {
    /// Whether `client`, sending `headers`, may scrape.
    fn admits(&self, client: SocketAddr, headers: &HeaderMap) -> bool {
        if self.allow_remote || client.ip().is_loopback() {
            return true;
        }
        let Some(expected) = &self.token else {
            return false;
        };
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .is_some_and(|(_, token)| same_secret(token.trim(), expected))
    }
}

/// Compares without stopping at the first differing byte.
fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// `GET /metrics`: Prometheus text format (404 when metrics are off).
pub async fn scrape(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(metrics) = state.metrics.clone() else {
        return error(ErrorCode::NotFound, "Metrics are disabled".into(), "-", 0.0);
    };
    if !metrics.access.admits(client, &headers) {
        return error(
            ErrorCode::PermissionDenied,
            "Metrics are served to localhost only; set metrics.allow_remote or send \
             'Authorization: Bearer <metrics.token>'"
                .into(),
            "-",
            0.0,
        );
    }
    // reading manifests and /proc is blocking work
    let body = match tokio::task::spawn_blocking(move || metrics.render(&state)).await {
        Ok(body) => body,
        Err(e) => return error(ErrorCode::InternalError, e.to_string(), "-", 0.0),
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Sets the gauges whose figures live in the engine, the live layer and the
/// cold tier's manifests.
fn collect(state: &ApiState) {
    let backend = state.app.table_store.backend();
    let engine = backend.engine_stats();
    metrics::gauge!("kalamdb_rocksdb_memtable_bytes").set(engine.memtable_bytes as f64);
    metrics::gauge!("kalamdb_rocksdb_block_cache_usage_bytes").set(engine.block_cache_bytes as f64);
    metrics::gauge!("kalamdb_rocksdb_pending_compaction_bytes")
        .set(engine.pending_compaction_bytes as f64);
    metrics::gauge!("kalamdb_rocksdb_writes_stopped")
        .set(f64::from(u8::from(engine.writes_stopped)));
    metrics::counter!("kalamdb_rocksdb_write_stall_microseconds_total")
        .absolute(engine.write_stall_micros);
    metrics::counter!("kalamdb_rocksdb_write_stalls_total").absolute(engine.write_stalls);
    metrics::counter!("kalamdb_rocksdb_wal_syncs_total").absolute(engine.wal_syncs);

    let subscriptions = state.live.subscriptions();
    metrics::gauge!("kalamdb_live_subscriptions").set(subscriptions.len() as f64);
    let queued: usize = subscriptions.iter().map(|s| s.queue_depth()).sum();
    metrics::gauge!("kalamdb_live_queued_changes").set(queued as f64);
    let now = kalamdb_commons::now_ms();
    let lag_ms = subscriptions
        .iter()
        .map(|s| s.info(now).lag_ms)
        .max()
        .unwrap_or(0);
    metrics::gauge!("kalamdb_live_lag_seconds").set(lag_ms as f64 / 1000.0);

    let (mut segments, mut bytes, mut rows) = (0u64, 0u64, 0u64);
    for table in state.app.schema_registry.tables(None) {
        let Ok(manifests) =
            kalamdb_core::cold::manifests_of(backend.as_ref(), table.definition.table_id.0)
        else {
            continue;
        };
        for segment in manifests.iter().flat_map(|m| &m.segments) {
            segments += 1;
            bytes += segment.bytes;
            rows += segment.rows;
        }
    }
    metrics::gauge!("kalamdb_cold_segments").set(segments as f64);
    metrics::gauge!("kalamdb_cold_bytes").set(bytes as f64);
    metrics::gauge!("kalamdb_cold_rows").set(rows as f64);
}

/// HELP text and units of every metric the server records.
fn describe() {
    describe_counter!(
        "kalamdb_http_requests_total",
        "HTTP requests answered, by route, method and status"
    );
    describe_histogram!(
        "kalamdb_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by route"
    );
    describe_counter!(
        "kalamdb_sql_statements_total",
        "SQL statements run, by family and outcome (ok, error)"
    );
    describe_histogram!(
        "kalamdb_sql_statement_duration_seconds",
        Unit::Seconds,
        "Time to run one SQL statement, by family"
    );
    describe_counter!(
        "kalamdb_sql_slow_statements_total",
        "Statements slower than logging.slow_query_ms, by family"
    );
    describe_counter!("kalamdb_errors_total", "Error replies, by error code");
    describe_counter!(
        "kalamdb_auth_attempts_total",
        "Authentications, by method (basic, bearer, login, refresh) and outcome (success, failure, locked)"
    );
    describe_counter!(
        "kalamdb_auth_lockouts_total",
        "Times a (user, address) pair was locked out after failed logins"
    );
    describe_gauge!(
        "kalamdb_rocksdb_memtable_bytes",
        Unit::Bytes,
        "RocksDB memtables, all column families"
    );
    describe_gauge!(
        "kalamdb_rocksdb_block_cache_usage_bytes",
        Unit::Bytes,
        "RocksDB block cache in use"
    );
    describe_gauge!(
        "kalamdb_rocksdb_pending_compaction_bytes",
        Unit::Bytes,
        "Bytes RocksDB estimates compaction still has to rewrite"
    );
    describe_gauge!(
        "kalamdb_rocksdb_writes_stopped",
        "1 while RocksDB has stopped writes"
    );
    describe_counter!(
        "kalamdb_rocksdb_write_stall_microseconds_total",
        Unit::Microseconds,
        "Time writers were slowed down or stopped by RocksDB"
    );
    describe_counter!(
        "kalamdb_rocksdb_write_stalls_total",
        "Times RocksDB delayed or stopped writes"
    );
    describe_counter!("kalamdb_rocksdb_wal_syncs_total", "WAL fsyncs");
    describe_counter!(
        "kalamdb_jobs_total",
        "Jobs entering a status, by type and status"
    );
    describe_histogram!(
        "kalamdb_job_duration_seconds",
        Unit::Seconds,
        "Time of a job's run (its last attempt), by type"
    );
    describe_gauge!("kalamdb_live_connections", "Open WebSocket connections");
    describe_gauge!("kalamdb_live_subscriptions", "Live subscriptions");
    describe_gauge!(
        "kalamdb_live_queued_changes",
        "Changes waiting in subscriptions' queues"
    );
    describe_counter!(
        "kalamdb_live_changes_total",
        "Change notifications queued for subscribers"
    );
    describe_counter!(
        "kalamdb_live_overflows_total",
        "Subscriptions ended because their queue overflowed"
    );
    describe_gauge!(
        "kalamdb_live_lag_seconds",
        Unit::Seconds,
        "The longest a subscriber with queued changes has not taken one"
    );
    describe_counter!("kalamdb_flushes_total", "Flushes, by outcome");
    describe_counter!(
        "kalamdb_compactions_total",
        "Compactions committed (one per partition merged)"
    );
    describe_counter!("kalamdb_backups_total", "BACKUP DATABASE jobs completed");
    describe_counter!("kalamdb_restores_total", "RESTORE DATABASE jobs completed");
    describe_counter!("kalamdb_flushed_rows_total", "Rows written to segments");
    describe_counter!(
        "kalamdb_flushed_bytes_total",
        Unit::Bytes,
        "Bytes of segments written"
    );
    describe_gauge!("kalamdb_cold_segments", "Segments in the cold tier");
    describe_gauge!(
        "kalamdb_cold_bytes",
        Unit::Bytes,
        "Bytes of the cold tier's segments"
    );
    describe_gauge!("kalamdb_cold_rows", "Rows in the cold tier's segments");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers
    }

    #[test]
    fn loopback_scrapes_and_a_remote_client_needs_the_token() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let local6: SocketAddr = "[::1]:5000".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let closed = MetricsAccess::default();
        assert!(closed.admits(local, &HeaderMap::new()));
        assert!(closed.admits(local6, &HeaderMap::new()));
        assert!(!closed.admits(remote, &HeaderMap::new()));
        assert!(!closed.admits(remote, &bearer("anything")));
        let token = MetricsAccess {
            allow_remote: false,
            token: Some("0123456789abcdef".into()),
        };
        assert!(token.admits(remote, &bearer("0123456789abcdef")));
        assert!(!token.admits(remote, &bearer("0123456789abcdeF")));
        assert!(!token.admits(remote, &bearer("0123456789abcde")));
        assert!(!token.admits(remote, &HeaderMap::new()));
        let open = MetricsAccess {
            allow_remote: true,
            token: None,
        };
        assert!(open.admits(remote, &HeaderMap::new()));
    }
}
