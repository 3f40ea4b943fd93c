//! `GET /health`, `GET /v1/api/healthcheck`, and the JSON 404.

use crate::response::error;
use axum::Json;
use axum::response::{IntoResponse, Response};
use kalamdb_commons::ErrorCode;
use serde_json::json;

pub async fn health() -> impl IntoResponse {
    Json(json!({
        "status": "healthy",
        "version": env!("CARGO_PKG_VERSION"),
        "api_version": "v1",
        "build_date": env!("KALAMDB_BUILD_DATE"),
    }))
}

pub async fn not_found() -> Response {
    error(ErrorCode::NotFound, "No such route".into(), "-", 0.0)
}
