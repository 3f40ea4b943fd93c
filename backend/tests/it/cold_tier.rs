//! The cold tier against the real server: FLUSH TABLE moves rows into
//! Parquet segments under the data directory, every query answers as
//! before, and flushed rows survive `kill -9`.

use crate::common::{TestServer, rows};
use serde_json::{Value, json};
use std::time::Duration;

/// Runs FLUSH TABLE and waits for its job to complete; returns the job's
/// message.
pub(crate) async fn flush(server: &TestServer, table: &str) -> String {
    run_job(server, &format!("FLUSH TABLE {table}"), "FL-").await
}

/// Runs STORAGE COMPACT TABLE and waits for its job; returns its message.
pub(crate) async fn compact(server: &TestServer, table: &str) -> String {
    run_job(server, &format!("STORAGE COMPACT TABLE {table}"), "CO-").await
}

/// Runs a statement answering with a job id and waits for the job.
pub(crate) async fn run_job(server: &TestServer, sql: &str, kind: &str) -> String {
    let body = server.ok(sql).await;
    let message = body["results"][0]["message"].as_str().unwrap().to_string();
    let job = message
        .rsplit("Job ID: ")
        .next()
        .unwrap_or_else(|| panic!("{message}"))
        .to_string();
    assert!(job.starts_with(kind), "{message}");
    for _ in 0..400 {
        let body = server
            .ok(&format!(
                "SELECT status, message FROM system.jobs WHERE job_id = '{job}'"
            ))
            .await;
        let row = &rows(&body, 0)[0];
        match row[0].as_str() {
            Some("Completed") => return row[1].as_str().unwrap().to_string(),
            Some("Failed") | Some("Cancelled") => panic!("{sql} {job}: {row}"),
            _ => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    panic!("{sql}: {job} did not complete");
}

const QUERIES: &[&str] = &[
    "SELECT count(*), sum(n) FROM app.items",
    "SELECT id, name FROM app.items WHERE id = 777",
    "SELECT id FROM app.items WHERE id >= 1990 ORDER BY id DESC LIMIT 3",
    "SELECT name, n FROM app.items WHERE name LIKE 'item 12%' ORDER BY n, name",
    "EXECUTE AS USER 'u_x' (SELECT id, body FROM app.notes ORDER BY id)",
    "EXECUTE AS USER 'u_y' (SELECT count(*) FROM app.notes)",
];

async fn answers(server: &TestServer) -> Vec<Value> {
    let mut out = Vec::new();
    for q in QUERIES {
        out.push(rows(&server.ok(q).await, 0).clone().into());
    }
    out
}

/// The segment files under `dir`, at any depth.
fn segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| {
                let path = e.path();
                if path.is_dir() {
                    segments(&path)
                } else {
                    usize::from(path.extension().is_some_and(|x| x == "parquet"))
                }
            })
            .sum()
    })
}

#[tokio::test]
async fn flushed_rows_read_the_same_and_survive_kill_9() {
    let temp = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(temp.path(), &[]);
    server
        .ok("CREATE NAMESPACE app; \
             CREATE SHARED TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, n INT); \
             CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT); \
             CREATE USER 'u_x' WITH PASSWORD 'x-pass-123' ROLE user; \
             CREATE USER 'u_y' WITH PASSWORD 'y-pass-123' ROLE user")
        .await;
    for chunk in 0..4 {
        let values: Vec<String> = (chunk * 500..(chunk + 1) * 500)
            .map(|i| format!("({i}, 'item {i}', {})", i % 97))
            .collect();
        server
            .ok(&format!(
                "INSERT INTO app.items VALUES {}",
                values.join(", ")
            ))
            .await;
    }
    for user in ["u_x", "u_y"] {
        server
            .ok(&format!(
                "EXECUTE AS USER '{user}' (INSERT INTO app.notes VALUES (1, '{user} one'), (2, '{user} two'))"
            ))
            .await;
    }
    let before = answers(&server).await;

    let message = flush(&server, "app.items").await;
    assert!(message.starts_with("Flushed 2000 row(s)"), "{message}");
    let message = flush(&server, "app.notes").await;
    assert!(
        message.contains("from 2 partition(s) into 2 segment(s)"),
        "{message}"
    );
    let storage = temp.path().join("storage").join("app");
    assert_eq!(segments(&storage.join("items")), 1);
    // one directory per user
    assert_eq!(segments(&storage.join("notes")), 2);
    assert_eq!(std::fs::read_dir(storage.join("notes")).unwrap().count(), 2);
    assert_eq!(answers(&server).await, before);

    // flushes of both tables start again (nothing hot: they copy nothing)
    // and may still run when the writes below and the kill arrive
    let body = server.ok("FLUSH ALL TABLES IN app").await;
    let message = body["results"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Flush started for 2 table(s)"),
        "{message}"
    );

    server
        .ok("UPDATE app.items SET name = 'changed' WHERE id = 777; DELETE FROM app.items WHERE id = 1999")
        .await;
    let changed = answers(&server).await;
    assert_ne!(changed, before);
    server.kill();

    let server = TestServer::start_on(temp.path(), &[]);
    assert_eq!(answers(&server).await, changed);
    let body = server
        .ok("SELECT id, name FROM app.items WHERE id IN (777, 1999)")
        .await;
    assert_eq!(rows(&body, 0), &vec![json!(["777", "changed"])]);
    let body = server
        .ok("SELECT metric_name, metric_value FROM system.stats WHERE namespace_id = 'app' AND table_name = 'items' AND metric_name LIKE 'cold_%' ORDER BY metric_name")
        .await;
    let stats = rows(&body, 0);
    let metric = |name: &str| -> u64 {
        let row = stats
            .iter()
            .find(|r| r[0] == json!(name))
            .unwrap_or_else(|| panic!("{stats:?}"));
        row[1].as_str().unwrap().parse().unwrap()
    };
    assert!(metric("cold_rows") >= 2000, "{stats:?}");
    assert!(metric("cold_files") >= 1, "{stats:?}");
    assert!(metric("cold_bytes") > 10_000, "{stats:?}");

    // a dropped table's files, and a file a crash left before its flush's
    // commit, go at the next start; referenced ones stay
    let orphan = storage.join("items").join("seg-1.parquet");
    std::fs::write(&orphan, b"left by a crash").unwrap();
    server.ok("DROP TABLE app.notes").await;
    server.stop();
    let server = TestServer::start_on(temp.path(), &[]);
    assert!(!orphan.exists());
    assert_eq!(segments(&storage.join("notes")), 0);
    assert!(segments(&storage.join("items")) >= 1);
    let mut items = Vec::new();
    for q in &QUERIES[..4] {
        items.push(Value::from(rows(&server.ok(q).await, 0).clone()));
    }
    assert_eq!(items, changed[..4].to_vec());
    server.stop();
}

/// `kill -9` of the real server while it flushes 1M rows: after the restart
/// every row is there once, and the flush, queued again, completes.
#[tokio::test]
async fn kill_9_in_the_middle_of_a_flush_of_a_million_rows_loses_and_doubles_nothing() {
    const ROWS: u64 = 1_000_000;
    let temp = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(temp.path(), &[]);
    server
        .ok("CREATE NAMESPACE big; CREATE SHARED TABLE big.t (id BIGINT PRIMARY KEY, v TEXT)")
        .await;
    for chunk in 0..10 {
        let (from, to) = (chunk * ROWS / 10, (chunk + 1) * ROWS / 10 - 1);
        server
            .ok(&format!(
                "INSERT INTO big.t SELECT value, concat('row ', CAST(value AS TEXT)) \
                 FROM generate_series({from}, {to})"
            ))
            .await;
    }
    let body = server.ok("FLUSH TABLE big.t").await;
    let message = body["results"][0]["message"].as_str().unwrap().to_string();
    let job = message.rsplit("Job ID: ").next().unwrap().to_string();
    // killed once the first segments are committed, the rest not yet
    let cold_rows = |body: &Value| -> u64 {
        rows(body, 0)
            .first()
            .map_or(0, |r| r[0].as_str().unwrap().parse().unwrap())
    };
    let mut seen = 0;
    for _ in 0..2400 {
        let body = server
            .ok(
                "SELECT metric_value FROM system.stats WHERE namespace_id = 'big' \
                 AND table_name = 't' AND metric_name = 'cold_rows'",
            )
            .await;
        seen = cold_rows(&body);
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(seen > 0 && seen < ROWS, "cold rows when killed: {seen}");
    server.kill();

    let server = TestServer::start_on(temp.path(), &[]);
    let check = "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM big.t";
    let expected = json!([[
        ROWS.to_string(),
        ROWS.to_string(),
        "0",
        (ROWS - 1).to_string()
    ]]);
    assert_eq!(
        Value::from(rows(&server.ok(check).await, 0).clone()),
        expected
    );
    // the flush runs again after the restart and completes
    let mut status = String::new();
    for _ in 0..2400 {
        let body = server
            .ok(&format!(
                "SELECT status, message FROM system.jobs WHERE job_id = '{job}'"
            ))
            .await;
        let row = &rows(&body, 0)[0];
        status = row[0].as_str().unwrap().to_string();
        if status != "Queued" && status != "Running" {
            assert_eq!(status, "Completed", "{row}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status, "Completed");
    assert_eq!(
        Value::from(rows(&server.ok(check).await, 0).clone()),
        expected
    );
    let body = server
        .ok("SELECT metric_value FROM system.stats WHERE namespace_id = 'big' \
             AND table_name = 't' AND metric_name IN ('cold_rows', 'hot_rows') ORDER BY metric_name")
        .await;
    assert_eq!(
        Value::from(rows(&body, 0).clone()),
        json!([[ROWS.to_string()], ["0"]]),
        "every row cold, once"
    );
    let body = server
        .ok("SELECT id, v FROM big.t WHERE id IN (0, 123456, 999999) ORDER BY id")
        .await;
    assert_eq!(
        Value::from(rows(&body, 0).clone()),
        json!([
            ["0", "row 0"],
            ["123456", "row 123456"],
            ["999999", "row 999999"]
        ])
    );
    server.stop();
}
