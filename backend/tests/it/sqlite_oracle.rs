//! SQLite as the oracle for the SQL plain DataFusion cannot answer: every
//! statement of `backend/tests/oracle/*.sql` runs on KalamDB and on an
//! in-memory SQLite (bundled with `rusqlite`) holding the same tables;
//! every query must return the same rows (in order when it has a top-level
//! ORDER BY). Values are compared as SQL shows them: booleans as SQLite's
//! 0 / 1, numbers by value.

use super::conformance::{database_in, is_query, ordered, read_corpus};
use kalamdb_core::rows::json::append_rows;
use serde_json::Value;

/// A value as both sides print it; `integer`: the column is an integer
/// (the API writes 64-bit integers as strings, for JavaScript).
fn shown_json(v: &Value, integer: bool) -> String {
    match v {
        Value::String(s) if integer => s.parse::<f64>().map_or_else(|_| s.clone(), shown_number),
        Value::Null => "NULL".into(),
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Number(n) => shown_number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

fn shown_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n:.9}")
    }
}

fn shown_sqlite(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => shown_number(i as f64),
        ValueRef::Real(r) => shown_number(r),
        ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("{b:?}"),
    }
}

fn sqlite_rows(db: &rusqlite::Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut statement = db.prepare(sql)?;
    let width = statement.column_count();
    let mut rows = statement.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let values: Vec<String> = (0..width)
            .map(|i| row.get_ref(i).map(shown_sqlite))
            .collect::<rusqlite::Result<_>>()?;
        out.push(values.join(", "));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subqueries_datafusion_refuses_answer_like_sqlite() {
    let (_temp, db, mut ctx) = database_in("oracle").await;
    let app = &db.app;
    let sqlite = rusqlite::Connection::open_in_memory().unwrap();

    let mut failures = Vec::new();
    let mut queries = 0;
    for (file, sql) in read_corpus("tests/oracle") {
        let place = format!("{}: {sql}", file.file_name().unwrap().to_string_lossy());
        let ours = app.execute(&mut ctx, &sql, &[]).await;
        if !is_query(&sql) {
            if let Err(e) = &ours {
                failures.push(format!("{place}\n  kalamdb failed: {e}"));
            }
            if let Err(e) = sqlite.execute_batch(&sql) {
                failures.push(format!("{place}\n  sqlite failed: {e}"));
            }
            continue;
        }
        queries += 1;
        let theirs = sqlite_rows(&sqlite, &sql);
        match (ours, theirs) {
            (Ok(result), Ok(mut theirs)) => {
                let mut ours: Vec<String> = Vec::new();
                for batch in &result[0].batches {
                    let integer: Vec<bool> = batch
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.data_type().is_integer())
                        .collect();
                    let mut rows: Vec<Vec<Value>> = Vec::new();
                    append_rows(batch, &mut rows);
                    ours.extend(rows.iter().map(|r| {
                        r.iter()
                            .zip(&integer)
                            .map(|(v, i)| shown_json(v, *i))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }));
                }
                if !ordered(&sql) {
                    ours.sort();
                    theirs.sort();
                }
                if ours != theirs {
                    failures.push(format!(
                        "{place}\n  kalamdb: {ours:?}\n  sqlite:  {theirs:?}"
                    ));
                }
            }
            (Err(e), _) => failures.push(format!("{place}\n  kalamdb failed: {e}")),
            (_, Err(e)) => failures.push(format!("{place}\n  sqlite failed: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the oracle corpus differ:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(queries >= 20, "only {queries} queries in the corpus");
}
