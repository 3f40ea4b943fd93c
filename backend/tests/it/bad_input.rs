//! Bad input gets a clear error with a stable code, and the server keeps
//! serving.

use crate::common::{TestServer, error_code};
use serde_json::json;

#[tokio::test]
async fn each_bad_request_gets_its_code() {
    let server = TestServer::start();
    server.ok("CREATE NAMESPACE app").await;

    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "empty sql",
            json!({"sql": ""}).to_string(),
            400,
            "EMPTY_SQL",
        ),
        (
            "blank sql",
            json!({"sql": "  ;  "}).to_string(),
            400,
            "EMPTY_SQL",
        ),
        (
            "garbage sql",
            json!({"sql": "SELEC * FORM x"}).to_string(),
            400,
            "INVALID_SQL",
        ),
        (
            "batch parse error",
            json!({"sql": "SELECT 1; SELEC 2"}).to_string(),
            400,
            "BATCH_PARSE_ERROR",
        ),
        (
            "wrong json",
            "{\"sql\": ".to_string(),
            400,
            "INVALID_PARAMETER",
        ),
        (
            "not an object",
            "[1,2]".to_string(),
            400,
            "INVALID_PARAMETER",
        ),
        (
            "missing sql field",
            json!({"query": "SELECT 1"}).to_string(),
            400,
            "INVALID_PARAMETER",
        ),
        ("missing body", String::new(), 400, "INVALID_PARAMETER"),
        (
            "unknown table",
            json!({"sql": "SELECT * FROM app.nope"}).to_string(),
            404,
            "TABLE_NOT_FOUND",
        ),
        (
            "unknown namespace",
            json!({"sql": "CREATE TABLE nope.t (a INT)"}).to_string(),
            404,
            "NAMESPACE_NOT_FOUND",
        ),
        (
            "duplicate namespace",
            json!({"sql": "CREATE NAMESPACE app"}).to_string(),
            409,
            "ALREADY_EXISTS",
        ),
        (
            "wrong type",
            json!({"sql": "CREATE TABLE app.t1 (a INT); INSERT INTO app.t1 VALUES ('x')"})
                .to_string(),
            400,
            "TYPE_MISMATCH",
        ),
        (
            "deep nesting",
            json!({"sql": format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000))}).to_string(),
            400,
            "INVALID_SQL",
        ),
        (
            "unsupported statement",
            json!({"sql": "CREATE VIEW v AS SELECT 1"}).to_string(),
            400,
            "NOT_SUPPORTED",
        ),
    ];
    for (name, body, status, code) in cases {
        let (got_status, got) = server.post_raw(body, Some(("root", ""))).await;
        assert_eq!(got_status, status, "{name}: {got}");
        assert_eq!(error_code(&got), code, "{name}: {got}");
        assert_eq!(got["status"], "error", "{name}");
        assert_eq!(got["results"], json!([]), "{name}");
    }
    let (status, _) = server.get("/health").await;
    assert_eq!(status, 200, "server still serving");
}

#[tokio::test]
async fn oversized_requests_are_refused_with_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start();
    // Declare an 11 MiB body but send only its start: the server must answer
    // 413 from the declared length, without reading (or buffering) the rest.
    let addr = server.base_url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/api/sql HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic cm9vdDo=\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"sql\": \"SELECT '",
        11 << 20
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b'x'; 4096]).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut reply),
    )
    .await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("\"code\":\"REQUEST_TOO_LARGE\""), "{reply}");
    server.ok("SELECT 1").await;
}

#[tokio::test]
async fn credentials_are_required_and_checked() {
    let server = TestServer::start();
    let body = json!({"sql": "SELECT 1"}).to_string();
    let (status, got) = server.post_raw(body.clone(), None).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&got), "UNAUTHORIZED");
    let (status, got) = server
        .post_raw(body.clone(), Some(("root", "wrong-password")))
        .await;
    assert_eq!(status, 401, "{got}");
    let (status, _) = server.post_raw(body, Some(("ghost", ""))).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn failed_multi_row_insert_writes_nothing() {
    let server = TestServer::start();
    server
        .ok("CREATE NAMESPACE a; CREATE TABLE a.t (id INT PRIMARY KEY, v TEXT NOT NULL)")
        .await;
    for sql in [
        "INSERT INTO a.t VALUES (1, 'a'), (2, NULL)",
        "INSERT INTO a.t VALUES (1, 'a'), (1, 'b')",
        "INSERT INTO a.t VALUES (1, 'a'), ('two', 'b')",
    ] {
        let (status, _) = server.sql(sql).await;
        assert_ne!(status, 200, "{sql}");
    }
    let body = server.ok("SELECT count(*) FROM a.t").await;
    assert_eq!(body["results"][0]["rows"], json!([["0"]]));
}
