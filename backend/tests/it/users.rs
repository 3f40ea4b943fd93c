//! Several users on one server: each sees only its own rows of a USER table,
//! roles limit what they may run, and user changes take effect at once.

use crate::common::{TestServer, error_code, rows};
use serde_json::{Value, json};

async fn as_user(server: &TestServer, user: &str, password: &str, sql: &str) -> (u16, Value) {
    server
        .post_raw(json!({ "sql": sql }).to_string(), Some((user, password)))
        .await
}

#[tokio::test]
async fn users_see_only_their_own_rows_by_every_query_form() {
    let server = TestServer::start();
    server
        .ok("CREATE NAMESPACE chat; CREATE USER TABLE chat.msgs (id BIGINT PRIMARY KEY, body TEXT)")
        .await;
    server
        .ok("CREATE USER 'alice' WITH PASSWORD 'alice-pass-1' ROLE user; CREATE USER 'bob' WITH PASSWORD 'bob-pass-12' ROLE user")
        .await;
    let (s, b) = as_user(
        &server,
        "alice",
        "alice-pass-1",
        "INSERT INTO chat.msgs VALUES (1, 'a1'), (2, 'a2')",
    )
    .await;
    assert_eq!(s, 200, "{b}");
    // the same primary key in another user's partition is no conflict
    let (s, b) = as_user(
        &server,
        "bob",
        "bob-pass-12",
        "INSERT INTO chat.msgs VALUES (1, 'b1')",
    )
    .await;
    assert_eq!(s, 200, "{b}");

    for (sql, alice_rows, bob_rows) in [
        (
            "SELECT body FROM chat.msgs ORDER BY id",
            json!([["a1"], ["a2"]]),
            json!([["b1"]]),
        ),
        (
            "SELECT body FROM chat.msgs WHERE id = 1",
            json!([["a1"]]),
            json!([["b1"]]),
        ),
        (
            "SELECT count(*) FROM chat.msgs",
            json!([["2"]]),
            json!([["1"]]),
        ),
        (
            "SELECT m.body FROM chat.msgs m JOIN chat.msgs n ON m.id = n.id ORDER BY m.id",
            json!([["a1"], ["a2"]]),
            json!([["b1"]]),
        ),
        (
            "SELECT body FROM chat.msgs WHERE id IN (SELECT id FROM chat.msgs) ORDER BY body",
            json!([["a1"], ["a2"]]),
            json!([["b1"]]),
        ),
        (
            "SELECT body FROM chat.msgs UNION ALL SELECT body FROM chat.msgs ORDER BY body",
            json!([["a1"], ["a1"], ["a2"], ["a2"]]),
            json!([["b1"], ["b1"]]),
        ),
        (
            "WITH c AS (SELECT * FROM chat.msgs) SELECT body FROM c ORDER BY body",
            json!([["a1"], ["a2"]]),
            json!([["b1"]]),
        ),
    ] {
        let (s, b) = as_user(&server, "alice", "alice-pass-1", sql).await;
        assert_eq!(s, 200, "{sql}: {b}");
        assert_eq!(b["results"][0]["rows"], alice_rows, "alice: {sql}");
        let (_, b) = as_user(&server, "bob", "bob-pass-12", sql).await;
        assert_eq!(b["results"][0]["rows"], bob_rows, "bob: {sql}");
    }
    // root is a user too: its partition of the table is empty
    let body = server.ok("SELECT count(*) FROM chat.msgs").await;
    assert_eq!(rows(&body, 0), &vec![json!(["0"])]);

    // UPDATE and DELETE, with or without WHERE, touch only the caller's rows
    let alice = |sql: &'static str| as_user(&server, "alice", "alice-pass-1", sql);
    let bob = |sql: &'static str| as_user(&server, "bob", "bob-pass-12", sql);
    let (s, b) = alice("UPDATE chat.msgs SET body = 'edited'").await;
    assert_eq!(
        (s, b["results"][0]["row_count"].as_u64()),
        (200, Some(2)),
        "{b}"
    );
    let (s, b) = alice("UPDATE chat.msgs SET body = 'edited again' WHERE id = 1").await;
    assert_eq!(
        (s, b["results"][0]["row_count"].as_u64()),
        (200, Some(1)),
        "{b}"
    );
    let (_, b) = bob("SELECT body FROM chat.msgs").await;
    assert_eq!(b["results"][0]["rows"], json!([["b1"]]));
    let (s, b) = bob("DELETE FROM chat.msgs WHERE id = 2").await;
    assert_eq!(
        (s, b["results"][0]["row_count"].as_u64()),
        (200, Some(0)),
        "{b}"
    );
    let (s, b) = alice("DELETE FROM chat.msgs").await;
    assert_eq!(
        (s, b["results"][0]["row_count"].as_u64()),
        (200, Some(2)),
        "{b}"
    );
    let (_, b) = alice("SELECT count(*) FROM chat.msgs").await;
    assert_eq!(b["results"][0]["rows"], json!([["0"]]));
    let (_, b) = bob("SELECT id, body FROM chat.msgs").await;
    assert_eq!(b["results"][0]["rows"], json!([["1", "b1"]]));
    // naming _deleted shows the caller's own deleted rows, never another's
    let (_, b) = bob("SELECT id FROM chat.msgs WHERE _deleted = true").await;
    assert_eq!(b["results"][0]["rows"], json!([]));
    let (_, b) = alice("SELECT id, body FROM chat.msgs WHERE _deleted ORDER BY id").await;
    assert_eq!(
        b["results"][0]["rows"],
        json!([["1", "edited again"], ["2", "edited"]])
    );
}

#[tokio::test]
async fn roles_limit_statements_and_user_changes_apply_at_once() {
    let server = TestServer::start();
    server
        .ok("CREATE USER 'carol' WITH PASSWORD 'carol-pass-1' ROLE user")
        .await;

    let (s, b) = as_user(&server, "carol", "carol-pass-1", "CREATE NAMESPACE mine").await;
    assert_eq!((s, error_code(&b)), (403, "PERMISSION_DENIED"), "{b}");
    let (s, b) = as_user(
        &server,
        "carol",
        "carol-pass-1",
        "CREATE USER 'x' WITH PASSWORD 'long-enough' ROLE dba",
    )
    .await;
    assert_eq!((s, error_code(&b)), (403, "PERMISSION_DENIED"), "{b}");

    // a user sees only its own row of system.users, never a hash
    let (_, b) = as_user(
        &server,
        "carol",
        "carol-pass-1",
        "SELECT * FROM system.users",
    )
    .await;
    let users = rows(&b, 0);
    assert_eq!(users.len(), 1);
    assert_eq!(users[0][1], "carol");
    assert!(!b.to_string().contains("$2"), "no bcrypt hash in {b}");

    // a new password replaces the old one immediately (the cache is dropped)
    server
        .ok("ALTER USER 'carol' SET PASSWORD 'carol-pass-2'")
        .await;
    let (s, _) = as_user(&server, "carol", "carol-pass-1", "SELECT 1").await;
    assert_eq!(s, 401);
    let (s, _) = as_user(&server, "carol", "carol-pass-2", "SELECT 1").await;
    assert_eq!(s, 200);

    // a dropped user can no longer log in
    server.ok("DROP USER 'carol'").await;
    let (s, b) = as_user(&server, "carol", "carol-pass-2", "SELECT 1").await;
    assert_eq!((s, error_code(&b)), (401, "UNAUTHORIZED"));

    // a dba may manage users but not system accounts
    server
        .ok("CREATE USER 'dan' WITH PASSWORD 'dan-pass-12' ROLE dba")
        .await;
    let (s, b) = as_user(
        &server,
        "dan",
        "dan-pass-12",
        "CREATE USER 'eve' WITH PASSWORD 'eve-pass-12' ROLE user",
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = as_user(
        &server,
        "dan",
        "dan-pass-12",
        "CREATE USER 'sys2' WITH INTERNAL ROLE system",
    )
    .await;
    assert_eq!((s, error_code(&b)), (403, "PERMISSION_DENIED"), "{b}");
    let (s, b) = as_user(
        &server,
        "dan",
        "dan-pass-12",
        "ALTER USER root SET PASSWORD 'takeover-1'",
    )
    .await;
    assert_eq!((s, error_code(&b)), (403, "PERMISSION_DENIED"), "{b}");
}

#[tokio::test]
async fn brute_force_locks_the_account() {
    let server = TestServer::start();
    server
        .ok("CREATE USER 'frank' WITH PASSWORD 'frank-pass-1' ROLE user")
        .await;
    for _ in 0..5 {
        let (s, _) = as_user(&server, "frank", "wrong-guess", "SELECT 1").await;
        assert_eq!(s, 401);
    }
    // locked now (from this address): even the right password is refused,
    // with a clear message
    let (s, b) = as_user(&server, "frank", "frank-pass-1", "SELECT 1").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (429, Some("RATE_LIMIT_EXCEEDED"))
    );
    assert!(
        b["error"]["message"].as_str().unwrap().contains("locked"),
        "{b}"
    );
    // other accounts are unaffected
    server.ok("SELECT 1").await;
}

#[tokio::test]
async fn execute_as_user_follows_the_role_rules() {
    let server = TestServer::start();
    server
        .ok("CREATE NAMESPACE chat; CREATE USER TABLE chat.msgs (id BIGINT PRIMARY KEY, body TEXT)")
        .await;
    server
        .ok("CREATE USER 'alice' WITH PASSWORD 'alice-pass-1' ROLE user; CREATE USER 'bot' WITH PASSWORD 'bot-pass-123' ROLE service; CREATE USER 'mallory' WITH PASSWORD 'mallory-pw-1' ROLE user")
        .await;
    // a service writes into alice's partition on her behalf
    let (s, b) = as_user(
        &server,
        "bot",
        "bot-pass-123",
        "EXECUTE AS USER 'alice' (INSERT INTO chat.msgs VALUES (7, 'from bot'))",
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["results"][0]["as_user"], "alice");
    let (_, b) = as_user(
        &server,
        "alice",
        "alice-pass-1",
        "SELECT id, body FROM chat.msgs",
    )
    .await;
    assert_eq!(b["results"][0]["rows"], json!([["7", "from bot"]]));
    let (_, b) = as_user(
        &server,
        "bot",
        "bot-pass-123",
        "SELECT count(*) FROM chat.msgs",
    )
    .await;
    assert_eq!(
        b["results"][0]["rows"],
        json!([["0"]]),
        "the service's own partition is empty"
    );

    // a plain user may not act as someone else; may act as itself
    let (s, b) = as_user(
        &server,
        "mallory",
        "mallory-pw-1",
        "EXECUTE AS USER 'alice' (SELECT * FROM chat.msgs)",
    )
    .await;
    assert_eq!((s, error_code(&b)), (403, "PERMISSION_DENIED"), "{b}");
    let (s, _) = as_user(
        &server,
        "mallory",
        "mallory-pw-1",
        "EXECUTE AS USER 'mallory' (SELECT * FROM chat.msgs)",
    )
    .await;
    assert_eq!(s, 200);
    // the inner statement is authorized for the target: a service acting as a
    // user cannot run DDL through it
    let (s, b) = as_user(
        &server,
        "bot",
        "bot-pass-123",
        "EXECUTE AS USER 'alice' (CREATE NAMESPACE x)",
    )
    .await;
    assert_eq!((s, error_code(&b)), (403, "PERMISSION_DENIED"), "{b}");
    // a service may not act as a dba or system account
    let (s, _) = as_user(
        &server,
        "bot",
        "bot-pass-123",
        "EXECUTE AS USER 'root' (SELECT 1)",
    )
    .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn shared_tables_obey_their_access_level() {
    let server = TestServer::start();
    server
        .ok("CREATE NAMESPACE s; \
             CREATE SHARED TABLE s.pub (id INT PRIMARY KEY, v TEXT) WITH (ACCESS_LEVEL = 'PUBLIC'); \
             CREATE SHARED TABLE s.priv (id INT PRIMARY KEY, v TEXT); \
             CREATE SHARED TABLE s.restr (id INT PRIMARY KEY, v TEXT) WITH (ACCESS_LEVEL = 'RESTRICTED'); \
             INSERT INTO s.pub VALUES (1, 'p'); INSERT INTO s.priv VALUES (1, 'q'); INSERT INTO s.restr VALUES (1, 'r'); \
             CREATE USER 'u1' WITH PASSWORD 'u1-pass-123' ROLE user; \
             CREATE USER 's1' WITH PASSWORD 's1-pass-123' ROLE service; \
             CREATE USER 'd1' WITH PASSWORD 'd1-pass-123' ROLE dba")
        .await;
    // (user, table, sql, expected status)
    let cases = [
        ("u1", "SELECT v FROM s.pub", 200),
        ("u1", "SELECT v FROM s.pub WHERE id = 1", 200),
        ("u1", "INSERT INTO s.pub VALUES (2, 'x')", 403),
        ("u1", "UPDATE s.pub SET v = 'x'", 403),
        ("u1", "DELETE FROM s.pub WHERE id = 1", 403),
        ("u1", "UPDATE s.priv SET v = 'x'", 403),
        (
            "s1",
            "UPDATE s.pub SET v = (SELECT v FROM s.restr LIMIT 1)",
            403,
        ),
        (
            "s1",
            "DELETE FROM s.pub WHERE id IN (SELECT id FROM s.restr)",
            403,
        ),
        (
            "s1",
            "UPDATE s.pub SET v = (SELECT v FROM s.priv WHERE id = 1) WHERE id = 1",
            200,
        ),
        ("s1", "DELETE FROM s.restr", 403),
        ("d1", "UPDATE s.restr SET v = 'y'", 200),
        ("u1", "SELECT v FROM s.priv", 403),
        ("u1", "SELECT v FROM s.priv WHERE id = 1", 403),
        ("u1", "SELECT count(*) FROM s.pub JOIN s.priv ON true", 403),
        ("s1", "INSERT INTO s.pub VALUES (3, 'x')", 200),
        ("s1", "SELECT v FROM s.priv", 200),
        ("s1", "INSERT INTO s.priv VALUES (3, 'x')", 200),
        ("s1", "SELECT v FROM s.restr", 403),
        ("s1", "INSERT INTO s.restr VALUES (3, 'x')", 403),
        ("d1", "SELECT v FROM s.restr", 200),
        ("d1", "INSERT INTO s.restr VALUES (3, 'x')", 200),
    ];
    for (user, sql, expected) in cases {
        let password = format!("{user}-pass-123");
        let (s, b) = as_user(&server, user, &password, sql).await;
        assert_eq!(s, expected, "{user}: {sql}: {b}");
        if expected == 403 {
            assert_eq!(error_code(&b), "PERMISSION_DENIED", "{user}: {sql}");
        }
    }
}

#[tokio::test]
async fn catalogs_list_only_the_tables_each_role_may_read() {
    let server = TestServer::start();
    server
        .ok(
            "CREATE NAMESPACE s; \
             CREATE SHARED TABLE s.pub (id INT PRIMARY KEY, secret_pub TEXT) WITH (ACCESS_LEVEL = 'PUBLIC'); \
             CREATE SHARED TABLE s.priv (id INT PRIMARY KEY, secret_priv TEXT); \
             CREATE SHARED TABLE s.restr (id INT PRIMARY KEY, secret_restr TEXT) WITH (ACCESS_LEVEL = 'RESTRICTED'); \
             CREATE USER TABLE s.mine (id INT PRIMARY KEY, note TEXT); \
             CREATE USER 'u2' WITH PASSWORD 'u2-pass-123' ROLE user; \
             CREATE USER 'svc' WITH PASSWORD 'svc-pass-123' ROLE service; \
             CREATE USER 'ops' WITH PASSWORD 'ops-pass-123' ROLE dba",
        )
        .await;
    let listings = [
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 's' ORDER BY table_name",
        "SELECT DISTINCT table_name FROM information_schema.columns WHERE table_schema = 's' ORDER BY table_name",
        "SELECT table_name FROM system.tables WHERE namespace_id = 's' ORDER BY table_name",
        "SELECT DISTINCT table_name FROM system.columns WHERE namespace_id = 's' ORDER BY table_name",
        "SHOW TABLES IN s",
    ];
    for (user, password, visible) in [
        ("u2", "u2-pass-123", vec!["mine", "pub"]),
        ("svc", "svc-pass-123", vec!["mine", "priv", "pub"]),
        ("ops", "ops-pass-123", vec!["mine", "priv", "pub", "restr"]),
    ] {
        for sql in listings {
            let (s, b) = as_user(&server, user, password, sql).await;
            assert_eq!(s, 200, "{user}: {sql}: {b}");
            let names: Vec<&str> = rows(&b, 0)
                .iter()
                .map(|r| {
                    let i = if sql.starts_with("SHOW") { 1 } else { 0 };
                    r[i].as_str().unwrap()
                })
                .collect();
            assert_eq!(names, visible, "{user}: {sql}");
        }
        // nor does a column name of an unreadable table leak
        let (_, b) = as_user(
            &server,
            user,
            password,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 's'",
        )
        .await;
        assert_eq!(
            b.to_string().contains("secret_restr"),
            user == "ops",
            "{user}: {b}"
        );
    }
    let (s, b) = as_user(&server, "u2", "u2-pass-123", "SELECT * FROM s.priv").await;
    assert_eq!((s, error_code(&b)), (403, "PERMISSION_DENIED"), "{b}");
    let (s, b) = as_user(&server, "u2", "u2-pass-123", "DESCRIBE TABLE s.priv").await;
    assert_eq!((s, error_code(&b)), (403, "PERMISSION_DENIED"), "{b}");
    let (s, b) = as_user(&server, "svc", "svc-pass-123", "DESCRIBE TABLE s.restr").await;
    assert_eq!((s, error_code(&b)), (403, "PERMISSION_DENIED"), "{b}");
    let (s, _) = as_user(&server, "ops", "ops-pass-123", "DESCRIBE TABLE s.restr").await;
    assert_eq!(s, 200);
    // statistics span every user's rows: admins only; storage paths too
    let (_, b) = as_user(
        &server,
        "u2",
        "u2-pass-123",
        "SELECT count(*) FROM system.stats",
    )
    .await;
    assert_eq!(b["results"][0]["rows"], json!([["0"]]));
    let (s, b) = as_user(&server, "u2", "u2-pass-123", "SHOW STATS FOR TABLE s.pub").await;
    assert_eq!((s, error_code(&b)), (403, "PERMISSION_DENIED"), "{b}");
    let (_, b) = as_user(
        &server,
        "u2",
        "u2-pass-123",
        "SELECT storage_id, base_directory FROM system.storages",
    )
    .await;
    assert_eq!(b["results"][0]["rows"], json!([["local", null]]));
    let (s, b) = as_user(
        &server,
        "ops",
        "ops-pass-123",
        "SHOW STATS FOR TABLE s.restr",
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = as_user(
        &server,
        "u2",
        "u2-pass-123",
        "DESCRIBE TABLE s.priv HISTORY",
    )
    .await;
    assert_eq!((s, error_code(&b)), (403, "PERMISSION_DENIED"), "{b}");
}

#[tokio::test]
async fn audit_log_records_ddl_user_changes_impersonation_and_failed_logins() {
    let server = TestServer::start();
    server
        .ok(
            "CREATE NAMESPACE a; CREATE USER TABLE a.t (id INT PRIMARY KEY); \
             CREATE USER 'gina' WITH PASSWORD 'gina-pass-12' ROLE user; \
             EXECUTE AS USER 'gina' (INSERT INTO a.t VALUES (1)); \
             ALTER USER 'gina' SET PASSWORD 'gina-pass-34'",
        )
        .await;
    let (s, _) = as_user(&server, "gina", "not-her-password", "SELECT 1").await;
    assert_eq!(s, 401);
    let body = server
        .ok("SELECT actor, action, details, as_user, client_addr IS NOT NULL FROM system.audit_log ORDER BY audit_id")
        .await;
    let log = rows(&body, 0);
    let actions: Vec<&str> = log.iter().map(|r| r[1].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "CREATE NAMESPACE",
            "CREATE TABLE",
            "CREATE USER",
            "EXECUTE AS USER",
            "ALTER USER",
            "LOGIN FAILED"
        ],
        "{body}"
    );
    assert_eq!(log[3][3], "gina", "EXECUTE AS USER names the target");
    assert_eq!(log[5][0], "gina", "a failed login names the account tried");
    assert!(
        log.iter().all(|r| r[4] == true),
        "every entry says where from"
    );
    assert!(
        !body.to_string().contains("gina-pass"),
        "no password in the audit log"
    );
    // a plain user sees none of it
    let (_, b) = as_user(
        &server,
        "gina",
        "gina-pass-34",
        "SELECT count(*) FROM system.audit_log",
    )
    .await;
    assert_eq!(b["results"][0]["rows"], json!([["0"]]));
}

/// Every statement family × every role over HTTP: allowed or
/// PERMISSION_DENIED exactly as the rule table says.
#[tokio::test]
async fn every_statement_family_for_every_role_follows_the_rule_table() {
    use kalamdb_commons::Role;
    use kalamdb_core::executor::authorization::{StatementFamily as F, is_allowed};

    let server = TestServer::start();
    server
        .ok(
            "CREATE NAMESPACE m; CREATE USER TABLE m.ut (id INT PRIMARY KEY); \
             CREATE USER 'r_user' WITH PASSWORD 'role-pass-1' ROLE user; \
             CREATE USER 'r_service' WITH PASSWORD 'role-pass-1' ROLE service; \
             CREATE USER 'r_dba' WITH PASSWORD 'role-pass-1' ROLE dba; \
             CREATE USER 'r_system' WITH PASSWORD 'role-pass-1' ROLE system",
        )
        .await;
    for (n, role) in [Role::User, Role::Service, Role::Dba, Role::System]
        .into_iter()
        .enumerate()
    {
        let name = format!("r_{role}");
        let statements: Vec<(F, String)> = vec![
            (F::NamespaceDdl, format!("CREATE NAMESPACE ns_{role}")),
            (F::TableDdl, format!("CREATE TABLE m.t_{role} (a INT)")),
            (
                F::StorageDdl,
                format!("CREATE STORAGE st_{role} TYPE filesystem PATH 'st_{role}'"),
            ),
            (F::Dml, format!("INSERT INTO m.ut VALUES ({n})")),
            (F::Query, "SELECT count(*) FROM m.ut".into()),
            (F::Show, "SHOW TABLES IN m".into()),
            (F::Session, "USE m".into()),
            (
                F::UserManagement,
                format!("CREATE USER 'made_by_{role}' WITH PASSWORD 'made-pass-1' ROLE user"),
            ),
            // no such job: allowed roles get past the gate to "does not exist"
            (F::JobControl, "KILL JOB 'FL-nothere1'".into()),
            (F::Live, "SUBSCRIBE TO SELECT * FROM m.ut".into()),
        ];
        assert_eq!(statements.len(), F::ALL.len(), "one statement per family");
        for (family, sql) in statements {
            let (status, body) = as_user(&server, &name, "role-pass-1", &sql).await;
            if is_allowed(role, family) && family == F::JobControl {
                assert_eq!(status, 400, "{role} {family:?} `{sql}`: {body}");
                assert!(body.to_string().contains("does not exist"), "{body}");
            } else if is_allowed(role, family) {
                assert_eq!(status, 200, "{role} {family:?} `{sql}`: {body}");
            } else {
                assert_eq!(status, 403, "{role} {family:?} `{sql}`: {body}");
                assert_eq!(error_code(&body), "PERMISSION_DENIED");
            }
        }
    }
}
