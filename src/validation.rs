//! Request validation phase (after auth and throttling, before the cache and
//! any backend call): API Gateway's request validators. A route with
//! `request = {...}` refuses requests missing a required query string or
//! header parameter (`400 Missing required request parameters: [...]`) and
//! bodies that do not match its JSON Schema (`400 Invalid request body`, with
//! the first problems listed). Schemas were compiled when the config loaded.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use crate::config::{JsonSchema, RouteRequest};
use crate::error::GatewayError;
use crate::event::parse_query;
use crate::limits::collect_body;
use crate::pipeline::phase::{Next, Phase, PhaseFuture, answer};
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

/// Request validation phase for one route: its `request = {...}` rules.
pub struct Validate {
    pub rules: RouteRequest,
    /// `[gateway.limits] max_body`, for reading a body to check.
    pub max_body: usize,
}

impl Phase for Validate {
    fn call(self: Arc<Self>, req: Request, next: Next) -> PhaseFuture {
        let missing = missing_parameters(
            &self.rules,
            req.uri().query().unwrap_or_default(),
            req.headers(),
        );
        if !missing.is_empty() {
            return answer(refusal(
                GatewayError::InvalidRequest(format!(
                    "Missing required request parameters: [{}]",
                    missing.join(", ")
                )),
                req,
            ));
        }
        if self.rules.body_schema.is_none() {
            return next.run(req);
        }
        Box::pin(async move {
            let Some(schema) = &self.rules.body_schema else {
                return next.run(req).await;
            };
            let (mut parts, body) = req.into_parts();
            let body = match collect_body(body, self.max_body).await {
                Ok(b) => b,
                Err(e) => return refused(e, &mut parts.extensions),
            };
            let errors = body_errors(schema, &body);
            if !errors.is_empty() {
                return refused(GatewayError::InvalidBody(errors), &mut parts.extensions);
            }
            next.run(Request::from_parts(parts, Body::from(body))).await
        })
    }
}

/// A 400 (or 413); the request's route context moves to the response for
/// the access log.
fn refusal(e: GatewayError, mut req: Request) -> Response {
    refused(e, req.extensions_mut())
}

fn refused(e: GatewayError, extensions: &mut axum::http::Extensions) -> Response {
    let mut r = e.into_response();
    if let Some(ctx) = extensions.remove::<RouteContext>() {
        r.extensions_mut().insert(ctx);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{config_in, function, routed, text};
    use axum::http::StatusCode;

    const SCHEMA: &str = r#"{"type": "object", "required": ["name"],
        "properties": {"name": {"type": "string", "minLength": 1}}}"#;

    /// The phase of a route requiring `?lang`, `X-Tenant` and a body
    /// matching [`SCHEMA`], and that route's config.
    fn phase() -> (Arc<Validate>, Arc<crate::config::Config>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("item.json"), SCHEMA).unwrap();
        let config = config_in(
            dir.path(),
            r#"
[[routes]]
method = "POST"
path = "/items"
mock = { status = 200 }
request = { body_schema = "item.json", required_query = ["lang"], required_headers = ["X-Tenant"] }
"#,
        );
        let rules = config.routes[0].request.clone().unwrap();
        (
            Arc::new(Validate {
                rules,
                max_body: 64,
            }),
            config,
        )
    }

    fn post(uri: &str, tenant: bool, body: &'static str) -> Request {
        let mut b = Request::post(uri);
        if tenant {
            b = b.header("x-tenant", "t1");
        }
        b.body(Body::from(body)).unwrap()
    }

    #[tokio::test]
    async fn a_valid_request_goes_on_with_its_body() {
        let (phase, config) = phase();
        let f = function(StatusCode::OK, "{}");
        let req = routed(
            &config,
            0,
            &[],
            post("/items?lang=en", true, r#"{"name":"a"}"#),
        );
        let res = phase.call(req, f.next.clone()).await;
        assert_eq!(res.status(), 200);
        assert_eq!(f.calls(), 1);
    }

    #[tokio::test]
    async fn missing_parameters_are_named_and_never_reach_the_function() {
        let (phase, config) = phase();
        let f = function(StatusCode::OK, "{}");
        let req = routed(&config, 0, &[], post("/items", false, r#"{"name":"a"}"#));
        let res = phase.call(req, f.next.clone()).await;
        assert_eq!(res.status(), 400);
        // The refusal carries the route for the access log.
        assert!(res.extensions().get::<RouteContext>().is_some());
        assert!(
            text(res)
                .await
                .contains("Missing required request parameters: [lang, X-Tenant]")
        );
        assert_eq!(f.calls(), 0);
    }

    #[tokio::test]
    async fn bodies_against_the_schema_and_the_size_limit() {
        let (phase, config) = phase();
        let f = function(StatusCode::OK, "{}");
        let bad = routed(
            &config,
            0,
            &[],
            post("/items?lang=en", true, r#"{"name":""}"#),
        );
        let res = phase.clone().call(bad, f.next.clone()).await;
        assert_eq!(res.status(), 400);
        assert!(text(res).await.contains("Invalid request body"));
        let not_json = post("/items?lang=en", true, "name=a");
        let res = phase.clone().call(not_json, f.next.clone()).await;
        assert_eq!(res.status(), 400);
        let big = post(
            "/items?lang=en",
            true,
            r#"{"name":"0123456789012345678901234567890123456789012345678901234567890123456789"}"#,
        );
        let res = phase.call(big, f.next.clone()).await;
        assert_eq!(res.status(), 413);
        assert_eq!(f.calls(), 0);
    }
}
