//! `kalamdb-bench`: latency and throughput of a running server over HTTP
//! with keep-alive connections (one per concurrent client).
//!
//! ```text
//! kalamdb-bench --url http://127.0.0.1:8080 --workload insert --requests 20000 --concurrency 1
//! ```
//! Workloads: `insert` (single-row INSERT), `select` (point SELECT by primary
//! key), `update` / `delete` (by primary key, random keys of the
//! `--preload` rows), `select1` (`SELECT 1`), `batch` (1000-row INSERT statements),
//! `health` (GET /health: the HTTP floor, unauthenticated), `me`
//! (GET /v1/api/auth/me: authentication plus the account read, the
//! authenticated counterpart of `health`). `--auth bearer` logs in once and
//! sends the access token instead of Basic credentials. Each run creates its
//! own table.
//! `in-process` needs no server: it opens a database in a temporary
//! directory and times the SchemaRegistry lookup and the executor's paths
//! without HTTP. `jobs` pushes `--requests` no-op jobs through the job
//! manager and reports the manager's cost per job, end to end. The
//! `live-*` workloads (WebSocket subscribers) are described in `live.rs`,
//! `queries` (key ranges, ordered LIMIT, scans) in `queries.rs`.

mod aggregate;
mod cold;
mod live;
mod queries;

use base64::Engine;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Workload {
    Insert,
    Select,
    Select1,
    /// UPDATE of two columns by primary key (random keys of the preload).
    Update,
    /// DELETE by primary key (random keys of the preload).
    Delete,
    Batch,
    Health,
    Me,
    /// In-process, no server: SchemaRegistry lookup and executor paths.
    InProcess,
    /// In-process, no server: `--requests` no-op jobs created and run to
    /// completion through the job manager (persistence included).
    Jobs,
    /// INSERT → change latency at `--subscribers` WebSocket clients.
    LiveLatency,
    /// Deliveries per second to `--subscribers` subscriptions of one table.
    LiveFanout,
    /// Memory and set-up time of idle subscriptions.
    LiveIdle,
    /// Key ranges, ordered LIMIT, IN, filters, count and GROUP BY on a
    /// `--preload`-row table (`queries.rs`).
    Queries,
    /// Point lookups hot, then FLUSH TABLE of a `--preload`-row table, then
    /// point lookups and the `queries` reads over the cold rows (`cold.rs`).
    Cold,
    /// INSERT latency with other users' subscriptions on the table.
    LiveForeign,
    /// GROUP BY + SUM over a `--preload`-row table all in Parquet, and the
    /// same query in DataFusion directly on its files (`aggregate.rs`).
    ColdAggregate,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum AuthKind {
    /// HTTP Basic (the server's verified-credential cache answers).
    Basic,
    /// A JWT access token from /v1/api/auth/login.
    Bearer,
}

#[derive(Parser, Debug, Clone)]
#[command(name = "kalamdb-bench", about = "HTTP benchmark for kalamdb-server")]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, value_enum)]
    workload: Workload,
    /// Measured requests in total (after warm-up).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Unmeasured requests first.
    #[arg(long, default_value_t = 1_000)]
    warmup: usize,
    /// Concurrent clients, each on its own keep-alive connection.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Rows per statement for `batch`.
    #[arg(long, default_value_t = 1000)]
    batch_rows: usize,
    /// Rows preloaded for `select`.
    #[arg(long, default_value_t = 10_000)]
    preload: usize,
    /// Use a USER table instead of a SHARED one.
    #[arg(long)]
    user_table: bool,
    #[arg(long, default_value = "root")]
    user: String,
    #[arg(long, default_value = "")]
    password: String,
    #[arg(long, value_enum, default_value = "basic")]
    auth: AuthKind,
    /// Live workloads: subscriptions (or subscribed clients) in all.
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// `live-idle`: WebSocket connections the subscriptions are spread over.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// `queries --user-table`: users the rows are spread over.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// `live-fanout`: INSERTs per second in all (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// `live-idle`: the server's process id, to read its memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// `cold-aggregate`: the server's data directory (where its segments are).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Client {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
    auth: String,
}

impl Client {
    async fn connect(args: &Args) -> Result<Self, BoxError> {
        let authority = args
            .url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let stream = tokio::net::TcpStream::connect(&authority).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut client = Self {
            sender,
            host: authority,
            auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", args.user, args.password))
            ),
        };
        if args.auth == AuthKind::Bearer {
            let body = serde_json::json!({ "user": args.user, "password": args.password });
            let request = Request::builder()
                .method(Method::POST)
                .uri("/v1/api/auth/login")
                .header(HOST, &client.host)
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body.to_string())))?;
            let reply: serde_json::Value = serde_json::from_slice(&client.send(request).await?)?;
            let token = reply["access_token"]
                .as_str()
                .ok_or("login returned no access_token")?;
            client.auth = format!("Bearer {token}");
        }
        Ok(client)
    }

    /// `POST /v1/api/sql` with this client's credentials; the reply body.
    async fn run_sql(&mut self, sql: &str) -> Result<Bytes, BoxError> {
        let body = serde_json::json!({ "sql": sql }).to_string();
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/api/sql")
            .header(HOST, &self.host)
            .header(AUTHORIZATION, &self.auth)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        self.send(request).await
    }

    async fn sql(&mut self, sql: &str) -> Result<(), BoxError> {
        self.run_sql(sql).await.map(drop)
    }

    /// Sends later requests with this access token.
    fn set_bearer(&mut self, token: &str) {
        self.auth = format!("Bearer {token}");
    }

    async fn post_json(&mut self, path: &str, body: &serde_json::Value) -> Result<Bytes, BoxError> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?;
        self.send(request).await
    }

    /// The first value of the first row of `sql`'s result, as text.
    async fn query(&mut self, sql: &str) -> Result<String, BoxError> {
        let reply: serde_json::Value = serde_json::from_slice(&self.run_sql(sql).await?)?;
        let value = &reply["results"][0]["rows"][0][0];
        Ok(value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_string))
    }

    async fn health(&mut self) -> Result<(), BoxError> {
        let request = Request::builder()
            .method(Method::GET)
            .uri("/health")
            .header(HOST, &self.host)
            .body(Full::new(Bytes::new()))?;
        self.send(request).await.map(drop)
    }

    async fn me(&mut self) -> Result<(), BoxError> {
        let request = Request::builder()
            .method(Method::GET)
            .uri("/v1/api/auth/me")
            .header(HOST, &self.host)
            .header(AUTHORIZATION, &self.auth)
            .body(Full::new(Bytes::new()))?;
        self.send(request).await.map(drop)
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Bytes, BoxError> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)).into());
        }
        Ok(body)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Times `f` over `n` calls after `n / 10` warm-up calls; returns ns per call.
fn time_per_call(n: u64, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

async fn in_process() -> Result<(), BoxError> {
    use kalamdb_commons::{Role, UserId};
    use kalamdb_core::{AppContext, CoreOptions, ExecutionContext};
    use kalamdb_store::{RocksDbBackend, RocksDbOptions};

    let dir = std::env::temp_dir().join(format!("kalamdb-bench-{}", std::process::id()));
    let backend = Arc::new(RocksDbBackend::open(&dir, &RocksDbOptions::default())?);
    let app = AppContext::open(backend, &CoreOptions::default())?;
    let ctx = || ExecutionContext::new(UserId::new("root"), "root", Role::System);
    let mut setup = String::from("CREATE NAMESPACE app;");
    for i in 0..100 {
        setup.push_str(&format!(
            "CREATE TABLE app.t{i} (id BIGINT PRIMARY KEY, name TEXT, score DOUBLE);"
        ));
    }
    let values: Vec<String> = (0..10_000).map(|i| format!("({i}, 'n{i}', 1.5)")).collect();
    setup.push_str(&format!("INSERT INTO app.t42 VALUES {}", values.join(",")));
    app.execute(&mut ctx(), &setup, &[])
        .await
        .map_err(|e| e.to_string())?;

    let lookup = time_per_call(10_000_000, || {
        std::hint::black_box(
            app.schema_registry
                .get_table(std::hint::black_box("app"), std::hint::black_box("t42")),
        );
    });
    println!("in_process schema_registry_get_table ns_per_op={lookup:.1}");
    let auth = kalamdb_auth::Authenticator::new(app.meta.clone());
    let header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("root:")
    );
    let local = Some(std::net::IpAddr::from([127, 0, 0, 1]));
    auth.authenticate(Some(&header), local).await?;
    let n = 200_000;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(auth.authenticate(Some(&header), local).await?);
    }
    let per = start.elapsed().as_nanos() as f64 / n as f64;
    println!("in_process basic_auth_cached ns_per_op={per:.0}");
    let (_, pair) = auth.login("root", "", local).await?;
    let bearer = format!("Bearer {}", pair.access_token);
    auth.authenticate(Some(&bearer), local).await?;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(auth.authenticate(Some(&bearer), local).await?);
    }
    let per = start.elapsed().as_nanos() as f64 / n as f64;
    println!("in_process bearer_auth_cached ns_per_op={per:.0}");
    let verify = time_per_call(200_000, || {
        std::hint::black_box(
            auth.jwt()
                .verify(&pair.access_token, kalamdb_auth::TokenType::Access)
                .is_ok(),
        );
    });
    println!("in_process jwt_hs256_verify_uncached ns_per_op={verify:.0}");
    let clone = time_per_call(20_000, || {
        std::hint::black_box(app.session_state().clone());
    });
    println!("in_process session_state_clone ns_per_op={clone:.0}");
    for (name, sql) in [
        ("point_select", "SELECT * FROM app.t42 WHERE id = 4242"),
        ("select_1", "SELECT 1"),
        ("select_1_plus_1_datafusion", "SELECT 1 + 1"),
        ("scan_count_10k_datafusion", "SELECT count(*) FROM app.t42"),
    ] {
        let n = if name.contains("datafusion") {
            2_000
        } else {
            50_000
        };
        let start = Instant::now();
        for _ in 0..n {
            app.execute(&mut ctx(), sql, &[])
                .await
                .map_err(|e| e.to_string())?;
        }
        let per = start.elapsed().as_nanos() as f64 / n as f64;
        println!("in_process executor_{name} ns_per_op={per:.0}");
    }
    let n = 50_000;
    let start = Instant::now();
    for i in 0..n {
        let sql = format!("INSERT INTO app.t1 VALUES ({i}, 'x', 1.0)");
        app.execute(&mut ctx(), &sql, &[])
            .await
            .map_err(|e| e.to_string())?;
    }
    let per = start.elapsed().as_nanos() as f64 / n as f64;
    println!("in_process executor_insert_one_row ns_per_op={per:.0}");
    let batches = 200;
    let statements: Vec<String> = (0..batches)
        .map(|b| {
            let values: Vec<String> = (0..1000)
                .map(|i| format!("({}, 'name-{i}', 1.5)", 1_000_000 + b * 1000 + i))
                .collect();
            format!("INSERT INTO app.t2 VALUES {}", values.join(","))
        })
        .collect();
    let start = Instant::now();
    for sql in &statements {
        std::hint::black_box(kalamdb_sql::parse_sql(sql).map_err(|e| e.to_string())?);
    }
    let parse = start.elapsed().as_nanos() as f64 / batches as f64;
    let start = Instant::now();
    for sql in &statements {
        let dialect = kalamdb_sql::sqlparser::dialect::GenericDialect {};
        std::hint::black_box(
            kalamdb_sql::sqlparser::tokenizer::Tokenizer::new(&dialect, sql)
                .tokenize_with_location()
                .map_err(|e| e.to_string())?,
        );
    }
    let tokenize = start.elapsed().as_nanos() as f64 / batches as f64;
    println!("in_process tokenize_1000_rows ns_per_op={tokenize:.0}");
    let start = Instant::now();
    for sql in &statements {
        app.execute(&mut ctx(), sql, &[])
            .await
            .map_err(|e| e.to_string())?;
    }
    let per = start.elapsed().as_nanos() as f64 / batches as f64;
    println!(
        "in_process executor_insert_1000_rows ns_per_op={per:.0} (of which parsing {parse:.0}) rows_per_s={:.0}",
        1000.0 * 1e9 / per
    );
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Stands in for real work so only the manager's own cost is measured.
struct NoOpExecutor;

#[async_trait::async_trait]
impl kalamdb_core::jobs::JobExecutor<kalamdb_core::AppContext> for NoOpExecutor {
    fn job_type(&self) -> kalamdb_core::jobs::JobType {
        kalamdb_core::jobs::JobType::Compact
    }
    fn name(&self) -> &'static str {
        "no-op (benchmark)"
    }
    fn validate_params(&self, _: &serde_json::Value) -> kalamdb_core::CoreResult<()> {
        Ok(())
    }
    async fn execute(
        &self,
        _: &kalamdb_core::jobs::JobContext<kalamdb_core::AppContext>,
        _: &kalamdb_core::jobs::Job,
    ) -> kalamdb_core::jobs::JobDecision {
        kalamdb_core::jobs::JobDecision::Completed {
            message: "nothing to do".into(),
        }
    }
}

async fn jobs(n: usize) -> Result<(), BoxError> {
    use kalamdb_core::jobs::{
        JobOptions, JobRegistry, JobStatus, JobType, JobsConfig, SystemClock, UnifiedJobManager,
    };
    use kalamdb_core::{AppContext, CoreOptions};
    use kalamdb_store::{RocksDbBackend, RocksDbOptions};

    let dir = std::env::temp_dir().join(format!("kalamdb-bench-jobs-{}", std::process::id()));
    let backend = Arc::new(RocksDbBackend::open(&dir, &RocksDbOptions::default())?);
    let app = AppContext::open(backend, &CoreOptions::default())?;
    let mut registry = JobRegistry::new();
    registry.register(Arc::new(NoOpExecutor));
    let manager = Arc::new(UnifiedJobManager::new(
        app.meta.clone(),
        JobsConfig::default(),
        Arc::new(SystemClock),
        registry,
    ));
    manager.start(&app)?;
    let start = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(manager.create_job(JobType::Compact, JobOptions::default())?);
    }
    let created = start.elapsed();
    for id in &ids {
        loop {
            match manager.job(id)?.map(|j| j.status) {
                Some(JobStatus::Completed) => break,
                Some(JobStatus::Failed | JobStatus::Cancelled) => {
                    return Err(format!("job {id} did not complete").into());
                }
                _ => tokio::time::sleep(Duration::from_micros(200)).await,
            }
        }
    }
    let total = start.elapsed();
    println!(
        "jobs n={n} create_us_per_job={:.1} end_to_end_us_per_job={:.1} jobs_per_s={:.0}",
        created.as_secs_f64() * 1e6 / n as f64,
        total.as_secs_f64() * 1e6 / n as f64,
        n as f64 / total.as_secs_f64()
    );
    manager.shutdown(Duration::from_secs(5)).await;
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Arc::new(Args::parse());
    if args.workload == Workload::InProcess {
        return in_process().await;
    }
    if args.workload == Workload::Jobs {
        return jobs(args.requests).await;
    }
    match args.workload {
        Workload::LiveLatency => return live::latency(&args).await,
        Workload::LiveFanout => return live::fanout(&args).await,
        Workload::LiveIdle => return live::idle(&args).await,
        Workload::LiveForeign => return live::foreign(&args).await,
        Workload::Queries => return queries::run(&args).await,
        Workload::Cold => return cold::run(&args).await,
        Workload::ColdAggregate => return aggregate::run(&args).await,
        _ => {}
    }
    let table = format!(
        "bench.t{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let mut setup = Client::connect(&args).await?;
    setup.sql("CREATE NAMESPACE IF NOT EXISTS bench").await?;
    setup
        .sql(&format!(
            "CREATE {} TABLE {table} (id BIGINT PRIMARY KEY, name TEXT, score DOUBLE)",
            if args.user_table { "USER" } else { "SHARED" }
        ))
        .await?;
    if matches!(
        args.workload,
        Workload::Select | Workload::Update | Workload::Delete
    ) {
        for start in (0..args.preload).step_by(1000) {
            let values: Vec<String> = (start..(start + 1000).min(args.preload))
                .map(|i| format!("({i}, 'name-{i}', {i}.5)"))
                .collect();
            setup
                .sql(&format!("INSERT INTO {table} VALUES {}", values.join(",")))
                .await?;
        }
    }

    let next_id = Arc::new(AtomicU64::new(10_000_000));
    let per_client = args.requests.div_ceil(args.concurrency);
    let warm_per_client = args.warmup.div_ceil(args.concurrency);
    let mut handles = Vec::new();
    for client_no in 0..args.concurrency {
        let args = Arc::clone(&args);
        let next_id = Arc::clone(&next_id);
        let table = table.clone();
        handles.push(tokio::spawn(async move {
            let mut client = Client::connect(&args).await?;
            let mut latencies = Vec::with_capacity(per_client);
            let mut measure_from = None;
            for i in 0..(warm_per_client + per_client) {
                if i == warm_per_client {
                    measure_from = Some(Instant::now());
                }
                let t = Instant::now();
                match args.workload {
                    Workload::Insert => {
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        client
                            .sql(&format!(
                                "INSERT INTO {table} VALUES ({id}, 'name-{id}', 1.5)"
                            ))
                            .await?
                    }
                    Workload::Batch => {
                        let first = next_id.fetch_add(args.batch_rows as u64, Ordering::Relaxed);
                        let values: Vec<String> = (first..first + args.batch_rows as u64)
                            .map(|id| format!("({id}, 'name-{id}', 1.5)"))
                            .collect();
                        client
                            .sql(&format!("INSERT INTO {table} VALUES {}", values.join(",")))
                            .await?
                    }
                    Workload::Select => {
                        let id = (client_no * 7919 + i * 104_729) % args.preload.max(1);
                        client
                            .sql(&format!("SELECT * FROM {table} WHERE id = {id}"))
                            .await?
                    }
                    Workload::Select1 => client.sql("SELECT 1").await?,
                    Workload::Update => {
                        let id = (client_no * 7919 + i * 104_729) % args.preload.max(1);
                        client
                            .sql(&format!(
                                "UPDATE {table} SET name = 'updated-{i}', score = {i}.25 WHERE id = {id}"
                            ))
                            .await?
                    }
                    Workload::Delete => {
                        let id = (client_no * 7919 + i * 104_729) % args.preload.max(1);
                        client
                            .sql(&format!("DELETE FROM {table} WHERE id = {id}"))
                            .await?
                    }
                    Workload::Health => client.health().await?,
                    Workload::Me => client.me().await?,
                    Workload::InProcess
                    | Workload::Jobs
                    | Workload::LiveLatency
                    | Workload::LiveFanout
                    | Workload::LiveIdle
                    | Workload::LiveForeign
                    | Workload::Queries
                    | Workload::Cold
                    | Workload::ColdAggregate => {
                        unreachable!("handled before connecting")
                    }
                }
                if i >= warm_per_client {
                    latencies.push(t.elapsed());
                }
            }
            let elapsed = measure_from.map(|m| m.elapsed()).unwrap_or_default();
            Ok::<_, BoxError>((latencies, elapsed))
        }));
    }
    let mut all = Vec::new();
    let mut wall = Duration::ZERO;
    for h in handles {
        let (lat, elapsed) = h.await??;
        all.extend(lat);
        wall = wall.max(elapsed);
    }
    all.sort();
    let statements_per_sec = all.len() as f64 / wall.as_secs_f64();
    let rows_per_statement = if args.workload == Workload::Batch {
        args.batch_rows
    } else {
        1
    };
    println!(
        "auth={:?} table={} workload={:?} concurrency={} statements={} p50_us={:.1} p99_us={:.1} statements_per_s={:.0} rows_per_s={:.0}",
        args.auth,
        if args.user_table { "user" } else { "shared" },
        args.workload,
        args.concurrency,
        all.len(),
        micros(percentile(&all, 0.50)),
        micros(percentile(&all, 0.99)),
        statements_per_sec,
        statements_per_sec * rows_per_statement as f64,
    );
    Ok(())
}
