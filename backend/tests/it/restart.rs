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
