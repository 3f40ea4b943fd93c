//! Operations end to end: `/metrics` scraped by a real Prometheus (Debian's
//! `prometheus`, installed by `scripts/test.sh`) and queried through its
//! HTTP API; who may scrape; request ids and the slow-statement log in the
//! real server's log file (text and JSON); EXPLAIN [ANALYZE] over HTTP.

use crate::common::{TestServer, error_code, rows, sample};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Prometheus {
    child: Child,
    url: String,
    client: reqwest::Client,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (host:port) every second.
    fn start(dir: &Path, target: &str) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: kalamdb\n    metrics_path: /metrics\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (scripts/test.sh installs Debian's package)");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        }
    }

    /// An instant query's result vector (empty while Prometheus has no data).
    async fn query(&self, promql: &str) -> Vec<Value> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            &[("query", promql)],
        )
        .expect("a query URL");
        let Ok(response) = self.client.get(url).send().await else {
            return Vec::new();
        };
        let body: Value = response.json().await.unwrap_or(Value::Null);
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `promql` until it has a result (60 s at most).
    async fn until(&self, promql: &str) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let result = self.query(promql).await;
            if !result.is_empty() {
                return result;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never answered {promql}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn value_of(result: &[Value]) -> f64 {
    result[0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {result:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_requests_statements_and_engine_figures() {
    let server = TestServer::start();
    server.ok("CREATE NAMESPACE obs").await;
    server
        .ok("CREATE SHARED TABLE obs.t (id BIGINT PRIMARY KEY, name TEXT)")
        .await;
    for i in 0..20 {
        server
            .ok(&format!(
                "INSERT INTO obs.t (id, name) VALUES ({i}, 'n{i}')"
            ))
            .await;
        server
            .ok(&format!("SELECT name FROM obs.t WHERE id = {i}"))
            .await;
    }
    let (status, _) = server.sql("SELECT * FROM obs.missing").await;
    assert_eq!(status, 404);
    let (status, _) = server
        .post_raw(
            json!({"sql": "SELECT 1"}).to_string(),
            Some(("root", "wrong")),
        )
        .await;
    assert_eq!(status, 401);
    server.ok("STORAGE FLUSH TABLE obs.t").await;

    // the exposition itself
    let (status, text) = server.metrics().await;
    assert_eq!(status, 200, "{text}");
    let sql_ok = sample(
        &text,
        "kalamdb_http_requests_total",
        &[r#"route="/v1/api/sql""#, r#"status="200""#],
    )
    .expect("HTTP requests by route and status");
    assert!(sql_ok >= 43.0, "{sql_ok}");
    assert!(
        sample(
            &text,
            "kalamdb_sql_statements_total",
            &[r#"family="dml""#, r#"outcome="ok""#]
        )
        .is_some_and(|n| n >= 20.0),
        "statements by family and outcome"
    );
    assert!(
        sample(
            &text,
            "kalamdb_sql_statement_duration_seconds_bucket",
            &[r#"family="query""#]
        )
        .is_some(),
        "statement latency histogram"
    );
    assert!(
        sample(
            &text,
            "kalamdb_errors_total",
            &[r#"code="TABLE_NOT_FOUND""#]
        )
        .is_some_and(|n| n >= 1.0),
        "errors by code:\n{text}"
    );
    assert!(
        sample(
            &text,
            "kalamdb_auth_attempts_total",
            &[r#"method="basic""#, r#"outcome="failure""#]
        )
        .is_some_and(|n| n >= 1.0)
    );
    for gauge in [
        "kalamdb_rocksdb_memtable_bytes",
        "kalamdb_rocksdb_block_cache_usage_bytes",
        "kalamdb_rocksdb_pending_compaction_bytes",
        "kalamdb_rocksdb_writes_stopped",
        "kalamdb_rocksdb_write_stall_microseconds_total",
        "kalamdb_rocksdb_write_stalls_total",
        "kalamdb_rocksdb_wal_syncs_total",
        "kalamdb_live_subscriptions",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_threads",
    ] {
        assert!(
            sample(&text, gauge, &[]).is_some(),
            "{gauge} missing:\n{text}"
        );
    }
    assert!(sample(&text, "kalamdb_rocksdb_memtable_bytes", &[]).unwrap() > 0.0);
    assert!(sample(&text, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
    // the flush ran as a job and wrote a segment of the 20 rows
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = server.metrics().await;
        if sample(
            &text,
            "kalamdb_jobs_total",
            &[r#"type="Flush""#, r#"status="Completed""#],
        )
        .is_some()
        {
            assert_eq!(
                sample(&text, "kalamdb_cold_rows", &[]),
                Some(20.0),
                "{text}"
            );
            assert_eq!(sample(&text, "kalamdb_cold_segments", &[]), Some(1.0));
            assert!(
                sample(
                    &text,
                    "kalamdb_job_duration_seconds_count",
                    &[r#"type="Flush""#]
                )
                .is_some()
            );
            assert!(sample(&text, "kalamdb_flushed_rows_total", &[]).is_some_and(|n| n >= 20.0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the flush job never completed:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // a real Prometheus scrapes it
    let dir = tempfile::tempdir().unwrap();
    let target = server.base_url.trim_start_matches("http://").to_string();
    let prometheus = Prometheus::start(dir.path(), &target);
    let up = prometheus.until(r#"up{job="kalamdb"} == 1"#).await;
    assert_eq!(value_of(&up), 1.0);
    let requests = prometheus
        .until(r#"sum(kalamdb_http_requests_total{route="/v1/api/sql"})"#)
        .await;
    assert!(value_of(&requests) >= 44.0, "{requests:?}");
    let p50 = prometheus
        .until(
            r#"histogram_quantile(0.5, sum by (le) (kalamdb_http_request_duration_seconds_bucket{route="/v1/api/sql"}))"#,
        )
        .await;
    let p50 = value_of(&p50);
    assert!(p50 > 0.0 && p50 < 5.0, "p50 of SQL requests: {p50} s");
    // the statements' histogram: p99 at least its p50, both finite and
    // inside the buckets (a histogram without samples would give NaN)
    let statement = |q: &'static str| {
        format!(
            "histogram_quantile({q}, sum by (le) (kalamdb_sql_statement_duration_seconds_bucket))"
        )
    };
    let s50 = value_of(&prometheus.until(&statement("0.5")).await);
    let s99 = value_of(&prometheus.until(&statement("0.99")).await);
    assert!(s50 > 0.0 && s50.is_finite(), "statement p50 {s50}");
    assert!(
        s99 >= s50 && s99 <= 30.0,
        "statement p99 {s99} vs p50 {s50}"
    );
}

/// This machine's address on its default route, if it has one.
fn non_loopback_address() -> Option<std::net::IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("10.255.255.255:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn metrics_are_served_to_localhost_or_a_token_holder_only() {
    let token = "scrape-token-0123456789";
    let server = TestServer::start_with(&[
        ("KALAMDB_SERVER_HOST", "0.0.0.0"),
        ("KALAMDB_JWT_SECRET", "a-test-secret-of-at-least-32-bytes!!"),
        ("KALAMDB_METRICS_TOKEN", token),
    ]);
    let port = server.base_url.rsplit(':').next().unwrap().to_string();
    let (status, _) = server.metrics().await;
    assert_eq!(status, 200, "loopback scrapes freely");
    let Some(ip) = non_loopback_address() else {
        panic!("this machine has no non-loopback address to test a remote scrape from");
    };
    let remote = format!(
        "http://{}/metrics",
        SocketAddr::new(ip, port.parse().unwrap())
    );
    let client = reqwest::Client::new();
    let refused = client.get(&remote).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(error_code(&body), "PERMISSION_DENIED");
    assert!(!body.to_string().contains(token));
    let wrong = client
        .get(&remote)
        .bearer_auth("scrape-token-0123456780")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 403);
    let admitted = client.get(&remote).bearer_auth(token).send().await.unwrap();
    assert_eq!(admitted.status().as_u16(), 200);
    assert!(
        admitted
            .text()
            .await
            .unwrap()
            .contains("kalamdb_http_requests_total")
    );

    let off = TestServer::start_with(&[("KALAMDB_METRICS_ENABLED", "false")]);
    let (status, text) = off.metrics().await;
    assert_eq!(status, 404, "{text}");
}

/// Every line of `<data>/logs/server.log*` once `done` accepts the whole
/// text (the log writer flushes on its own thread).
async fn log_lines(data: &Path, done: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut text = String::new();
        if let Ok(entries) = std::fs::read_dir(data.join("logs")) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("server.log")
                {
                    text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
                }
            }
        }
        if done(&text) {
            return text.lines().map(str::to_string).collect();
        }
        assert!(
            Instant::now() < deadline,
            "the log never showed what was expected:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sql_as(server: &TestServer, body: Value, user: (&str, &str)) -> (u16, String, Value) {
    let response = server
        .http()
        .post(server.url("/v1/api/sql"))
        .basic_auth(user.0, Some(user.1))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("x-request-id")
        .expect("every reply carries x-request-id")
        .to_str()
        .unwrap()
        .to_string();
    (status, id, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_ids_and_slow_statements_without_secrets() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(
        data.path(),
        &[
            ("KALAMDB_LOG_LEVEL", "info"),
            ("KALAMDB_LOGGING_FORMAT", "json"),
            ("KALAMDB_LOGGING_SLOW_QUERY_MS", "5"),
        ],
    );
    server.ok("CREATE NAMESPACE lg").await;
    server
        .ok("CREATE SHARED TABLE lg.n (id BIGINT PRIMARY KEY, name TEXT)")
        .await;
    let values: Vec<String> = (0..150).map(|i| format!("({i}, 'v{i}')")).collect();
    server
        .ok(&format!(
            "INSERT INTO lg.n (id, name) VALUES {}",
            values.join(", ")
        ))
        .await;
    server
        .ok("CREATE USER 'ann' WITH PASSWORD 'Secret-Pass-4242' ROLE user")
        .await;
    // 150³ rows: slow enough
    let slow = "SELECT count(*) FROM lg.n a, lg.n b, lg.n c WHERE a.name <> $1";
    let (status, slow_id, body) = sql_as(
        &server,
        json!({"sql": slow, "params": ["param-value-777"]}),
        ("root", ""),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, failed_id, _) =
        sql_as(&server, json!({"sql": "SELECT 1"}), ("ann", "Wrong-Pass-1")).await;
    assert_eq!(status, 401);
    assert_ne!(slow_id, failed_id);

    let lines = log_lines(data.path(), |t| {
        t.contains("slow statement") && t.contains("authentication failed")
    })
    .await;
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let slow_event = events
        .iter()
        .find(|e| e["fields"]["message"] == "slow statement")
        .expect("the slow statement was logged");
    assert_eq!(slow_event["span"]["id"], slow_id.as_str(), "{slow_event}");
    assert_eq!(slow_event["fields"]["user"], "root");
    assert_eq!(slow_event["level"], "WARN");
    assert!(slow_event["fields"]["duration_ms"].as_f64().unwrap() >= 5.0);
    assert!(
        slow_event["fields"]["sql"]
            .as_str()
            .unwrap()
            .contains("WHERE a.name <> $1")
    );
    let failure = events
        .iter()
        .find(|e| {
            e["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("authentication failed"))
        })
        .expect("the failed authentication was logged");
    assert_eq!(failure["span"]["id"], failed_id.as_str(), "{failure}");
    let all = lines.join("\n");
    for secret in ["Secret-Pass-4242", "Wrong-Pass-1", "param-value-777"] {
        assert!(!all.contains(secret), "{secret} was logged:\n{all}");
    }
}

#[tokio::test]
async fn text_logs_name_the_request_on_every_line() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(data.path(), &[("KALAMDB_LOG_LEVEL", "info")]);
    let (status, id, _) = sql_as(&server, json!({"sql": "SELECT 1"}), ("nobody", "x")).await;
    assert_eq!(status, 401);
    let needle = format!("request{{id={id}}}");
    let lines = log_lines(data.path(), |t| t.contains(&needle)).await;
    let line = lines.iter().find(|l| l.contains(&needle)).unwrap();
    assert!(line.contains("authentication failed"), "{line}");
}

#[tokio::test]
async fn explain_and_explain_analyze_show_our_scan_under_the_callers_rules() {
    let server = TestServer::start();
    server.ok("CREATE NAMESPACE ex").await;
    server
        .ok("CREATE USER TABLE ex.notes (id BIGINT PRIMARY KEY, body TEXT)")
        .await;
    server
        .ok("CREATE USER 'eve' WITH PASSWORD 'Eve-Pass-12345' ROLE user")
        .await;
    server
        .ok("EXECUTE AS USER 'eve' (INSERT INTO ex.notes (id, body) VALUES (1, 'a'), (2, 'b'), (3, 'c'))")
        .await;
    let plan_text = |body: &Value| -> String {
        rows(body, 0)
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r[0].as_str().unwrap_or(""),
                    r[1].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let eve = ("eve", "Eve-Pass-12345");
    let (status, _, body) = sql_as(
        &server,
        json!({"sql": "EXPLAIN ANALYZE SELECT body FROM ex.notes WHERE id = 2"}),
        eve,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let plan = plan_text(&body);
    assert!(
        plan.contains("RowScanExec: table=ex.notes, read=point"),
        "{plan}"
    );
    assert!(plan.contains("output_rows=1"), "{plan}");
    let (status, _, body) = sql_as(
        &server,
        json!({"sql": "EXPLAIN SELECT id FROM ex.notes ORDER BY id DESC LIMIT 2"}),
        eve,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let plan = plan_text(&body);
    assert!(
        plan.contains("RowScanExec") && plan.contains("reverse, fetch=2"),
        "{plan}"
    );
    // root's own partition of the USER table is empty: EXPLAIN ANALYZE
    // reads as the caller
    let body = server
        .ok("EXPLAIN ANALYZE SELECT body FROM ex.notes WHERE id = 2")
        .await;
    assert!(
        plan_text(&body).contains("output_rows=0"),
        "{}",
        plan_text(&body)
    );
    // what SELECT refuses, EXPLAIN refuses the same way
    server
        .ok("CREATE SHARED TABLE ex.private (id BIGINT PRIMARY KEY)")
        .await;
    let (refused, _, body) = sql_as(&server, json!({"sql": "SELECT * FROM ex.private"}), eve).await;
    assert!(refused == 403 || refused == 404, "{body}");
    let code = error_code(&body).to_string();
    for sql in [
        "EXPLAIN SELECT * FROM ex.private",
        "EXPLAIN ANALYZE SELECT * FROM ex.private",
    ] {
        let (status, _, body) = sql_as(&server, json!({ "sql": sql }), eve).await;
        assert_eq!(
            (status, error_code(&body)),
            (refused, code.as_str()),
            "{sql}: {body}"
        );
    }
    // a whole read of the USER table is the caller's partition: eve's 3 rows
    let (_, _, body) = sql_as(
        &server,
        json!({"sql": "EXPLAIN ANALYZE SELECT body FROM ex.notes"}),
        eve,
    )
    .await;
    let plan = plan_text(&body);
    assert!(
        plan.contains("read=full") && plan.contains("output_rows=3"),
        "{plan}"
    );
    // EXPLAIN never writes
    for sql in [
        "EXPLAIN ANALYZE INSERT INTO ex.notes (id, body) VALUES (9, 'x')",
        "EXPLAIN ANALYZE DELETE FROM ex.notes",
    ] {
        let (status, _, body) = sql_as(&server, json!({ "sql": sql }), eve).await;
        assert_ne!(status, 200, "{sql}: {body}");
    }
    let (_, _, body) = sql_as(
        &server,
        json!({"sql": "SELECT count(*) FROM ex.notes"}),
        eve,
    )
    .await;
    assert_eq!(rows(&body, 0)[0][0], json!("3"), "{body}");
}
