//! The reliability round: no statement can crash or hang the server, slow
//! and idle connections are closed, passwords count every byte, logins do
//! not reveal which names exist, and per-query limits hold. Every case runs
//! against the real binary.

use crate::common::{TestServer, error_code, rows};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn terms(n: usize, term: &str, op: &str) -> String {
    vec![term; n].join(op)
}

/// The shapes that aborted the process (stack overflow) before limits
/// existed, each at the size that failed and up to ten times that size.
fn pathological_corpus() -> Vec<(String, String)> {
    let mut corpus = Vec::new();
    for factor in [1usize, 2, 5, 10] {
        let n = 2000 * factor;
        corpus.push((
            format!("sum of {n} terms"),
            format!("SELECT {}", terms(n, "1", "+")),
        ));
        corpus.push((
            format!("{n} ANDs"),
            format!("SELECT * FROM app.t WHERE {}", terms(n, "id = 1", " AND ")),
        ));
        corpus.push((
            format!("{n} ORs"),
            format!("SELECT * FROM app.t WHERE {}", terms(n, "id = 1", " OR ")),
        ));
        corpus.push((
            format!("{n} concatenations"),
            format!("SELECT {}", terms(n, "'a'", " || ")),
        ));
        let ctes = 1000 * factor;
        let list: Vec<String> = (1..ctes)
            .map(|i| format!("c{i} AS (SELECT * FROM c{})", i - 1))
            .collect();
        corpus.push((
            format!("{ctes} chained CTEs"),
            format!(
                "WITH c0 AS (SELECT 1 AS x), {} SELECT * FROM c{}",
                list.join(", "),
                ctes - 1
            ),
        ));
        let unions = 5000 * factor;
        corpus.push((
            format!("{unions} UNION ALLs"),
            terms(unions, "SELECT 1", " UNION ALL "),
        ));
        let joins = 1000 * factor;
        corpus.push((
            format!("{joins} joined tables"),
            format!("SELECT 1 FROM {}", terms(joins, "app.t", ", ")),
        ));
        corpus.push((
            format!("{n} nested parentheses"),
            format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n)),
        ));
        corpus.push((
            format!("{n} NOTs"),
            format!("SELECT {} true", terms(n, "NOT", " ")),
        ));
        corpus.push((
            format!("{n} unary minuses"),
            format!("SELECT {}1", "- ".repeat(n)),
        ));
        corpus.push((
            format!("sum of {n} terms, then a syntax error"),
            format!("SELECT {} +", terms(n, "1", "+")),
        ));
        corpus.push((
            format!("{n} IS NULLs"),
            format!("SELECT 1{}", " IS NULL".repeat(n)),
        ));
    }
    corpus
}

async fn as_user(server: &TestServer, sql: &str) -> (u16, Value) {
    server
        .post_raw(
            json!({ "sql": sql }).to_string(),
            Some(("alice", "alice-pass-1")),
        )
        .await
}

#[tokio::test]
async fn no_pathological_statement_kills_the_server() {
    let server = TestServer::start();
    server.ok("CREATE NAMESPACE app").await;
    server
        .ok("CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY) WITH (ACCESS_LEVEL = 'public')")
        .await;
    server
        .ok("CREATE USER 'alice' WITH PASSWORD 'alice-pass-1' ROLE user")
        .await;
    for (name, sql) in pathological_corpus() {
        assert!(sql.len() < 1 << 20, "{name}: {} bytes", sql.len());
        let (status, body) = as_user(&server, &sql).await;
        assert!(
            status == 200 || (400..500).contains(&status),
            "{name}: {status} {body}"
        );
        if status != 200 {
            let code = error_code(&body);
            assert!(
                ["QUERY_TOO_COMPLEX", "INVALID_SQL"].contains(&code),
                "{name}: {body}"
            );
        }
        let (status, body) = as_user(&server, "SELECT 41 + 1").await;
        assert_eq!(
            (status, rows(&body, 0)[0][0].clone()),
            (200, json!("42")),
            "after {name}"
        );
    }
}

#[tokio::test]
async fn statements_within_the_limits_still_run() {
    let server = TestServer::start();
    server.ok("CREATE NAMESPACE app").await;
    server
        .ok("CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY)")
        .await;
    server.ok("INSERT INTO app.t VALUES (1), (2), (3)").await;
    let body = server.ok(&format!("SELECT {}", terms(900, "1", "+"))).await;
    assert_eq!(rows(&body, 0)[0][0], json!("900"));
    let ors: Vec<String> = (0..900).map(|i| format!("id = {i}")).collect();
    let body = server
        .ok(&format!(
            "SELECT count(*) FROM app.t WHERE {}",
            ors.join(" OR ")
        ))
        .await;
    assert_eq!(rows(&body, 0)[0][0], json!("3"));
    let body = server
        .ok(&format!(
            "SELECT count(*) FROM ({}) AS u",
            terms(400, "SELECT 1", " UNION ALL ")
        ))
        .await;
    assert_eq!(rows(&body, 0)[0][0], json!("400"));
    let list: Vec<String> = (1..200)
        .map(|i| format!("c{i} AS (SELECT x + 1 AS x FROM c{})", i - 1))
        .collect();
    let body = server
        .ok(&format!(
            "WITH c0 AS (SELECT 0 AS x), {} SELECT x FROM c199",
            list.join(", ")
        ))
        .await;
    assert_eq!(rows(&body, 0)[0][0], json!("199"));
    // wide is not deep: a long IN list is fine
    let ids: Vec<String> = (0..20_000).map(|i| i.to_string()).collect();
    let body = server
        .ok(&format!(
            "SELECT count(*) FROM app.t WHERE id IN ({})",
            ids.join(", ")
        ))
        .await;
    assert_eq!(rows(&body, 0)[0][0], json!("3"));
}

#[tokio::test]
async fn the_limits_are_configurable_and_named_in_the_error() {
    let server = TestServer::start_with(&[
        ("KALAMDB_SQL_MAX_EXPRESSION_DEPTH", "50"),
        ("KALAMDB_SQL_MAX_QUERY_DEPTH", "10"),
    ]);
    let (status, body) = server.sql(&format!("SELECT {}", terms(60, "1", "+"))).await;
    assert_eq!((status, error_code(&body)), (400, "QUERY_TOO_COMPLEX"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sql.max_expression_depth"),
        "{body}"
    );
    server.ok(&format!("SELECT {}", terms(40, "1", "+"))).await;
    let (status, body) = server.sql(&terms(20, "SELECT 1", " UNION ALL ")).await;
    assert_eq!((status, error_code(&body)), (400, "QUERY_TOO_COMPLEX"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sql.max_query_depth"),
        "{body}"
    );
}

#[tokio::test]
async fn a_query_past_its_time_or_memory_limit_is_cancelled_and_writes_nothing() {
    let server = TestServer::start_with(&[
        ("KALAMDB_SQL_QUERY_TIMEOUT_MS", "1000"),
        ("KALAMDB_SQL_QUERY_MEMORY_LIMIT_MB", "64"),
    ]);
    server.ok("CREATE NAMESPACE app").await;
    server
        .ok("CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY, body TEXT)")
        .await;
    server
        .ok("CREATE SHARED TABLE app.copy (id BIGINT PRIMARY KEY)")
        .await;
    server
        .ok("CREATE SHARED TABLE app.n (id BIGINT PRIMARY KEY)")
        .await;
    let ids: Vec<String> = (0..1000).map(|i| format!("({i})")).collect();
    server
        .ok(&format!("INSERT INTO app.n VALUES {}", ids.join(", ")))
        .await;
    let values: Vec<String> = (0..1000)
        .map(|i| format!("({i}, repeat('x', 1000))"))
        .collect();
    server
        .ok(&format!("INSERT INTO app.t VALUES {}", values.join(", ")))
        .await;

    // ten million steps of a recursive query: far past one second, in
    // little memory
    let started = Instant::now();
    let (status, body) = server
        .sql(
            "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 10000000) \
             SELECT count(*) FROM r",
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "QUERY_TIMEOUT"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // the query part of a DML statement passes a limit: nothing is written
    let (status, body) = server
        .sql(
            "INSERT INTO app.copy SELECT a.id * 1000000 + b.id * 1000 + c.id \
             FROM app.n a, app.n b, app.n c",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        ["QUERY_TIMEOUT", "MEMORY_LIMIT_EXCEEDED"].contains(&error_code(&body)),
        "{body}"
    );
    let body = server.ok("SELECT count(*) FROM app.copy").await;
    assert_eq!(rows(&body, 0)[0][0], json!("0"));

    // a million rows of 2 KB: the result passes 64 MiB long before a second
    let (status, body) = server
        .sql("SELECT a.body, b.body FROM app.t a, app.t b")
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "MEMORY_LIMIT_EXCEEDED"),
        "{body}"
    );
    let body = server.ok("SELECT count(*) FROM app.t").await;
    assert_eq!(rows(&body, 0)[0][0], json!("1000"));
}

/// CPU time the process has used (user + system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, in clock ticks (100/s)
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[tokio::test]
async fn a_query_stops_when_its_client_disconnects() {
    let server = TestServer::start_with(&[("KALAMDB_SQL_QUERY_TIMEOUT_MS", "0")]);
    let body = json!({
        "sql": "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 1000000000) \
                SELECT count(*) FROM r"
    })
    .to_string();
    let mut stream = TcpStream::connect(addr(&server)).await.unwrap();
    let request = format!(
        "POST /v1/api/sql HTTP/1.1\r\nHost: x\r\nAuthorization: Basic cm9vdDo=\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let busy = cpu_time(server.pid());
    drop(stream);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_time(server.pid());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = cpu_time(server.pid());
    assert!(
        busy > Duration::from_millis(100),
        "the query never ran: {busy:?}"
    );
    assert!(
        after - before < Duration::from_millis(500),
        "the server kept working for a gone client: {:?} of CPU in 2 s",
        after - before
    );
    assert_eq!(server.get("/health").await.0, 200);
}

/// Reads until the peer closes; `None` if it is still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + within;
    loop {
        let mut buf = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

fn addr(server: &TestServer) -> String {
    server.base_url.trim_start_matches("http://").to_string()
}

/// One request on an open connection; returns the status line and body.
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("reply in time")
            .unwrap();
        assert!(
            n > 0,
            "closed before a full reply: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn idle_and_trickling_connections_are_closed() {
    let server = TestServer::start_with(&[("KALAMDB_SERVER_HEADER_READ_TIMEOUT_SECS", "1")]);
    let addr = addr(&server);

    let mut idle = TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut idle, Duration::from_secs(5))
            .await
            .is_some()
    );
    assert!(started.elapsed() >= Duration::from_millis(900));

    // a head trickled byte by byte never completes in time
    let mut trickle = TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
        .iter()
        .cycle()
    {
        if trickle.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let closed = closed
        || closed_within(&mut trickle, Duration::from_secs(1))
            .await
            .is_some();
    assert!(closed, "a trickling client was still connected after 6 s");

    // a keep-alive connection is served, then closed once idle
    let mut kept = TcpStream::connect(&addr).await.unwrap();
    let reply = exchange(&mut kept, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let reply = exchange(&mut kept, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        closed_within(&mut kept, Duration::from_secs(5))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn the_connection_cap_holds_and_open_connections_keep_working() {
    let server = TestServer::start_with(&[
        ("KALAMDB_SERVER_MAX_CONNECTIONS", "20"),
        ("KALAMDB_SERVER_HEADER_READ_TIMEOUT_SECS", "30"),
    ]);
    let addr = addr(&server);
    let mut good = TcpStream::connect(&addr).await.unwrap();
    let health = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    assert!(
        exchange(&mut good, health)
            .await
            .starts_with("HTTP/1.1 200")
    );
    let mut idle = Vec::new();
    for _ in 0..19 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let mut extra = TcpStream::connect(&addr).await.unwrap();
        let started = Instant::now();
        let reply = closed_within(&mut extra, Duration::from_secs(2))
            .await
            .expect("an over-cap connection is closed at once");
        assert!(started.elapsed() < Duration::from_secs(1));
        let text = String::from_utf8_lossy(&reply);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 503"),
            "{text}"
        );
    }
    // the connection that was already open is still served
    assert!(
        exchange(&mut good, health)
            .await
            .starts_with("HTTP/1.1 200")
    );
    drop(idle);
    // slots come back as soon as the idle clients leave
    let mut accepted = false;
    for _ in 0..50 {
        let mut again = TcpStream::connect(&addr).await.unwrap();
        let _ = again.write_all(health.as_bytes()).await;
        let mut buf = [0u8; 16];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), again.read(&mut buf)).await
            && buf[..n].starts_with(b"HTTP/1.1 200")
        {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted);
}

#[tokio::test]
async fn bodies_past_the_limit_or_too_slow_are_refused_and_the_connection_closed() {
    let server = TestServer::start_with(&[
        ("KALAMDB_LIMITS_MAX_REQUEST_BODY_BYTES", "4096"),
        ("KALAMDB_SERVER_BODY_READ_TIMEOUT_SECS", "1"),
    ]);
    let addr = addr(&server);

    // a chunked body sent past the limit: 413 before the rest is read
    let mut chunked = TcpStream::connect(&addr).await.unwrap();
    let head = "POST /v1/api/sql HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    chunked.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("1000\r\n{}\r\n", "x".repeat(4096));
    let mut reply = None;
    for _ in 0..4 {
        if chunked.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    if let Some(bytes) = closed_within(&mut chunked, Duration::from_secs(3)).await {
        reply = Some(String::from_utf8_lossy(&bytes).to_string());
    }
    let reply = reply.expect("the server answers and closes");
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("connection: close"),
        "{reply}"
    );
    assert!(reply.contains("REQUEST_TOO_LARGE"), "{reply}");

    // a declared chunk of 2^64-1 bytes that never comes: an answer, not a wait
    let mut huge = TcpStream::connect(&addr).await.unwrap();
    huge.write_all(head.as_bytes()).await.unwrap();
    huge.write_all(b"FFFFFFFFFFFFFFFF\r\nabc").await.unwrap();
    let started = Instant::now();
    let bytes = closed_within(&mut huge, Duration::from_secs(5))
        .await
        .expect("answered and closed");
    let reply = String::from_utf8_lossy(&bytes);
    assert!(reply.starts_with("HTTP/1.1 4"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(4));

    // a declared length over the limit: refused before any body is read
    let mut declared = TcpStream::connect(&addr).await.unwrap();
    let request = "POST /v1/api/sql HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n";
    declared.write_all(request.as_bytes()).await.unwrap();
    let bytes = closed_within(&mut declared, Duration::from_secs(3))
        .await
        .expect("answered and closed");
    assert!(String::from_utf8_lossy(&bytes).starts_with("HTTP/1.1 413"));

    // the server is fine
    assert_eq!(server.get("/health").await.0, 200);
}

#[tokio::test]
async fn keep_alive_survives_every_auth_route_with_a_body() {
    let server = TestServer::start();
    let addr = addr(&server);
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let requests = [
        "POST /v1/api/auth/logout HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        "POST /v1/api/auth/refresh HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nContent-Length: 2\r\n\r\n{}",
        "GET /v1/api/auth/me HTTP/1.1\r\nHost: x\r\nAuthorization: Basic cm9vdDo=\r\nContent-Length: 5\r\n\r\nhello",
        "POST /v1/api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n[]",
        "GET /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    for request in requests {
        let reply = exchange(&mut stream, request).await;
        let head = reply.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
        assert!(!head.contains("connection: close"), "{request}: {reply}");
    }
}

#[tokio::test]
async fn every_byte_of_a_password_counts() {
    let server = TestServer::start();
    for len in [71usize, 72, 73, 256] {
        let name = format!("p{len}");
        let password = format!("{}{}", "a".repeat(len - 1), "z");
        server
            .ok(&format!(
                "CREATE USER '{name}' WITH PASSWORD '{password}' ROLE user"
            ))
            .await;
        let (status, _) = server
            .post_raw(
                json!({"sql": "SELECT 1"}).to_string(),
                Some((&name, &password)),
            )
            .await;
        assert_eq!(status, 200, "{len} bytes, right password");
        let mut other = "a".repeat(len - 1);
        other.push('y');
        let (status, _) = server
            .post_raw(
                json!({"sql": "SELECT 1"}).to_string(),
                Some((&name, &other)),
            )
            .await;
        assert_eq!(status, 401, "{len} bytes, last byte wrong");
        let (status, _) = server
            .post_raw(
                json!({"sql": "SELECT 1"}).to_string(),
                Some((&name, &format!("{password}extra"))),
            )
            .await;
        assert_eq!(status, 401, "{len} bytes plus a suffix");
    }
}

async fn login(server: &TestServer, user: &str, password: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let response = server
        .http()
        .post(server.url("/v1/api/auth/login"))
        .json(&json!({"user": user, "password": password}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap(), started.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn unknown_and_known_names_fail_alike() {
    // cost 8: a check takes long enough (~15 ms) to be told from none at all
    let server = TestServer::start_with(&[
        ("KALAMDB_AUTH_BCRYPT_COST", "8"),
        ("KALAMDB_AUTH_MAX_FAILED_LOGINS", "1000"),
    ]);
    server
        .ok("CREATE USER 'known' WITH PASSWORD 'right-password' ROLE user")
        .await;
    let (_, _, _) = login(&server, "nobody-warmup", "x").await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..9 {
        let (s1, b1, t1) = login(&server, "known", &format!("wrong-{i}")).await;
        let (s2, b2, t2) = login(&server, &format!("nobody-{i}"), &format!("wrong-{i}")).await;
        assert_eq!((s1, s2), (401, 401));
        assert_eq!(b1["error"]["code"], b2["error"]["code"]);
        assert_eq!(b1["error"]["message"], b2["error"]["message"]);
        known.push(t1);
        unknown.push(t2);
    }
    let (k, u) = (median(known), median(unknown));
    let ratio = u.as_secs_f64() / k.as_secs_f64();
    assert!(
        (0.6..1.67).contains(&ratio),
        "known {k:?} vs unknown {u:?}: the difference tells names apart"
    );
}

#[tokio::test]
async fn a_lockout_from_one_address_does_not_lock_the_owner_out_elsewhere() {
    let server = TestServer::start_with(&[("KALAMDB_AUTH_MAX_FAILED_LOGINS", "3")]);
    server
        .ok("CREATE USER 'owner' WITH PASSWORD 'owner-password' ROLE user")
        .await;
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let attacker = from("127.0.0.2");
    let owner = from("127.0.0.1");
    let try_login = |client: reqwest::Client, user: &'static str, password: &'static str| {
        let url = server.url("/v1/api/auth/login");
        async move {
            let r = client
                .post(url)
                .json(&json!({"user": user, "password": password}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").is_some();
            (status, r.json::<Value>().await.unwrap(), retry)
        }
    };
    for _ in 0..3 {
        let (s, _, _) = try_login(attacker.clone(), "owner", "guess").await;
        assert_eq!(s, 401);
    }
    let (s, b, retry) = try_login(attacker.clone(), "owner", "owner-password").await;
    assert_eq!(
        (s, error_code(&b), retry),
        (429, "RATE_LIMIT_EXCEEDED", true),
        "{b}"
    );
    // the same happens to a name that does not exist
    for _ in 0..3 {
        try_login(attacker.clone(), "ghost", "guess").await;
    }
    let (s, b, _) = try_login(attacker.clone(), "ghost", "guess").await;
    assert_eq!((s, error_code(&b)), (429, "RATE_LIMIT_EXCEEDED"));
    // the owner, elsewhere, is not locked out
    let (s, b, _) = try_login(owner, "owner", "owner-password").await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn tokens_die_with_a_password_change() {
    let server = TestServer::start();
    server
        .ok("CREATE USER 'bob' WITH PASSWORD 'first-password' ROLE user")
        .await;
    let (status, body, _) = login(&server, "bob", "first-password").await;
    assert_eq!(status, 200);
    let access = body["access_token"].as_str().unwrap().to_string();
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let me = |token: String| {
        let request = server
            .http()
            .get(server.url("/v1/api/auth/me"))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(me(access.clone()).await, 200);
    server
        .ok("ALTER USER 'bob' SET PASSWORD 'second-password'")
        .await;
    assert_eq!(me(access).await, 401);
    let refreshed = server
        .http()
        .post(server.url("/v1/api/auth/refresh"))
        .bearer_auth(refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status().as_u16(), 401);
    let (status, body, _) = login(&server, "bob", "second-password").await;
    assert_eq!(status, 200);
    assert_eq!(me(body["access_token"].as_str().unwrap().into()).await, 200);
}

#[tokio::test]
async fn every_route_answers_errors_in_one_shape() {
    let server = TestServer::start();
    let checks: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            server
                .http()
                .post(server.url("/v1/api/auth/login"))
                .body("[\"root\", \"\"]"),
            400,
            "INVALID_PARAMETER",
        ),
        (
            server
                .http()
                .post(server.url("/v1/api/auth/login"))
                .json(&json!({"user": "root", "password": "nope"})),
            401,
            "UNAUTHORIZED",
        ),
        (
            server.http().post(server.url("/v1/api/auth/refresh")),
            401,
            "UNAUTHORIZED",
        ),
        (
            server.http().get(server.url("/v1/api/auth/me")),
            401,
            "UNAUTHORIZED",
        ),
        (server.http().get(server.url("/nowhere")), 404, "NOT_FOUND"),
        (
            server
                .http()
                .post(server.url("/v1/api/sql"))
                .basic_auth("root", Some(""))
                .body("[\"SELECT 1\"]"),
            400,
            "INVALID_PARAMETER",
        ),
    ];
    for (request, status, code) in checks {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "error", "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        assert!(body["error"].get("details").is_some(), "{body}");
    }
}

#[tokio::test]
async fn params_must_match_the_placeholders() {
    let server = TestServer::start();
    let (status, body) = server
        .sql_with(json!({"sql": "SELECT $1", "params": [1, 2]}))
        .await;
    assert_eq!((status, error_code(&body)), (400, "INVALID_PARAMETER"));
    let (status, body) = server
        .sql_with(json!({"sql": "SELECT $1, $2", "params": [1]}))
        .await;
    assert_eq!((status, error_code(&body)), (400, "INVALID_PARAMETER"));
    let (status, body) = server
        .sql_with(json!({"sql": "SELECT 1", "params": [1]}))
        .await;
    assert_eq!((status, error_code(&body)), (400, "INVALID_PARAMETER"));
    let (status, body) = server
        .sql_with(json!({"sql": "SELECT $1, $1", "params": ["x"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(rows(&body, 0)[0], json!(["x", "x"]));
    let names: Vec<&Value> = body["results"][0]["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(names[0], names[1], "{body}");
    // repeated columns and aliases, as SQL allows
    server.ok("CREATE NAMESPACE app").await;
    server
        .ok("CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY)")
        .await;
    server.ok("INSERT INTO app.t VALUES (7)").await;
    let body = server.ok("SELECT id, id, 1 AS x, 2 AS x FROM app.t").await;
    assert_eq!(rows(&body, 0)[0], json!(["7", "7", "1", "2"]));
    let schema = body["results"][0]["schema"].as_array().unwrap();
    let names: Vec<&str> = schema.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["id", "id", "x", "x"]);
}

/// Random request bodies and SQL (a bounded number of cases): every reply
/// is a result or a 4xx error, never a 5xx, and the server stays up.
#[test]
fn fuzzed_requests_never_get_a_server_error() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = TestServer::start();
    runtime.block_on(async {
        server.ok("CREATE NAMESPACE app").await;
        server
            .ok("CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY, s TEXT, d DOUBLE)")
            .await;
        server
            .ok("INSERT INTO app.t VALUES (1, 'a', 1.5), (2, NULL, -2)")
            .await;
    });
    let word = prop_oneof![
        Just("SELECT"),
        Just("*"),
        Just("FROM"),
        Just("app.t"),
        Just("WHERE"),
        Just("id"),
        Just("s"),
        Just("d"),
        Just("="),
        Just("+"),
        Just("-"),
        Just("*"),
        Just("/"),
        Just("%"),
        Just("||"),
        Just("AND"),
        Just("OR"),
        Just("NOT"),
        Just("("),
        Just(")"),
        Just(","),
        Just("'x'"),
        Just("1"),
        Just("9223372036854775807"),
        Just("1e400"),
        Just("NULL"),
        Just("$1"),
        Just("$2"),
        Just("UNION"),
        Just("ALL"),
        Just("WITH"),
        Just("AS"),
        Just("JOIN"),
        Just("ON"),
        Just("INSERT"),
        Just("INTO"),
        Just("VALUES"),
        Just("UPDATE"),
        Just("SET"),
        Just("DELETE"),
        Just("GROUP"),
        Just("BY"),
        Just("ORDER"),
        Just("LIMIT"),
        Just("CAST"),
        Just("::"),
        Just("INT"),
        Just("CASE"),
        Just("WHEN"),
        Just("THEN"),
        Just("END"),
        Just("IN"),
        Just("BETWEEN"),
        Just("LIKE"),
        Just(";"),
        Just("_seq"),
        Just("_deleted"),
        Just("count(*)"),
        Just("BEGIN"),
        Just("COMMIT"),
    ];
    let sql = proptest::collection::vec(word, 0..40).prop_map(|w| w.join(" "));
    let param = prop_oneof![
        Just(json!(null)),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(|s| json!(s)),
        Just(json!([1, 2])),
        Just(json!({"k": 1})),
    ];
    let body = prop_oneof![
        (sql.clone(), proptest::collection::vec(param, 0..3))
            .prop_map(|(sql, params)| json!({"sql": sql, "params": params}).to_string()),
        sql.clone().prop_map(|sql| json!({"sql": sql}).to_string()),
        sql.prop_map(|sql| json!([sql]).to_string()),
        "\\PC{0,64}",
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).to_string()),
    ];
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&body, |body| {
            let (status, reply) =
                runtime.block_on(server.post_raw(body.clone(), Some(("root", ""))));
            prop_assert!(status < 500, "{body} -> {status} {reply}");
            Ok(())
        })
        .unwrap();
    runtime.block_on(async {
        let body = server.ok("SELECT count(*) FROM app.t").await;
        assert!(rows(&body, 0)[0][0].is_string(), "{body}");
    });
}
