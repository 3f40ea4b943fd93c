//! `/v1/api/auth/*`: log in for a token pair, refresh it, log out, who am I,
//! and the first-run setup (localhost only).
//!
//! Errors have the shape of every other route's (`response::error`), with
//! the shared codes: INVALID_PARAMETER (400), UNAUTHORIZED (401),
//! PERMISSION_DENIED (403), ALREADY_EXISTS (409: setup already done, user
//! exists), RATE_LIMIT_EXCEEDED (429: too many failed logins from this
//! address, with `Retry-After`) or INTERNAL_ERROR (500).

use crate::ApiState;
use crate::response::{error, parse_object};
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use kalamdb_auth::{AuthError, TokenPair, is_local};
use kalamdb_commons::Role;
use kalamdb_commons::error_code::{ErrorCode, HasErrorCode};
use kalamdb_commons::password::validate_password;
use kalamdb_core::ExecutionContext;
use kalamdb_core::app_context::ROOT_USER;
use kalamdb_core::meta_store::UserRecord;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

/// The HttpOnly cookie carrying the access token for browser clients.
pub const AUTH_COOKIE: &str = "kalamdb_auth";

/// The credentials of a request: its `Authorization` header, or else the
/// access token in the auth cookie.
pub fn credentials(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return value.to_str().ok().map(Cow::Borrowed);
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == AUTH_COOKIE && !value.is_empty())
                .then(|| Cow::Owned(format!("Bearer {value}")))
        })
}

#[derive(Debug, Serialize)]
struct UserInfo {
    id: String,
    username: String,
    role: Role,
    email: Option<String>,
    created_at: String,
    updated_at: String,
}

fn rfc3339_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn rfc3339_secs(secs: u64) -> String {
    DateTime::<Utc>::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl From<&UserRecord> for UserInfo {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.user_id.as_str().to_string(),
            username: u.username.clone(),
            role: u.role,
            email: u.email.clone(),
            created_at: rfc3339_ms(u.created_at),
            updated_at: rfc3339_ms(u.updated_at),
        }
    }
}

#[derive(Debug, Serialize)]
struct TokenReply {
    user: UserInfo,
    access_token: String,
    refresh_token: String,
    /// When the access token expires (RFC 3339).
    expires_at: String,
    refresh_expires_at: String,
}

fn fail(code: ErrorCode, message: impl Into<String>) -> Response {
    error(code, message.into(), "-", 0.0)
}

fn auth_failure(state: &ApiState, e: &AuthError, client: SocketAddr) -> Response {
    let request_id = state.request_id();
    if e.error_code() != ErrorCode::InternalError {
        tracing::info!(request_id, client = %client, "authentication failed: {e}");
    }
    let mut response = error(e.error_code(), e.to_string(), &request_id, 0.0);
    if let AuthError::Locked { seconds, .. } = e
        && let Ok(v) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

fn internal(state: &ApiState, detail: impl std::fmt::Display) -> Response {
    error(
        ErrorCode::InternalError,
        detail.to_string(),
        &state.request_id(),
        0.0,
    )
}

/// The stored account of an authenticated caller.
fn record_of(state: &ApiState, username: &str) -> Result<UserRecord, Box<Response>> {
    match state.app.meta.user(username) {
        Ok(Some(u)) if u.deleted_at.is_none() => Ok(u),
        Ok(_) => Err(Box::new(fail(
            ErrorCode::Unauthorized,
            "The user no longer exists",
        ))),
        Err(e) => Err(Box::new(internal(state, e))),
    }
}

fn token_reply(state: &ApiState, user: &UserRecord, pair: TokenPair) -> Response {
    let cookie = format!(
        "{AUTH_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        pair.access_token,
        pair.access_expires_at
            .saturating_sub(kalamdb_auth::jwt::now_secs())
    );
    let reply = TokenReply {
        user: UserInfo::from(user),
        expires_at: rfc3339_secs(pair.access_expires_at),
        refresh_expires_at: rfc3339_secs(pair.refresh_expires_at),
        access_token: pair.access_token,
        refresh_token: pair.refresh_token,
    };
    match HeaderValue::from_str(&cookie) {
        Ok(cookie) => ([(header::SET_COOKIE, cookie)], Json(reply)).into_response(),
        Err(e) => internal(state, e),
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    #[serde(alias = "username")]
    user: String,
    password: String,
}

/// `POST /v1/api/auth/login` with `{"user", "password"}` (`username` is
/// accepted too) → an access + refresh token pair.
pub async fn login(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let request: LoginRequest = match parse_object(&body) {
        Ok(r) => r,
        Err(m) => return fail(ErrorCode::InvalidParameter, m),
    };
    if request.password.len() > kalamdb_commons::password::MAX_PASSWORD_LEN * 4
        || request.user.len() > 256
    {
        return fail(
            ErrorCode::Unauthorized,
            AuthError::InvalidCredentials.to_string(),
        );
    }
    let (user, pair) = match state
        .auth
        .login(&request.user, &request.password, Some(client.ip()))
        .await
    {
        Ok(r) => r,
        Err(e) => return auth_failure(&state, &e, client),
    };
    match record_of(&state, &user.username) {
        Ok(record) => token_reply(&state, &record, pair),
        Err(response) => *response,
    }
}

/// `POST /v1/api/auth/refresh` with `Authorization: Bearer <refresh token>`
/// → a new pair.
pub async fn refresh(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = token else {
        return fail(
            ErrorCode::Unauthorized,
            "Send the refresh token as 'Authorization: Bearer <token>'",
        );
    };
    let (user, pair) = match state.auth.refresh_tokens(token, Some(client.ip())) {
        Ok(r) => r,
        Err(e) => return auth_failure(&state, &e, client),
    };
    match record_of(&state, &user.username) {
        Ok(record) => token_reply(&state, &record, pair),
        Err(response) => *response,
    }
}

/// `POST /v1/api/auth/logout`: clears the auth cookie. Tokens are stateless
/// and stay valid until they expire.
pub async fn logout() -> Response {
    (
        [(
            header::SET_COOKIE,
            HeaderValue::from_static("kalamdb_auth=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
        Json(json!({ "message": "Logged out" })),
    )
        .into_response()
}

/// `GET /v1/api/auth/me`: the caller's user object.
pub async fn me(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let user = match state
        .auth
        .authenticate(credentials(&headers).as_deref(), Some(client.ip()))
        .await
    {
        Ok(u) => u,
        Err(e) => return auth_failure(&state, &e, client),
    };
    match record_of(&state, &user.username) {
        Ok(record) => Json(UserInfo::from(&record)).into_response(),
        Err(response) => *response,
    }
}

fn root_has_password(state: &ApiState) -> Result<bool, Box<Response>> {
    match state.app.meta.user(ROOT_USER) {
        Ok(Some(root)) => Ok(root.password_hash.is_some()),
        Ok(None) => Err(Box::new(internal(state, "the root user is missing"))),
        Err(e) => Err(Box::new(internal(state, e))),
    }
}

fn local_only(client: SocketAddr) -> Option<Response> {
    (!is_local(Some(client.ip()))).then(|| {
        fail(
            ErrorCode::PermissionDenied,
            "Server setup is only available from localhost",
        )
    })
}

/// `GET /v1/api/auth/status` (localhost): whether first-run setup is due.
pub async fn status(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
) -> Response {
    if let Some(refused) = local_only(client) {
        return refused;
    }
    match root_has_password(&state) {
        Ok(configured) => Json(json!({
            "needs_setup": !configured,
            "message": if configured {
                "Server is configured."
            } else {
                "Server needs setup: POST /v1/api/auth/setup with username, password, root_password and optional email."
            }
        }))
        .into_response(),
        Err(response) => *response,
    }
}

#[derive(Debug, Deserialize)]
pub struct SetupRequest {
    username: String,
    password: String,
    root_password: String,
    #[serde(default)]
    email: Option<String>,
}

/// A SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `POST /v1/api/auth/setup` (localhost, while root has no password):
/// creates a `dba` user and sets root's password, through the executor like
/// any other user management (so both are authorized and audited).
pub async fn setup(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    if let Some(refused) = local_only(client) {
        return refused;
    }
    let request: SetupRequest = match parse_object(&body) {
        Ok(r) => r,
        Err(m) => return fail(ErrorCode::InvalidParameter, m),
    };
    for (what, password) in [
        ("password", &request.password),
        ("root_password", &request.root_password),
    ] {
        if let Err(m) = validate_password(password) {
            return fail(ErrorCode::InvalidParameter, format!("{what}: {m}"));
        }
    }
    if request.username == ROOT_USER {
        return fail(
            ErrorCode::InvalidParameter,
            "Choose a name other than 'root' for the dba user",
        );
    }
    let _one_at_a_time = state.setup_lock.lock().await;
    match root_has_password(&state) {
        Ok(true) => {
            return fail(
                ErrorCode::AlreadyExists,
                "Server is already configured: root has a password",
            );
        }
        Ok(false) => {}
        Err(response) => return *response,
    }
    let mut sql = format!(
        "CREATE USER {} WITH PASSWORD {} ROLE dba",
        literal(&request.username),
        literal(&request.password)
    );
    if let Some(email) = request.email.as_deref().filter(|e| !e.is_empty()) {
        sql.push_str(&format!(" EMAIL {}", literal(email)));
    }
    sql.push_str(&format!(
        "; ALTER USER 'root' SET PASSWORD {}",
        literal(&request.root_password)
    ));
    let mut ctx = ExecutionContext::new(
        kalamdb_commons::UserId::new(ROOT_USER),
        ROOT_USER,
        Role::System,
    )
    .with_request(state.request_id(), Some(client.ip()));
    if let Err(e) = state.app.execute(&mut ctx, &sql, &[]).await {
        let code = match e.error.error_code() {
            ErrorCode::AlreadyExists => ErrorCode::AlreadyExists,
            ErrorCode::InternalError => return internal(&state, e),
            _ => ErrorCode::InvalidParameter,
        };
        return fail(code, e.error.to_string());
    }
    match record_of(&state, &request.username) {
        Ok(record) => Json(json!({
            "user": UserInfo::from(&record),
            "message": format!(
                "Server setup complete: root's password is set and dba user '{}' was created. Log in to continue.",
                record.username
            ),
        }))
        .into_response(),
        Err(response) => *response,
    }
}
