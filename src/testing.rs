//! Unit-test helpers for phases: a config parsed from text, a route's
//! context as route match would store it, and a terminal `Next` standing in
//! for the integration. No store, Redis or backend.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;

use crate::backend::mock::MockResponse;
use crate::config::{Config, IntegrationConfig};
use crate::integration::RouteIntegration;
use crate::pipeline::phase::{Next, PhaseFuture, answer};
use crate::routing::{RouteContext, RouteRuntime};

/// A routes file from text, checked as at load; relative paths are read
/// from `dir`.
pub(crate) fn config_in(dir: &Path, toml: &str) -> Arc<Config> {
    match crate::config::parse(&dir.join("routes.toml"), toml) {
        Ok(c) => c,
        Err(e) => panic!("test config does not load: {e}"),
    }
}

#[allow(dead_code)]
pub(crate) fn config(toml: &str) -> Arc<Config> {
    config_in(Path::new("."), toml)
}

/// Route `index` of `config`, resolved as the gateway would (a mock route).
pub(crate) fn route(config: &Config, index: usize) -> Arc<RouteRuntime> {
    let rc = config.routes[index].clone();
    let integration = match &rc.integration {
        IntegrationConfig::Mock(m) => RouteIntegration::Mock(MockResponse::new(m).unwrap()),
        _ => panic!("test routes are mock routes"),
    };
    let route_key = rc.route_key();
    Arc::new(RouteRuntime {
        metrics: crate::metrics::RouteMetrics::new(&route_key),
        route_key,
        config: rc,
        integration,
        auth: None,
        timeout: Duration::from_secs(30),
        binary_media_types: Vec::new(),
    })
}

/// A request for route `index` of `config`, its context stored as route
/// match stores it, with these path parameters.
pub(crate) fn routed(
    config: &Config,
    index: usize,
    params: &[(&str, &str)],
    req: Request,
) -> Request {
    let mut req = req;
    let path = req.uri().path().to_string();
    req.extensions_mut().insert(RouteContext {
        route: route(config, index),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        path,
        stage_prefixed: false,
    });
    req
}

/// The integration's stand-in: answers 200 with `body` as JSON, and counts
/// the requests that reached it.
pub(crate) struct Function {
    pub calls: Arc<AtomicUsize>,
    pub next: Next,
}

pub(crate) fn function(status: StatusCode, body: &'static str) -> Function {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let next = Next::terminal(move |_req: Request| -> PhaseFuture {
        counted.fetch_add(1, Ordering::SeqCst);
        let mut res = Response::new(Body::from(body));
        *res.status_mut() = status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        answer(res)
    });
    Function { calls, next }
}

impl Function {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// A response's body as text.
pub(crate) async fn text(res: Response) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}
