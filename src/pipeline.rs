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
        // CORS: preflights answered before auth, as API Gateway does (route
        // match lets a preflight for a served path through unmatched).
        .layer(from_fn_with_state(state.clone(), crate::cors::cors))
        // Auth: jwt | sigv4 | lambda authorizer (api keys: issue 6). After
        // route match, so an unknown path stays 404/403 and never becomes a
        // 401; before throttling and caching, so refusals cost no quota and no
        // cached answer leaks to an unauthenticated caller.
        .layer(from_fn_with_state(state.clone(), crate::auth::authenticate))
        // API key check: last step of auth, as in API Gateway (a Lambda
        // authorizer may supply the key); it finds the key's usage plan.
        .layer(from_fn_with_state(
            state.clone(),
            crate::auth::api_key::require_key,
        ))
        // Identity for the access log: right after auth, so every later
        // answer (throttled, cached, integrated) is logged with key id and
        // principal.
        .layer(axum::middleware::from_fn(crate::telemetry::note_identity))
        // Throttle & quota: key/plan, route, stage, global; needs the plan
        // found above, and refuses before any validation, cache or backend work.
        .layer(from_fn_with_state(state.clone(), crate::throttle::enforce))
        // Request validation: refuses bad input before any cache or backend work.
        .layer(from_fn_with_state(
            state.clone(),
            crate::validation::validate,
        ))
        // Cache lookup and store: after auth so no cached answer leaks to a
        // refused caller; around response mapping so renderings are cached.
        .layer(from_fn_with_state(state.clone(), crate::cache::lookup))
        // Response mapping: templates and content negotiation on the
        // integration's answer.
        .layer(from_fn_with_state(state.clone(), crate::transform::render))
        // Integration: event or forwarded request → backend → response mapping.
        // A plain service_fn rather than a MethodRouter: every phase above
        // clones its inner stack per request, and a MethodRouter is costly to
        // clone and drop.
        .service(tower::service_fn(move |req: axum::extract::Request| {
            let state = state.clone();
            async move {
                Ok::<_, std::convert::Infallible>(
                    crate::integration::integrate(axum::extract::State(state), req).await,
                )
            }
        }));
    Router::new().fallback_service(any_service(stack))
}
