//! Live-query workloads: real WebSocket clients (`/v1/ws`, JSON, no
//! compression) against a running server.
//!
//! - `live-latency`: `--subscribers N` clients subscribe to one table (a
//!   SHARED table: every client sees every insert; `--user-table`: one user
//!   per client, each insert goes to one of them in turn); then
//!   `--requests` single-row INSERTs over HTTP, one at a time. Reports the
//!   time from sending the INSERT to each client receiving its change.
//! - `live-fanout`: `--subscribers N` subscriptions (100 per connection) on
//!   one SHARED table, `--requests` INSERTs sent by `--concurrency` writers
//!   at `--rate` INSERTs per second in all (0: as fast as they go); reports
//!   deliveries per second, latency percentiles and how many deliveries
//!   were missing.
//! - `live-idle`: `--connections C` connections with `--subscribers N`
//!   subscriptions between them, never written to; reports the set-up time
//!   and the server's resident memory per connection and per subscription
//!   (`--server-pid`).
//! - `live-foreign`: single-row INSERT latency into the caller's partition
//!   of a USER table, first alone, then with `--subscribers N`
//!   subscriptions of other users (100 users) on the same table.
//!
//! The server must allow what the workload opens (raise
//! `websocket.max_subscriptions_per_user` and `max_messages_per_second`,
//! and use a low `auth.bcrypt_cost` for the users it creates): see
//! `scripts/bench.sh`.

use crate::{Args, BoxError, Client, micros, percentile};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const PASSWORD: &str = "bench-pass-1";
const SUBS_PER_CONNECTION: usize = 100;

/// A change as a client saw it: the row id and when it arrived.
type Arrival = (i64, Instant);

fn ws_url(args: &Args) -> String {
    format!(
        "{}/v1/ws",
        args.url
            .trim_end_matches('/')
            .replacen("http://", "ws://", 1)
    )
}

pub(crate) async fn login(args: &Args, user: &str, password: &str) -> Result<String, BoxError> {
    let mut client = Client::connect(args).await?;
    let body = client
        .post_json(
            "/v1/api/auth/login",
            &json!({"user": user, "password": password}),
        )
        .await?;
    let reply: Value = serde_json::from_slice(&body)?;
    Ok(reply["access_token"]
        .as_str()
        .ok_or("login returned no access_token")?
        .to_string())
}

async fn next_json(ws: &mut Ws) -> Result<Value, BoxError> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .map_err(|_| "no message within 30 s")?
            .ok_or("connection closed")??;
        match frame {
            Message::Text(text) => return Ok(serde_json::from_str(&text)?),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return Err(format!("unexpected frame {other:?}").into()),
        }
    }
}

/// A connection authenticated with `token`, speaking uncompressed JSON.
async fn connect(args: &Args, token: &str) -> Result<Ws, BoxError> {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(args)).await?;
    let hello = json!({"type": "authenticate", "method": "jwt", "token": token,
        "protocol": {"serialization": "json", "compression": "none"}});
    ws.send(Message::Text(hello.to_string().into())).await?;
    let reply = next_json(&mut ws).await?;
    if reply["type"] != "auth_success" {
        return Err(format!("authentication failed: {reply}").into());
    }
    Ok(ws)
}

/// Sends every subscribe first, then waits for each one's ack and last
/// initial batch.
async fn subscribe_all(ws: &mut Ws, sqls: &[String]) -> Result<(), BoxError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    for sql in sqls {
        let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let m = json!({"type": "subscribe", "subscription": {"id": format!("s{i}"), "sql": sql}});
        ws.send(Message::Text(m.to_string().into())).await?;
    }
    let mut ready = 0;
    while ready < sqls.len() {
        let m = next_json(ws).await?;
        match m["type"].as_str() {
            Some("subscription_ack") => {}
            Some("initial_data_batch") if m["batch_control"]["status"] == "ready" => ready += 1,
            Some("initial_data_batch") => {
                let id = m["subscription_id"].clone();
                let more = json!({"type": "next_batch", "subscription_id": id});
                ws.send(Message::Text(more.to_string().into())).await?;
            }
            _ => return Err(format!("subscribing: {m}").into()),
        }
    }
    Ok(())
}

/// Reads changes until the connection closes, reporting each row's id.
fn read_changes(mut ws: Ws, arrivals: mpsc::UnboundedSender<Arrival>) {
    tokio::spawn(async move {
        while let Some(Ok(frame)) = ws.next().await {
            let Message::Text(text) = frame else { continue };
            let now = Instant::now();
            let Ok(m) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if m["type"] != "change" {
                continue;
            }
            for row in m["rows"].as_array().into_iter().flatten() {
                // BIGINT arrives as a string (64-bit integers stay exact)
                let id = row["id"]
                    .as_i64()
                    .or_else(|| row["id"].as_str().and_then(|s| s.parse().ok()));
                if let Some(id) = id {
                    let _ = arrivals.send((id, now));
                }
            }
        }
    });
}

async fn create_table(admin: &mut Client, user_table: bool) -> Result<String, BoxError> {
    let table = format!(
        "bench.live{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    admin.sql("CREATE NAMESPACE IF NOT EXISTS bench").await?;
    admin
        .sql(&format!(
            "CREATE {} TABLE {table} (id BIGINT PRIMARY KEY, name TEXT, score DOUBLE)",
            if user_table { "USER" } else { "SHARED" }
        ))
        .await?;
    if !user_table {
        admin
            .sql(&format!(
                "ALTER TABLE {table} SET TBLPROPERTIES (ACCESS_LEVEL = 'PUBLIC')"
            ))
            .await?;
    }
    Ok(table)
}

/// `n` users `lb_0…` (created once; later runs reuse them), with tokens.
async fn users(args: &Args, admin: &mut Client, n: usize) -> Result<Vec<String>, BoxError> {
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let sql: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!("CREATE USER IF NOT EXISTS 'lb_{i}' WITH PASSWORD '{PASSWORD}' ROLE user")
            })
            .collect();
        admin.sql(&sql.join("; ")).await?;
    }
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        tokens.push(login(args, &format!("lb_{i}"), PASSWORD).await?);
    }
    Ok(tokens)
}

fn report(name: &str, args: &Args, mut latencies: Vec<Duration>, extra: &str) {
    latencies.sort();
    println!(
        "workload={name} table={} subscribers={} deliveries={} p50_us={:.1} p99_us={:.1}{extra}",
        if args.user_table { "user" } else { "shared" },
        args.subscribers,
        latencies.len(),
        micros(percentile(&latencies, 0.50)),
        micros(percentile(&latencies, 0.99)),
    );
}

pub async fn latency(args: &Args) -> Result<(), BoxError> {
    let mut admin = Client::connect(args).await?;
    let table = create_table(&mut admin, args.user_table)
        .await
        .map_err(|e| format!("creating the table: {e}"))?;
    let n = args.subscribers.max(1);
    // USER table: one user per subscriber; SHARED: root's token for all
    let tokens = if args.user_table {
        users(args, &mut admin, n).await?
    } else {
        vec![
            login(args, &args.user, &args.password)
                .await
                .map_err(|e| format!("login: {e}"))?;
            n
        ]
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    for token in &tokens {
        let mut ws = connect(args, token).await?;
        subscribe_all(&mut ws, &[format!("SELECT * FROM {table}")]).await?;
        read_changes(ws, tx.clone());
    }
    // per insert: who writes it and how many clients must see it
    let mut writers: Vec<Client> = Vec::new();
    if args.user_table {
        for token in tokens.iter().take(n.min(64)) {
            let mut c = Client::connect(args).await?;
            c.set_bearer(token);
            writers.push(c);
        }
    } else {
        writers.push(Client::connect(args).await?);
    }
    let expected = if args.user_table { 1 } else { n };
    let mut latencies = Vec::new();
    let mut missing = 0usize;
    let total = args.warmup + args.requests;
    for k in 0..total {
        let id = k as i64;
        let count = writers.len();
        let writer = &mut writers[k % count];
        let sent = Instant::now();
        writer
            .sql(&format!(
                "INSERT INTO {table} VALUES ({id}, 'name-{id}', 1.5)"
            ))
            .await?;
        let mut seen = 0;
        let deadline = sent + Duration::from_secs(2);
        while seen < expected {
            match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                Ok(Some((got, at))) if got == id => {
                    seen += 1;
                    if k >= args.warmup {
                        latencies.push(at - sent);
                    }
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        if k >= args.warmup {
            missing += expected - seen;
        }
    }
    report(
        "live-latency",
        args,
        latencies,
        &format!(" inserts={} missing={missing}", args.requests),
    );
    Ok(())
}

pub async fn fanout(args: &Args) -> Result<(), BoxError> {
    let mut admin = Client::connect(args).await?;
    let table = create_table(&mut admin, false).await?;
    let token = login(args, &args.user, &args.password).await?;
    let n = args.subscribers.max(1);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut left = n;
    while left > 0 {
        let here = left.min(SUBS_PER_CONNECTION);
        let mut ws = connect(args, &token).await?;
        let sqls = vec![format!("SELECT id, name FROM {table}"); here];
        subscribe_all(&mut ws, &sqls).await?;
        read_changes(ws, tx.clone());
        left -= here;
    }
    drop(tx);
    let sent: Arc<std::sync::Mutex<HashMap<i64, Instant>>> = Arc::default();
    let started = Instant::now();
    let mut handles = Vec::new();
    let writers = args.concurrency.max(1);
    for w in 0..writers {
        let (args2, table, sent) = (args.clone(), table.clone(), Arc::clone(&sent));
        handles.push(tokio::spawn(async move {
            let mut client = Client::connect(&args2).await?;
            for k in (w..args2.requests).step_by(writers) {
                if args2.rate > 0.0 {
                    let due = started + Duration::from_secs_f64(k as f64 / args2.rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let id = k as i64;
                sent.lock().unwrap().insert(id, Instant::now());
                client
                    .sql(&format!(
                        "INSERT INTO {table} VALUES ({id}, 'name-{id}', 1.5)"
                    ))
                    .await?;
            }
            Ok::<_, BoxError>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let expected = n * args.requests;
    let mut arrivals = Vec::with_capacity(expected);
    let mut last = Instant::now();
    while arrivals.len() < expected {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(a)) => {
                last = a.1;
                arrivals.push(a);
            }
            _ => break,
        }
    }
    let elapsed = last - started;
    let sent = sent.lock().unwrap();
    let latencies: Vec<Duration> = arrivals.iter().map(|(id, at)| *at - sent[id]).collect();
    let rate = arrivals.len() as f64 / elapsed.as_secs_f64();
    report(
        "live-fanout",
        args,
        latencies,
        &format!(
            " inserts={} insert_rate={} seconds={:.2} deliveries_per_s={rate:.0} missing={}",
            args.requests,
            args.rate,
            elapsed.as_secs_f64(),
            expected - arrivals.len()
        ),
    );
    Ok(())
}

pub fn rss_kib(pid: u32) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmRSS")?.parse()?)
}

pub async fn idle(args: &Args) -> Result<(), BoxError> {
    let pid = args.server_pid.ok_or("live-idle needs --server-pid")?;
    let mut admin = Client::connect(args).await?;
    let table = create_table(&mut admin, false).await?;
    let token = login(args, &args.user, &args.password).await?;
    let connections = args.connections.max(1);
    let per_connection = args.subscribers.div_ceil(connections).max(1);
    let settle = || tokio::time::sleep(Duration::from_millis(500));
    settle().await;
    let before = rss_kib(pid)?;
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(connections);
    for _ in 0..connections {
        sockets.push(connect(args, &token).await?);
    }
    let connected = started.elapsed();
    // one subscription each, then the rest: what a connection costs, then
    // what a subscription costs
    let mut tasks = Vec::new();
    for (c, mut ws) in sockets.into_iter().enumerate() {
        let table = table.clone();
        let first = c * per_connection;
        tasks.push(tokio::spawn(async move {
            subscribe_all(
                &mut ws,
                &[format!("SELECT * FROM {table} WHERE id = {first}")],
            )
            .await?;
            Ok::<_, BoxError>(ws)
        }));
    }
    let mut sockets = Vec::with_capacity(connections);
    for t in tasks {
        sockets.push(t.await??);
    }
    settle().await;
    let with_connections = rss_kib(pid)?;
    let mut tasks = Vec::new();
    for (c, mut ws) in sockets.into_iter().enumerate() {
        let table = table.clone();
        tasks.push(tokio::spawn(async move {
            let sqls: Vec<String> = (1..per_connection)
                .map(|i| {
                    format!(
                        "SELECT * FROM {table} WHERE id = {}",
                        c * per_connection + i
                    )
                })
                .collect();
            subscribe_all(&mut ws, &sqls).await?;
            Ok::<_, BoxError>(ws)
        }));
    }
    let mut sockets = Vec::with_capacity(connections);
    for t in tasks {
        sockets.push(t.await??);
    }
    let set_up = started.elapsed();
    settle().await;
    let after = rss_kib(pid)?;
    let subs = connections * per_connection;
    let listed = admin
        .query("SELECT count(*) FROM system.live_queries")
        .await?;
    println!(
        "workload=live-idle connections={connections} subscriptions={subs} active_per_server={listed} \
         connect_s={:.2} set_up_s={:.2} rss_before_kib={before} rss_after_kib={after} \
         kib_per_connection={:.2} kib_per_extra_subscription={:.3}",
        connected.as_secs_f64(),
        set_up.as_secs_f64(),
        with_connections.saturating_sub(before) as f64 / connections as f64,
        after.saturating_sub(with_connections) as f64 / (subs - connections).max(1) as f64,
    );
    drop(sockets);
    Ok(())
}

pub async fn foreign(args: &Args) -> Result<(), BoxError> {
    let mut admin = Client::connect(args).await?;
    let table = create_table(&mut admin, true).await?;
    let owners = 100usize;
    let tokens = users(args, &mut admin, owners).await?;
    let mut writer = Client::connect(args).await?;
    let mut next = 0i64;
    let mut results = vec![("none", inserts(args, &mut writer, &table, &mut next).await?)];
    let per_owner = args.subscribers.div_ceil(owners).max(1);
    for token in &tokens {
        let mut left = per_owner;
        while left > 0 {
            let here = left.min(SUBS_PER_CONNECTION);
            let mut ws = connect(args, token).await?;
            subscribe_all(&mut ws, &vec![format!("SELECT * FROM {table}"); here]).await?;
            let (tx, _rx) = mpsc::unbounded_channel();
            read_changes(ws, tx);
            left -= here;
        }
    }
    results.push((
        "foreign",
        inserts(args, &mut writer, &table, &mut next).await?,
    ));
    results.push((
        "none-again",
        inserts(args, &mut writer, &table, &mut next).await?,
    ));
    for (label, latencies) in results {
        println!(
            "workload=live-foreign writer=root foreign_subscriptions={} inserts={} p50_us={:.1} p99_us={:.1}",
            if label == "foreign" {
                owners * per_owner
            } else {
                0
            },
            latencies.len(),
            micros(percentile(&latencies, 0.50)),
            micros(percentile(&latencies, 0.99)),
        );
    }
    Ok(())
}

/// `--warmup` + `--requests` single-row INSERTs; the measured latencies.
async fn inserts(
    args: &Args,
    writer: &mut Client,
    table: &str,
    next: &mut i64,
) -> Result<Vec<Duration>, BoxError> {
    let mut latencies = Vec::with_capacity(args.requests);
    for k in 0..args.warmup + args.requests {
        *next += 1;
        let id = *next;
        let t = Instant::now();
        writer
            .sql(&format!(
                "INSERT INTO {table} VALUES ({id}, 'name-{id}', 1.5)"
            ))
            .await?;
        if k >= args.warmup {
            latencies.push(t.elapsed());
        }
    }
    latencies.sort();
    Ok(latencies)
}
