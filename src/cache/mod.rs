//! Cache phase (after auth, throttle and validation; around response
//! mapping and the integration): answers a request from the response cache
//! when its route has `cache = {...}` and an entry for its key is fresh;
//! otherwise lets the request through and stores a successful answer.
//! Because it sits after auth, a cached answer never reaches a caller the
//! route's authorizer refused. Every answer of a cached route carries
//! `X-Cache: Hit` or `X-Cache: Miss`.
//!
//! The key is built from the parameters the route names (`path.*`,
//! `query.*`, `header.*`, and `body`, a SHA-256 of the request body). A
//! request that carries a body its route's key does not cover is never
//! answered from, nor stored in, the cache: one caller's answer is never
//! served for another's body.

pub mod shared;
pub mod store;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Response, header};
use axum::response::IntoResponse;
use http_body::Body as _;
use sha2::Digest;

use crate::auth::{AuthContext, AuthorizerOutput};
use crate::config::{CacheKeyPart, Invalidation, Limits, RouteCache};
use crate::error::GatewayError;
use crate::event::parse_query;
use crate::limits::collect_body;
use crate::pipeline::phase::{Next, Phase, PhaseFuture};
use crate::routing::RouteContext;
use store::{MISS, X_CACHE};
pub use store::{Outcome, ResponseCache, StoredResponse};

/// The key of a request's entry: route, method, the configured parameters,
/// the negotiated rendering, and the caller when the route caches per
/// identity. `body_digest` is the body's SHA-256 when the key has `body`.
pub fn cache_key(
    ctx: &RouteContext,
    policy: &RouteCache,
    method: &str,
    headers: &HeaderMap,
    raw_query: &str,
    auth: Option<&AuthContext>,
    body_digest: Option<&[u8]>,
) -> String {
    const SEP: char = '\u{1f}';
    let mut key = String::with_capacity(48);
    key.push_str(itoa::Buffer::new().format(ctx.route.config.index));
    key.push(SEP);
    key.push_str(method);
    let query = if policy
        .key
        .iter()
        .any(|p| matches!(p, CacheKeyPart::Query(_)))
    {
        parse_query(raw_query)
    } else {
        Vec::new()
    };
    for part in &policy.key {
        key.push(SEP);
        match part {
            CacheKeyPart::Path(n) => key.push_str(ctx.param(n).unwrap_or_default()),
            CacheKeyPart::Query(n) => {
                if let Some((_, vs)) = query.iter().find(|(k, _)| k == n) {
                    for (i, v) in vs.iter().enumerate() {
                        if i > 0 {
                            key.push(',');
                        }
                        key.push_str(v);
                    }
                }
            }
            CacheKeyPart::Header(n) => {
                let values = headers
                    .get_all(n.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok());
                for (i, v) in values.enumerate() {
                    if i > 0 {
                        key.push(',');
                    }
                    key.push_str(v);
                }
            }
            CacheKeyPart::Body => {
                if let Some(d) = body_digest {
                    key.push_str(&hex::encode(d));
                }
            }
        }
    }
    if let Some(resp) = &ctx.route.config.response
        && resp.offers.len() > 1
    {
        key.push(SEP);
        key.push_str(itoa::Buffer::new().format(crate::transform::negotiate(resp, headers)));
    }
    // A non-proxy route renders each integration response by `Accept`.
    if let Some(mapping) = &ctx.route.config.mapping {
        for r in mapping.responses.iter().filter(|r| r.offers.len() > 1) {
            key.push(SEP);
            let chosen = crate::transform::negotiate_by_headers(&r.offers, r.default, headers);
            key.push_str(itoa::Buffer::new().format(chosen));
        }
    }
    if policy.per_identity {
        key.push(SEP);
        key.push_str(&identity(auth).unwrap_or_else(|| "-".to_string()));
    }
    key
}

/// Who the caller is, for per-identity entries: API key, then JWT subject,
/// Lambda authorizer principal, or IAM access key.
pub fn identity(auth: Option<&AuthContext>) -> Option<String> {
    let auth = auth?;
    if let Some(k) = &auth.api_key {
        return Some(format!("key:{}", k.id));
    }
    match &auth.authorizer {
        Some(AuthorizerOutput::Jwt { claims, .. }) => claims.get("sub").map(|s| {
            format!(
                "jwt:{}",
                s.as_str().map_or_else(|| s.to_string(), str::to_string)
            )
        }),
        Some(AuthorizerOutput::Lambda { principal_id, .. }) => {
            principal_id.as_ref().map(|p| format!("lambda:{p}"))
        }
        Some(AuthorizerOutput::Iam(i)) => Some(format!("iam:{}", i.access_key)),
        None => None,
    }
}

/// Does the client ask for a fresh answer (`Cache-Control: max-age=0`)?
fn asks_refresh(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("max-age=0"))
}

fn may_invalidate(policy: &RouteCache, auth: Option<&AuthContext>) -> bool {
    match policy.invalidation {
        Invalidation::Nobody => false,
        Invalidation::Anyone => true,
        Invalidation::Authorized => {
            auth.is_some_and(|a| a.authorizer.is_some() || a.api_key.is_some())
        }
    }
}

/// Does the request carry a body (anything but a known-empty one)?
fn carries_body(req: &Request) -> bool {
    req.body().size_hint().upper() != Some(0)
}

async fn buffer(res: Response<Body>, max: usize) -> StoredResponse {
    let (parts, body) = res.into_parts();
    match axum::body::to_bytes(body, max).await {
        Ok(body) => StoredResponse::new(parts.status, parts.headers, body),
        Err(e) => {
            let r = GatewayError::Integration(format!("response could not be read: {e}"))
                .into_response();
            let (parts, _) = r.into_parts();
            StoredResponse::new(
                parts.status,
                parts.headers,
                bytes::Bytes::from_static(br#"{"message":"Internal server error"}"#),
            )
        }
    }
}

/// A response for the client; stored responses say `X-Cache: Hit` already.
fn finish(r: &StoredResponse, outcome: Outcome, ctx: Option<RouteContext>) -> Response<Body> {
    let mut res = r.to_response();
    if outcome == Outcome::Miss {
        res.headers_mut().insert(X_CACHE.clone(), MISS.clone());
    }
    if let Some(ctx) = ctx {
        res.extensions_mut().insert(ctx);
    }
    res
}

/// Cache phase for one route: the gateway's response cache and the
/// route's `cache = {...}`.
pub struct CacheLookup {
    pub cache: Arc<ResponseCache>,
    pub policy: RouteCache,
    /// The route's index and key, for the cache's metrics.
    pub index: usize,
    pub route_key: String,
    pub limits: Limits,
}

impl Phase for CacheLookup {
    fn call(self: Arc<Self>, req: Request, next: Next) -> PhaseFuture {
        Box::pin(self.lookup(req, next))
    }
}

impl CacheLookup {
    async fn lookup(self: Arc<Self>, mut req: Request, next: Next) -> Response<Body> {
        let cache = &self.cache;
        let policy = &self.policy;
        let (index, route_key) = (self.index, self.route_key.as_str());
        let limits = self.limits;

        let digest = if policy.keys_body() {
            let (parts, body) = req.into_parts();
            let body = match Box::pin(collect_body(body, limits.max_body)).await {
                Ok(b) => b,
                Err(e) => {
                    let mut r = e.into_response();
                    if let Some(ctx) = parts.extensions.get::<RouteContext>() {
                        r.extensions_mut().insert(ctx.clone());
                    }
                    return r;
                }
            };
            let digest = sha2::Sha256::digest(&body);
            req = Request::from_parts(parts, Body::from(body));
            Some(digest)
        } else if carries_body(&req) {
            // The key does not cover the body: answer without the cache.
            cache.record(index, route_key, Outcome::Miss);
            let mut res = next.run(req).await;
            res.headers_mut().insert(X_CACHE.clone(), MISS.clone());
            return res;
        } else {
            None
        };

        let (key, refresh) = {
            let Some(ctx) = req.extensions().get::<RouteContext>() else {
                return next.run(req).await;
            };
            let auth = req.extensions().get::<AuthContext>();
            let key = cache_key(
                ctx,
                policy,
                req.method().as_str(),
                req.headers(),
                req.uri().query().unwrap_or_default(),
                auth,
                digest.as_deref(),
            );
            (
                key,
                asks_refresh(req.headers()) && may_invalidate(policy, auth),
            )
        };

        // A hit: the stored answer as it is; nothing below this phase runs.
        if !refresh && let Some(hit) = cache.get(&key).await {
            cache.record(index, route_key, Outcome::Hit);
            let ctx = req.extensions_mut().remove::<RouteContext>();
            return finish(&hit, Outcome::Hit, ctx);
        }

        let ctx = req.extensions().get::<RouteContext>().cloned();
        let max = limits.max_body.max(limits.max_function_payload);
        if refresh {
            // The rare paths are boxed: the phase's own future stays small
            // (it is moved on every call), a hit pays nothing for them.
            let fresh = Box::pin(buffer(next.run(req).await, max)).await;
            let r = Box::pin(cache.refresh(key, policy.ttl, fresh)).await;
            cache.record(index, route_key, Outcome::Miss);
            return finish(&r, Outcome::Miss, ctx);
        }
        let (r, outcome) = Box::pin(cache.get_or_fetch(key, policy.ttl, async move {
            buffer(next.run(req).await, max).await
        }))
        .await;
        cache.record(index, route_key, outcome);
        finish(&r, outcome, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{config, function, routed, text};
    use axum::http::StatusCode;

    #[tokio::test]
    async fn a_second_request_is_a_hit_and_key_parameters_separate_entries() {
        let config = config(
            r#"
[[routes]]
method = "GET"
path = "/items/{id}"
mock = { status = 200 }
cache = { ttl = "60s", key = ["path.id"] }
"#,
        );
        let phase = Arc::new(CacheLookup {
            cache: Arc::new(ResponseCache::new(&config.cache, config.routes.len())),
            policy: config.routes[0].cache.clone().unwrap(),
            index: 0,
            route_key: "GET /items/{id}".into(),
            limits: config.gateway.limits,
        });
        let f = function(StatusCode::OK, r#"{"n":1}"#);
        let get = |id: &str| {
            routed(
                &config,
                0,
                &[("id", id)],
                Request::get(format!("/items/{id}"))
                    .body(Body::empty())
                    .unwrap(),
            )
        };
        let first = phase.clone().call(get("1"), f.next.clone()).await;
        assert_eq!(first.headers()["x-cache"], "Miss");
        assert_eq!(text(first).await, r#"{"n":1}"#);
        let second = phase.clone().call(get("1"), f.next.clone()).await;
        assert_eq!(second.headers()["x-cache"], "Hit");
        // A hit carries the route for the access log, as a refusal does.
        assert!(second.extensions().get::<RouteContext>().is_some());
        assert_eq!(text(second).await, r#"{"n":1}"#);
        assert_eq!(f.calls(), 1);
        let other = phase.clone().call(get("2"), f.next.clone()).await;
        assert_eq!(other.headers()["x-cache"], "Miss");
        assert_eq!(f.calls(), 2);
    }

    #[tokio::test]
    async fn a_body_the_key_does_not_cover_bypasses_the_cache() {
        let config = config(
            r#"
[[routes]]
method = "GET"
path = "/search"
mock = { status = 200 }
cache = { ttl = "60s", key = [] }
"#,
        );
        let phase = Arc::new(CacheLookup {
            cache: Arc::new(ResponseCache::new(&config.cache, 1)),
            policy: config.routes[0].cache.clone().unwrap(),
            index: 0,
            route_key: "GET /search".into(),
            limits: config.gateway.limits,
        });
        let f = function(StatusCode::OK, "{}");
        for _ in 0..2 {
            let req = routed(
                &config,
                0,
                &[],
                Request::get("/search").body(Body::from("q=1")).unwrap(),
            );
            let res = phase.clone().call(req, f.next.clone()).await;
            assert_eq!(res.headers()["x-cache"], "Miss");
        }
        assert_eq!(f.calls(), 2);
    }
}
