//! kalam-link against a real server: queries, authentication, token
//! refresh, live queries and their resume across a server restart.

mod server;

use kalam_link::{Auth, KalamLinkClient, LinkError, LiveEvent, QueryOptions, SubscriptionOptions};
use serde_json::json;
use server::Server;
use std::time::Duration;

fn root(server: &Server) -> KalamLinkClient {
    KalamLinkClient::builder(&server.url)
        .basic("root", "")
        .build()
        .unwrap()
}

async fn setup(server: &Server) -> KalamLinkClient {
    let client = root(server);
    client
        .query(
            "CREATE NAMESPACE app; \
             CREATE TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, qty INT) WITH (TYPE = 'SHARED', ACCESS_LEVEL = 'PUBLIC'); \
             CREATE USER 'alice' WITH PASSWORD 'alice-pass-1' ROLE user",
        )
        .await
        .unwrap();
    client
}

async fn next_event(sub: &mut kalam_link::Subscription) -> LiveEvent {
    tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("an event within 20 s")
        .expect("the subscription is open")
}

#[tokio::test]
async fn queries_keep_64_bit_integers_exact_and_take_params_and_a_namespace() {
    let server = Server::start();
    let client = setup(&server).await;
    let reply = client
        .query("INSERT INTO app.items (id, name, qty) VALUES (9007199254740993, 'big', 1), (2, NULL, 2)")
        .await
        .unwrap();
    assert_eq!(
        reply.results[0].message.as_deref(),
        Some("Inserted 2 row(s)")
    );
    let reply = client
        .query_with(
            "SELECT id, name FROM items WHERE qty >= $1 ORDER BY id DESC",
            &QueryOptions {
                params: vec![json!(1)],
                namespace: Some("app".into()),
            },
        )
        .await
        .unwrap();
    let r = &reply.results[0];
    assert_eq!(r.column_names(), ["id", "name"]);
    assert_eq!(r.row_count, 2);
    assert_eq!(r.i64(0, "id"), Some(9_007_199_254_740_993));
    assert_eq!(r.str(0, "name"), Some("big"));
    assert_eq!(r.cell(1, "name"), Some(&serde_json::Value::Null));
    assert!(reply.took > 0.0);

    // several statements: one result each; a failing one is the server's error
    let reply = client.query("SELECT 1 AS a; SELECT 2 AS b").await.unwrap();
    assert_eq!(reply.results.len(), 2);
    let e = client.query("SELECT * FROM app.nope").await.unwrap_err();
    assert_eq!(e.code(), Some("TABLE_NOT_FOUND"), "{e}");
    assert!(matches!(e, LinkError::Server { status: 404, .. }), "{e:?}");
}

#[tokio::test]
async fn basic_login_refresh_and_failures() {
    let server = Server::start();
    setup(&server).await;
    let anonymous = KalamLinkClient::builder(&server.url).build().unwrap();
    assert_eq!(anonymous.health().await.unwrap().status, "healthy");
    let e = anonymous.query("SELECT 1").await.unwrap_err();
    assert!(matches!(e, LinkError::Server { status: 401, .. }), "{e:?}");

    let wrong = KalamLinkClient::builder(&server.url)
        .basic("alice", "nope")
        .build()
        .unwrap();
    let e = wrong.query("SELECT 1").await.unwrap_err();
    assert!(matches!(e, LinkError::Server { status: 401, .. }), "{e:?}");

    let client = KalamLinkClient::builder(&server.url).build().unwrap();
    let pair = client.login("alice", "alice-pass-1").await.unwrap();
    assert_eq!(pair.user.username, "alice");
    assert_eq!(pair.user.role, "user");
    assert!(
        !format!("{pair:?}").contains(&pair.access_token),
        "tokens never in Debug"
    );
    let who = client.query("SELECT CURRENT_USER() AS u").await.unwrap();
    assert_eq!(who.results[0].str(0, "u"), Some("alice"));
    assert_eq!(client.me().await.unwrap().username, "alice");

    let fresh = client.refresh().await.unwrap();
    assert_eq!(fresh.user.username, "alice");
    assert!(matches!(client.auth(), Auth::Tokens(p) if p.access_token == fresh.access_token));
    client.query("SELECT 1").await.unwrap();

    // an access token about to expire is refreshed before the request
    let mut stale = fresh.clone();
    stale.access_token = fake_token_expiring_now();
    let refreshing = KalamLinkClient::builder(&server.url)
        .tokens(stale.clone())
        .build()
        .unwrap();
    let who = refreshing
        .query("SELECT CURRENT_USER() AS u")
        .await
        .unwrap();
    assert_eq!(who.results[0].str(0, "u"), Some("alice"));
    let now = refreshing.tokens().unwrap();
    assert_ne!(
        now.access_token, stale.access_token,
        "the pair was refreshed"
    );
    // a refresh token the server refuses says to log in again
    let mut dead = fresh.clone();
    dead.access_token = fake_token_expiring_now();
    dead.refresh_token = "not-a-token".into();
    let e = KalamLinkClient::builder(&server.url)
        .tokens(dead)
        .build()
        .unwrap()
        .query("SELECT 1")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LinkError::Auth(m) if m.contains("log in again")),
        "{e:?}"
    );

    let unreachable = KalamLinkClient::builder("http://127.0.0.1:9")
        .build()
        .unwrap();
    assert!(matches!(
        unreachable.query("SELECT 1").await.unwrap_err(),
        LinkError::Connect { .. }
    ));
    assert!(KalamLinkClient::builder("ftp://x").build().is_err());
}

/// A syntactically valid JWT whose `exp` is now (its signature is junk: the
/// client must refresh rather than send it).
fn fake_token_expiring_now() -> String {
    use base64::Engine;
    let enc = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "{}.{}.junk",
        enc(json!({"alg": "HS256", "typ": "JWT"})),
        enc(json!({"exp": now, "sub": "x"}))
    )
}

#[tokio::test]
async fn subscribe_delivers_rows_then_changes_and_resumes_across_a_restart() {
    let mut server = Server::start();
    let client = setup(&server).await;
    client
        .query(
            "INSERT INTO app.items (id, name, qty) VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 30)",
        )
        .await
        .unwrap();
    let live = KalamLinkClient::builder(&server.url).build().unwrap();
    live.login("alice", "alice-pass-1").await.unwrap();
    let mut sub = live
        .subscribe(
            "SELECT id, name, qty FROM app.items WHERE qty < 10",
            SubscriptionOptions {
                batch_size: Some(1),
                max_backoff: Duration::from_millis(300),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let LiveEvent::Subscribed {
        schema, total_rows, ..
    } = next_event(&mut sub).await
    else {
        panic!("first event is Subscribed")
    };
    assert_eq!(total_rows, Some(2));
    assert!(schema.iter().any(|c| c.name == "qty"));
    let mut initial = vec![];
    loop {
        match next_event(&mut sub).await {
            LiveEvent::InitialRows { rows, resumed } => {
                assert!(!resumed);
                initial.extend(rows);
            }
            LiveEvent::Ready => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let ids: Vec<&str> = initial.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["1", "2"], "paged one row per batch, in key order");
    assert!(initial.iter().all(|r| r.contains_key("_seq")));

    client
        .query("INSERT INTO app.items (id, name, qty) VALUES (4, 'd', 4)")
        .await
        .unwrap();
    let LiveEvent::Insert { rows } = next_event(&mut sub).await else {
        panic!()
    };
    assert_eq!(rows[0]["name"], "d");
    client
        .query("UPDATE app.items SET qty = 5 WHERE id = 1")
        .await
        .unwrap();
    let LiveEvent::Update { rows, old_rows } = next_event(&mut sub).await else {
        panic!()
    };
    assert_eq!(
        (rows[0]["qty"].clone(), old_rows[0]["qty"].clone()),
        (json!(5), json!(1))
    );
    client
        .query("UPDATE app.items SET qty = 50 WHERE id = 2")
        .await
        .unwrap();
    let LiveEvent::Delete { old_rows } = next_event(&mut sub).await else {
        panic!()
    };
    assert_eq!(old_rows[0]["id"], "2", "leaving the WHERE is a delete");
    let cursor = sub.last_seq().expect("a cursor");

    // the server dies; writes land while the client is away
    server.restart();
    let writer = root(&server);
    writer
        .query("INSERT INTO app.items (id, name, qty) VALUES (5, 'e', 5); DELETE FROM app.items WHERE id = 4")
        .await
        .unwrap();
    let mut seen = vec![];
    let mut reconnected = false;
    while seen.len() < 2 {
        match next_event(&mut sub).await {
            LiveEvent::Reconnecting { .. } => reconnected = true,
            LiveEvent::Subscribed { resumed_from, .. } => {
                assert!(
                    resumed_from.is_some_and(|s| s >= cursor),
                    "{resumed_from:?} vs {cursor}"
                );
            }
            LiveEvent::InitialRows { rows, resumed } => {
                assert!(resumed, "rows after a reconnect are the resume's");
                seen.extend(
                    rows.iter()
                        .map(|r| format!("upsert {}", r["id"].as_str().unwrap())),
                );
            }
            LiveEvent::Delete { old_rows } => {
                seen.extend(
                    old_rows
                        .iter()
                        .map(|r| format!("delete {}", r["id"].as_str().unwrap())),
                );
            }
            LiveEvent::Ready => {}
            LiveEvent::Error { code, message } => {
                // a cursor from before a restart may be refused on STREAM
                // tables only; this is a SHARED table
                panic!("{code}: {message}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(reconnected);
    seen.sort();
    assert_eq!(
        seen,
        ["delete 4", "upsert 5"],
        "exactly the changes made while away"
    );
    // and live again, without repeats
    writer
        .query("INSERT INTO app.items (id, name, qty) VALUES (6, 'f', 6)")
        .await
        .unwrap();
    loop {
        match next_event(&mut sub).await {
            LiveEvent::Ready => continue,
            LiveEvent::Insert { rows } => {
                assert_eq!(rows[0]["id"], "6");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // a subscription the server refuses is an error at subscribe
    let e = live
        .subscribe(
            "SELECT count(*) FROM app.items",
            SubscriptionOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("UNSUPPORTED"), "{e}");
}
