//! The job manager inside the real server: scheduled UserCleanup purges a
//! dropped user's rows, `system.jobs` and `jobs.log` tell the story, and
//! KILL JOB answers clearly.

use crate::common::{TestServer, error_code, rows};
use serde_json::{Value, json};
use std::time::Duration;

async fn as_user(server: &TestServer, user: &str, password: &str, sql: &str) -> (u16, Value) {
    server
        .post_raw(json!({ "sql": sql }).to_string(), Some((user, password)))
        .await
}

#[tokio::test]
async fn scheduled_user_cleanup_purges_a_dropped_user_and_logs_every_step() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(
        data.path(),
        &[
            ("KALAMDB_AUTH_USER_DELETION_GRACE_DAYS", "0"),
            ("KALAMDB_JOBS_USER_CLEANUP_INTERVAL_SECS", "1"),
        ],
    );
    server
        .ok(
            "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT); \
             CREATE USER 'gone' WITH PASSWORD 'gone-pass-1' ROLE user; \
             CREATE USER 'kept' WITH PASSWORD 'kept-pass-1' ROLE user",
        )
        .await;
    for user in ["gone", "kept"] {
        let (s, b) = as_user(
            &server,
            user,
            &format!("{user}-pass-1"),
            "INSERT INTO app.notes VALUES (1, 'x'), (2, 'y')",
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    server.ok("DROP USER 'gone'").await;

    // the next scheduled run purges 'gone' (grace period 0)
    let mut purged = None;
    for _ in 0..100 {
        let body = server
            .ok("SELECT job_id, message FROM system.jobs WHERE job_type = 'UserCleanup' AND status = 'Completed' AND message LIKE 'Purged 1 %'")
            .await;
        if let Some(row) = rows(&body, 0).first() {
            purged = Some(row.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let purged = purged.expect("a UserCleanup job purged the dropped user");
    let job_id = purged[0].as_str().unwrap().to_string();
    assert!(job_id.starts_with("UC-"), "{job_id}");
    assert_eq!(purged[1], "Purged 1 dropped user(s) from 1 USER table(s)");

    let body = server
        .ok(&format!(
            "SELECT status, idempotency_key IS NOT NULL, started_at IS NOT NULL, finished_at IS NOT NULL, exception_trace FROM system.jobs WHERE job_id = '{job_id}'"
        ))
        .await;
    assert_eq!(
        rows(&body, 0),
        &vec![json!(["Completed", true, true, true, null])]
    );
    // the dropped user's account is gone; the other user's rows stay
    let body = server
        .ok("SELECT username FROM system.users WHERE username IN ('gone', 'kept')")
        .await;
    assert_eq!(rows(&body, 0), &vec![json!(["kept"])]);
    let (_, b) = as_user(
        &server,
        "kept",
        "kept-pass-1",
        "SELECT count(*) FROM app.notes",
    )
    .await;
    assert_eq!(b["results"][0]["rows"], json!([["2"]]));
    // a new account with the old name starts empty
    server
        .ok("CREATE USER 'gone' WITH PASSWORD 'gone-pass-2' ROLE user")
        .await;
    let (_, b) = as_user(
        &server,
        "gone",
        "gone-pass-2",
        "SELECT count(*) FROM app.notes",
    )
    .await;
    assert_eq!(b["results"][0]["rows"], json!([["0"]]));

    // jobs.log: one line per event, prefixed with the job id
    let logs = data.path().join("logs");
    let mut story = String::new();
    for _ in 0..50 {
        story.clear();
        for entry in std::fs::read_dir(&logs).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("jobs.log")
            {
                story.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
        if story.contains(&format!("[{job_id}] INFO completed")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines: Vec<&str> = story
        .lines()
        .filter(|l| l.contains(&format!("[{job_id}]")))
        .collect();
    assert!(lines.len() >= 4, "{story}");
    for (line, event) in lines
        .iter()
        .zip(["queued", "started", "purged user 'gone'", "completed"])
    {
        assert!(
            line.contains(&format!("[{job_id}] INFO {event}")),
            "{line} should be '{event}'"
        );
    }
    // DROP TABLE hands the table's storage to a Cleanup job
    let body = server.ok("DROP TABLE app.notes").await;
    let message = body["results"][0]["message"].as_str().unwrap().to_string();
    let cleanup = message
        .split("job ")
        .nth(1)
        .and_then(|m| m.split(' ').next())
        .unwrap_or_else(|| panic!("{message}"))
        .to_string();
    assert!(cleanup.starts_with("CL-"), "{message}");
    let mut done = false;
    for _ in 0..100 {
        let body = server
            .ok(&format!(
                "SELECT status, message FROM system.jobs WHERE job_id = '{cleanup}'"
            ))
            .await;
        if rows(&body, 0)
            == &vec![json!([
                "Completed",
                "Reclaimed the storage of 1 dropped table(s)"
            ])]
        {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "Cleanup job {cleanup} did not complete");
    server.stop();
}

#[tokio::test]
async fn kill_job_answers_clearly_and_only_for_admins() {
    let server = TestServer::start();
    let (s, b) = server.sql("KILL JOB 'FL-nothere1'").await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{b}"
    );
    let (s, b) = server.sql("CANCEL JOB 'nonsense'").await;
    assert_eq!((s, error_code(&b)), (400, "INVALID_PARAMETER"), "{b}");
    server
        .ok("CREATE USER 'u' WITH PASSWORD 'u-pass-123' ROLE user")
        .await;
    let (s, b) = as_user(&server, "u", "u-pass-123", "KILL JOB 'FL-nothere1'").await;
    assert_eq!((s, error_code(&b)), (403, "PERMISSION_DENIED"), "{b}");
    let (_, b) = as_user(
        &server,
        "u",
        "u-pass-123",
        "SELECT count(*) FROM system.jobs",
    )
    .await;
    assert_eq!(b["results"][0]["rows"], json!([["0"]]));
}

#[tokio::test]
async fn jobs_in_flight_at_kill_9_finish_after_restart() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(data.path(), &[]);
    let mut ddl = String::from("CREATE NAMESPACE big;");
    for i in 0..40 {
        ddl.push_str(&format!(
            "CREATE SHARED TABLE big.t{i} (id INT PRIMARY KEY, v TEXT);"
        ));
    }
    server.ok(&ddl).await;
    for i in 0..40 {
        let values: Vec<String> = (0..500)
            .map(|r| format!("({r}, 'row {r} of {i}')"))
            .collect();
        server
            .ok(&format!("INSERT INTO big.t{i} VALUES {}", values.join(",")))
            .await;
    }
    // the Cleanup job of 40 tables starts at once; the server dies under it
    let body = server.ok("DROP NAMESPACE big CASCADE").await;
    let message = body["results"][0]["message"].as_str().unwrap().to_string();
    let job_id = message
        .split("job ")
        .nth(1)
        .and_then(|m| m.split(' ').next())
        .unwrap_or_else(|| panic!("{message}"))
        .to_string();
    server.kill();

    let server = TestServer::start_on(data.path(), &[]);
    let mut last = Value::Null;
    for _ in 0..200 {
        let body = server
            .ok(&format!(
                "SELECT status, message FROM system.jobs WHERE job_id = '{job_id}'"
            ))
            .await;
        last = body["results"][0]["rows"].clone();
        if last == json!([["Completed", "Reclaimed the storage of 40 dropped table(s)"]]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        last,
        json!([["Completed", "Reclaimed the storage of 40 dropped table(s)"]]),
        "job {job_id} after the restart"
    );
    // nothing is left active, and the namespace is really gone
    let body = server
        .ok("SELECT count(*) FROM system.jobs WHERE status IN ('New', 'Queued', 'Running', 'Retrying')")
        .await;
    assert_eq!(rows(&body, 0), &vec![json!(["0"])]);
    let (s, b) = server.sql("SELECT * FROM big.t0").await;
    assert_eq!((s, error_code(&b)), (404, "TABLE_NOT_FOUND"), "{b}");
    let body = server.ok("SHOW NAMESPACES").await;
    assert!(!body.to_string().contains("\"big\""), "{body}");
    server.stop();
}
