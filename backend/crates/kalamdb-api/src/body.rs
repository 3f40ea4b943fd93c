//! Every request body is read in full here, once, before any route sees it:
//! bounded in size (a declared length over the limit is refused before a
//! byte is read; a chunked body as soon as it passes the limit) and in time.
//! A route then never leaves a body half-read, so a keep-alive connection
//! stays usable after every reply; when the server does give up on a body,
//! the reply says `Connection: close` and the connection is closed.

use crate::ApiState;
use crate::response::error;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use kalamdb_commons::ErrorCode;
use std::sync::Arc;

pub async fn read_whole_body(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.limits.max_request_bytes;
    let too_large = || {
        closing(error(
            ErrorCode::RequestTooLarge,
            format!("Request body exceeds the limit of {limit} bytes"),
            "-",
            0.0,
        ))
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(
        state.limits.body_read_timeout,
        Limited::new(body, limit).collect(),
    )
    .await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Ok(Err(e)) => {
            tracing::debug!("cannot read a request body: {e}");
            return closing(error(
                ErrorCode::InvalidParameter,
                "The request body could not be read".into(),
                "-",
                0.0,
            ));
        }
        Err(_) => {
            return closing(error(
                ErrorCode::RequestTimeout,
                format!(
                    "The request body did not arrive within {} s",
                    state.limits.body_read_timeout.as_secs_f64()
                ),
                "-",
                0.0,
            ));
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Marks a reply as the last on its connection (the rest of the request
/// body was not read, so the connection cannot carry another request).
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
