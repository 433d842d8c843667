//! Caching: the shared `[cache]` and each route's `cache = {...}` (TTL,
//! key parts, who may invalidate).

use toml::Spanned;

use crate::config::error::Diagnostics;
use crate::config::raw::{RawCacheSettings, RawRouteCache};
use crate::config::shaping::{
    CacheKeyPart, CacheSettings, DEFAULT_CACHE_TTL, Invalidation, MAX_CACHE_TTL, RouteCache,
};
use crate::config::values::{duration, size};

/// `[cache]`: sizes, and `shared` only with a cluster Redis to share in.
pub(super) fn check_cache_settings(
    raw: Option<&RawCacheSettings>,
    has_cluster_redis: bool,
    d: &mut Diagnostics<'_>,
) -> CacheSettings {
    let mut s = CacheSettings::default();
    let Some(raw) = raw else { return s };
    if let Some(shared) = &raw.shared
        && *shared.get_ref()
    {
        if !has_cluster_redis {
            d.at(
                shared.span(),
                "`shared = true` needs `[cluster] redis_url`, the Redis the nodes share",
            );
        }
        s.shared = true;
    }
    if let Some(v) = &raw.max_size
        && let Some(n) = size(v, d)
    {
        s.max_size = n as u64;
    }
    if let Some(v) = &raw.max_entry_size
        && let Some(n) = size(v, d)
    {
        s.max_entry_size = n;
    }
    s
}

/// Methods whose requests carry no body API Gateway would key on; a cached
/// route with any other method must key on the body (`"body"` in `key`).
const BODYLESS_METHODS: [&str; 4] = ["GET", "HEAD", "OPTIONS", "ANY"];

/// A route's `cache`: TTL within API Gateway's bounds, key parts that
/// exist, and the body in the key of a method that carries one.
pub(super) fn check_route_cache(
    c: &Spanned<RawRouteCache>,
    method: &str,
    params: &[String],
    d: &mut Diagnostics<'_>,
) -> RouteCache {
    let raw = c.get_ref();
    let ttl = match &raw.ttl {
        Some(t) => {
            let v = duration(t, d).unwrap_or(DEFAULT_CACHE_TTL);
            if v > MAX_CACHE_TTL {
                d.at(t.span(), "cache `ttl` is at most 3600s, as in API Gateway");
            }
            if v.is_zero() {
                d.at(
                    t.span(),
                    "cache `ttl` must be more than 0 (remove `cache` to turn caching off)",
                );
            }
            v
        }
        None => DEFAULT_CACHE_TTL,
    };
    let mut key = Vec::new();
    for k in raw.key.iter().flatten() {
        let s = k.get_ref();
        if s == "body" {
            if key.contains(&CacheKeyPart::Body) {
                d.at(k.span(), "cache key `body` is listed twice");
            }
            key.push(CacheKeyPart::Body);
            continue;
        }
        let part = match s.split_once('.') {
            Some(("path", name)) if !name.is_empty() => {
                if !params.iter().any(|p| p == name) {
                    d.at(
                        k.span(),
                        format!("`{s}`: the route's path has no parameter `{{{name}}}`"),
                    );
                }
                CacheKeyPart::Path(name.to_string())
            }
            Some(("query", name)) if !name.is_empty() => CacheKeyPart::Query(name.to_string()),
            Some(("header", name)) if http::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
                CacheKeyPart::Header(name.to_ascii_lowercase())
            }
            _ => {
                d.at(
                    k.span(),
                    format!(
                        "cache key `{s}` is not `path.NAME`, `query.NAME`, `header.NAME` or `body`"
                    ),
                );
                continue;
            }
        };
        key.push(part);
    }
    let method = method.trim().to_ascii_uppercase();
    if !BODYLESS_METHODS.contains(&method.as_str()) && !key.contains(&CacheKeyPart::Body) {
        d.at(
            c.span(),
            format!(
                "a cached {method} route must key on its body: add \"body\" to the cache `key` \
                 (otherwise one caller's answer would be served for another's body)"
            ),
        );
    }
    let invalidation = match raw.invalidation.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("nobody") => Invalidation::Nobody,
        Some("authorized") => Invalidation::Authorized,
        Some("anyone") => Invalidation::Anyone,
        Some(other) => {
            d.at(
                raw.invalidation
                    .as_ref()
                    .map(|s| s.span())
                    .unwrap_or_default(),
                format!(
                    "cache `invalidation` `{other}` is not \"nobody\", \"authorized\" or \"anyone\""
                ),
            );
            Invalidation::Nobody
        }
    };
    RouteCache {
        ttl,
        key,
        per_identity: raw.per_identity.unwrap_or(false),
        invalidation,
    }
}
