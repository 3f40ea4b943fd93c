//! `/v1/api/auth/*` and Bearer tokens against the real server: log in,
//! refresh, log out, me, first-run setup, and every forged or stale token a
//! client could send.

use crate::common::{TestServer, error_code, rows};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const SECRET: &str = "test-secret-of-at-least-thirty-two-bytes!";

fn server() -> TestServer {
    TestServer::start_with(&[("KALAMDB_JWT_SECRET", SECRET)])
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sign(claims: &Value, secret: &str, alg: Algorithm) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Sends one request; returns status and JSON body.
async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server.http().request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn login(server: &TestServer, user: &str, password: &str) -> (u16, Value) {
    let body = json!({ "user": user, "password": password });
    call(
        server,
        reqwest::Method::POST,
        "/v1/api/auth/login",
        None,
        Some(body),
    )
    .await
}

async fn with_bearer(server: &TestServer, token: &str, sql: &str) -> (u16, Value) {
    let body = json!({ "sql": sql });
    call(
        server,
        reqwest::Method::POST,
        "/v1/api/sql",
        Some(token),
        Some(body),
    )
    .await
}

async fn refresh(server: &TestServer, token: &str) -> (u16, Value) {
    call(
        server,
        reqwest::Method::POST,
        "/v1/api/auth/refresh",
        Some(token),
        None,
    )
    .await
}

async fn me(server: &TestServer, token: &str) -> (u16, Value) {
    call(
        server,
        reqwest::Method::GET,
        "/v1/api/auth/me",
        Some(token),
        None,
    )
    .await
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn login_gives_a_token_pair_that_works_on_sql_me_and_refresh() {
    let server = server();
    server
        .ok("CREATE USER 'alice' WITH PASSWORD 'alice-pass-1' ROLE user EMAIL 'a@example.com'")
        .await;
    let (s, body) = login(&server, "alice", "alice-pass-1").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["user"]["username"], "alice");
    assert_eq!(body["user"]["role"], "user");
    assert_eq!(body["user"]["email"], "a@example.com");
    assert!(body["user"]["id"].as_str().unwrap().starts_with("u_"));
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(body.to_string().find("hash").is_none(), "{body}");
    let access = body["access_token"].as_str().unwrap().to_string();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_string();

    let claims = claims_of(&access);
    assert_eq!(claims["sub"], body["user"]["id"]);
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["role"], "user");
    assert_eq!(claims["iss"], "kalamdb");
    assert_eq!(claims["token_type"], "access");
    assert!(claims["exp"].as_i64().unwrap() > now());
    assert_eq!(claims_of(&refresh_token)["token_type"], "refresh");

    let (s, b) = with_bearer(&server, &access, "SELECT 41 + 1 AS answer").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["results"][0]["as_user"], "alice");
    let (s, b) = me(&server, &access).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["username"].as_str(), b["role"].as_str()),
        (Some("alice"), Some("user"))
    );

    // `username` is accepted as well as `user`
    let body = json!({ "username": "alice", "password": "alice-pass-1" });
    let (s, b) = call(
        &server,
        reqwest::Method::POST,
        "/v1/api/auth/login",
        None,
        Some(body),
    )
    .await;
    assert_eq!(s, 200, "{b}");

    let (s, b) = refresh(&server, &refresh_token).await;
    assert_eq!(s, 200, "{b}");
    let new_access = b["access_token"].as_str().unwrap();
    assert_ne!(new_access, access);
    let (s, b) = with_bearer(&server, new_access, "SELECT 1").await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn bad_logins_are_401_and_malformed_bodies_400() {
    let server = server();
    server
        .ok("CREATE USER 'bob' WITH PASSWORD 'bob-pass-12' ROLE user")
        .await;
    for (user, password) in [("bob", "wrong-pass"), ("nobody", "whatever1"), ("bob", "")] {
        let (s, b) = login(&server, user, password).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (401, Some("UNAUTHORIZED")),
            "{b}"
        );
    }
    for body in [
        "",
        "{",
        "[]",
        r#"{"user":"bob"}"#,
        r#"{"user":1,"password":2}"#,
    ] {
        let response = server
            .http()
            .post(server.url("/v1/api/auth/login"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let b: Value = response.json().await.unwrap();
        assert_eq!(b["error"]["code"], "INVALID_PARAMETER", "{body}: {b}");
    }
    let huge = "x".repeat(100_000);
    let (s, _) = login(&server, "bob", &huge).await;
    assert_eq!(s, 401);
    let (s, _) = login(&server, &huge, "bob-pass-12").await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn login_brute_force_locks_the_account() {
    let server = TestServer::start_with(&[
        ("KALAMDB_JWT_SECRET", SECRET),
        ("KALAMDB_AUTH_MAX_FAILED_LOGINS", "3"),
    ]);
    server
        .ok("CREATE USER 'carol' WITH PASSWORD 'carol-pass-1' ROLE user")
        .await;
    for _ in 0..3 {
        let (s, _) = login(&server, "carol", "guess-guess").await;
        assert_eq!(s, 401);
    }
    let (s, b) = login(&server, "carol", "carol-pass-1").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (429, Some("RATE_LIMIT_EXCEEDED")),
        "{b}"
    );
    assert!(
        b["error"]["message"].as_str().unwrap().contains("locked"),
        "{b}"
    );
}

#[tokio::test]
async fn forged_expired_and_misused_tokens_are_401() {
    let server = server();
    server
        .ok("CREATE USER 'dave' WITH PASSWORD 'dave-pass-12' ROLE user")
        .await;
    let (_, body) = login(&server, "dave", "dave-pass-12").await;
    let access = body["access_token"].as_str().unwrap().to_string();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_string();
    let claims = claims_of(&access);
    let with = |patch: Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let header = access.split('.').next().unwrap().to_string();
    let signature = access.split('.').nth(2).unwrap().to_string();

    let mut attacks: Vec<(&str, String)> = vec![
        (
            "wrong signature",
            sign(
                &claims,
                "some-other-secret-thirty-two-bytes-long",
                Algorithm::HS256,
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(with(json!({"role": "system"})).to_string().as_bytes())
            ),
        ),
        (
            "tampered role claim",
            format!(
                "{header}.{}.{signature}",
                b64(with(json!({"role": "system"})).to_string().as_bytes())
            ),
        ),
        (
            "tampered username claim",
            format!(
                "{header}.{}.{signature}",
                b64(with(json!({"username": "root"})).to_string().as_bytes())
            ),
        ),
        (
            "expired",
            sign(
                &with(json!({"exp": now() - 5, "iat": now() - 3600})),
                SECRET,
                Algorithm::HS256,
            ),
        ),
        (
            "other issuer",
            sign(&with(json!({"iss": "elsewhere"})), SECRET, Algorithm::HS256),
        ),
        (
            "HS512 with the right secret",
            sign(&claims, SECRET, Algorithm::HS512),
        ),
        (
            "validly signed, role raised",
            sign(&with(json!({"role": "system"})), SECRET, Algorithm::HS256),
        ),
        (
            "validly signed, someone else's name",
            sign(&with(json!({"username": "root"})), SECRET, Algorithm::HS256),
        ),
        ("refresh token used as access", refresh_token.clone()),
        ("garbage", "not.a.token".into()),
        ("empty", String::new()),
    ];
    attacks.push(("huge", "a".repeat(50_000)));
    for (what, token) in &attacks {
        let (s, b) = with_bearer(&server, token, "SELECT 1").await;
        assert_eq!(s, 401, "{what}: {b}");
        assert_eq!(error_code(&b), "UNAUTHORIZED", "{what}: {b}");
        let (s, b) = me(&server, token).await;
        assert_eq!(s, 401, "{what} on /me: {b}");
    }
    // an access token cannot refresh
    let (s, _) = refresh(&server, &access).await;
    assert_eq!(s, 401);
    // the genuine token still works after all that
    let (s, b) = with_bearer(&server, &access, "SELECT 1").await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn tokens_die_with_their_user_and_their_role() {
    let server = server();
    server
        .ok("CREATE USER 'erin' WITH PASSWORD 'erin-pass-12' ROLE service")
        .await;
    let (_, body) = login(&server, "erin", "erin-pass-12").await;
    let access = body["access_token"].as_str().unwrap().to_string();
    let (s, _) = with_bearer(&server, &access, "SELECT 1").await;
    assert_eq!(s, 200);

    // a changed role voids tokens issued under the old one
    server.ok("ALTER USER 'erin' SET ROLE user").await;
    let (s, b) = with_bearer(&server, &access, "SELECT 1").await;
    assert_eq!(s, 401, "{b}");
    assert!(error_code(&b) == "UNAUTHORIZED");
    let (_, body) = login(&server, "erin", "erin-pass-12").await;
    let access = body["access_token"].as_str().unwrap().to_string();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_string();
    let (s, _) = with_bearer(&server, &access, "SELECT 1").await;
    assert_eq!(s, 200);

    // a dropped user's tokens stop working at once, refresh included
    server.ok("DROP USER 'erin'").await;
    let (s, b) = with_bearer(&server, &access, "SELECT 1").await;
    assert_eq!(s, 401, "{b}");
    let (s, _) = refresh(&server, &refresh_token).await;
    assert_eq!(s, 401);
    let (s, _) = login(&server, "erin", "erin-pass-12").await;
    assert_eq!(s, 401);

    // the same name created again is a different user: old tokens stay dead
    server
        .ok("CREATE USER 'erin' WITH PASSWORD 'erin-pass-12' ROLE user")
        .await;
    let (s, b) = with_bearer(&server, &access, "SELECT 1").await;
    assert_eq!(s, 401, "{b}");
    let (s, _) = refresh(&server, &refresh_token).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn bearer_users_see_only_their_rows_and_follow_their_role() {
    let server = server();
    server.ok("CREATE NAMESPACE app").await;
    server
        .ok("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)")
        .await;
    let mut tokens = Vec::new();
    for name in ["fay", "gus"] {
        server
            .ok(&format!(
                "CREATE USER '{name}' WITH PASSWORD '{name}-pass-123' ROLE user"
            ))
            .await;
        let (_, body) = login(&server, name, &format!("{name}-pass-123")).await;
        let token = body["access_token"].as_str().unwrap().to_string();
        let (s, b) = with_bearer(
            &server,
            &token,
            &format!("INSERT INTO app.notes VALUES (1, 'note of {name}')"),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        tokens.push((name, token));
    }
    for (name, token) in &tokens {
        let (s, b) = with_bearer(&server, token, "SELECT body FROM app.notes").await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(rows(&b, 0), &vec![json!([format!("note of {name}")])]);
        let (s, b) = with_bearer(&server, token, "CREATE NAMESPACE nope").await;
        assert_eq!((s, error_code(&b)), (403, "PERMISSION_DENIED"), "{b}");
    }
}

#[tokio::test]
async fn the_auth_cookie_authenticates_and_logout_clears_it() {
    let server = server();
    server
        .ok("CREATE USER 'hal' WITH PASSWORD 'hal-pass-123' ROLE user")
        .await;
    let response = server
        .http()
        .post(server.url("/v1/api/auth/login"))
        .json(&json!({ "user": "hal", "password": "hal-pass-123" }))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("kalamdb_auth="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let response = server
        .http()
        .get(server.url("/v1/api/auth/me"))
        .header("cookie", format!("theme=dark; {pair}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let b: Value = response.json().await.unwrap();
    assert_eq!(b["username"], "hal");

    let response = server
        .http()
        .post(server.url("/v1/api/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cleared = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("kalamdb_auth=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    // no credentials at all
    let response = server
        .http()
        .get(server.url("/v1/api/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn first_run_setup_sets_root_password_and_creates_a_dba_once() {
    let server = server();
    let (s, b) = server.get("/v1/api/auth/status").await;
    assert_eq!((s, b["needs_setup"].as_bool()), (200, Some(true)), "{b}");
    let post = |body: Value| {
        call(
            &server,
            reqwest::Method::POST,
            "/v1/api/auth/setup",
            None,
            Some(body),
        )
    };
    let (s, b) =
        post(json!({"username": "admin", "password": "short", "root_password": "root-pass-123"}))
            .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("INVALID_PARAMETER")),
        "{b}"
    );
    assert!(
        b["error"]["message"].as_str().unwrap().contains("password"),
        "{b}"
    );
    let (s, b) = post(
        json!({"username": "root", "password": "admin-pass-1", "root_password": "root-pass-123"}),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = post(json!({"username": "Bad Name", "password": "admin-pass-1", "root_password": "root-pass-123"})).await;
    assert_eq!(s, 400, "{b}");
    // nothing of the failed attempts stuck
    let (s, b) = server.get("/v1/api/auth/status").await;
    assert_eq!((s, b["needs_setup"].as_bool()), (200, Some(true)), "{b}");

    let (s, b) = post(json!({
        "username": "admin", "password": "admin-pass-1",
        "root_password": "root-pass-123", "email": "ops@example.com"
    }))
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["user"]["username"].as_str(), b["user"]["role"].as_str()),
        (Some("admin"), Some("dba"))
    );
    let (s, b) = server.get("/v1/api/auth/status").await;
    assert_eq!((s, b["needs_setup"].as_bool()), (200, Some(false)), "{b}");
    let (s, b) = post(
        json!({"username": "admin2", "password": "admin-pass-1", "root_password": "another-pass"}),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("ALREADY_EXISTS")),
        "{b}"
    );

    // root now needs its password; the dba logs in
    let (s, _) = server.sql("SELECT 1").await;
    assert_eq!(s, 401);
    let (s, b) = login(&server, "root", "root-pass-123").await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = login(&server, "admin", "admin-pass-1").await;
    assert_eq!(s, 200, "{b}");
    let token = b["access_token"].as_str().unwrap().to_string();
    let (s, b) = with_bearer(
        &server,
        &token,
        "SELECT username, role FROM system.users WHERE username = 'admin'",
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(rows(&b, 0), &vec![json!(["admin", "dba"])]);
    // both steps are in the audit log, without the passwords
    let (s, b) = with_bearer(
        &server,
        &token,
        "SELECT action, details FROM system.audit_log",
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let text = b.to_string();
    assert!(
        text.contains("CREATE USER") && text.contains("ALTER USER"),
        "{text}"
    );
    assert!(
        !text.contains("admin-pass-1") && !text.contains("root-pass-123"),
        "{text}"
    );
}

#[test]
fn the_server_refuses_the_development_secret_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kalamdb-server"))
        .env_clear()
        .env("KALAMDB_DATA_DIR", dir.path())
        .env("KALAMDB_SERVER_HOST", "0.0.0.0")
        .env("KALAMDB_SERVER_PORT", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("auth.jwt_secret") && stderr.contains("0.0.0.0"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
}
