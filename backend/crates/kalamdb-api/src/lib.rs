//! The HTTP API (axum): `POST /v1/api/sql`, `/v1/api/auth/*` and the health
//! routes, exactly as the v1 wire protocol describes them.

pub mod body;
pub mod response;
pub mod routes;
pub mod server;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use kalamdb_auth::Authenticator;
use kalamdb_core::AppContext;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Limits applied to every request.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    pub max_request_bytes: usize,
    pub max_sql_length: usize,
    /// A request body must arrive in full within this long.
    pub body_read_timeout: Duration,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_request_bytes: 10 << 20,
            max_sql_length: 1 << 20,
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

pub struct ApiState {
    pub app: Arc<AppContext>,
    pub auth: Arc<Authenticator>,
    /// Live subscriptions (`/v1/ws`).
    pub live: Arc<kalamdb_live::LiveQueryManager>,
    pub ws: kalamdb_live::ConnectionConfig,
    pub limits: ApiLimits,
    request_counter: AtomicU64,
    /// First-run setup runs one at a time (check, then act).
    setup_lock: tokio::sync::Mutex<()>,
    request_prefix: u32,
}

impl ApiState {
    pub fn new(
        app: Arc<AppContext>,
        auth: Arc<Authenticator>,
        live: Arc<kalamdb_live::LiveQueryManager>,
        limits: ApiLimits,
        ws: kalamdb_live::ConnectionConfig,
    ) -> Self {
        Self {
            app,
            auth,
            live,
            ws,
            limits,
            request_counter: AtomicU64::new(0),
            setup_lock: tokio::sync::Mutex::new(()),
            request_prefix: rand::random(),
        }
    }

    /// A short id unique to this process run, for logs and error replies.
    pub fn next_request_id(&self) -> String {
        let n = self
            .request_counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{:08x}-{n}", self.request_prefix)
    }
}

pub fn router(state: Arc<ApiState>) -> Router {
    let body_limit = state.limits.max_request_bytes;
    Router::new()
        .route("/v1/api/sql", post(routes::sql::execute_sql))
        .route("/v1/api/auth/login", post(routes::auth::login))
        .route("/v1/api/auth/refresh", post(routes::auth::refresh))
        .route("/v1/api/auth/logout", post(routes::auth::logout))
        .route("/v1/api/auth/me", get(routes::auth::me))
        .route("/v1/api/auth/setup", post(routes::auth::setup))
        .route("/v1/api/auth/status", get(routes::auth::status))
        .route("/v1/ws", get(routes::ws::upgrade))
        .route("/health", get(routes::health::health))
        .route("/v1/api/healthcheck", get(routes::health::health))
        .fallback(routes::health::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            body::read_whole_body,
        ))
        .with_state(state)
}
