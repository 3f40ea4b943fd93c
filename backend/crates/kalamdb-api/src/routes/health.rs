//! `GET /health`, `GET /v1/api/healthcheck`, and the JSON 404.

use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

pub async fn health() -> impl IntoResponse {
    Json(json!({
        "status": "healthy",
        "version": env!("CARGO_PKG_VERSION"),
        "api_version": "v1",
        "build_date": env!("KALAMDB_BUILD_DATE"),
    }))
}

pub async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(json!({
            "status": "error",
            "results": [],
            "took": 0.0,
            "error": {"code": "NOT_FOUND", "message": "No such route", "details": null}
        })),
    )
}
