//! The HTTP API (axum): `POST /v1/api/sql`, `/v1/api/auth/*` and the health
//! routes, exactly as the v1 wire protocol describes them.

pub mod body;
pub mod response;
pub mod routes;
pub mod server;
pub mod telemetry;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use kalamdb_auth::Authenticator;
use kalamdb_core::AppContext;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tracing::Instrument;

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
    /// The Prometheus recorder behind `/metrics` (None: metrics are off).
    pub metrics: Option<Arc<telemetry::Metrics>>,
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
            metrics: None,
            request_counter: AtomicU64::new(0),
            setup_lock: tokio::sync::Mutex::new(()),
            request_prefix: rand::random(),
        }
    }

    /// Serves `/metrics` from `metrics` (and records HTTP metrics).
    pub fn with_metrics(mut self, metrics: Arc<telemetry::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The id of the request being served (the one its log lines, error
    /// reply and `x-request-id` header carry), or a new one outside a request.
    pub fn request_id(&self) -> String {
        current_request_id().unwrap_or_else(|| self.next_request_id())
    }

    /// A short id unique to this process run, for logs and error replies.
    pub fn next_request_id(&self) -> String {
        let n = self
            .request_counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{:08x}-{n}", self.request_prefix)
    }
}

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// The id of the request this task is serving.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.to_string()).ok()
}

/// Every route's label in metrics (`unmatched` for the 404 fallback).
const ROUTES: [&str; 11] = [
    "/v1/api/sql",
    "/v1/api/auth/login",
    "/v1/api/auth/refresh",
    "/v1/api/auth/logout",
    "/v1/api/auth/me",
    "/v1/api/auth/setup",
    "/v1/api/auth/status",
    "/v1/ws",
    "/health",
    "/v1/api/healthcheck",
    "/metrics",
];

/// The outermost layer: gives the request its id (a task-local, the span
/// `request{id=…}` every log line inside carries, the `x-request-id`
/// header) and counts and times it by route, method and status.
async fn observe(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let id: Arc<str> = state.next_request_id().into();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| ROUTES.iter().copied().find(|r| *r == m.as_str()))
        .unwrap_or("unmatched");
    let method = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        _ => "other",
    };
    let span = tracing::info_span!("request", id = %id);
    let mut response = REQUEST_ID
        .scope(Arc::clone(&id), next.run(request).instrument(span))
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    if state.metrics.is_some() {
        use kalamdb_commons::metric_handles::{count, observe, status_label};
        let status = status_label(response.status().as_u16());
        count(
            "kalamdb_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
            1,
        );
        observe(
            "kalamdb_http_request_duration_seconds",
            &[("route", route)],
            start.elapsed().as_secs_f64(),
        );
    }
    response
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
        .route("/metrics", get(telemetry::scrape))
        .fallback(routes::health::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            body::read_whole_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            observe,
        ))
        .with_state(state)
}
