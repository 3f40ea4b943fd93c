//! The JSON shapes of `/v1/api/sql` replies, and the single mapping from an
//! error to its (code, HTTP status).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kalamdb_commons::error_code::{ErrorCode, HasErrorCode};
use kalamdb_core::StatementResult;
use kalamdb_core::rows::json::{ColumnInfo, append_rows, column_infos};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Serialize)]
pub struct QueryResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<Vec<ColumnInfo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<Vec<Value>>>,
    pub row_count: usize,
    pub message: Option<String>,
    pub as_user: String,
}

impl QueryResult {
    pub fn from_statement(result: StatementResult, as_user: &str) -> Self {
        let (schema, rows) = match &result.schema {
            Some(schema) => {
                let mut rows = Vec::with_capacity(result.row_count);
                for batch in &result.batches {
                    append_rows(batch, &mut rows);
                }
                (Some(column_infos(schema)), Some(rows))
            }
            None => (None, None),
        };
        Self {
            schema,
            rows,
            row_count: result.row_count,
            message: result.message,
            as_user: result.as_user.unwrap_or_else(|| as_user.to_string()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

#[derive(Debug, Serialize)]
pub struct SqlResponse {
    pub status: &'static str,
    pub results: Vec<QueryResult>,
    pub took: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// Milliseconds, rounded to microseconds.
pub fn took_ms(start: std::time::Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0
}

pub fn success(results: Vec<QueryResult>, took: f64) -> Response {
    Json(SqlResponse {
        status: "success",
        results,
        took,
        error: None,
    })
    .into_response()
}

/// An error reply. Internal errors never carry their detail (paths, keys):
/// the detail is logged under the request id, which the client gets instead.
/// Every error reply is counted by its code.
pub fn error(code: ErrorCode, message: String, request_id: &str, took: f64) -> Response {
    metrics::counter!("kalamdb_errors_total", "code" => code.as_str()).increment(1);
    let current;
    let request_id = if request_id == "-" {
        current = crate::current_request_id();
        current.as_deref().unwrap_or("-")
    } else {
        request_id
    };
    let message = if code == ErrorCode::InternalError {
        tracing::error!(request_id, detail = %message, "internal error");
        format!("Internal error (request id {request_id})")
    } else {
        message
    };
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(SqlResponse {
            status: "error",
            results: Vec::new(),
            took,
            error: Some(ErrorBody {
                code: code.as_str(),
                message,
                details: None,
            }),
        }),
    )
        .into_response()
}

/// A request body that must be one JSON object of shape `T` (serde would
/// also take a JSON array for a struct; requests never are arrays).
pub fn parse_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("Request body must be a JSON object".into());
    }
    serde_json::from_slice(body).map_err(|e| format!("Request body is not valid: {e}"))
}

pub fn error_from<E: HasErrorCode + std::fmt::Display>(
    e: &E,
    request_id: &str,
    took: f64,
) -> Response {
    error(e.error_code(), e.to_string(), request_id, took)
}
