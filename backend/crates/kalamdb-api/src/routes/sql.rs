//! `POST /v1/api/sql`: authenticate, decode, execute, encode. Every failure
//! becomes a JSON error with a stable code; a panic inside execution becomes
//! INTERNAL_ERROR and the server keeps serving.

use crate::ApiState;
use crate::response::{QueryResult, error, error_from, parse_object, success, took_ms};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::FutureExt;
use kalamdb_commons::ErrorCode;
use kalamdb_commons::error_code::HasErrorCode;
use kalamdb_commons::ids::validate_identifier;
use kalamdb_core::ExecutionContext;
use serde::Deserialize;
use serde_json::Value;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Deserialize)]
struct SqlRequest {
    sql: String,
    #[serde(default)]
    params: Option<Vec<Value>>,
    #[serde(default)]
    namespace_id: Option<String>,
}

pub async fn execute_sql(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let start = Instant::now();
    let request_id = state.request_id();
    handle(state, client, headers, body, start, request_id).await
}

async fn handle(
    state: Arc<ApiState>,
    client: SocketAddr,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    start: Instant,
    request_id: String,
) -> Response {
    let fail = |code: ErrorCode, message: String| error(code, message, &request_id, took_ms(start));

    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return fail(
                ErrorCode::RequestTooLarge,
                format!(
                    "Request body exceeds the limit of {} bytes",
                    state.limits.max_request_bytes
                ),
            );
        }
        Err(rejection) => return fail(ErrorCode::InvalidParameter, rejection.body_text()),
    };

    let credentials = super::auth::credentials(&headers);
    let user = match state
        .auth
        .authenticate(credentials.as_deref(), Some(client.ip()))
        .await
    {
        Ok(u) => u,
        Err(e) => {
            tracing::info!(request_id, client = %client, "authentication failed: {e}");
            return error_from(&e, &request_id, took_ms(start));
        }
    };

    if body.is_empty() {
        return fail(
            ErrorCode::InvalidParameter,
            r#"Request body is empty: send {"sql": "..."}"#.into(),
        );
    }
    let request: SqlRequest = match parse_object(&body) {
        Ok(r) => r,
        Err(e) => {
            return fail(
                ErrorCode::InvalidParameter,
                format!(r#"{e}; send {{"sql": "..."}}"#),
            );
        }
    };
    if request.sql.trim().is_empty() {
        return fail(ErrorCode::EmptySql, "SQL is empty".into());
    }
    if request.sql.len() > state.limits.max_sql_length {
        return fail(
            ErrorCode::InvalidSql,
            format!(
                "SQL is {} bytes; the limit is {} bytes",
                request.sql.len(),
                state.limits.max_sql_length
            ),
        );
    }
    let mut ctx = ExecutionContext::new(user.user_id, user.username, user.role)
        .with_request(request_id.clone(), Some(client.ip()));
    if let Some(ns) = request.namespace_id.as_deref().filter(|n| !n.is_empty()) {
        if let Err(m) = validate_identifier("namespace", ns) {
            return fail(ErrorCode::InvalidParameter, m);
        }
        ctx = ctx.with_namespace(ns);
    }
    let params = request.params.unwrap_or_default();

    let app = Arc::clone(&state.app);
    let run = AssertUnwindSafe(async { app.execute(&mut ctx, &request.sql, &params).await })
        .catch_unwind()
        .await;
    let took = took_ms(start);
    match run {
        Ok(Ok(results)) => {
            let results = results
                .into_iter()
                .map(|r| QueryResult::from_statement(r, &ctx.username))
                .collect();
            success(results, took)
        }
        Ok(Err(e)) => {
            tracing::debug!(request_id, "statement failed: {e}");
            error(e.error.error_code(), e.to_string(), &request_id, took)
        }
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            error(
                ErrorCode::InternalError,
                format!("panic: {detail}"),
                &request_id,
                took,
            )
        }
    }
}
