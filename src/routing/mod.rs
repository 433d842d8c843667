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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::phase::Chain;
    use crate::testing::{config, route, text};
    use axum::body::Body;
    use axum::http::HeaderValue;
    use axum::response::Response;

    /// Route match over two routes, in a chain whose per-route lists and
    /// unrouted list each answer with their own name: what route match
    /// chose is what answers.
    fn chain(cors: bool) -> Next {
        let config = config(
            r#"
[gateway]
flavor = "http"
stage = "dev"
stage_prefix = true

[[routes]]
method = "GET"
path = "/items/{id}"
mock = { status = 200 }

[[routes]]
method = "POST"
path = "/items"
mock = { status = 200 }
"#,
        );
        let mut table = RouteTable::new();
        for (i, r) in config.routes.iter().enumerate() {
            table.insert(&r.method, &r.template, i).unwrap();
        }
        let phase = MatchRoute {
            table,
            routes: (0..2).map(|i| route(&config, i)).collect(),
            stage: "dev".into(),
            stage_prefix: true,
            flavor: Flavor::Http,
            cors,
        };
        struct Named(&'static str);
        impl Phase for Named {
            fn call(self: Arc<Self>, req: Request, _: Next) -> PhaseFuture {
                let ctx = req.extensions().get::<RouteContext>();
                let params = ctx.map(|c| format!("{:?}", c.params)).unwrap_or_default();
                answer(Response::new(Body::from(format!("{} {params}", self.0))))
            }
        }
        Next::new(Chain {
            before_route: vec![Arc::new(phase)],
            unrouted: vec![Arc::new(Named("unrouted"))],
            routes: vec![vec![Arc::new(Named("get"))], vec![Arc::new(Named("post"))]],
            end: Arc::new(|_| answer(Response::new(Body::from("end")))),
        })
    }

    fn req(method: &str, path: &str) -> Request {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn a_request_runs_its_routes_own_list() {
        let res = chain(false).run(req("GET", "/items/7")).await;
        assert_eq!(text(res).await, r#"get [("id", "7")]"#);
        let res = chain(false).run(req("GET", "/dev/items/8")).await;
        assert_eq!(text(res).await, r#"get [("id", "8")]"#);
        let res = chain(false).run(req("POST", "/items")).await;
        assert_eq!(text(res).await, "post []");
    }

    #[tokio::test]
    async fn unknown_routes_stop_here_and_preflights_go_on_unrouted() {
        for (method, path) in [
            ("GET", "/nope"),
            ("DELETE", "/items/7"),
            ("TRACE", "/items/7"),
        ] {
            let res = chain(true).run(req(method, path)).await;
            assert_eq!(res.status(), 404, "{method} {path}");
        }
        let mut preflight = req("OPTIONS", "/items");
        let h = preflight.headers_mut();
        h.insert("origin", HeaderValue::from_static("https://a.example"));
        h.insert(
            "access-control-request-method",
            HeaderValue::from_static("POST"),
        );
        let res = chain(true).run(preflight).await;
        assert_eq!(text(res).await, "unrouted ");
        // Without `[cors]` (or for a method no route serves) it is unknown.
        let mut preflight = req("OPTIONS", "/items");
        let h = preflight.headers_mut();
        h.insert("origin", HeaderValue::from_static("https://a.example"));
        h.insert(
            "access-control-request-method",
            HeaderValue::from_static("POST"),
        );
        assert_eq!(chain(false).run(preflight).await.status(), 404);
    }
}
