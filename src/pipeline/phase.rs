//! The leaf of the pipeline: what a phase is ([`Phase`]), how it calls the
//! rest of the pipeline ([`Next`]) and what it answers ([`PhaseFuture`]).
//! Every phase module imports this file and nothing of the gateway
//! assembly; `pipeline/mod.rs` builds the phases and names them in order.
//!
//! The phases are chained by [`Next`], an index into one shared, immutable
//! [`Chain`] of phase lists: calling the next phase costs one reference
//! count and no copy of the rest of the stack (axum's `from_fn` layers clone
//! their whole inner stack and box it again on every call).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;

/// A phase's answer, boxed so phases of different types chain.
pub type PhaseFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

/// One phase of the pipeline: a value built from its own config slice,
/// holding the state it needs. It does its own work and calls `next` (or
/// answers itself with a response).
///
/// `call` takes the phase by `Arc`, so a phase with work after the rest
/// moves its own handle into its future instead of cloning its parts; a
/// phase whose work all comes before the rest returns `next.run(req)`
/// itself, so it costs no box or poll of its own.
pub trait Phase: Send + Sync + 'static {
    fn call(self: Arc<Self>, req: Request, next: Next) -> PhaseFuture;
}

/// A phase's answer made without awaiting anything (a refusal).
pub fn answer(res: Response) -> PhaseFuture {
    Box::pin(std::future::ready(res))
}

/// The phases of one list, outermost first.
pub type PhaseList = Vec<Arc<dyn Phase>>;

/// What the last phase's `next` calls: the integration.
pub type Endpoint = Arc<dyn Fn(Request) -> PhaseFuture + Send + Sync>;

/// Every list a request can run through, and the endpoint after them.
pub struct Chain {
    /// The phases up to and including route match.
    pub before_route: PhaseList,
    /// After route match, for a request no route serves (a CORS preflight).
    pub unrouted: PhaseList,
    /// After route match, by route index: the phases that apply to it.
    pub routes: Vec<PhaseList>,
    pub end: Endpoint,
}

/// Which of the [`Chain`]'s lists a request is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    BeforeRoute,
    Unrouted,
    Route(usize),
}

/// The rest of the pipeline after the phase holding it.
#[derive(Clone)]
pub struct Next {
    chain: Arc<Chain>,
    list: List,
    at: usize,
}

impl Next {
    /// The start of `chain`.
    pub fn new(chain: Chain) -> Self {
        Next {
            chain: Arc::new(chain),
            list: List::BeforeRoute,
            at: 0,
        }
    }

    /// A pipeline with no phases left: `run` calls `end` at once. What a
    /// phase's unit test hands it.
    pub fn terminal(end: impl Fn(Request) -> PhaseFuture + Send + Sync + 'static) -> Self {
        Self::new(Chain {
            before_route: Vec::new(),
            unrouted: Vec::new(),
            routes: Vec::new(),
            end: Arc::new(end),
        })
    }

    /// Runs the remaining phases and the endpoint.
    pub fn run(mut self, req: Request) -> PhaseFuture {
        let list = match self.list {
            List::BeforeRoute => &self.chain.before_route,
            List::Unrouted => &self.chain.unrouted,
            List::Route(r) => self.chain.routes.get(r).unwrap_or(&self.chain.unrouted),
        };
        match list.get(self.at) {
            Some(phase) => {
                let phase = phase.clone();
                self.at += 1;
                phase.call(req, self)
            }
            None => (self.chain.end)(req),
        }
    }

    /// The rest of the pipeline for a request route match found route
    /// `index` for: that route's own list, from its first phase. Called by
    /// route match only.
    pub fn for_route(self, index: usize) -> Self {
        debug_assert_eq!(self.list, List::BeforeRoute);
        Next {
            chain: self.chain,
            list: List::Route(index),
            at: 0,
        }
    }

    /// The rest of the pipeline for a request no route serves that route
    /// match lets through (a CORS preflight for a served path).
    pub fn unrouted(self) -> Self {
        debug_assert_eq!(self.list, List::BeforeRoute);
        Next {
            chain: self.chain,
            list: List::Unrouted,
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

/// A response future that never fails, as tower wants it.
pub struct Answer<F>(pub(crate) F);

impl<F: Future<Output = Response> + Unpin> Future for Answer<F> {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(Result::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    /// Adds a header on the way back, after the rest answered.
    struct Tag(&'static str);

    impl Phase for Tag {
        fn call(self: Arc<Self>, req: Request, next: Next) -> PhaseFuture {
            let rest = next.run(req);
            Box::pin(async move {
                let mut res = rest.await;
                res.headers_mut().append("x-tag", self.0.parse().unwrap());
                res
            })
        }
    }

    /// Switches to route 0's list, as route match does.
    struct Match;

    impl Phase for Match {
        fn call(self: Arc<Self>, req: Request, next: Next) -> PhaseFuture {
            next.for_route(0).run(req)
        }
    }

    fn ok(_: Request) -> PhaseFuture {
        answer(Response::new(Body::empty()))
    }

    fn tags(res: &Response) -> Vec<&str> {
        res.headers()
            .get_all("x-tag")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_terminal_next_calls_its_endpoint() {
        let res = Next::terminal(ok).run(Request::new(Body::empty())).await;
        assert_eq!(res.status(), 200);
        assert!(tags(&res).is_empty());
    }

    #[tokio::test]
    async fn route_match_switches_to_the_routes_own_list() {
        let chain = Chain {
            before_route: vec![Arc::new(Tag("outer")), Arc::new(Match), Arc::new(Tag("no"))],
            unrouted: vec![Arc::new(Tag("unrouted"))],
            routes: vec![vec![Arc::new(Tag("route"))]],
            end: Arc::new(ok),
        };
        let res = Next::new(chain).run(Request::new(Body::empty())).await;
        // Innermost first: the route's phase answered before the outer one.
        assert_eq!(tags(&res), ["route", "outer"]);
    }
}
