//! Cache phase (after auth, throttle and validation; around response
//! mapping and the integration): answers a request from the response cache
//! when its route has `cache = {...}` and an entry for its key is fresh;
//! otherwise lets the request through and stores a successful answer.
//! Because it sits after auth, a cached answer never reaches a caller the
//! route's authorizer refused. Every answer of a cached route carries
//! `X-Cache: Hit` or `X-Cache: Miss`.

pub mod shared;
pub mod store;

use std::sync::Arc;

use crate::pipeline::Next;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Response, header};
use axum::response::IntoResponse;

use crate::app::GatewayState;
use crate::auth::{AuthContext, AuthorizerOutput};
use crate::config::{CacheKeyPart, Invalidation, RouteCache};
use crate::error::GatewayError;
use crate::event::parse_query;
use crate::routing::RouteContext;
pub use store::{Outcome, ResponseCache, StoredResponse};

/// The key of a request's entry: route, the configured parameters, the
/// negotiated rendering, and the caller when the route caches per identity.
pub fn cache_key(
    ctx: &RouteContext,
    policy: &RouteCache,
    method: &str,
    headers: &HeaderMap,
    raw_query: &str,
    auth: Option<&AuthContext>,
) -> String {
    const SEP: char = '\u{1f}';
    let mut key = format!("{}{SEP}{method}", ctx.route.config.index);
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
                    key.push_str(&vs.join(","));
                }
            }
            CacheKeyPart::Header(n) => {
                let vs: Vec<&str> = headers
                    .get_all(n.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                key.push_str(&vs.join(","));
            }
        }
    }
    if let Some(resp) = &ctx.route.config.response
        && resp.offers.len() > 1
    {
        key.push(SEP);
        key.push_str(&crate::transform::negotiate(resp, headers).to_string());
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
        .any(|d| {
            let d = d.trim().to_ascii_lowercase();
            d == "max-age=0"
        })
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

async fn buffer(res: Response<axum::body::Body>, max: usize) -> StoredResponse {
    let (parts, body) = res.into_parts();
    match axum::body::to_bytes(body, max).await {
        Ok(body) => StoredResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        },
        Err(e) => {
            let r = GatewayError::Integration(format!("response could not be read: {e}"))
                .into_response();
            let (parts, _) = r.into_parts();
            StoredResponse {
                status: parts.status,
                headers: parts.headers,
                body: bytes::Bytes::from_static(br#"{"message":"Internal server error"}"#),
            }
        }
    }
}

fn tag(
    mut res: Response<axum::body::Body>,
    outcome: Outcome,
    ctx: RouteContext,
) -> Response<axum::body::Body> {
    let v = match outcome {
        Outcome::Hit => "Hit",
        Outcome::Miss => "Miss",
    };
    crate::metrics::cache_lookup(&ctx.route.route_key, outcome == Outcome::Hit);
    res.headers_mut()
        .insert("x-cache", HeaderValue::from_static(v));
    res.extensions_mut().insert(ctx);
    res
}

/// Cache phase.
pub async fn lookup(
    State(state): State<Arc<GatewayState>>,
    req: Request,
    next: Next,
) -> Response<axum::body::Body> {
    let Some(ctx) = req.extensions().get::<RouteContext>().cloned() else {
        return next.run(req).await;
    };
    let (Some(policy), Some(cache)) = (&ctx.route.config.cache, &state.cache) else {
        return next.run(req).await;
    };
    let auth = req.extensions().get::<AuthContext>();
    let key = cache_key(
        &ctx,
        policy,
        req.method().as_str(),
        req.headers(),
        req.uri().query().unwrap_or_default(),
        auth,
    );
    let refresh = asks_refresh(req.headers()) && may_invalidate(policy, auth);
    let limits = state.config.gateway.limits;
    let max = limits.max_body.max(limits.max_function_payload);
    if refresh {
        let fresh = buffer(next.run(req).await, max).await;
        let r = cache.refresh(key, policy.ttl, fresh).await;
        return tag(r.to_response(), Outcome::Miss, ctx);
    }
    let (r, outcome) = cache
        .get_or_fetch(key, policy.ttl, async move {
            buffer(next.run(req).await, max).await
        })
        .await;
    tag(r.to_response(), outcome, ctx)
}
