//! Limits phase: refuses requests whose line + headers or declared body
//! exceed the configured limits before anything buffers them, and caps the
//! body stream so a lying or absent `Content-Length` cannot get past.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::GatewayState;
use crate::error::GatewayError;

/// Bytes of the request line and headers, counted as they appear on the wire.
pub fn header_bytes(req: &Request) -> usize {
    let line = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + 12;
    line + req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
}

pub async fn enforce(State(state): State<Arc<GatewayState>>, req: Request, next: Next) -> Response {
    let limits = state.config.gateway.limits;
    if header_bytes(&req) > limits.max_header_bytes {
        return GatewayError::HeadersTooLarge.into_response();
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return GatewayError::PayloadTooLarge.into_response();
    }
    let (parts, body) = req.into_parts();
    let body = Body::new(http_body_util::Limited::new(body, limits.max_body));
    next.run(Request::from_parts(parts, body)).await
}

/// Reads a (limited) body whole; an overflow is a 413.
pub async fn collect_body(body: Body, max: usize) -> Result<bytes::Bytes, GatewayError> {
    match axum::body::to_bytes(body, max).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if s.is::<http_body_util::LengthLimitError>() {
                    return Err(GatewayError::PayloadTooLarge);
                }
                source = s.source();
            }
            if e.to_string().contains("length limit") {
                return Err(GatewayError::PayloadTooLarge);
            }
            Err(GatewayError::BadRequest(
                "could not read the request body".into(),
            ))
        }
    }
}
