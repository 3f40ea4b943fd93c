//! Runs every `.slt` file under `backend/tests/slt/` twice: in-process
//! against the executor, and over HTTP against the real server. Each file
//! gets its own data directory. Both paths format values from the same API
//! JSON, so a file passes in both or the two paths disagree.

use crate::common::TestServer;
use async_trait::async_trait;
use kalamdb_commons::error_code::HasErrorCode;
use kalamdb_core::ExecutionContext;
use kalamdb_core::rows::json::append_rows;
use kalamdb_server::config::ServerConfig;
use kalamdb_server::lifecycle::Database;
use serde_json::{Value, json};
use sqllogictest::{DBOutput, DefaultColumnType};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug)]
pub struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

/// How a value is written in `.slt` expectations.
fn format_value(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) if s.is_empty() => "(empty)".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

fn output(rows: Option<Vec<Vec<Value>>>, row_count: u64) -> DBOutput<DefaultColumnType> {
    match rows {
        Some(rows) => DBOutput::Rows {
            types: rows
                .first()
                .map(|r| vec![DefaultColumnType::Any; r.len()])
                .unwrap_or_default(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(format_value).collect())
                .collect(),
        },
        None => DBOutput::StatementComplete(row_count),
    }
}

struct InProcess {
    db: Arc<Database>,
}

#[async_trait]
impl sqllogictest::AsyncDB for InProcess {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let app = &self.db.app;
        let mut ctx = ExecutionContext::new(
            kalamdb_commons::UserId::new("root"),
            "root",
            kalamdb_commons::Role::System,
        );
        let mut results = app
            .execute(&mut ctx, sql, &[])
            .await
            .map_err(|e| SltError(format!("{}: {e}", e.error.error_code())))?;
        let last = results.pop().expect("one result per statement");
        let rows = last.schema.as_ref().map(|_| {
            let mut rows = Vec::new();
            for batch in &last.batches {
                append_rows(batch, &mut rows);
            }
            rows
        });
        Ok(output(rows, last.row_count as u64))
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "kalamdb-in-process"
    }
}

struct OverHttp {
    server: Arc<TestServer>,
}

#[async_trait]
impl sqllogictest::AsyncDB for OverHttp {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let (status, body) = self.server.sql_with(json!({ "sql": sql })).await;
        if status != 200 {
            let message = body["error"]["message"].as_str().unwrap_or_default();
            let code = body["error"]["code"].as_str().unwrap_or("?");
            return Err(SltError(format!("{code}: {message}")));
        }
        let results = body["results"].as_array().cloned().unwrap_or_default();
        let last = results.last().cloned().unwrap_or(Value::Null);
        let rows = last["rows"].as_array().map(|rows| {
            rows.iter()
                .map(|r| r.as_array().cloned().unwrap_or_default())
                .collect()
        });
        Ok(output(rows, last["row_count"].as_u64().unwrap_or(0)))
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "kalamdb-http"
    }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    // SLT_ONLY=name runs the files whose name holds it (while iterating)
    if let Ok(only) = std::env::var("SLT_ONLY") {
        files.retain(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(&only))
        });
    }
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_in_process() {
    for file in slt_files() {
        let temp = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::default();
        config.storage.data_dir = temp.path().to_path_buf();
        config.auth.bcrypt_cost = 4;
        let db = Arc::new(Database::open(&config).expect("open database"));
        // jobs run as in the server (CREATE INDEX waits for its build)
        db.app.job_manager.start(&db.app).expect("start jobs");
        let mut runner = sqllogictest::Runner::new(|| {
            let db = Arc::clone(&db);
            async move { Ok(InProcess { db }) }
        });
        if let Err(e) = runner.run_file_async(&file).await {
            panic!("{} (in-process): {e}", file.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_over_http() {
    for file in slt_files() {
        let server = Arc::new(TestServer::start());
        let mut runner = sqllogictest::Runner::new(|| {
            let server = Arc::clone(&server);
            async move { Ok(OverHttp { server }) }
        });
        if let Err(e) = runner.run_file_async(&file).await {
            panic!("{} (HTTP): {e}", file.display());
        }
    }
}
