//! Request id & access log phase (outermost): gives every request an id,
//! returns it the way AWS does, and writes one access-log line per request.
//! Also sets up `tracing` for the binary.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::app::GatewayState;
use crate::config::Flavor;
use crate::error::ErrorDetail;
use crate::routing::RouteContext;

/// Facts about a request known before any phase runs.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub request_id: String,
    pub received_at: SystemTime,
    pub started: Instant,
    pub source_ip: IpAddr,
}

fn acceptable_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    .then(|| s.to_string())
}

pub async fn request_id_and_log(
    State(state): State<Arc<GatewayState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let request_id = req
        .headers()
        .get("x-amzn-requestid")
        .and_then(acceptable_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let source_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let info = RequestInfo {
        request_id: request_id.clone(),
        received_at: SystemTime::now(),
        started: Instant::now(),
        source_ip,
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    req.extensions_mut().insert(info.clone());
    let mut res = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        let name = match state.config.gateway.flavor {
            Flavor::Rest => "x-amzn-requestid",
            Flavor::Http => "apigw-requestid",
        };
        res.headers_mut().insert(name, v);
    }
    let route_key = res
        .extensions()
        .get::<RouteContext>()
        .map(|c| c.route.route_key.clone())
        .unwrap_or_else(|| "-".to_string());
    let error = res
        .extensions()
        .get::<ErrorDetail>()
        .map(|e| e.0.to_string());
    tracing::info!(
        target: "lambdagate::access",
        request_id = %request_id,
        source_ip = %source_ip,
        method = %method,
        path = %path,
        route = %route_key,
        status = res.status().as_u16(),
        latency_us = info.started.elapsed().as_micros() as u64,
        error = error.as_deref().unwrap_or(""),
    );
    res
}

/// Sets up logging for the binary: `RUST_LOG`-style filtering, text or JSON.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
