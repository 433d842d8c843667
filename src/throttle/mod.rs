//! Throttle & quota phase, after auth (it needs the API key's plan) and
//! before validation, caching and the integration. Four GCRA levels, checked
//! in API Gateway's order: the key's plan (or the plan's throttle for this
//! route), the route, the stage, the whole gateway. A refusal is
//! `429 {"message":"Too Many Requests"}` with `Retry-After`; then the plan's
//! quota is counted in the store, and a spent quota is
//! `429 {"message":"Limit Exceeded"}`. Responses on throttled routes carry
//! IETF draft `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset`
//! headers for the most restrictive level.
//!
//! State is local (governor, [`limiter`]) or, with `[cluster] redis_url`,
//! in Redis ([`redis`]), where one script checks every level atomically.
//! Routes with no throttle, no key and no stage/gateway limit pass straight
//! through.

pub mod limiter;
pub mod quota;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use crate::pipeline::{Next, PhaseFuture, answer};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::app::GatewayState;
use crate::auth::api_key::KeyGrant;
use crate::config::{Config, StageConfig, ThrottleConfig};
use crate::error::GatewayError;
use crate::routing::RouteContext;
use crate::store::Store;
use crate::telemetry::RequestInfo;

use limiter::{DirectLimiter, KeyLimiters};
use quota::UsageRecorder;
use redis::{KeyLeases, Lease, RedisGcra, Step};

/// One limiter's decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    /// The bucket size (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests still admissible right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Time until the bucket is full again (`RateLimit-Reset`).
    pub reset: Duration,
    /// When refused: time until a request would be admitted.
    pub retry_after: Duration,
}

/// One level's limiter, with its throttle and, in cluster mode, this
/// node's lease on its Redis bucket.
struct Level {
    config: ThrottleConfig,
    local: DirectLimiter,
    lease: Option<Lease>,
}

impl Level {
    /// `key` names the level's Redis bucket (built once, here).
    fn new(config: ThrottleConfig, redis: Option<&RedisGcra>, key: &[&str]) -> Self {
        Self {
            config,
            local: DirectLimiter::new(config),
            lease: redis.map(|r| Lease::new(r.key(key))),
        }
    }
}

/// Every limiter of the serving stage, built once at start-up. Shared, so
/// a request that must await (a Redis step, a quota count) holds it
/// without borrowing the gateway.
pub struct Throttles(Arc<Levels>);

/// What [`Throttles`] shares.
struct Levels {
    global: Option<Level>,
    stage: Option<Level>,
    /// By route index.
    routes: Vec<Option<Level>>,
    keys: KeyLimiters,
    redis: Option<RedisGcra>,
    /// Cluster mode: leases on the per-key buckets.
    key_leases: KeyLeases,
    fail_closed: bool,
    store: Option<Store>,
    usage: Option<Arc<UsageRecorder>>,
    /// `throttled_total` by scope: key, route, stage, global.
    throttled: [metrics::Counter; 4],
}

/// A refusal: the error and the verdict behind it, if a limiter refused.
type Refusal = (GatewayError, Option<Verdict>);

/// The scopes of [`Levels::throttled`], in order.
const SCOPES: [&str; 4] = ["key", "route", "stage", "global"];

impl Throttles {
    /// Whether a request on route `index` may meet a throttle or quota:
    /// a global, stage or route limit, or a key's plan (`keyed`).
    pub fn applies_to(&self, index: usize, keyed: bool) -> bool {
        keyed
            || self.0.global.is_some()
            || self.0.stage.is_some()
            || self.0.routes.get(index).is_none_or(Option::is_some)
    }

    pub fn new(config: &Config, stage: &StageConfig, store: Option<Store>) -> Result<Self, String> {
        Levels::new(config, stage, store).map(|l| Self(Arc::new(l)))
    }

    /// Writes pending usage counts (on shutdown, and before the admin API
    /// reports usage); returns how many requests were written.
    pub async fn flush(&self) -> u64 {
        match &self.0.usage {
            Some(u) => u.flush().await,
            None => 0,
        }
    }
}

impl Levels {
    fn new(config: &Config, stage: &StageConfig, store: Option<Store>) -> Result<Self, String> {
        let redis = match &config.cluster {
            Some(c) => Some(RedisGcra::new(&c.redis_url, &c.key_prefix, c.lease)?),
            None => None,
        };
        let (api_id, stage_name) = (&config.gateway.api_id, &stage.name);
        let r = redis.as_ref();
        Ok(Self {
            global: config
                .gateway
                .throttle
                .map(|t| Level::new(t, r, &["g", api_id])),
            stage: stage
                .throttle
                .map(|t| Level::new(t, r, &["s", api_id, stage_name])),
            routes: config
                .routes
                .iter()
                .map(|route| {
                    route
                        .throttle
                        .map(|t| Level::new(t, r, &["r", api_id, stage_name, &route.route_key()]))
                })
                .collect(),
            keys: KeyLimiters::default(),
            key_leases: KeyLeases::default(),
            fail_closed: config.cluster.as_ref().is_some_and(|c| c.fail_closed),
            redis,
            usage: store
                .clone()
                .map(|s| UsageRecorder::start(s, config.api_keys.usage_flush_interval)),
            store,
            throttled: SCOPES.map(crate::metrics::throttled_counter),
        })
    }

    /// Counts a refusal by `scope` (one of [`SCOPES`]).
    fn count_throttled(&self, scope: &str) {
        if let Some(i) = SCOPES.iter().position(|s| *s == scope) {
            self.throttled[i].increment(1);
        }
    }

    /// The key-level throttle for a grant on a route: the plan's throttle
    /// for this route if it has one, else the plan's.
    fn key_level(grant: &KeyGrant, route_key: &str) -> Option<(ThrottleConfig, bool)> {
        let plan = &grant.plan;
        let per_route = if plan.route_throttles.is_empty() {
            None
        } else {
            plan.route_throttles.get(route_key)
        };
        match per_route {
            Some(t) => Some((*t, true)),
            None => plan.throttle.map(|t| (t, false)),
        }
    }

    /// Decides without awaiting when it can: with local limits always, in
    /// cluster mode when every level's lease still holds a live cell.
    /// `None`: a Redis step is due, for [`Levels::check`].
    fn check_now(
        &self,
        route_index: usize,
        route_key: &str,
        grant: Option<&KeyGrant>,
    ) -> Option<Result<Option<Verdict>, Refusal>> {
        let key_level = grant.and_then(|g| Self::key_level(g, route_key).map(|l| (g, l)));
        let route = self.routes.get(route_index).and_then(Option::as_ref);
        // The common case, a route with no limit at any level, costs nothing.
        if key_level.is_none() && route.is_none() && self.stage.is_none() && self.global.is_none() {
            return Some(Ok(None));
        }
        match &self.redis {
            Some(r) => {
                let key_lease = self.key_lease(r, key_level.as_ref(), route_key);
                let (levels, _) = self.cluster_steps(key_lease.as_ref(), route);
                r.try_leased(&levels).map(|v| Ok(Some(v)))
            }
            None => Some(self.check_local(key_level.as_ref(), route, route_key)),
        }
    }

    /// The lease on a key's bucket, with its throttle, in cluster mode.
    fn key_lease(
        &self,
        r: &RedisGcra,
        key_level: Option<&(&KeyGrant, (ThrottleConfig, bool))>,
        route_key: &str,
    ) -> Option<(Arc<Lease>, ThrottleConfig)> {
        key_level.map(|(g, (t, per_route))| {
            let route = per_route.then_some(route_key);
            let lease = self
                .key_leases
                .get(&g.plan.name, route, &g.key_id, || match route {
                    Some(route) => r.key(&["k", &g.plan.name, route, &g.key_id]),
                    None => r.key(&["k", &g.plan.name, &g.key_id]),
                });
            (lease, *t)
        })
    }

    /// The cluster levels a request passes, outermost first, with their
    /// scopes.
    fn cluster_steps<'a>(
        &'a self,
        key_lease: Option<&'a (Arc<Lease>, ThrottleConfig)>,
        route: Option<&'a Level>,
    ) -> (Vec<Step<'a>>, [&'static str; 4]) {
        let mut levels = Vec::with_capacity(4);
        let mut scopes: [&'static str; 4] = ["key"; 4];
        if let Some((lease, t)) = key_lease {
            levels.push(Step { lease, config: *t });
        }
        for (scope, level) in [
            ("route", route),
            ("stage", self.stage.as_ref()),
            ("global", self.global.as_ref()),
        ] {
            if let Some(l) = level
                && let Some(lease) = &l.lease
            {
                scopes[levels.len()] = scope;
                levels.push(Step {
                    lease,
                    config: l.config,
                });
            }
        }
        (levels, scopes)
    }

    /// Checks every level; Ok(headers' verdict) or the refusal.
    async fn check(
        &self,
        route_index: usize,
        route_key: &str,
        grant: Option<&KeyGrant>,
    ) -> Result<Option<Verdict>, Refusal> {
        let key_level = grant.and_then(|g| Self::key_level(g, route_key).map(|l| (g, l)));
        let route = self.routes.get(route_index).and_then(Option::as_ref);
        // The common case, a route with no limit at any level, costs nothing.
        if key_level.is_none() && route.is_none() && self.stage.is_none() && self.global.is_none() {
            return Ok(None);
        }
        if let Some(r) = &self.redis {
            let key_lease = self.key_lease(r, key_level.as_ref(), route_key);
            let (levels, scopes) = self.cluster_steps(key_lease.as_ref(), route);
            match r.check(&levels).await {
                Ok((v, _)) if v.allowed => return Ok(Some(v)),
                Ok((v, refused_by)) => {
                    let scope = refused_by.and_then(|i| scopes.get(i)).copied();
                    self.count_throttled(scope.unwrap_or("global"));
                    return Err((too_many(v.retry_after), Some(v)));
                }
                Err(redis::Unreachable) if self.fail_closed => {
                    return Err((
                        GatewayError::Unavailable(
                            "Redis unreachable and [cluster] fail_closed".into(),
                        ),
                        None,
                    ));
                }
                Err(redis::Unreachable) => {} // fail open: local limits below
            }
        }
        self.check_local(key_level.as_ref(), route, route_key)
    }

    /// Every level on this node's own limiters.
    fn check_local(
        &self,
        key_level: Option<&(&KeyGrant, (ThrottleConfig, bool))>,
        route: Option<&Level>,
        route_key: &str,
    ) -> Result<Option<Verdict>, Refusal> {
        let mut tightest: Option<Verdict> = None;
        let mut take = |scope: &'static str, v: Verdict| -> Result<(), Refusal> {
            if !v.allowed {
                self.count_throttled(scope);
                return Err((too_many(v.retry_after), Some(v)));
            }
            if tightest.is_none_or(|t| v.remaining < t.remaining) {
                tightest = Some(v);
            }
            Ok(())
        };
        if let Some((g, (t, per_route))) = key_level {
            let route = per_route.then_some(route_key);
            take("key", self.keys.check(&g.plan.name, route, t, &g.key_id))?;
        }
        if let Some(l) = route {
            take("route", l.local.check())?;
        }
        if let Some(l) = &self.stage {
            take("stage", l.local.check())?;
        }
        if let Some(l) = &self.global {
            take("global", l.local.check())?;
        }
        Ok(tightest)
    }

    /// Counts the request against the key's quota; Err when it is spent.
    async fn consume_quota(&self, grant: &KeyGrant) -> Result<(), GatewayError> {
        let Some(q) = grant.plan.quota else {
            return Ok(());
        };
        let Some(store) = &self.store else {
            return Err(GatewayError::Internal("a quota needs the store".into()));
        };
        let now = time::OffsetDateTime::now_utc();
        let (start, end) = quota::period_bounds(q.period, now);
        match store.consume_quota(&grant.key_id, start, q.limit).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                crate::metrics::quota_exceeded(&grant.plan.name);
                Err(GatewayError::LimitExceeded {
                    retry_after_secs: (end - now.unix_timestamp()).max(1) as u64,
                })
            }
            Err(e) => Err(GatewayError::Internal(format!("quota count failed: {e}"))),
        }
    }
}

fn too_many(wait: Duration) -> GatewayError {
    GatewayError::TooManyRequests {
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
}

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Sets the IETF draft `RateLimit-*` headers.
pub fn rate_limit_headers(h: &mut HeaderMap, v: &Verdict) {
    h.insert(RATELIMIT_LIMIT, number(u64::from(v.limit)));
    h.insert(RATELIMIT_REMAINING, number(u64::from(v.remaining)));
    h.insert(RATELIMIT_RESET, number(v.reset.as_secs_f64().ceil() as u64));
}

/// A header value for a number; small ones (most `RateLimit-*` and
/// `Retry-After` values) are clones from a table built once, so setting
/// them allocates nothing.
pub fn number(n: u64) -> HeaderValue {
    const TABLE: usize = 1024;
    static SMALL: std::sync::LazyLock<Vec<HeaderValue>> = std::sync::LazyLock::new(|| {
        let mut text = String::new();
        let mut ends = Vec::with_capacity(TABLE);
        for i in 0..TABLE {
            text.push_str(&i.to_string());
            ends.push(text.len());
        }
        let all = bytes::Bytes::from(text);
        let mut start = 0;
        ends.into_iter()
            .map(|end| {
                let v = HeaderValue::from_maybe_shared(all.slice(start..end))
                    .unwrap_or_else(|_| HeaderValue::from_static("0"));
                start = end;
                v
            })
            .collect()
    });
    match usize::try_from(n).ok().and_then(|i| SMALL.get(i)) {
        Some(v) => v.clone(),
        None => HeaderValue::from(n),
    }
}

/// Throttle & quota phase. Decided without awaiting on the common path
/// (local limits, or live cluster leases, and no quota): it then hands back
/// the rest's future, and the `RateLimit-*` verdict goes to the access-log
/// phase, which sets the headers on whatever response comes back. Only a
/// Redis step or a quota count (a store write) is awaited, in a box.
pub fn enforce(state: &GatewayState, req: Request, next: Next) -> PhaseFuture {
    let Some(ctx) = req.extensions().get::<RouteContext>() else {
        return next.run(req);
    };
    let throttles = &state.throttles.0;
    let grant = req.extensions().get::<KeyGrant>();
    let route = &ctx.route;
    let verdict = match throttles.check_now(route.config.index, &route.route_key, grant) {
        Some(Ok(v)) => v,
        Some(Err((e, v))) => return answer(refusal(e, v, req)),
        None => return Box::pin(enforce_awaiting(state.throttles.0.clone(), req, next)),
    };
    if let Some(g) = grant {
        if g.plan.quota.is_some() {
            return Box::pin(after_check(state.throttles.0.clone(), verdict, req, next));
        }
        throttles.record_usage(g);
    }
    respond_with(verdict, req, next)
}

/// The phase when a Redis step is due: the whole check, then the quota.
async fn enforce_awaiting(throttles: Arc<Levels>, req: Request, next: Next) -> Response {
    let Some(ctx) = req.extensions().get::<RouteContext>() else {
        return next.run(req).await;
    };
    let route = ctx.route.clone();
    let grant = req.extensions().get::<KeyGrant>();
    let verdict = match throttles
        .check(route.config.index, &route.route_key, grant)
        .await
    {
        Ok(v) => v,
        Err((e, v)) => return refusal(e, v, req),
    };
    after_check(throttles, verdict, req, next).await
}

/// After an admitting check: counts the quota and the usage, then the rest.
async fn after_check(
    throttles: Arc<Levels>,
    verdict: Option<Verdict>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(g) = req.extensions().get::<KeyGrant>() {
        if let Err(e) = throttles.consume_quota(g).await {
            if matches!(e, GatewayError::Internal(_)) {
                tracing::error!(target: "lambdagate::throttle", error = %e, "quota step failed");
            }
            return refusal(e, verdict, req);
        }
        throttles.record_usage(g);
    }
    respond_with(verdict, req, next).await
}

/// The rest of the pipeline, its response to carry `verdict`'s
/// `RateLimit-*` headers: set by the access-log phase on the way out (so
/// this phase awaits nothing), or here when that phase is not running.
fn respond_with(verdict: Option<Verdict>, req: Request, next: Next) -> PhaseFuture {
    let Some(v) = verdict else {
        return next.run(req);
    };
    if let Some(info) = req.extensions().get::<RequestInfo>() {
        info.record.set_rate_limit(v);
        return next.run(req);
    }
    Box::pin(async move {
        let mut res = next.run(req).await;
        rate_limit_headers(res.headers_mut(), &v);
        res
    })
}

impl Levels {
    /// Counts a request in the key's daily usage.
    fn record_usage(&self, g: &KeyGrant) {
        if let Some(u) = &self.usage {
            match &g.usage {
                Some(cell) => u.record_in(&g.key_id, cell),
                None => u.record(&g.key_id),
            }
        }
    }
}

/// A 429 (or 500/503), built from the error and the verdict alone; the
/// request's route context moves to the response for the access log.
fn refusal(e: GatewayError, v: Option<Verdict>, mut req: Request) -> Response {
    let ctx = req.extensions_mut().remove::<RouteContext>();
    let mut res = e.into_response();
    if let Some(v) = &v {
        rate_limit_headers(res.headers_mut(), v);
    }
    if let Some(ctx) = ctx {
        res.extensions_mut().insert(ctx);
    }
    res
}
