//! Durability across restarts: a graceful stop and a `kill -9`.

use crate::common::{TestServer, rows};
use serde_json::json;

#[tokio::test]
async fn data_and_schema_survive_a_graceful_restart() {
    let temp = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(temp.path(), &[]);
    server
        .ok("CREATE NAMESPACE app; CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT)")
        .await;
    server
        .ok("INSERT INTO app.notes VALUES (1, 'one'), (2, 'two')")
        .await;
    server.stop();

    let server = TestServer::start_on(temp.path(), &[]);
    let body = server
        .ok("SELECT id, body FROM app.notes ORDER BY id")
        .await;
    assert_eq!(rows(&body, 0), &vec![json!([1, "one"]), json!([2, "two"])]);
    // ids keep increasing after a restart: the new row is not a duplicate
    server.ok("INSERT INTO app.notes VALUES (3, 'three')").await;
    let body = server.ok("SHOW TABLES IN app").await;
    assert_eq!(rows(&body, 0).len(), 1);
    server.stop();
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let temp = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(temp.path(), &[]);
    server
        .ok("CREATE NAMESPACE k; CREATE TABLE k.t (id INT PRIMARY KEY, v TEXT)")
        .await;
    for i in 0..50 {
        server
            .ok(&format!("INSERT INTO k.t VALUES ({i}, 'v{i}')"))
            .await;
    }
    server.kill();

    let server = TestServer::start_on(temp.path(), &[]);
    let body = server
        .ok("SELECT count(*), min(id), max(id) FROM k.t")
        .await;
    assert_eq!(rows(&body, 0), &vec![json!(["50", 0, 49])]);
}

#[tokio::test]
async fn stream_tables_start_empty_after_a_restart_and_nothing_of_them_is_on_disk() {
    let temp = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(temp.path(), &[]);
    server
        .ok(
            "CREATE NAMESPACE s; CREATE STREAM TABLE s.ev (n INT) TTL 3600; \
             CREATE SHARED TABLE s.kept (n INT)",
        )
        .await;
    server
        .ok("INSERT INTO s.ev VALUES (1), (2); INSERT INTO s.kept VALUES (1)")
        .await;
    let body = server.ok("SELECT count(*) FROM s.ev").await;
    assert_eq!(rows(&body, 0), &vec![json!(["2"])]);
    server.kill();

    let server = TestServer::start_on(temp.path(), &[]);
    // the table is still defined, its rows are gone; durable tables keep theirs
    let body = server.ok("SELECT count(*) FROM s.ev").await;
    assert_eq!(rows(&body, 0), &vec![json!(["0"])]);
    let body = server.ok("SELECT count(*) FROM s.kept").await;
    assert_eq!(rows(&body, 0), &vec![json!(["1"])]);
    server.ok("INSERT INTO s.ev VALUES (3)").await;
    let body = server.ok("SELECT n FROM s.ev").await;
    assert_eq!(rows(&body, 0), &vec![json!([3])]);
}

/// `kill -9` while writers change indexed rows: after the restart every
/// index entry matches its row (a row and its entries are one atomic
/// write), checked entry by entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_writes_leaves_indexes_and_rows_consistent() {
    let temp = tempfile::tempdir().unwrap();
    let server = std::sync::Arc::new(TestServer::start_on(temp.path(), &[]));
    server
        .ok("CREATE NAMESPACE k; \
             CREATE TABLE k.t (id INT PRIMARY KEY, v INT, tag TEXT UNIQUE); \
             CREATE INDEX t_v ON k.t (v)")
        .await;
    let mut writers = Vec::new();
    for w in 0..4u32 {
        let server = std::sync::Arc::clone(&server);
        writers.push(tokio::spawn(async move {
            let mut ok = 0u32;
            let mut finished = true;
            for i in 0..10_000u32 {
                let id = (i * 7 + w) % 300;
                let sql = match i % 4 {
                    0 => format!(
                        "INSERT INTO k.t VALUES ({id}, {i}, 't{w}-{i}') ON CONFLICT (id) DO UPDATE SET v = {i}"
                    ),
                    1 => format!("UPDATE k.t SET v = v + 1, tag = 'u{w}-{i}' WHERE id = {id}"),
                    2 => format!("DELETE FROM k.t WHERE id = {id}"),
                    _ => format!(
                        "BEGIN; UPDATE k.t SET v = {i} WHERE id = {id}; INSERT INTO k.t VALUES ({}, 1, 'b{w}-{i}') ON CONFLICT (id) DO NOTHING; COMMIT",
                        (id + 1) % 300
                    ),
                };
                let sent = server
                    .http()
                    .post(server.url("/v1/api/sql"))
                    .basic_auth("root", Some(""))
                    .json(&json!({ "sql": sql }))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => ok += 1,
                    // refused (a lost race): whole, never half
                    Ok(_) => {}
                    // the server is gone
                    Err(_) => {
                        finished = false;
                        break;
                    }
                }
            }
            (ok, finished)
        }));
    }
    // let the writers get going, then crash the server under them
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let server = match std::sync::Arc::try_unwrap(server) {
        Ok(_) => panic!("the writers let go of the server"),
        Err(shared) => {
            let pid = shared.pid();
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let mut written = 0;
            for w in writers.drain(..) {
                let (ok, finished) = w.await.unwrap();
                assert!(!finished, "a writer finished before the crash");
                written += ok;
            }
            assert!(written > 100, "only {written} writes before the crash");
            std::sync::Arc::try_unwrap(shared)
                .ok()
                .expect("writers done")
        }
    };
    drop(server);

    let mut config = kalamdb_server::config::ServerConfig::default();
    config.storage.data_dir = temp.path().to_path_buf();
    let db = kalamdb_server::lifecycle::Database::open(&config).expect("reopen");
    let report = kalamdb_core::index_check::check_indexes(&db.app).unwrap();
    assert_eq!(report.indexes, 2);
    assert!(report.entries > 0, "{report:?}");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
