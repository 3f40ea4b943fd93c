//! Live queries over `/v1/ws` with a real WebSocket client against the real
//! server: the protocol's messages, in the shapes PROTOCOL.md gives.

use crate::common::TestServer;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_url(server: &TestServer) -> String {
    server.url("/v1/ws").replacen("http://", "ws://", 1)
}

async fn connect(server: &TestServer) -> Ws {
    tokio_tungstenite::connect_async(ws_url(server))
        .await
        .expect("ws connect")
        .0
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next protocol message (pings answered by the client library).
async fn next(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("connection open")
            .expect("frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Binary(bytes) => return serde_json::from_slice(&gunzip(&bytes)).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip binary frame");
    out
}

/// Nothing arrives for a while.
async fn quiet(ws: &mut Ws) {
    if let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(300), ws.next()).await
    {
        panic!("unexpected message {text}");
    }
}

async fn token(server: &TestServer, user: &str, password: &str) -> String {
    let response = server
        .http()
        .post(server.url("/v1/api/auth/login"))
        .json(&json!({"user": user, "password": password}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

async fn setup(server: &TestServer) {
    server
        .ok("CREATE NAMESPACE app; \
             CREATE SHARED TABLE app.items (id INT PRIMARY KEY, room TEXT, n INT); \
             ALTER TABLE app.items SET TBLPROPERTIES (ACCESS_LEVEL = 'PUBLIC'); \
             CREATE SHARED TABLE app.secret (id INT PRIMARY KEY); \
             CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT); \
             CREATE USER 'alice' WITH PASSWORD 'alice-pass-1' ROLE user; \
             CREATE USER 'bob' WITH PASSWORD 'bob-pass-1' ROLE user")
        .await;
}

async fn authenticated(server: &TestServer, user: &str, password: &str) -> Ws {
    let mut ws = connect(server).await;
    let token = token(server, user, password).await;
    send(
        &mut ws,
        json!({"type": "authenticate", "method": "jwt", "token": token,
               "protocol": {"serialization": "json", "compression": "gzip"}}),
    )
    .await;
    let m = next(&mut ws).await;
    assert_eq!(m["type"], "auth_success", "{m}");
    ws
}

fn without_seq(rows: &Value) -> Value {
    let mut rows = rows.clone();
    for row in rows.as_array_mut().unwrap() {
        let seq = row
            .as_object_mut()
            .unwrap()
            .remove("_seq")
            .expect("_seq in every row");
        assert!(
            seq.as_str().unwrap().parse::<i64>().is_ok(),
            "_seq is a string"
        );
    }
    rows
}

#[tokio::test]
async fn subscribe_gets_the_initial_rows_in_batches_then_every_change() {
    let server = TestServer::start();
    setup(&server).await;
    server
        .ok("INSERT INTO app.items VALUES (1, 'a', 1), (2, 'a', 2), (3, 'a', 3), (4, 'b', 4)")
        .await;
    let mut ws = connect(&server).await;
    let token = token(&server, "alice", "alice-pass-1").await;
    send(
        &mut ws,
        json!({"type": "authenticate", "method": "jwt", "token": token,
        "protocol": {"serialization": "json", "compression": "gzip"}}),
    )
    .await;
    let m = next(&mut ws).await;
    assert_eq!(m["type"], "auth_success");
    assert_eq!(m["user"], "alice");
    assert_eq!(m["role"], "user");
    assert_eq!(m["protocol"]["serialization"], "json");

    send(
        &mut ws,
        json!({"type": "subscribe", "subscription": {"id": "s1",
        "sql": "SELECT id, n FROM app.items WHERE room = 'a'", "options": {"batch_size": 2}}}),
    )
    .await;
    let ack = next(&mut ws).await;
    assert_eq!(ack["type"], "subscription_ack", "{ack}");
    assert_eq!(ack["subscription_id"], "s1");
    assert_eq!(ack["total_rows"], 3);
    assert_eq!(ack["batch_control"]["has_more"], true);
    assert_eq!(ack["batch_control"]["status"], "loading");
    assert!(
        ack["batch_control"]["last_seq_id"].is_i64(),
        "last_seq_id is a number: {ack}"
    );
    assert_eq!(
        ack["schema"],
        json!([{"name": "id", "data_type": "Int", "index": 0, "flags": ["pk", "nn"]},
               {"name": "n", "data_type": "Int", "index": 1}])
    );
    let b0 = next(&mut ws).await;
    assert_eq!(b0["type"], "initial_data_batch");
    assert_eq!(
        without_seq(&b0["rows"]),
        json!([{"id": 1, "n": 1}, {"id": 2, "n": 2}])
    );
    assert_eq!(b0["batch_control"]["batch_num"], 0);
    assert_eq!(b0["batch_control"]["status"], "loading_batch");
    // a write while the client pages arrives after the last batch, once
    server.ok("INSERT INTO app.items VALUES (5, 'a', 5)").await;
    send(
        &mut ws,
        json!({"type": "next_batch", "subscription_id": "s1",
        "last_seq_id": b0["batch_control"]["last_seq_id"]}),
    )
    .await;
    let b1 = next(&mut ws).await;
    assert_eq!(b1["batch_control"]["status"], "ready", "{b1}");
    assert_eq!(b1["batch_control"]["has_more"], false);
    let mut initial: Vec<Value> = without_seq(&b1["rows"]).as_array().unwrap().clone();
    let change = if initial.len() == 2 {
        None // the read already saw id 5
    } else {
        Some(next(&mut ws).await)
    };
    if let Some(c) = &change {
        assert_eq!(c["change_type"], "insert");
        initial.extend(without_seq(&c["rows"]).as_array().unwrap().clone());
    }
    assert_eq!(
        initial,
        vec![json!({"id": 3, "n": 3}), json!({"id": 5, "n": 5})]
    );

    server.ok("UPDATE app.items SET n = 30 WHERE id = 3").await;
    let c = next(&mut ws).await;
    assert_eq!(c["type"], "change");
    assert_eq!(c["subscription_id"], "s1");
    assert_eq!(c["change_type"], "update");
    assert_eq!(without_seq(&c["rows"]), json!([{"id": 3, "n": 30}]));
    assert_eq!(without_seq(&c["old_values"]), json!([{"id": 3, "n": 3}]));
    server
        .ok("UPDATE app.items SET room = 'b' WHERE id = 3")
        .await;
    let c = next(&mut ws).await;
    assert_eq!(c["change_type"], "delete", "leaving the filter: {c}");
    assert_eq!(without_seq(&c["old_values"]), json!([{"id": 3, "n": 30}]));
    server
        .ok("UPDATE app.items SET room = 'a' WHERE id = 4")
        .await;
    let c = next(&mut ws).await;
    assert_eq!(c["change_type"], "insert", "entering the filter: {c}");
    // a row of another room: nothing
    server.ok("INSERT INTO app.items VALUES (9, 'z', 9)").await;
    quiet(&mut ws).await;
    // unsubscribed: nothing more
    send(
        &mut ws,
        json!({"type": "unsubscribe", "subscription_id": "s1"}),
    )
    .await;
    // (unsubscribe has no reply: give the server a moment to take it)
    quiet(&mut ws).await;
    server
        .ok("INSERT INTO app.items VALUES (10, 'a', 10)")
        .await;
    quiet(&mut ws).await;
}

#[tokio::test]
async fn bad_messages_get_errors_and_the_connection_stays_open() {
    let server = TestServer::start();
    setup(&server).await;
    let mut ws = connect(&server).await;
    send(
        &mut ws,
        json!({"type": "subscribe", "subscription": {"id": "s", "sql": "SELECT * FROM app.items"}}),
    )
    .await;
    assert_eq!(next(&mut ws).await["code"], "AUTH_REQUIRED");
    ws.send(Message::Text("{not json".into())).await.unwrap();
    let m = next(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["code"].as_str()),
        (Some("error"), Some("PROTOCOL"))
    );
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next(&mut ws).await["type"], "pong");
    drop(ws);

    let mut ws = authenticated(&server, "alice", "alice-pass-1").await;
    for (sql, code) in [
        (
            "SELECT * FROM app.items i JOIN app.items j ON i.id = j.id",
            "UNSUPPORTED",
        ),
        ("SELECT * FROM app.items ORDER BY id", "UNSUPPORTED"),
        ("SELECT * FROM app.nope", "NOT_FOUND"),
        ("SELECT * FROM app.secret", "UNAUTHORIZED"),
        ("SELECT * FROM app.items WHERE", "INVALID_SQL"),
    ] {
        send(
            &mut ws,
            json!({"type": "subscribe", "subscription": {"id": "x", "sql": sql}}),
        )
        .await;
        let m = next(&mut ws).await;
        assert_eq!(m["type"], "error", "{sql}: {m}");
        assert_eq!(m["subscription_id"], "x");
        assert_eq!(m["code"], code, "{sql}: {m}");
    }
    send(&mut ws, json!({"type": "frobnicate"})).await;
    assert_eq!(next(&mut ws).await["code"], "PROTOCOL");
    // `from` as a string (what JavaScript clients send) is accepted
    send(
        &mut ws,
        json!({"type": "subscribe", "subscription": {"id": "s2",
        "sql": "SELECT * FROM app.items", "options": {"from": "0"}}}),
    )
    .await;
    assert_eq!(next(&mut ws).await["type"], "subscription_ack");
}

#[tokio::test]
async fn the_upgrade_can_carry_the_token_and_a_bad_one_is_refused() {
    let server = TestServer::start();
    setup(&server).await;
    let token = token(&server, "alice", "alice-pass-1").await;
    let mut request = ws_url(&server).into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("kalamdb.jwt.{token}").parse().unwrap(),
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        format!("kalamdb.jwt.{token}").as_str()
    );
    let m = next(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["user"].as_str()),
        (Some("auth_success"), Some("alice"))
    );

    let mut request = ws_url(&server).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", "Bearer not-a-token".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
}

#[tokio::test]
async fn a_user_table_subscription_sees_only_its_owners_rows() {
    let server = TestServer::start();
    setup(&server).await;
    let mut alice = authenticated(&server, "alice", "alice-pass-1").await;
    send(
        &mut alice,
        json!({"type": "subscribe", "subscription": {"id": "n", "sql": "SELECT * FROM app.notes"}}),
    )
    .await;
    assert_eq!(next(&mut alice).await["total_rows"], 0);
    assert_eq!(next(&mut alice).await["batch_control"]["status"], "ready");
    server
        .ok("EXECUTE AS USER 'bob' (INSERT INTO app.notes VALUES (1, 'bob''s'))")
        .await;
    quiet(&mut alice).await;
    server
        .ok("EXECUTE AS USER 'alice' (INSERT INTO app.notes VALUES (1, 'alice''s'))")
        .await;
    let c = next(&mut alice).await;
    assert_eq!(
        without_seq(&c["rows"]),
        json!([{"id": 1, "body": "alice's"}])
    );
}

#[tokio::test]
async fn silent_clients_are_closed_and_unauthenticated_ones_time_out() {
    let server = TestServer::start_with(&[
        ("KALAMDB_WEBSOCKET_HEARTBEAT_INTERVAL_SECS", "1"),
        ("KALAMDB_WEBSOCKET_CLIENT_TIMEOUT_SECS", "2"),
        ("KALAMDB_WEBSOCKET_AUTH_TIMEOUT_SECS", "1"),
    ]);
    setup(&server).await;
    // never authenticates: auth_error, then the close
    let mut ws = connect(&server).await;
    let m = next(&mut ws).await;
    assert_eq!(m["type"], "auth_error", "{m}");
    assert!(m["message"].as_str().unwrap().contains("timed out"));

    // a client that answers pings (the library does while reading) stays
    let mut ws = authenticated(&server, "alice", "alice-pass-1").await;
    let mut pinged = false;
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, ws.next()).await {
        pinged |= matches!(frame, Message::Ping(_));
    }
    assert!(pinged, "the server pings");
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next(&mut ws).await["type"], "pong");

    // one that stops reading (so never answers a ping) is closed
    tokio::time::sleep(Duration::from_secs(4)).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return true,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(closed, "a silent connection is closed");
}

#[tokio::test]
async fn large_messages_are_gzip_binary_frames_unless_the_client_says_none() {
    let server = TestServer::start();
    setup(&server).await;
    let values: Vec<String> = (0..200).map(|i| format!("({i}, 'a', {i})")).collect();
    server
        .ok(&format!(
            "INSERT INTO app.items VALUES {}",
            values.join(", ")
        ))
        .await;
    for (compression, binary) in [("gzip", true), ("none", false)] {
        let mut ws = connect(&server).await;
        let token = token(&server, "alice", "alice-pass-1").await;
        send(
            &mut ws,
            json!({"type": "authenticate", "method": "jwt", "token": token,
            "protocol": {"serialization": "json", "compression": compression}}),
        )
        .await;
        let m = next(&mut ws).await;
        assert_eq!(m["protocol"]["compression"], compression);
        send(
            &mut ws,
            json!({"type": "subscribe", "subscription": {"id": "s",
            "sql": "SELECT * FROM app.items"}}),
        )
        .await;
        assert_eq!(next(&mut ws).await["type"], "subscription_ack");
        let frame = loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Ping(_) | Message::Pong(_) => continue,
                frame => break frame,
            }
        };
        let rows = match (&frame, binary) {
            (Message::Binary(bytes), true) => {
                serde_json::from_slice::<Value>(&gunzip(bytes)).unwrap()["rows"].clone()
            }
            (Message::Text(text), false) => {
                serde_json::from_str::<Value>(text).unwrap()["rows"].clone()
            }
            _ => panic!("{compression}: unexpected frame kind"),
        };
        assert_eq!(rows.as_array().unwrap().len(), 200);
        // small messages stay text
        send(&mut ws, json!({"type": "ping"})).await;
        let pong = loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Text(t) => break t,
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(pong.as_str(), r#"{"type":"pong"}"#);
    }
}

#[tokio::test]
async fn system_live_queries_shows_each_users_own_subscriptions_and_dba_all() {
    let server = TestServer::start();
    setup(&server).await;
    let mut alice = authenticated(&server, "alice", "alice-pass-1").await;
    send(
        &mut alice,
        json!({"type": "subscribe", "subscription": {"id": "mine",
        "sql": "SELECT id FROM app.items WHERE n > 1", "options": {"batch_size": 10}}}),
    )
    .await;
    assert_eq!(next(&mut alice).await["type"], "subscription_ack");
    assert_eq!(next(&mut alice).await["type"], "initial_data_batch");
    let mut bob = authenticated(&server, "bob", "bob-pass-1").await;
    send(
        &mut bob,
        json!({"type": "subscribe", "subscription": {"id": "his",
        "sql": "SELECT * FROM app.notes"}}),
    )
    .await;
    assert_eq!(next(&mut bob).await["type"], "subscription_ack");
    assert_eq!(next(&mut bob).await["type"], "initial_data_batch");
    server.ok("INSERT INTO app.items VALUES (1, 'a', 5)").await;
    assert_eq!(next(&mut alice).await["change_type"], "insert");

    let sql = "SELECT subscription_id, namespace_id, table_name, username, query, options, changes, queue_depth, dropped FROM system.live_queries";
    let (s, body) = server
        .post_raw(
            json!({"sql": sql}).to_string(),
            Some(("alice", "alice-pass-1")),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["results"][0]["rows"],
        json!([[
            "mine",
            "app",
            "items",
            "alice",
            "SELECT id FROM app.items WHERE n > 1",
            "{\"batch_size\":10}",
            "1",
            "0",
            "0"
        ]])
    );
    // dba/system see everyone's, under both names
    for table in ["system.live_queries", "system.live"] {
        let body = server
            .ok(&format!(
                "SELECT subscription_id FROM {table} ORDER BY subscription_id"
            ))
            .await;
        assert_eq!(
            body["results"][0]["rows"],
            json!([["his"], ["mine"]]),
            "{table}"
        );
    }
    // a closed connection's subscriptions are gone at once
    drop(bob);
    let mut gone = false;
    for _ in 0..50 {
        let body = server.ok("SELECT count(*) FROM system.live_queries").await;
        if body["results"][0]["rows"] == json!([["1"]]) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "bob's subscription left with his connection");
}

#[tokio::test]
async fn subscriptions_per_user_and_messages_per_second_are_bounded() {
    let server = TestServer::start_with(&[
        ("KALAMDB_WEBSOCKET_MAX_SUBSCRIPTIONS_PER_USER", "2"),
        ("KALAMDB_WEBSOCKET_MAX_MESSAGES_PER_SECOND", "20"),
        ("KALAMDB_WEBSOCKET_MAX_INITIAL_ROWS", "5"),
    ]);
    setup(&server).await;
    // initial rows: more than 5 refused with what to do, 5 newest fine
    server
        .ok(
            "INSERT INTO app.items VALUES (1, 'a', 1), (2, 'a', 2), (3, 'a', 3), (4, 'a', 4), \
             (5, 'b', 5), (6, 'b', 6), (7, 'b', 7)",
        )
        .await;
    let mut c = authenticated(&server, "bob", "bob-pass-1").await;
    send(&mut c, json!({"type": "subscribe", "subscription": {"id": "all", "sql": "SELECT * FROM app.items"}})).await;
    let m = next(&mut c).await;
    assert_eq!(
        (m["type"].as_str(), m["code"].as_str()),
        (Some("error"), Some("BATCH_FETCH_FAILED")),
        "{m}"
    );
    assert!(
        m["message"].as_str().unwrap().contains("at most 5 rows"),
        "{m}"
    );
    send(&mut c, json!({"type": "subscribe", "subscription": {"id": "a", "sql": "SELECT * FROM app.items WHERE room = 'a'"}})).await;
    assert_eq!(next(&mut c).await["total_rows"], 4);
    assert_eq!(next(&mut c).await["rows"].as_array().unwrap().len(), 4);
    send(&mut c, json!({"type": "subscribe", "subscription": {"id": "newest", "sql": "SELECT * FROM app.items", "options": {"last_rows": 3}}})).await;
    assert_eq!(next(&mut c).await["total_rows"], 3);
    let rows = next(&mut c).await["rows"].clone();
    let ids: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![5, 6, 7], "{rows}");
    let mut a = authenticated(&server, "alice", "alice-pass-1").await;
    let mut b = authenticated(&server, "alice", "alice-pass-1").await;
    for (ws, id) in [(&mut a, "1"), (&mut b, "2")] {
        send(ws, json!({"type": "subscribe", "subscription": {"id": id, "sql": "SELECT * FROM app.notes"}})).await;
        assert_eq!(next(ws).await["type"], "subscription_ack");
        assert_eq!(next(ws).await["type"], "initial_data_batch");
    }
    send(
        &mut b,
        json!({"type": "subscribe", "subscription": {"id": "3", "sql": "SELECT * FROM app.notes"}}),
    )
    .await;
    let m = next(&mut b).await;
    assert_eq!(m["code"], "SUBSCRIPTION_LIMIT_EXCEEDED", "{m}");
    // a burst past the rate: the excess refused, the connection kept
    for _ in 0..30 {
        send(&mut a, json!({"type": "ping"})).await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    for _ in 0..30 {
        match next(&mut a).await["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    // (authenticate and subscribe count too: at most 18 of the 30 pass)
    assert!(
        limited >= 10 && pongs <= 18,
        "pongs {pongs}, limited {limited}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send(&mut a, json!({"type": "ping"})).await;
    assert_eq!(next(&mut a).await["type"], "pong");
}

#[tokio::test]
async fn subscribe_over_http_says_how_and_kill_live_query_ends_a_subscription() {
    let server = TestServer::start();
    setup(&server).await;
    let alice = ("alice", "alice-pass-1");
    let bob = ("bob", "bob-pass-1");
    let (s, body) = server
        .post_raw(
            json!({"sql": "SUBSCRIBE TO SELECT id FROM app.items WHERE n > 1"}).to_string(),
            Some(alice),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let row = &body["results"][0]["rows"][0];
    assert_eq!(row[0], "/v1/ws");
    let message: Value = serde_json::from_str(row[1].as_str().unwrap()).unwrap();
    assert_eq!(message["type"], "subscribe");
    assert_eq!(
        message["subscription"]["sql"],
        "SELECT id FROM app.items WHERE n > 1"
    );
    let (s, body) = server
        .post_raw(
            json!({"sql": "LIVE SELECT * FROM app.items ORDER BY id"}).to_string(),
            Some(alice),
        )
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("NOT_SUPPORTED")),
        "{body}"
    );

    let mut ws = authenticated(&server, "alice", "alice-pass-1").await;
    send(
        &mut ws,
        json!({"type": "subscribe", "subscription": {"id": "k", "sql": "SELECT * FROM app.items"}}),
    )
    .await;
    assert_eq!(next(&mut ws).await["type"], "subscription_ack");
    assert_eq!(next(&mut ws).await["type"], "initial_data_batch");
    let (_, body) = server
        .post_raw(
            json!({"sql": "SELECT live_id FROM system.live_queries"}).to_string(),
            Some(alice),
        )
        .await;
    let live_id = body["results"][0]["rows"][0][0]
        .as_str()
        .unwrap()
        .to_string();
    // another user cannot end it (nor see it)
    let (s, body) = server
        .post_raw(
            json!({"sql": format!("KILL LIVE QUERY '{live_id}'")}).to_string(),
            Some(bob),
        )
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("NOT_FOUND")),
        "{body}"
    );
    let (s, body) = server
        .post_raw(
            json!({"sql": format!("KILL LIVE QUERY '{live_id}'")}).to_string(),
            Some(alice),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let m = next(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["subscription_id"].as_str()),
        (Some("error"), Some("k")),
        "{m}"
    );
    let body = server.ok("SELECT count(*) FROM system.live_queries").await;
    assert_eq!(body["results"][0]["rows"], json!([["0"]]));
    server.ok("INSERT INTO app.items VALUES (1, 'a', 1)").await;
    quiet(&mut ws).await;
    // a missing table or namespace is reported as SELECT reports it
    for (sql, code) in [
        ("SUBSCRIBE TO SELECT * FROM app.nope", "TABLE_NOT_FOUND"),
        ("LIVE SELECT * FROM nons.items", "NAMESPACE_NOT_FOUND"),
    ] {
        let (s, body) = server.sql(sql).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (404, Some(code)),
            "{sql}: {body}"
        );
    }
}

#[tokio::test]
async fn a_stream_table_subscription_gets_its_owners_events_and_deletes() {
    let server = TestServer::start();
    setup(&server).await;
    server
        .ok("CREATE STREAM TABLE app.typing (room TEXT, who TEXT) TTL 3600")
        .await;
    let mut alice = authenticated(&server, "alice", "alice-pass-1").await;
    send(
        &mut alice,
        json!({"type": "subscribe", "subscription": {"id": "t",
               "sql": "SELECT room, who FROM app.typing WHERE room = 'r1'"}}),
    )
    .await;
    assert_eq!(next(&mut alice).await["type"], "subscription_ack");
    assert_eq!(next(&mut alice).await["batch_control"]["status"], "ready");
    server
        .ok("EXECUTE AS USER 'bob' (INSERT INTO app.typing VALUES ('r1', 'bob'))")
        .await;
    server
        .ok("EXECUTE AS USER 'alice' (INSERT INTO app.typing VALUES ('r2', 'alice'))")
        .await;
    quiet(&mut alice).await;
    server
        .ok("EXECUTE AS USER 'alice' (INSERT INTO app.typing VALUES ('r1', 'alice'))")
        .await;
    let c = next(&mut alice).await;
    assert_eq!(c["change_type"], "insert", "{c}");
    assert_eq!(
        without_seq(&c["rows"]),
        json!([{"room": "r1", "who": "alice"}])
    );
    server
        .ok("EXECUTE AS USER 'alice' (DELETE FROM app.typing WHERE who = 'alice')")
        .await;
    let c = next(&mut alice).await;
    assert_eq!(c["change_type"], "delete", "{c}");
    assert_eq!(
        without_seq(&c["old_values"]),
        json!([{"room": "r1", "who": "alice"}])
    );
    quiet(&mut alice).await;
    let body = server
        .ok("EXECUTE AS USER 'alice' (SELECT count(*) FROM app.typing)")
        .await;
    assert_eq!(crate::common::rows(&body, 0), &vec![json!(["0"])]);
}

#[tokio::test]
async fn a_stream_table_past_max_rows_loses_its_oldest_rows_and_subscribers_see_it() {
    let server = TestServer::start();
    setup(&server).await;
    server
        .ok("CREATE STREAM TABLE app.ev (n INT) WITH (TTL_SECONDS = 3600, MAX_ROWS = 20)")
        .await;
    let mut alice = authenticated(&server, "alice", "alice-pass-1").await;
    send(
        &mut alice,
        json!({"type": "subscribe", "subscription": {"id": "e", "sql": "SELECT n FROM app.ev"}}),
    )
    .await;
    assert_eq!(next(&mut alice).await["type"], "subscription_ack");
    assert_eq!(next(&mut alice).await["batch_control"]["status"], "ready");
    for n in 1..=21 {
        server
            .ok(&format!(
                "EXECUTE AS USER 'alice' (INSERT INTO app.ev VALUES ({n}))"
            ))
            .await;
    }
    // 21 inserts, then the 3 oldest evicted (down to 90 % of 20)
    let mut inserted = 0;
    let mut deleted = Vec::new();
    while inserted < 21 || deleted.len() < 3 {
        let c = next(&mut alice).await;
        match c["change_type"].as_str() {
            Some("insert") => inserted += c["rows"].as_array().unwrap().len(),
            Some("delete") => {
                for row in c["old_values"].as_array().unwrap() {
                    deleted.push(row["n"].as_i64().unwrap());
                }
            }
            _ => panic!("unexpected {c}"),
        }
    }
    deleted.sort_unstable();
    assert_eq!(deleted, vec![1, 2, 3]);
    let body = server
        .ok("EXECUTE AS USER 'alice' (SELECT min(n), count(*) FROM app.ev)")
        .await;
    assert_eq!(crate::common::rows(&body, 0), &vec![json!([4, "18"])]);
}

/// What a client holds of a subscription, built only from the messages it
/// received: initial rows, then inserts/updates/deletes.
#[derive(Default)]
struct Mirror {
    held: std::collections::BTreeMap<i64, Value>,
    last_seq: i64,
    ready: bool,
    /// Resumed with `from`: the server then also reports rows created and
    /// deleted while the client was away, which it never held.
    resumed: bool,
    /// Every message applied, for a failure's report.
    log: Vec<String>,
}

impl Mirror {
    fn row(row: &Value) -> (i64, i64, Value) {
        let seq = row["_seq"].as_str().unwrap().parse::<i64>().unwrap();
        let mut row = row.clone();
        row.as_object_mut().unwrap().remove("_seq");
        (row["id"].as_i64().unwrap(), seq, row)
    }

    /// Applies one message; panics on anything a gap or a double causes.
    fn apply(&mut self, m: &Value) {
        self.log.push(m.to_string());
        match m["type"].as_str().unwrap() {
            "subscription_ack" => {}
            "initial_data_batch" => {
                for row in m["rows"].as_array().unwrap() {
                    let (id, seq, row) = Self::row(row);
                    self.last_seq = self.last_seq.max(seq);
                    self.held.insert(id, row);
                }
                self.ready = m["batch_control"]["status"] == "ready";
            }
            "change" => match m["change_type"].as_str().unwrap() {
                // a message may carry several rows (consecutive inserts
                // share one)
                "insert" => {
                    for row in m["rows"].as_array().unwrap() {
                        let (id, seq, row) = Self::row(row);
                        self.last_seq = self.last_seq.max(seq);
                        assert!(self.held.insert(id, row).is_none(), "doubled insert: {m}");
                    }
                }
                "update" => {
                    for row in m["rows"].as_array().unwrap() {
                        let (id, seq, row) = Self::row(row);
                        self.last_seq = self.last_seq.max(seq);
                        assert!(
                            self.held.insert(id, row).is_some(),
                            "update of a missing row: {m}"
                        );
                    }
                }
                "delete" => {
                    for row in m["old_values"].as_array().unwrap() {
                        let (id, seq, _) = Self::row(row);
                        self.last_seq = self.last_seq.max(seq);
                        let held = self.held.remove(&id).is_some();
                        assert!(held || self.resumed, "delete of a missing row: {m}");
                    }
                }
                other => panic!("unknown change {other}"),
            },
            _ => panic!("unexpected {m}"),
        }
    }
}

/// `SELECT id, n FROM app.items WHERE <filter>` as the client's rows.
async fn select_items(server: &TestServer, filter: &str) -> std::collections::BTreeMap<i64, Value> {
    let body = server
        .ok(&format!(
            "SELECT id, n FROM app.items WHERE {filter} ORDER BY id"
        ))
        .await;
    crate::common::rows(&body, 0)
        .iter()
        .map(|r| (r[0].as_i64().unwrap(), json!({"id": r[0], "n": r[1]})))
        .collect()
}

/// Reads until nothing arrives for a while, applying every message.
async fn drain_into(ws: &mut Ws, mirror: &mut Mirror) {
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(Duration::from_millis(2000), ws.next()).await
    {
        let m: Value = match frame {
            Message::Text(text) => serde_json::from_str(&text).unwrap(),
            Message::Binary(bytes) => serde_json::from_slice(&gunzip(&bytes)).unwrap(),
            _ => continue,
        };
        mirror.apply(&m);
        ask_for_more(ws, &m).await;
    }
}

/// After an initial batch that says more follow, asks for the next one.
async fn ask_for_more(ws: &mut Ws, m: &Value) {
    if m["type"] == "initial_data_batch" && m["batch_control"]["has_more"] == true {
        let id = m["subscription_id"].clone();
        send(ws, json!({"type": "next_batch", "subscription_id": id})).await;
    }
}

#[tokio::test]
async fn a_cursor_resumes_exactly_after_kill_9_of_the_server() {
    let temp = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(temp.path(), &[]);
    setup(&server).await;
    server
        .ok("INSERT INTO app.items VALUES (1, 'a', 1), (2, 'a', 2), (3, 'a', 4)")
        .await;
    let filter = "n % 3 <> 0";
    let mut ws = authenticated(&server, "alice", "alice-pass-1").await;
    send(
        &mut ws,
        json!({"type": "subscribe", "subscription": {"id": "r",
               "sql": format!("SELECT id, n FROM app.items WHERE {filter}")}}),
    )
    .await;
    let mut mirror = Mirror::default();
    server.ok("INSERT INTO app.items VALUES (4, 'a', 5)").await;
    drain_into(&mut ws, &mut mirror).await;
    assert!(mirror.ready);
    assert_eq!(mirror.held, select_items(&server, filter).await);
    drop(ws);
    server.kill();

    let server = TestServer::start_on(temp.path(), &[]);
    // while the client is away: a delete, a row leaving the filter, a new
    // row, a change
    server
        .ok(
            "DELETE FROM app.items WHERE id = 1; UPDATE app.items SET n = 3 WHERE id = 2; \
             INSERT INTO app.items VALUES (5, 'a', 7); UPDATE app.items SET n = 8 WHERE id = 3",
        )
        .await;
    let mut ws = authenticated(&server, "alice", "alice-pass-1").await;
    send(
        &mut ws,
        json!({"type": "subscribe", "subscription": {"id": "r",
               "sql": format!("SELECT id, n FROM app.items WHERE {filter}"),
               "options": {"from": mirror.last_seq.to_string()}}}),
    )
    .await;
    mirror.ready = false;
    mirror.resumed = true;
    drain_into(&mut ws, &mut mirror).await;
    assert!(mirror.ready);
    assert_eq!(mirror.held, select_items(&server, filter).await);
    assert_eq!(
        mirror.held.keys().copied().collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_gets_overflow_and_the_others_keep_up() {
    let server = TestServer::start_with(&[("KALAMDB_WEBSOCKET_SUBSCRIPTION_QUEUE", "20")]);
    setup(&server).await;
    server
        .ok(
            "CREATE SHARED TABLE app.big (id INT PRIMARY KEY, body TEXT); \
             ALTER TABLE app.big SET TBLPROPERTIES (ACCESS_LEVEL = 'PUBLIC')",
        )
        .await;
    // no compression: every change is ~20 KB on the wire, so socket buffers
    // fill and the server's queue for the slow client grows
    let mut slow = connect(&server).await;
    let token = token(&server, "alice", "alice-pass-1").await;
    send(
        &mut slow,
        json!({"type": "authenticate", "method": "jwt", "token": token,
               "protocol": {"serialization": "json", "compression": "none"}}),
    )
    .await;
    assert_eq!(next(&mut slow).await["type"], "auth_success");
    send(
        &mut slow,
        json!({"type": "subscribe", "subscription": {"id": "slow", "sql": "SELECT * FROM app.big"}}),
    )
    .await;
    assert_eq!(next(&mut slow).await["type"], "subscription_ack");
    assert_eq!(next(&mut slow).await["batch_control"]["status"], "ready");
    let mut fast = authenticated(&server, "bob", "bob-pass-1").await;
    send(
        &mut fast,
        json!({"type": "subscribe", "subscription": {"id": "fast", "sql": "SELECT id FROM app.big"}}),
    )
    .await;
    assert_eq!(next(&mut fast).await["type"], "subscription_ack");
    assert_eq!(next(&mut fast).await["batch_control"]["status"], "ready");

    let body: String = (0..20_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let rows = 1000;
    for i in 0..rows {
        server
            .ok(&format!("INSERT INTO app.big VALUES ({i}, '{body}')"))
            .await;
        // the reading client gets each change while the other stalls
        let c = next(&mut fast).await;
        assert_eq!(c["rows"][0]["id"], i, "{c}");
    }
    // the slow client, reading at last: some changes, then OVERFLOW with
    // the cursor to resume from, and nothing after it
    let mut got = 0;
    let error = loop {
        let m = next(&mut slow).await;
        match m["type"].as_str() {
            Some("change") => got += 1,
            Some("error") => break m,
            _ => panic!("unexpected {m}"),
        }
    };
    assert_eq!(error["code"], "OVERFLOW", "{error}");
    assert!(got < rows, "{got} changes before the overflow");
    assert!(
        error["message"].as_str().unwrap().contains("from = "),
        "{error}"
    );
    quiet(&mut slow).await;
    let body = server
        .ok("SELECT subscription_id FROM system.live_queries ORDER BY subscription_id")
        .await;
    assert_eq!(crate::common::rows(&body, 0), &vec![json!(["fast"])]);
    // and the metrics say so
    let (_, text) = server.metrics().await;
    let metric = |name: &str| crate::common::sample(&text, name, &[]);
    assert_eq!(metric("kalamdb_live_overflows_total"), Some(1.0), "{text}");
    assert_eq!(metric("kalamdb_live_subscriptions"), Some(1.0));
    assert_eq!(metric("kalamdb_live_connections"), Some(2.0));
    assert!(metric("kalamdb_live_changes_total").is_some_and(|n| n >= rows as f64));
}

/// `n` writers running until `stop`: upserts, updates (one row and a key
/// range: rows enter and leave `n % 3 <> 0`) and deletes over ids `0..keys`.
fn spawn_writers(
    server: &std::sync::Arc<TestServer>,
    n: u64,
    keys: u64,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|w| {
            let (server, stop) = (std::sync::Arc::clone(server), std::sync::Arc::clone(stop));
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let k = (i * 7 + w * 13) % keys;
                    let sql = match i % 5 {
                        0 | 1 => format!(
                            "INSERT INTO app.items VALUES ({k}, 'r', {i}) ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n"
                        ),
                        2 => format!("UPDATE app.items SET n = n + 1 WHERE id = {k}"),
                        3 => format!(
                            "UPDATE app.items SET n = n + 2 WHERE id > {k} AND id < {}",
                            k + 4
                        ),
                        _ => format!("DELETE FROM app.items WHERE id = {k}"),
                    };
                    // a statement that still conflicts after its retries
                    // changes nothing: the final SELECT is the judge
                    server.sql(&sql).await;
                    i += 1;
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_clients_paging_slowly_through_a_write_storm_end_with_the_final_rows() {
    let server = std::sync::Arc::new(TestServer::start_with(&[(
        "KALAMDB_WEBSOCKET_MAX_SUBSCRIPTIONS_PER_USER",
        "100",
    )]));
    setup(&server).await;
    let values: Vec<String> = (0..200).map(|i| format!("({i}, 'r', {i})")).collect();
    server
        .ok(&format!(
            "INSERT INTO app.items VALUES {}",
            values.join(", ")
        ))
        .await;
    let filter = "n % 3 <> 0";
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = spawn_writers(&server, 3, 240, &stop);
    let mut clients = Vec::new();
    for c in 0..50 {
        let server = std::sync::Arc::clone(&server);
        clients.push(tokio::spawn(async move {
            let mut ws = authenticated(&server, "alice", "alice-pass-1").await;
            send(
                &mut ws,
                json!({"type": "subscribe", "subscription": {"id": format!("p{c}"),
                       "sql": format!("SELECT id, n FROM app.items WHERE {filter}"),
                       "options": {"batch_size": 10}}}),
            )
            .await;
            let mut mirror = Mirror::default();
            while !mirror.ready {
                let m = next(&mut ws).await;
                mirror.apply(&m);
                if m["type"] == "initial_data_batch" && !mirror.ready {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    send(
                        &mut ws,
                        json!({"type": "next_batch", "subscription_id": format!("p{c}")}),
                    )
                    .await;
                }
            }
            (ws, mirror)
        }));
    }
    end_with_the_final_rows(&server, filter, &stop, writers, clients).await;
}

#[tokio::test]
async fn websockets_count_against_max_connections_while_open() {
    let server = TestServer::start_with(&[("KALAMDB_SERVER_MAX_CONNECTIONS", "4")]);
    setup(&server).await;
    let token = token(&server, "alice", "alice-pass-1").await;
    let open = |token: String| {
        let url = ws_url(&server);
        async move {
            let mut request = url.into_client_request().unwrap();
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            tokio_tungstenite::connect_async(request).await
        }
    };
    // the test client's pooled HTTP connection is one of the four
    let mut held = Vec::new();
    for _ in 0..3 {
        let (mut ws, _) = open(token.clone()).await.expect("within the limit");
        assert_eq!(next(&mut ws).await["type"], "auth_success");
        held.push(ws);
    }
    assert!(
        open(token.clone()).await.is_err(),
        "a fifth connection is refused"
    );
    drop(held.pop());
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok((ws, _)) = open(token.clone()).await {
            reopened = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ws = reopened.expect("a closed WebSocket gives its place back");
    assert_eq!(next(&mut ws).await["type"], "auth_success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_dropping_and_resuming_at_random_points_under_many_writers_miss_nothing() {
    let server = std::sync::Arc::new(TestServer::start_with(&[(
        "KALAMDB_WEBSOCKET_MAX_SUBSCRIPTIONS_PER_USER",
        "100",
    )]));
    setup(&server).await;
    let filter = "n % 3 <> 0";
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = spawn_writers(&server, 4, 120, &stop);
    let mut clients = Vec::new();
    for c in 0..10u64 {
        let server = std::sync::Arc::clone(&server);
        clients.push(tokio::spawn(async move {
            let mut mirror = Mirror::default();
            let mut ws = None;
            // three sessions, each cut after a different number of messages;
            // each later one resumes from the last `_seq` seen
            for session in 0..3u64 {
                drop(ws.take()); // the previous session's connection goes
                let mut socket = authenticated(&server, "alice", "alice-pass-1").await;
                let mut options = json!({});
                if session > 0 {
                    options["from"] = json!(mirror.last_seq);
                    mirror.resumed = true;
                }
                mirror
                    .log
                    .push(format!("SUBSCRIBE from {}", mirror.last_seq));
                send(
                    &mut socket,
                    json!({"type": "subscribe", "subscription": {"id": "m",
                           "sql": format!("SELECT id, n FROM app.items WHERE {filter}"),
                           "options": options}}),
                )
                .await;
                mirror.ready = false;
                let cut = 5 + (c * 7 + session * 13) % 40;
                let mut seen = 0;
                while !mirror.ready || seen < cut {
                    let m = next(&mut socket).await;
                    mirror.apply(&m);
                    ask_for_more(&mut socket, &m).await;
                    seen += 1;
                }
                ws = Some(socket); // the last one stays connected
            }
            (ws.unwrap(), mirror)
        }));
    }
    end_with_the_final_rows(&server, filter, &stop, writers, clients).await;
}

/// Once every client is done, stops the writers and checks that each
/// client's rows, after it read what is still on its way, equal the final
/// SELECT; on a difference, prints what the client received for the rows
/// that differ and what the server holds for them.
async fn end_with_the_final_rows(
    server: &std::sync::Arc<TestServer>,
    filter: &str,
    stop: &std::sync::atomic::AtomicBool,
    writers: Vec<tokio::task::JoinHandle<()>>,
    clients: Vec<tokio::task::JoinHandle<(Ws, Mirror)>>,
) {
    let mut done = Vec::new();
    for c in clients {
        done.push(c.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let expected = select_items(server, filter).await;
    for (ws, mirror) in &mut done {
        drain_into(ws, mirror).await;
        if mirror.held != expected {
            let ids: Vec<i64> = mirror
                .held
                .keys()
                .chain(expected.keys())
                .filter(|id| mirror.held.get(id) != expected.get(id))
                .copied()
                .collect();
            for id in ids {
                let needle = format!("\"id\":{id},");
                for line in mirror
                    .log
                    .iter()
                    .filter(|l| l.contains(&needle) || l.starts_with("SUBSCRIBE"))
                {
                    eprintln!("CLIENT {id}: {}", &line[..line.len().min(300)]);
                }
                let (_, body) = server
                    .sql(&format!("SELECT id, n, _seq, _deleted FROM app.items WHERE id = {id} AND (_deleted OR NOT _deleted)"))
                    .await;
                eprintln!("SERVER {id}: {}", body["results"][0]["rows"]);
            }
        }
        assert_eq!(
            mirror.held, expected,
            "snapshot ∪ changes = the final rows: nothing missed, nothing doubled"
        );
    }
}

/// Subscribes `sql` on a new connection of alice's from cursor `from`; the
/// first reply (`subscription_ack` or `error`).
async fn resume_reply(server: &TestServer, sql: &str, from: &str) -> Value {
    let mut ws = authenticated(server, "alice", "alice-pass-1").await;
    send(
        &mut ws,
        json!({"type": "subscribe", "subscription": {"id": "r", "sql": sql,
               "options": {"from": from}}}),
    )
    .await;
    next(&mut ws).await
}

#[tokio::test]
async fn a_resume_that_would_miss_deletes_gets_resume_too_old() {
    let server = TestServer::start_with(&[("KALAMDB_JOBS_RETENTION_INTERVAL_SECS", "1")]);
    setup(&server).await;

    // STREAM: a row the client held was removed for good while it was away
    server
        .ok("CREATE STREAM TABLE app.typing (who TEXT) TTL 3600")
        .await;
    let sql = "SELECT who FROM app.typing";
    let mut ws = authenticated(&server, "alice", "alice-pass-1").await;
    send(
        &mut ws,
        json!({"type": "subscribe", "subscription": {"id": "t", "sql": sql}}),
    )
    .await;
    assert_eq!(next(&mut ws).await["type"], "subscription_ack");
    assert_eq!(next(&mut ws).await["batch_control"]["status"], "ready");
    server
        .ok("EXECUTE AS USER 'alice' (INSERT INTO app.typing VALUES ('alice'))")
        .await;
    let c = next(&mut ws).await;
    let held = c["rows"][0]["_seq"].as_str().expect("_seq").to_string();
    drop(ws);
    server
        .ok("EXECUTE AS USER 'alice' (DELETE FROM app.typing)")
        .await;
    let m = resume_reply(&server, sql, &held).await;
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["code"], "RESUME_TOO_OLD", "{m}");
    assert!(
        m["message"].as_str().unwrap().contains("without \"from\""),
        "{m}"
    );
    // from a cursor after the delete nothing was missed
    server
        .ok("EXECUTE AS USER 'alice' (INSERT INTO app.typing VALUES ('again'))")
        .await;
    let body = server
        .ok("EXECUTE AS USER 'alice' (SELECT _seq FROM app.typing)")
        .await;
    let after = crate::common::rows(&body, 0)[0][0]
        .as_str()
        .unwrap()
        .to_string();
    let m = resume_reply(&server, sql, &after).await;
    assert_eq!(m["type"], "subscription_ack", "{m}");
    // and from before the table existed the client held none of its rows
    let m = resume_reply(&server, sql, "0").await;
    assert_eq!(m["type"], "subscription_ack", "{m}");

    // USER table: Retention purges tombstones past DELETED_RETENTION_HOURS
    // (0 here) and moves the horizon; a cursor under it is refused
    server
        .ok("CREATE USER TABLE app.log (id INT PRIMARY KEY) WITH (DELETED_RETENTION_HOURS = 0)")
        .await;
    server
        .ok("EXECUTE AS USER 'alice' (INSERT INTO app.log VALUES (1), (2))")
        .await;
    let body = server
        .ok("EXECUTE AS USER 'alice' (SELECT _seq FROM app.log WHERE id = 2)")
        .await;
    let cursor = crate::common::rows(&body, 0)[0][0]
        .as_str()
        .unwrap()
        .to_string();
    server
        .ok("EXECUTE AS USER 'alice' (DELETE FROM app.log WHERE id = 1)")
        .await;
    let sql = "SELECT id FROM app.log";
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = resume_reply(&server, sql, &cursor).await;
        if m["type"] == "error" {
            assert_eq!(m["code"], "RESUME_TOO_OLD", "{m}");
            break;
        }
        // until the job runs, the resume is answered (with the delete)
        assert_eq!(m["type"], "subscription_ack", "{m}");
        assert!(
            std::time::Instant::now() < deadline,
            "no Retention run refused the old cursor within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let body = server
        .ok("SELECT count(*) FROM system.jobs WHERE job_type = 'Retention' AND status = 'Completed'")
        .await;
    assert_ne!(crate::common::rows(&body, 0)[0][0], json!("0"), "{body}");
    // the tombstone is gone, the live row stays, a fresh subscription works
    let body = server
        .ok("EXECUTE AS USER 'alice' (SELECT id, _deleted FROM app.log WHERE _deleted = true)")
        .await;
    assert!(crate::common::rows(&body, 0).is_empty(), "{body}");
    let mut ws = authenticated(&server, "alice", "alice-pass-1").await;
    send(
        &mut ws,
        json!({"type": "subscribe", "subscription": {"id": "l", "sql": sql}}),
    )
    .await;
    let ack = next(&mut ws).await;
    assert_eq!(ack["type"], "subscription_ack", "{ack}");
    assert_eq!(ack["total_rows"], 1, "{ack}");
}

#[tokio::test]
async fn a_connection_re_authenticates_with_a_fresh_token_and_keeps_its_subscriptions() {
    let server = TestServer::start();
    setup(&server).await;
    let mut ws = authenticated(&server, "alice", "alice-pass-1").await;
    send(
        &mut ws,
        json!({"type": "subscribe", "subscription": {"id": "s", "sql": "SELECT * FROM app.items"}}),
    )
    .await;
    assert_eq!(next(&mut ws).await["type"], "subscription_ack");
    assert_eq!(next(&mut ws).await["batch_control"]["status"], "ready");
    // a client refreshing its token before expiry sends the new one
    let fresh = token(&server, "alice", "alice-pass-1").await;
    send(
        &mut ws,
        json!({"type": "authenticate", "method": "jwt", "token": fresh}),
    )
    .await;
    let m = next(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["user"].as_str()),
        (Some("auth_success"), Some("alice")),
        "{m}"
    );
    server.ok("INSERT INTO app.items VALUES (1, 'r', 1)").await;
    let c = next(&mut ws).await;
    assert_eq!(
        (c["type"].as_str(), c["subscription_id"].as_str()),
        (Some("change"), Some("s")),
        "{c}"
    );
    // someone else's token does not take the connection over
    let bobs = token(&server, "bob", "bob-pass-1").await;
    send(
        &mut ws,
        json!({"type": "authenticate", "method": "jwt", "token": bobs}),
    )
    .await;
    let m = next(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["code"].as_str()),
        (Some("error"), Some("UNAUTHORIZED")),
        "{m}"
    );
    send(
        &mut ws,
        json!({"type": "authenticate", "method": "jwt", "token": "not-a-jwt"}),
    )
    .await;
    assert_eq!(next(&mut ws).await["code"], "UNAUTHORIZED");
    server.ok("INSERT INTO app.items VALUES (2, 'r', 2)").await;
    let c = next(&mut ws).await;
    assert_eq!(c["rows"][0]["id"], 2, "{c}");
}

/// Waits for the server to close `ws` (a Close frame or the stream's end).
async fn closed(ws: &mut Ws) {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("closed within 5 s")
        {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => panic!("unexpected frame {other:?} before the close"),
        }
    }
}

#[tokio::test]
async fn a_connection_whose_token_expires_is_closed_unless_a_fresh_token_came() {
    let server = TestServer::start_with(&[("KALAMDB_AUTH_ACCESS_TOKEN_TTL_SECS", "4")]);
    setup(&server).await;
    let subscribe =
        json!({"type": "subscribe", "subscription": {"id": "s", "sql": "SELECT * FROM app.items"}});
    let mut stale = authenticated(&server, "alice", "alice-pass-1").await;
    let mut fresh = authenticated(&server, "alice", "alice-pass-1").await;
    for ws in [&mut stale, &mut fresh] {
        send(ws, subscribe.clone()).await;
        assert_eq!(next(ws).await["type"], "subscription_ack");
        assert_eq!(next(ws).await["batch_control"]["status"], "ready");
    }
    // halfway, one connection sends a fresh token (good 4 s from now)
    tokio::time::sleep(Duration::from_secs(2)).await;
    let token = token(&server, "alice", "alice-pass-1").await;
    send(
        &mut fresh,
        json!({"type": "authenticate", "method": "jwt", "token": token}),
    )
    .await;
    assert_eq!(next(&mut fresh).await["type"], "auth_success");
    // the other's token expires: it is told why, then closed
    let m = next(&mut stale).await;
    assert_eq!(
        (m["type"].as_str(), m["code"].as_str()),
        (Some("error"), Some("UNAUTHORIZED")),
        "{m}"
    );
    assert!(m["message"].as_str().unwrap().contains("expired"), "{m}");
    closed(&mut stale).await;
    // the refreshed one still gets changes, until its own token expires
    server.ok("INSERT INTO app.items VALUES (1, 'r', 1)").await;
    let c = next(&mut fresh).await;
    assert_eq!(
        (c["type"].as_str(), c["subscription_id"].as_str()),
        (Some("change"), Some("s")),
        "{c}"
    );
    let m = next(&mut fresh).await;
    assert_eq!(m["code"], "UNAUTHORIZED", "{m}");
    closed(&mut fresh).await;
}
