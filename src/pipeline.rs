//! THE request pipeline: every request passes these phases in this order,
//! top to bottom (DESIGN.md). Each phase is one function in its own module,
//! `async fn(State<Arc<GatewayState>>, Request, Next) -> Response`, or, for
//! a phase whose work all comes before the rest (limits, route match),
//! `fn(&GatewayState, Request, Next) -> PhaseFuture` returning the rest's
//! future, or, for a phase with work on both sides (the access log),
//! `fn(Arc<GatewayState>, Request, Next) -> PhaseFuture` that boxes only its
//! way out; each may answer early with a response instead of calling
//! `next.run(req)`. A route runs only the phases that apply to it.
//!
//! The phases are chained by [`Next`], an index into one shared, immutable
//! list of phases: calling the next phase costs one boxed future and no copy
//! of the rest of the stack (axum's `from_fn` layers clone their whole inner
//! stack and box it again on every call, which a gateway pays 13 times per
//! request). [`Pipeline`] is the chain as a tower `Service`; [`build`] wraps
//! it in an axum `Router` for embedding.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;

use crate::app::{GatewayState, RouteRuntime};

/// A phase's answer, boxed so phases of different types chain.
pub type PhaseFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

/// One phase: runs its own work and calls `next` (or answers itself).
type Phase = fn(Arc<GatewayState>, Request, Next) -> PhaseFuture;

/// Whether a phase has anything to do. A phase that does not is left out
/// of the list, so a route pays only for the features it uses; the phase
/// still checks for itself, so leaving one in is never wrong.
#[derive(Clone, Copy)]
enum Applies {
    Always,
    /// Decided by a gateway-wide setting.
    Gateway(fn(&GatewayState) -> bool),
    /// Decided by the route's settings (after route match only).
    Route(fn(&GatewayState, &RouteRuntime) -> bool),
}

/// Boxes a phase function `async fn(State, Request, Next) -> Response`
/// (the phase's own future, with no wrapper around it).
macro_rules! phase {
    ($f:path) => {
        (|state, req, next| Box::pin($f(State(state), req, next))) as Phase
    };
    // A phase that does its own work before the rest of the pipeline
    // synchronously and boxes only what it does after, as its answer:
    // `fn(Arc<GatewayState>, Request, Next) -> PhaseFuture`.
    (around $f:path) => {
        $f as Phase
    };
    // A phase whose work all comes before the rest of the pipeline: a
    // plain `fn(&GatewayState, Request, Next) -> PhaseFuture` that returns
    // the rest's future (or an answer), so it costs no box or poll of its own.
    (before $f:path) => {
        (|state, req, next| $f(&state, req, next)) as Phase
    };
}

/// A phase's answer made without awaiting anything (a refusal).
pub fn answer(res: Response) -> PhaseFuture {
    Box::pin(std::future::ready(res))
}

/// Where route match is in [`phases`]: the phases up to it run before a
/// route is known.
const ROUTE_MATCH: usize = 3;

/// The phases in DESIGN.md's order, outermost first, each with when it
/// applies. The integration is not in the list: it is what the last
/// phase's `next` calls.
fn phases() -> Vec<(Phase, Applies)> {
    use Applies::{Always, Gateway, Route};
    vec![
        // Outermost: every response, refusals included, carries a request id
        // and gets an access-log line; on the way out it also sets the
        // `RateLimit-*` headers of a request the throttle phase admitted
        // (that phase hands its verdict here, so it awaits nothing itself).
        (phase!(around crate::telemetry::request_id_and_log), Always),
        // Size limits before anything reads headers into events or buffers
        // the body.
        (phase!(before crate::limits::enforce), Always),
        // The gateway's own OpenAPI document and docs page, answered before
        // route match so no user route (not even `{proxy+}`) shadows them.
        (
            phase!(before crate::openapi::serve_spec),
            Gateway(|s| s.openapi.is_some()),
        ),
        // Route match: later phases read the route's settings from the
        // `RouteContext` it stores; unknown routes stop here (404/403), so a
        // bad path never turns into a 401. It continues with the matched
        // route's own list of the phases below.
        (phase!(before crate::routing::route_match), Always),
        // CORS: preflights answered before auth, as API Gateway does (route
        // match lets a preflight for a served path through unmatched).
        (phase!(crate::cors::cors), Gateway(|s| s.cors.is_some())),
        // Auth: jwt | sigv4 | lambda authorizer. After route match, so an
        // unknown path stays 404/403 and never becomes a 401; before
        // throttling and caching, so refusals cost no quota and no cached
        // answer leaks to an unauthenticated caller.
        (
            phase!(before crate::auth::authenticate),
            Route(|_, r| r.auth.is_some()),
        ),
        // API key check: last step of auth, as in API Gateway (a Lambda
        // authorizer may supply the key); it finds the key's usage plan.
        (
            phase!(before crate::auth::api_key::require_key),
            Route(keyed),
        ),
        // Identity for the access log: right after auth, so every later
        // answer (throttled, cached, integrated) is logged with key id and
        // principal.
        (
            phase!(before crate::telemetry::note_identity),
            Route(|s, r| r.auth.is_some() || keyed(s, r)),
        ),
        // Throttle & quota: key/plan, route, stage, global; needs the plan
        // found above, and refuses before any validation, cache or backend work.
        // Its `RateLimit-*` headers go on in the telemetry phase above.
        (
            phase!(before crate::throttle::enforce),
            Route(|s, r| s.throttles.applies_to(r.config.index, keyed(s, r))),
        ),
        // Request validation: refuses bad input before any cache or backend work.
        (
            phase!(crate::validation::validate),
            Route(|_, r| r.config.request.is_some()),
        ),
        // Cache lookup and store: after auth so no cached answer leaks to a
        // refused caller; around response mapping so renderings are cached.
        (
            phase!(crate::cache::lookup),
            Route(|s, r| s.cache.is_some() && r.config.cache.is_some()),
        ),
        // Response mapping: templates and content negotiation on the
        // integration's answer.
        (
            phase!(crate::transform::render),
            Route(|_, r| r.config.response.is_some()),
        ),
    ]
}

/// Whether a route requires an API key (and so gets a key grant).
fn keyed(state: &GatewayState, route: &RouteRuntime) -> bool {
    state
        .api_keys
        .as_ref()
        .is_some_and(|k| k.required_on(route.config.index))
}

/// The innermost step: event or forwarded request → backend → response.
fn integration(state: Arc<GatewayState>, req: Request) -> PhaseFuture {
    crate::integration::integrate(state, req)
}

struct Stack {
    state: Arc<GatewayState>,
    /// Every phase that applies to the gateway: what runs before route
    /// match, and after it for a request no route serves (a CORS
    /// preflight). Each phase still checks for itself whether it applies.
    all: Vec<Phase>,
    /// By route index: the phases after route match that apply to it.
    routes: Vec<Vec<Phase>>,
}

/// The rest of the pipeline after the phase holding it.
#[derive(Clone)]
pub struct Next {
    stack: Arc<Stack>,
    /// `None` for the gateway-wide list, else a route index.
    route: Option<usize>,
    at: usize,
}

impl Next {
    /// Runs the remaining phases and the integration.
    pub fn run(mut self, req: Request) -> PhaseFuture {
        let list = match self.route {
            Some(r) => self.stack.routes.get(r).unwrap_or(&self.stack.all),
            None => &self.stack.all,
        };
        match list.get(self.at).copied() {
            Some(phase) => {
                self.at += 1;
                let state = self.stack.state.clone();
                phase(state, req, self)
            }
            None => integration(self.stack.state.clone(), req),
        }
    }

    /// The rest of the pipeline for a request route match found
    /// `route_index` for: that route's own phases, from the first after
    /// route match. Called by route match only.
    pub fn for_route(self, route_index: usize) -> Self {
        debug_assert_eq!(self.route, None);
        Next {
            stack: self.stack,
            route: Some(route_index),
            at: 0,
        }
    }
}

/// `Next` as a tower service, for phases that wrap the rest in a tower
/// layer (CORS).
impl tower::Service<Request> for Next {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<PhaseFuture>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        Answer(self.clone().run(req))
    }
}

/// The whole pipeline as a tower service: what the listener calls.
#[derive(Clone)]
pub struct Pipeline {
    first: Next,
}

impl Pipeline {
    pub fn new(state: Arc<GatewayState>) -> Self {
        let all_phases = phases();
        // Gateway-wide: route-dependent phases stay in (they check for
        // themselves) for requests no route serves.
        let all = all_phases
            .iter()
            .filter(|(_, applies)| match applies {
                Applies::Always | Applies::Route(_) => true,
                Applies::Gateway(f) => f(&state),
            })
            .map(|(p, _)| *p)
            .collect();
        let routes = state
            .routes
            .iter()
            .map(|r| {
                all_phases[ROUTE_MATCH + 1..]
                    .iter()
                    .filter(|(_, applies)| match applies {
                        Applies::Always => true,
                        Applies::Gateway(f) => f(&state),
                        Applies::Route(f) => f(&state, r),
                    })
                    .map(|(p, _)| *p)
                    .collect()
            })
            .collect();
        let stack = Arc::new(Stack { state, all, routes });
        Self {
            first: Next {
                stack,
                route: None,
                at: 0,
            },
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

/// A response future that never fails, as tower wants it.
pub struct Answer<F>(F);

impl<F: Future<Output = Response> + Unpin> Future for Answer<F> {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(Result::Ok)
    }
}

/// The pipeline as an axum `Router` (every path, every method), to serve or
/// to nest in another app.
pub fn build(state: Arc<GatewayState>) -> Router {
    Router::new().fallback_service(Pipeline::new(state))
}
