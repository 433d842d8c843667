//! Request validation phase (after auth and throttling, before the cache and
//! any backend call): API Gateway's request validators. A route with
//! `request = {...}` refuses requests missing a required query string or
//! header parameter (`400 Missing required request parameters: [...]`) and
//! bodies that do not match its JSON Schema (`400 Invalid request body`, with
//! the first problems listed). Schemas were compiled when the config loaded.

use std::sync::Arc;

use crate::pipeline::Next;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use crate::app::GatewayState;
use crate::config::{JsonSchema, RouteRequest};
use crate::error::GatewayError;
use crate::event::parse_query;
use crate::limits::collect_body;
use crate::routing::RouteContext;

/// How many schema violations a 400 lists.
const MAX_LISTED_ERRORS: usize = 5;

/// Required parameters the request lacks, as API Gateway names them.
pub fn missing_parameters(
    rules: &RouteRequest,
    raw_query: &str,
    headers: &axum::http::HeaderMap,
) -> Vec<String> {
    let mut missing = Vec::new();
    if !rules.required_query.is_empty() {
        let query = parse_query(raw_query);
        for q in &rules.required_query {
            if !query.iter().any(|(k, _)| k == q) {
                missing.push(q.clone());
            }
        }
    }
    for h in &rules.required_headers {
        if !headers.contains_key(h.to_ascii_lowercase().as_str()) {
            missing.push(h.clone());
        }
    }
    missing
}

/// Problems with a body under a schema; empty when it is valid.
pub fn body_errors(schema: &JsonSchema, body: &[u8]) -> Vec<String> {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) if body.is_empty() => {
            return vec![format!("the body is empty, expected JSON ({e})")];
        }
        Err(e) => return vec![format!("the body is not JSON: {e}")],
    };
    schema
        .validator
        .iter_errors(&value)
        .take(MAX_LISTED_ERRORS)
        .map(|e| {
            let at = e.instance_path().as_str().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect()
}

/// Request validation phase.
pub async fn validate(
    State(state): State<Arc<GatewayState>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(ctx) = req
        .extensions()
        .get::<RouteContext>()
        .filter(|c| c.route.config.request.is_some())
        .cloned()
    else {
        return next.run(req).await;
    };
    let Some(rules) = &ctx.route.config.request else {
        return next.run(req).await;
    };
    let refuse = |e: GatewayError| {
        let mut r = e.into_response();
        r.extensions_mut().insert(ctx.clone());
        r
    };
    let missing = missing_parameters(rules, req.uri().query().unwrap_or_default(), req.headers());
    if !missing.is_empty() {
        return refuse(GatewayError::InvalidRequest(format!(
            "Missing required request parameters: [{}]",
            missing.join(", ")
        )));
    }
    let Some(schema) = &rules.body_schema else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let body = match collect_body(body, state.config.gateway.limits.max_body).await {
        Ok(b) => b,
        Err(e) => return refuse(e),
    };
    let errors = body_errors(schema, &body);
    if !errors.is_empty() {
        return refuse(GatewayError::InvalidBody(errors));
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}
