//! Response shapes of the public HTTP API (PROTOCOL.md).

use crate::common::{TestServer, error_code, rows};
use serde_json::{Value, json};

#[tokio::test]
async fn success_shape_matches_the_protocol() {
    let server = TestServer::start();
    server.ok("CREATE NAMESPACE app").await;
    server
        .ok("CREATE SHARED TABLE app.items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, price DOUBLE, qty INT)")
        .await;
    let body = server
        .ok("INSERT INTO app.items VALUES (9007199254740993, 'pen', 1.25, 3), (2, 'cup', NULL, NULL)")
        .await;
    assert_eq!(body["status"], "success");
    assert_eq!(body["results"][0]["row_count"], 2);
    assert_eq!(body["results"][0]["message"], "Inserted 2 row(s)");
    assert!(
        body["results"][0].get("schema").is_none(),
        "DML has no schema: {body}"
    );
    assert!(body["took"].as_f64().is_some());

    let body = server
        .ok("SELECT id, name, price, qty FROM app.items ORDER BY id")
        .await;
    let result = &body["results"][0];
    assert_eq!(
        result["schema"],
        json!([
            {"name": "id", "data_type": "BigInt", "index": 0, "flags": ["pk", "nn"]},
            {"name": "name", "data_type": "Text", "index": 1, "flags": ["nn"]},
            {"name": "price", "data_type": "Double", "index": 2},
            {"name": "qty", "data_type": "Int", "index": 3}
        ])
    );
    // 64-bit integers travel as strings; other numbers as JSON numbers.
    assert_eq!(
        result["rows"],
        json!([
            ["2", "cup", null, null],
            ["9007199254740993", "pen", 1.25, 3]
        ])
    );
    assert_eq!(result["row_count"], 2);
    assert_eq!(result["message"], Value::Null);
    assert_eq!(result["as_user"], "root");
}

#[tokio::test]
async fn batches_run_in_order_and_report_the_failing_statement() {
    let server = TestServer::start();
    let body = server
        .ok("CREATE NAMESPACE b; CREATE TABLE b.t (id INT PRIMARY KEY); INSERT INTO b.t VALUES (1); SELECT * FROM b.t")
        .await;
    assert_eq!(body["results"].as_array().unwrap().len(), 4);
    assert_eq!(rows(&body, 3), &vec![json!([1])]);

    let (status, body) = server
        .sql("INSERT INTO b.t VALUES (2); INSERT INTO b.t VALUES (1); INSERT INTO b.t VALUES (3)")
        .await;
    assert_eq!(status, 409);
    assert_eq!(error_code(&body), "UNIQUE_VIOLATION");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("Statement 2 failed"), "{message}");
    // the batch stopped: statement 3 did not run
    let body = server.ok("SELECT id FROM b.t ORDER BY id").await;
    assert_eq!(rows(&body, 0), &vec![json!([1]), json!([2])]);

    let (status, body) = server
        .sql_with(json!({"sql": "SELECT 1; SELECT 2", "params": [1]}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "PARAMS_WITH_BATCH");
}

#[tokio::test]
async fn namespace_id_and_params_are_honoured() {
    let server = TestServer::start();
    server
        .ok("CREATE NAMESPACE shop; CREATE TABLE shop.p (id INT PRIMARY KEY, name TEXT)")
        .await;
    let (status, body) = server
        .sql_with(json!({"sql": "INSERT INTO p VALUES ($1, $2)", "params": [7, "seven"], "namespace_id": "shop"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = server
        .sql_with(json!({"sql": "SELECT name FROM p WHERE id = $1", "params": [7], "namespace_id": "shop"}))
        .await;
    assert_eq!(rows(&body, 0), &vec![json!(["seven"])]);
    // parameters bound a key range like literals do
    server
        .ok("INSERT INTO shop.p VALUES (1, 'one'), (5, 'five'), (9, 'nine')")
        .await;
    let (_, body) = server
        .sql_with(
            json!({"sql": "SELECT id FROM p WHERE id >= $1 AND id < $2 ORDER BY id DESC LIMIT 2",
                         "params": [2, 9], "namespace_id": "shop"}),
        )
        .await;
    assert_eq!(rows(&body, 0), &vec![json!([7]), json!([5])], "{body}");
    let (status, body) = server
        .sql_with(
            json!({"sql": "INSERT INTO p VALUES ($1, $2)", "params": [8], "namespace_id": "shop"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "INVALID_PARAMETER");
}

#[tokio::test]
async fn health_routes() {
    let server = TestServer::start();
    for path in ["/health", "/v1/api/healthcheck"] {
        let (status, body) = server.get(path).await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "healthy");
        assert_eq!(body["api_version"], "v1");
        assert!(body["version"].is_string() && body["build_date"].is_string());
    }
    let (status, _) = server.get("/nope").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn user_tables_are_per_user_and_system_columns_are_hidden_from_star() {
    let server = TestServer::start();
    server
        .ok("CREATE NAMESPACE chat; CREATE USER TABLE chat.m (id BIGINT PRIMARY KEY, body TEXT)")
        .await;
    server.ok("INSERT INTO chat.m VALUES (1, 'hi')").await;
    let body = server.ok("SELECT * FROM chat.m").await;
    let names: Vec<&str> = body["results"][0]["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "body"]);
    let body = server.ok("SELECT *, _seq FROM chat.m").await;
    let schema = body["results"][0]["schema"].as_array().unwrap();
    assert_eq!(schema.len(), 3);
    assert_eq!(schema[2]["name"], "_seq");
    let seq = rows(&body, 0)[0][2].as_str().unwrap();
    assert!(seq.parse::<i64>().unwrap() > 0);
}
