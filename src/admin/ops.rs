//! Operations routes on the admin listener, reachable without the admin
//! token (scrapers and orchestrator probes carry none; the admin listener
//! is meant to stay private):
//!
//! - `GET /metrics` — Prometheus text format (`src/metrics.rs` names them);
//! - `GET /healthz` — liveness: the process answers;
//! - `GET /readyz` — readiness: a config is loaded and built (the store's
//!   reachability joins here once the store exists).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AdminState;

pub fn router() -> Router<AdminState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn metrics() -> Response {
    match crate::metrics::render() {
        Some(text) => {
            let mut res = text.into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            res
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "message": "another metrics recorder is installed in this process"
            })),
        )
            .into_response(),
    }
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let g = &state.gateway;
    axum::Json(serde_json::json!({
        "status": "ready",
        "config": g.config.source.display().to_string(),
        "stage": g.stage.name,
        "routes": g.routes.len(),
    }))
    .into_response()
}
