//! Operations routes on the admin listener, reachable without the admin
//! token (scrapers and orchestrator probes carry none; the admin listener
//! is meant to stay private):
//!
//! - `GET /metrics` — Prometheus text format (`src/metrics.rs` names them);
//! - `GET /healthz` — liveness: the process answers;
//! - `GET /readyz` — readiness: `200` when a config is loaded and built
//!   AND the store answers (when this config uses one) AND, with
//!   `[cluster] fail_closed = true`, Redis answers; else `503` with every
//!   failing check and its reason in JSON. Redis down with fail-open (the
//!   default) is reported (`"cluster": {"status": "unreachable"}`) but
//!   stays ready: the node still serves correctly on its local limiters, and
//!   taking every node out of rotation because the shared limiter is down
//!   would turn a degraded throttle into an outage, the opposite of what
//!   fail-open asks for.

use std::time::Duration;

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

/// How long `/readyz` waits for the store before calling it unreachable
/// (probes usually time out after a few seconds).
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `/readyz` waits for Redis.
const REDIS_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// One readiness check's result, as reported in the JSON body.
fn check(status: &str, error: Option<String>) -> serde_json::Value {
    match error {
        Some(e) => serde_json::json!({ "status": status, "error": e }),
        None => serde_json::json!({ "status": status }),
    }
}

/// `Ok(())` or why the store cannot be used now.
async fn probe_store(store: &crate::store::Store) -> Result<(), String> {
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {}s",
            STORE_PROBE_TIMEOUT.as_secs()
        )),
    }
}

/// `Ok(())` if Redis at `url` answers PING. A fresh connection per probe:
/// it measures reachability now, not a pooled connection's past.
async fn probe_redis(url: &str) -> Result<(), String> {
    let ping = async {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(REDIS_PROBE_TIMEOUT, ping).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {}s",
            REDIS_PROBE_TIMEOUT.as_secs()
        )),
    }
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let g = &state.gateway;
    let store = g.api_keys.as_ref().map(|k| k.store().clone());
    let cluster = g.config.cluster.as_ref();
    let (store_result, redis_result) = tokio::join!(
        async {
            match &store {
                Some(s) => Some(probe_store(s).await),
                None => None,
            }
        },
        async {
            match cluster {
                Some(c) => Some(probe_redis(&c.redis_url).await),
                None => None,
            }
        }
    );
    let mut reasons = Vec::new();
    let store_check = match (&store, store_result) {
        (Some(s), Some(Ok(()))) => {
            serde_json::json!({ "status": "ok", "kind": s.kind() })
        }
        (Some(s), Some(Err(e))) => {
            reasons.push(format!("store ({}) unreachable: {e}", s.kind()));
            serde_json::json!({ "status": "unreachable", "kind": s.kind(), "error": e })
        }
        _ => check("unused", None),
    };
    let cluster_check = match (cluster, redis_result) {
        (Some(c), Some(Ok(()))) => {
            serde_json::json!({ "status": "ok", "fail_closed": c.fail_closed })
        }
        (Some(c), Some(Err(e))) => {
            if c.fail_closed {
                reasons.push(format!(
                    "cluster Redis unreachable with fail_closed = true: {e}"
                ));
            } else {
                tracing::warn!(
                    error = %e,
                    "/readyz: cluster Redis unreachable; ready anyway (fail-open: local limiters)"
                );
            }
            serde_json::json!({
                "status": "unreachable",
                "fail_closed": c.fail_closed,
                "error": e,
            })
        }
        _ => check("unused", None),
    };
    let ready = reasons.is_empty();
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "config": g.config.source.display().to_string(),
        "stage": g.stage.name,
        "routes": g.routes.len(),
        "checks": {
            "config": check("ok", None),
            "store": store_check,
            "cluster": cluster_check,
        },
        "reasons": reasons,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}
