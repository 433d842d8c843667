//! Route match phase: finds the route for a request (method, `{param}`,
//! `{proxy+}`, `ANY`, `$default`, optional `/{stage}` prefix) and records it
//! in the request's extensions for every later phase.

mod matcher;

pub use matcher::{RouteMatch, RouteTable, RouteTemplate, Segment, TableConflict, TemplateError};

use std::sync::Arc;

use crate::pipeline::{Next, PhaseFuture, answer};
use axum::extract::Request;
use axum::response::IntoResponse;

use crate::app::{GatewayState, RouteRuntime};
use crate::error::GatewayError;

/// The matched route, stored in the request's extensions by [`route_match`].
#[derive(Clone)]
pub struct RouteContext {
    pub route: Arc<RouteRuntime>,
    /// Decoded path parameters in template order.
    pub params: Vec<(String, String)>,
    /// The request path without the stage prefix, still percent-encoded.
    pub path: String,
    /// Whether the request carried the `/{stage}` prefix.
    pub stage_prefixed: bool,
}

impl RouteContext {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Finds the route for a request, honouring an optional `/{stage}` prefix.
pub fn resolve(
    state: &GatewayState,
    method: &str,
    raw_path: &str,
) -> Result<RouteContext, GatewayError> {
    // API Gateway routes these methods only; any other (`TRACE`, which
    // would let an echoing backend reflect credentials, `CONNECT`, custom
    // tokens) never reaches a route, `ANY` and `$default` included.
    if !is_routable_method(method) {
        return Err(GatewayError::RouteNotFound(state.config.gateway.flavor));
    }
    let stage = &state.stage.name;
    let stripped = if state.config.gateway.stage_prefix && stage != "$default" {
        raw_path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(stage.as_str()))
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .map(|rest| if rest.is_empty() { "/" } else { rest })
    } else {
        None
    };
    let candidates = [stripped.map(|s| (s, true)), Some((raw_path, false))];
    for (path, prefixed) in candidates.into_iter().flatten() {
        if let RouteMatch::Found { route, params } = state.table.find(method, path) {
            return Ok(RouteContext {
                route: state.routes[route].clone(),
                params,
                path: path.to_string(),
                stage_prefixed: prefixed,
            });
        }
    }
    // Both flavors answer a known path with a wrong method like an unknown route.
    Err(GatewayError::RouteNotFound(state.config.gateway.flavor))
}

/// The methods API Gateway serves.
pub(crate) fn is_routable_method(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
    )
}

/// Route match phase. All of its work comes before the rest of the
/// pipeline, so it hands back the rest's future instead of awaiting it.
pub fn route_match(state: &GatewayState, mut req: Request, next: Next) -> PhaseFuture {
    match resolve(state, req.method().as_str(), req.uri().path()) {
        Ok(ctx) => {
            let index = ctx.route.config.index;
            req.extensions_mut().insert(ctx);
            next.for_route(index).run(req)
        }
        // A CORS preflight for a path some route serves goes on to the CORS
        // phase, which answers it, even with no OPTIONS route (as API Gateway).
        Err(_)
            if state.cors.is_some()
                && crate::cors::is_preflight(&req)
                && crate::cors::requested_method(&req)
                    .is_some_and(|m| resolve(state, m, req.uri().path()).is_ok()) =>
        {
            next.run(req)
        }
        Err(e) => answer(e.into_response()),
    }
}
