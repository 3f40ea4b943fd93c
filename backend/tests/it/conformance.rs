//! Differential conformance: every statement of
//! `backend/tests/conformance/*.sql` runs on KalamDB (executor, catalog,
//! fast paths, RocksDB storage) and on a plain DataFusion `SessionContext`
//! holding the same tables; every query must return the same rows (as the
//! API's JSON values), in order when it has a top-level ORDER BY.

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use kalamdb_commons::{Role, UserId};
use kalamdb_core::ExecutionContext;
use kalamdb_core::rows::json::append_rows;
use kalamdb_server::config::ServerConfig;
use kalamdb_server::lifecycle::Database;
use serde_json::Value;
use std::path::PathBuf;

fn corpus() -> Vec<(PathBuf, String)> {
    read_corpus("tests/conformance")
}

/// The statements of every `.sql` file under `dir` (relative to the
/// crate), in file order: blocks separated by blank lines, `--` lines
/// left out.
pub(crate) fn read_corpus(dir: &str) -> Vec<(PathBuf, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the corpus directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let cleaned: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .map(|l| format!("{l}\n"))
            .collect();
        for block in cleaned.split("\n\n") {
            let statement = block.trim();
            if !statement.is_empty() {
                out.push((file.clone(), statement.to_string()));
            }
        }
    }
    out
}

pub(crate) fn is_query(sql: &str) -> bool {
    let head = sql.trim_start().to_ascii_uppercase();
    head.starts_with("SELECT") || head.starts_with("WITH") || head.starts_with("VALUES")
}

/// Whether `sql` ends with an ORDER BY outside any parentheses.
pub(crate) fn ordered(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    let mut depth = 0i32;
    let bytes = upper.as_bytes();
    let mut found = false;
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'O' if depth == 0 && upper[i..].starts_with("ORDER BY") => found = true,
            _ => {}
        }
    }
    found
}

fn rows_of(batches: &[RecordBatch], keep_order: bool) -> Vec<String> {
    let mut rows: Vec<Vec<Value>> = Vec::new();
    for batch in batches {
        append_rows(batch, &mut rows);
    }
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| Value::Array(r.clone()).to_string())
        .collect();
    if !keep_order {
        out.sort();
    }
    out
}

/// A fresh database in a temporary directory, and root's context inside
/// its new namespace `namespace`.
pub(crate) async fn database_in(
    namespace: &str,
) -> (tempfile::TempDir, Database, ExecutionContext) {
    let temp = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::default();
    config.storage.data_dir = temp.path().to_path_buf();
    config.auth.bcrypt_cost = 4;
    let db = Database::open(&config).expect("open database");
    let mut ctx = ExecutionContext::new(UserId::new("root"), "root", Role::System);
    db.app
        .execute(&mut ctx, &format!("CREATE NAMESPACE {namespace}"), &[])
        .await
        .unwrap();
    let ctx = ctx.with_namespace(namespace);
    (temp, db, ctx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_sql_answers_like_datafusion() {
    let (_temp, db, mut ctx) = database_in("conformance").await;
    let app = &db.app;
    let reference = SessionContext::new();

    let mut failures = Vec::new();
    let mut queries = 0;
    for (file, sql) in corpus() {
        let ours = app.execute(&mut ctx, &sql, &[]).await;
        let theirs = match reference.sql(&sql).await {
            Ok(df) => df.collect().await,
            Err(e) => Err(e),
        };
        let place = format!("{}: {sql}", file.file_name().unwrap().to_string_lossy());
        match (ours, theirs) {
            (Ok(ours), Ok(theirs)) => {
                if is_query(&sql) {
                    queries += 1;
                    let keep = ordered(&sql);
                    let ours = rows_of(&ours[0].batches, keep);
                    let theirs = rows_of(&theirs, keep);
                    if ours != theirs {
                        failures.push(format!(
                            "{place}\n  kalamdb:    {ours:?}\n  datafusion: {theirs:?}"
                        ));
                    }
                }
            }
            (Err(e), Ok(_)) => failures.push(format!("{place}\n  kalamdb failed: {e}")),
            (Ok(_), Err(e)) => failures.push(format!("{place}\n  datafusion failed: {e}")),
            (Err(a), Err(b)) => failures.push(format!("{place}\n  both failed: {a} / {b}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the corpus differ:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(queries >= 70, "only {queries} queries in the corpus");
}
