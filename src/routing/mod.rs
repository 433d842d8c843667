//! Route match phase: finds the route for a request (method, `{param}`,
//! `{proxy+}`, `ANY`, `$default`, optional `/{stage}` prefix) and records it
//! in the request's extensions for every later phase.

mod matcher;
mod route;

pub use matcher::{RouteMatch, RouteTable, RouteTemplate, Segment, TableConflict, TemplateError};
pub use route::RouteRuntime;

use std::sync::Arc;

use axum::extract::Request;
use axum::response::IntoResponse;

use crate::config::Flavor;
use crate::error::GatewayError;
use crate::pipeline::phase::{Next, Phase, PhaseFuture, answer};

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

/// Route match phase: the route table and the routes of the serving stage.
pub struct MatchRoute {
    pub table: RouteTable,
    /// By route index, as the table answers.
    pub routes: Vec<Arc<RouteRuntime>>,
    /// The serving stage's name, for a `/{stage}` prefix.
    pub stage: String,
    pub stage_prefix: bool,
    /// Answers unknown routes the flavor's way (404 or 403).
    pub flavor: Flavor,
    /// Whether `[cors]` is on: a preflight for a served path then goes on
    /// unrouted, for the CORS phase to answer.
    pub cors: bool,
}

impl MatchRoute {
    /// Finds the route for a request, honouring an optional `/{stage}` prefix.
    pub fn resolve(&self, method: &str, raw_path: &str) -> Result<RouteContext, GatewayError> {
        // API Gateway routes these methods only; any other (`TRACE`, which
        // would let an echoing backend reflect credentials, `CONNECT`, custom
        // tokens) never reaches a route, `ANY` and `$default` included.
        if !is_routable_method(method) {
            return Err(GatewayError::RouteNotFound(self.flavor));
        }
        let stage = &self.stage;
        let stripped = if self.stage_prefix && stage != "$default" {
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
            if let RouteMatch::Found { route, params } = self.table.find(method, path) {
                return Ok(RouteContext {
                    route: self.routes[route].clone(),
                    params,
                    path: path.to_string(),
                    stage_prefixed: prefixed,
                });
            }
        }
        // Both flavors answer a known path with a wrong method like an unknown route.
        Err(GatewayError::RouteNotFound(self.flavor))
    }
}

/// The methods API Gateway serves.
pub(crate) fn is_routable_method(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
    )
}

/// All of its work comes before the rest of the pipeline, so it hands back
/// the rest's future instead of awaiting it.
impl Phase for MatchRoute {
    fn call(self: Arc<Self>, mut req: Request, next: Next) -> PhaseFuture {
        match self.resolve(req.method().as_str(), req.uri().path()) {
            Ok(ctx) => {
                let index = ctx.route.config.index;
                req.extensions_mut().insert(ctx);
                next.for_route(index).run(req)
            }
            // A CORS preflight for a path some route serves goes on to the
            // CORS phase, which answers it, even with no OPTIONS route (as
            // API Gateway).
            Err(_)
                if self.cors
                    && crate::cors::is_preflight(&req)
                    && crate::cors::requested_method(&req)
                        .is_some_and(|m| self.resolve(m, req.uri().path()).is_ok()) =>
            {
                next.unrouted().run(req)
            }
            Err(e) => answer(e.into_response()),
        }
    }
}
