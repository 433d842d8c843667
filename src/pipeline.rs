//! THE request pipeline: every request passes these phases in this order,
//! top to bottom (DESIGN.md). Each phase is one function in its own module;
//! each may answer early with a response instead of calling the next.

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::any_service;
use tower::ServiceBuilder;

use crate::app::GatewayState;

pub fn build(state: Arc<GatewayState>) -> Router {
    let stack = ServiceBuilder::new()
        // Outermost: every response, refusals included, carries a request id
        // and gets an access-log line.
        .layer(from_fn_with_state(
            state.clone(),
            crate::telemetry::request_id_and_log,
        ))
        // Size limits before anything reads headers into events or buffers
        // the body.
        .layer(from_fn_with_state(state.clone(), crate::limits::enforce))
        // The gateway's own OpenAPI document and docs page, answered before
        // route match so no user route (not even `{proxy+}`) shadows them.
        .layer(from_fn_with_state(
            state.clone(),
            crate::openapi::serve_spec,
        ))
        // Route match: later phases read the route's settings from the
        // `RouteContext` it stores; unknown routes stop here (404/403), so a
        // bad path never turns into a 401.
        .layer(from_fn_with_state(
            state.clone(),
            crate::routing::route_match,
        ))
        // CORS preflight: answered before auth, as API Gateway does. (issue 7)
        // Auth: api key | jwt | sigv4 | lambda authorizer. (issue 5)
        // Identity for the access log: right after auth, so every later
        // answer (throttled, cached, integrated) is logged with key id and
        // principal.
        .layer(axum::middleware::from_fn(crate::telemetry::note_identity))
        // Throttle & quota: route, key/plan, stage, global. (issue 6)
        // Request validation: JSON Schema, required parameters. (issue 7)
        // Cache lookup and store, after auth so no cached answer leaks. (issue 7)
        // Integration: event or forwarded request → backend → response mapping.
        .service(axum::routing::any(crate::integration::integrate).with_state(state));
    Router::new().fallback_service(any_service(stack))
}
