//! THE request pipeline: every request passes these phases in this order,
//! top to bottom (DESIGN.md). This file is the top of the house: it is the
//! one place that names every phase, builds each from its own slice of the
//! gateway (its config, its limiter, its cache, its authorizer), and puts
//! them in order. A phase is a value implementing [`phase::Phase`]; it may
//! answer early with a response instead of calling `next.run(req)`. A route
//! runs only the phases that apply to it: route match chooses the route's
//! own list explicitly ([`Next::for_route`]).
//!
//! [`Pipeline`] is the chain as a tower `Service`, built once per gateway;
//! `Gateway::router` wraps it in an axum `Router` for embedding.

pub mod phase;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;

pub use phase::{Answer, Next, PhaseFuture, answer};
use phase::{Chain, Phase, PhaseList};

use crate::app::GatewayState;
use crate::openapi::ServedSpec;
use crate::routing::{RouteRuntime, RouteTable};

/// What only phases use, built with the gateway and handed to them.
struct PhaseParts {
    table: RouteTable,
    openapi: Option<Arc<ServedSpec>>,
}

/// The phases up to route match, in DESIGN.md's order, outermost first.
fn before_route(state: &GatewayState, parts: &mut PhaseParts) -> PhaseList {
    let c = &state.config;
    let phases: [Option<Arc<dyn Phase>>; 4] = [
        // Outermost: every response, refusals included, carries a request id
        // and gets an access-log line.
        Some(Arc::new(crate::telemetry::RequestLog {
            flavor: c.gateway.flavor,
            unrouted_metrics: crate::metrics::RouteMetrics::new("-"),
        })),
        // Size limits before anything reads headers into events or buffers
        // the body.
        Some(Arc::new(crate::limits::EnforceLimits {
            limits: c.gateway.limits,
        })),
        // The gateway's own OpenAPI document and docs page, answered before
        // route match so no user route (not even `{proxy+}`) shadows them.
        parts.openapi.take().map(|spec| {
            Arc::new(crate::openapi::ServeSpec {
                spec,
                stage: state.stage.name.clone(),
                stage_prefix: c.gateway.stage_prefix,
            }) as Arc<dyn Phase>
        }),
        // Route match: later phases read the route's settings from the
        // `RouteContext` it stores; unknown routes stop here (404/403), so a
        // bad path never turns into a 401. It continues with the matched
        // route's own list (below).
        Some(Arc::new(crate::routing::MatchRoute {
            table: std::mem::take(&mut parts.table),
            routes: state.routes.clone(),
            stage: state.stage.name.clone(),
            stage_prefix: c.gateway.stage_prefix,
            flavor: c.gateway.flavor,
            cors: c.cors.is_some(),
        })),
    ];
    phases.into_iter().flatten().collect()
}

/// The phases after route match for one route, in DESIGN.md's order: only
/// those that apply to it.
fn after_route(
    state: &GatewayState,
    cors: &Option<Arc<dyn Phase>>,
    route: &RouteRuntime,
) -> PhaseList {
    let c = &state.config;
    let limits = c.gateway.limits;
    let index = route.config.index;
    let key = state.api_keys.as_ref().and_then(|k| k.phase_for(index));
    let keyed = key.is_some();
    let phases: [Option<Arc<dyn Phase>>; 8] = [
        // CORS: preflights answered before auth, as API Gateway does (route
        // match lets a preflight for a served path through unmatched).
        cors.clone(),
        // Auth: jwt | sigv4 | lambda authorizer. After route match, so an
        // unknown path stays 404/403 and never becomes a 401; before
        // throttling and caching, so refusals cost no quota and no cached
        // answer leaks to an unauthenticated caller.
        route.auth.as_ref().map(|auth| {
            Arc::new(crate::auth::Authenticate {
                auth: auth.clone(),
                route_key: route.route_key.clone(),
                max_body: limits.max_body,
            }) as Arc<dyn Phase>
        }),
        // API key check: last step of auth, as in API Gateway (a Lambda
        // authorizer may supply the key); it finds the key's usage plan.
        key.map(|k| Arc::new(k) as Arc<dyn Phase>),
        // Identity for the access log: right after auth, so every later
        // answer (throttled, cached, integrated) is logged with key id and
        // principal.
        (route.auth.is_some() || keyed)
            .then(|| Arc::new(crate::telemetry::NoteIdentity) as Arc<dyn Phase>),
        // Throttle & quota: key/plan, route, stage, global; needs the plan
        // found above, and refuses before any validation, cache or backend
        // work. It sets its `RateLimit-*` headers on the way back.
        state
            .throttles
            .applies_to(index, keyed)
            .then(|| Arc::new(state.throttles.clone()) as Arc<dyn Phase>),
        // Request validation: refuses bad input before any cache or backend work.
        route.config.request.as_ref().map(|rules| {
            Arc::new(crate::validation::Validate {
                rules: rules.clone(),
                max_body: limits.max_body,
            }) as Arc<dyn Phase>
        }),
        // Cache lookup and store: after auth so no cached answer leaks to a
        // refused caller; around response mapping so renderings are cached.
        state
            .cache
            .as_ref()
            .zip(route.config.cache.as_ref())
            .map(|(cache, policy)| {
                Arc::new(crate::cache::CacheLookup {
                    cache: cache.clone(),
                    policy: policy.clone(),
                    index,
                    route_key: route.route_key.clone(),
                    limits,
                }) as Arc<dyn Phase>
            }),
        // Response mapping: templates and content negotiation on the
        // integration's answer.
        route.config.response.as_ref().map(|response| {
            Arc::new(crate::transform::Render {
                response: response.clone(),
                templates: c.templates.clone(),
                stage: state.stage.name.clone(),
                stage_variables: Arc::new(state.stage.variables.clone()),
                max_body: limits.max_function_payload.max(limits.max_body),
            }) as Arc<dyn Phase>
        }),
    ];
    phases.into_iter().flatten().collect()
}

/// The whole pipeline as a tower service: what the listener calls.
#[derive(Clone)]
pub struct Pipeline {
    first: Next,
}

impl Pipeline {
    /// Builds every phase: from the gateway's state, the route table and
    /// the served OpenAPI document.
    pub fn new(
        state: Arc<GatewayState>,
        table: RouteTable,
        openapi: Option<Arc<ServedSpec>>,
    ) -> Self {
        let mut parts = PhaseParts { table, openapi };
        let cors: Option<Arc<dyn Phase>> = state
            .config
            .cors
            .as_ref()
            .map(|c| Arc::new(crate::cors::Cors::new(c)) as Arc<dyn Phase>);
        let routes = state
            .routes
            .iter()
            .map(|r| after_route(&state, &cors, r))
            .collect();
        // A request no route serves gets past route match only as a CORS
        // preflight, for the CORS phase to answer.
        let unrouted = cors.into_iter().collect();
        let before_route = before_route(&state, &mut parts);
        // The innermost step, not a phase: event or forwarded request →
        // backend → response.
        let end: phase::Endpoint =
            Arc::new(move |req| crate::integration::integrate(state.clone(), req));
        Self {
            first: Next::new(Chain {
                before_route,
                unrouted,
                routes,
                end,
            }),
        }
    }

    /// Runs one request through every phase.
    pub fn run(&self, req: Request) -> PhaseFuture {
        self.first.clone().run(req)
    }
}

impl tower::Service<Request> for Pipeline {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<PhaseFuture>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        Answer(self.run(req))
    }
}
