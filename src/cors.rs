//! CORS phase (right after route match, before auth): tower-http's
//! `CorsLayer` configured from `[cors]`. Preflight requests (`OPTIONS` with
//! `Origin` and `Access-Control-Request-Method`) are answered here for every
//! path a route serves, as API Gateway does, so they never need credentials;
//! other responses get the `Access-Control-*` headers. Plain `OPTIONS`
//! requests (not preflights) go on to their route.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};

use crate::config::CorsConfig;
use crate::pipeline::phase::{Next, Phase, PhaseFuture};

/// Builds the layer; `[cors]` was checked at load so nothing here can panic
/// in tower-http (no `*` with credentials).
pub fn layer(c: &CorsConfig) -> CorsLayer {
    let star = |v: &[String]| v.iter().any(|s| s == "*");
    let mut l = CorsLayer::new();
    l = if star(&c.allow_origins) {
        l.allow_origin(AllowOrigin::any())
    } else {
        l.allow_origin(AllowOrigin::list(
            c.allow_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        ))
    };
    l = if star(&c.allow_methods) {
        l.allow_methods(AllowMethods::any())
    } else {
        l.allow_methods(AllowMethods::list(
            c.allow_methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok()),
        ))
    };
    l = if star(&c.allow_headers) {
        l.allow_headers(AllowHeaders::any())
    } else {
        l.allow_headers(AllowHeaders::list(
            c.allow_headers
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
        ))
    };
    l = if star(&c.expose_headers) {
        l.expose_headers(ExposeHeaders::any())
    } else {
        l.expose_headers(ExposeHeaders::list(
            c.expose_headers
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
        ))
    };
    if c.allow_credentials {
        l = l.allow_credentials(true);
    }
    if let Some(age) = c.max_age {
        l = l.max_age(age);
    }
    l
}

/// A CORS preflight request.
pub fn is_preflight(req: &Request) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The method a preflight asks about.
pub fn requested_method(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
}

/// CORS phase: `[cors]`, ready to wrap the rest of the pipeline.
pub struct Cors {
    layer: CorsLayer,
}

impl Cors {
    pub fn new(c: &CorsConfig) -> Self {
        Cors { layer: layer(c) }
    }
}

impl Phase for Cors {
    fn call(self: Arc<Self>, req: Request, next: Next) -> PhaseFuture {
        // Plain `OPTIONS` (not a preflight) goes on to its route untouched.
        if req.method() == Method::OPTIONS && !is_preflight(&req) {
            return next.run(req);
        }
        Box::pin(async move {
            match self.layer.layer(next).oneshot(req).await {
                Ok(res) => res,
                Err(never) => match never {},
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{config, function};
    use axum::body::Body;
    use axum::http::StatusCode;

    fn phase() -> Arc<Cors> {
        let config = config(
            r#"
[cors]
allow_origins = ["https://app.example"]
allow_methods = ["GET", "POST"]
allow_headers = ["content-type"]
max_age = "600s"
"#,
        );
        Arc::new(Cors::new(config.cors.as_ref().unwrap()))
    }

    #[tokio::test]
    async fn a_preflight_is_answered_here() {
        let f = function(StatusCode::OK, "{}");
        let req = Request::options("/items")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .body(Body::empty())
            .unwrap();
        let res = phase().call(req, f.next.clone()).await;
        assert!(res.status().is_success());
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            "https://app.example"
        );
        assert!(
            res.headers()["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
        assert_eq!(res.headers()["access-control-max-age"], "600");
        assert_eq!(f.calls(), 0);
    }

    #[tokio::test]
    async fn other_requests_go_on_and_answers_get_the_headers() {
        let f = function(StatusCode::OK, "{}");
        let get = Request::get("/items")
            .header("origin", "https://app.example")
            .body(Body::empty())
            .unwrap();
        let res = phase().call(get, f.next.clone()).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            "https://app.example"
        );
        // A plain OPTIONS (no preflight headers) is the route's to answer.
        let options = Request::options("/items").body(Body::empty()).unwrap();
        let res = phase().call(options, f.next.clone()).await;
        assert_eq!(res.status(), 200);
        assert!(!res.headers().contains_key("access-control-allow-origin"));
        assert_eq!(f.calls(), 2);
    }
}
