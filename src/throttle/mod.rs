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

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::auth::api_key::KeyGrant;
use crate::config::{Config, StageConfig, ThrottleConfig};
use crate::error::GatewayError;
use crate::pipeline::phase::{Next, Phase, PhaseFuture, answer};
use crate::routing::RouteContext;
use crate::store::Store;
use crate::telemetry::RequestInfo;

use limiter::{DirectLimiter, KeyLimiters};
use quota::{QuotaError, QuotaLease, QuotaLeases, UsageRecorder};
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
#[derive(Clone)]
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
    /// This node's blocks of each key's quota (with the store).
    quotas: Option<QuotaLeases>,
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

    /// On shutdown (or when a reload replaces these limits): writes pending
    /// usage counts and gives the quota this node holds unspent back.
    pub async fn shutdown(&self) {
        self.flush().await;
        if let Some(q) = &self.0.quotas {
            q.release().await;
        }
    }

    /// Requests of `key_id`'s quota period this node holds unspent: the
    /// store counts them as used.
    pub fn unspent_quota(&self, key_id: &str, period_start: i64) -> u64 {
        self.0
            .quotas
            .as_ref()
            .map_or(0, |q| q.unspent(key_id, period_start))
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
            quotas: store.map(QuotaLeases::new),
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
            let lease = self.key_leases.get(
                &g.plan.name,
                route,
                &g.key_id,
                || r.now_us(),
                || match route {
                    Some(route) => r.key(&["k", &g.plan.name, route, &g.key_id]),
                    None => r.key(&["k", &g.plan.name, &g.key_id]),
                },
            );
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

    /// Every level on this node's own limiters, all or nothing: a request
    /// refused at one level spends no cell at any other.
    fn check_local(
        &self,
        key_level: Option<&(&KeyGrant, (ThrottleConfig, bool))>,
        route: Option<&Level>,
        route_key: &str,
    ) -> Result<Option<Verdict>, Refusal> {
        // The bucket the key's cached grant found before (borrowed, no
        // reference count touched), unless the plan's limits changed since
        // or the plan has a throttle of its own for this route.
        let mut fetched: Option<Arc<DirectLimiter>> = None;
        let key_bucket: Option<&DirectLimiter> = match key_level {
            None => None,
            Some((g, (t, per_route))) => {
                match g.bucket.get().filter(|b| !*per_route && b.config() == t) {
                    Some(b) => Some(b),
                    None => {
                        let route = per_route.then_some(route_key);
                        let b = self.keys.bucket(&g.plan.name, route, t, &g.key_id);
                        if !*per_route {
                            let _ = g.bucket.set(b.clone());
                        }
                        Some(fetched.insert(b))
                    }
                }
            }
        };
        let levels: smallvec::SmallVec<[(&'static str, &DirectLimiter); 4]> = [
            key_bucket.map(|b| ("key", b)),
            route.map(|l| ("route", &l.local)),
            self.stage.as_ref().map(|l| ("stage", &l.local)),
            self.global.as_ref().map(|l| ("global", &l.local)),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut tightest: Option<Verdict> = None;
        let outcome = limiter::check_all(levels.iter().map(|(_, l)| *l), |_, v| {
            if tightest.is_none_or(|t| v.remaining < t.remaining) {
                tightest = Some(v);
            }
        });
        match outcome {
            Ok(()) => Ok(tightest),
            Err((i, v)) => {
                self.count_throttled(levels.get(i).map_or("global", |(scope, _)| scope));
                Err((too_many(v.retry_after), Some(v)))
            }
        }
    }

    /// The key's lease on this node's quota, found once per cached grant.
    fn quota_lease<'g>(&self, quotas: &QuotaLeases, grant: &'g KeyGrant) -> &'g Arc<QuotaLease> {
        grant
            .quota_lease
            .get_or_init(|| quotas.lease(&grant.key_id))
    }

    /// Counts the request against the key's quota when this node's block
    /// still holds a cell for the current period: `true`, decided without
    /// awaiting. `false`: [`Levels::consume_quota`] decides.
    fn quota_now(&self, grant: &KeyGrant) -> bool {
        match (&grant.plan.quota, &self.quotas) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(q), Some(quotas)) => {
                let lease = self.quota_lease(quotas, grant);
                match lease.take_now(crate::store::now_secs()) {
                    Some(left) => {
                        quotas.top_up(&grant.key_id, lease, left, q.limit);
                        true
                    }
                    None => false,
                }
            }
        }
    }

    /// Counts the request against the key's quota; Err when it is spent.
    async fn consume_quota(&self, grant: &KeyGrant) -> Result<(), GatewayError> {
        let Some(q) = grant.plan.quota else {
            return Ok(());
        };
        let Some(quotas) = &self.quotas else {
            return Err(GatewayError::Internal("a quota needs the store".into()));
        };
        let now = time::OffsetDateTime::now_utc();
        let (start, end) = quota::period_bounds(q.period, now);
        let lease = self.quota_lease(quotas, grant);
        match quotas
            .consume(&grant.key_id, lease, (start, end), q.limit)
            .await
        {
            Ok(()) => Ok(()),
            Err(QuotaError::Spent) => {
                crate::metrics::quota_exceeded(&grant.plan.name);
                Err(GatewayError::LimitExceeded {
                    retry_after_secs: (end - now.unix_timestamp()).max(1) as u64,
                })
            }
            // The store is down: the request is neither counted nor
            // refused as over quota (503; the store logs the outage).
            Err(QuotaError::Store(e)) if e.is_unreachable() => {
                Err(GatewayError::Unavailable(format!("quota count: {e}")))
            }
            Err(QuotaError::Store(e)) => {
                Err(GatewayError::Internal(format!("quota count failed: {e}")))
            }
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

/// Sets the IETF draft `RateLimit-*` headers. Room for all three and for
/// the request id the access-log phase adds next is made at once, so the
/// map grows at most once (a mock's empty map: one allocation of the right
/// size instead of a small one grown again).
pub fn rate_limit_headers(h: &mut HeaderMap, v: &Verdict) {
    h.reserve(4);
    h.insert(RATELIMIT_LIMIT, number(u64::from(v.limit)));
    h.insert(RATELIMIT_REMAINING, number(u64::from(v.remaining)));
    h.insert(RATELIMIT_RESET, number(v.reset.as_secs_f64().ceil() as u64));
}

/// A header value for a number; small ones (most `RateLimit-*` and
/// `Retry-After` values) are clones from a table built once, and larger
/// ones come from a small per-thread cache of the values encoded last (a
/// plan's `RateLimit-Limit` repeats on every response), so setting them
/// rarely allocates.
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
    const RECENT: usize = 16;
    thread_local! {
        static LARGE: std::cell::RefCell<[(u64, Option<HeaderValue>); RECENT]> =
            const { std::cell::RefCell::new([const { (0, None) }; RECENT]) };
    }
    if let Some(v) = usize::try_from(n).ok().and_then(|i| SMALL.get(i)) {
        return v.clone();
    }
    LARGE
        .try_with(|slots| {
            let mut slots = slots.borrow_mut();
            let slot = &mut slots[n as usize % RECENT];
            match slot {
                (m, Some(v)) if *m == n => v.clone(),
                _ => {
                    let v = HeaderValue::from(n);
                    *slot = (n, Some(v.clone()));
                    v
                }
            }
        })
        .unwrap_or_else(|_| HeaderValue::from(n))
}

/// Where the numbers start in a [`refusal_template`] (the request id, if
/// it has room for one, follows them).
const RETRY_AFTER_AT: usize = 2;

/// The response headers of a 429 carrying a verdict, in the order
/// [`GatewayError::into_response`] and [`rate_limit_headers`] set them:
/// `Content-Type`, `x-amzn-ErrorType`, `Retry-After`, `RateLimit-Limit`,
/// `-Remaining`, `-Reset`, then the request id header named `id` if any,
/// empty, for the access-log phase to fill in place (adding the header
/// there would grow the map). Cloned per refusal (two allocations, no
/// hashing) and the numbers written in place.
fn refusal_template(error_type: &'static str, id: Option<&HeaderName>) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(8);
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        HeaderName::from_static("x-amzn-errortype"),
        HeaderValue::from_static(error_type),
    );
    for name in [
        axum::http::header::RETRY_AFTER,
        RATELIMIT_LIMIT,
        RATELIMIT_REMAINING,
        RATELIMIT_RESET,
    ] {
        h.insert(name, HeaderValue::from_static("0"));
    }
    if let Some(name) = id {
        h.insert(name.clone(), HeaderValue::from_static(""));
    }
    h
}

/// A throttle or quota 429 with its verdict, built from a template: the
/// same status, headers (same order) and body as the error's own response
/// with [`rate_limit_headers`] added, for a fraction of the work.
/// `extensions` become the response's, with the error's detail added
/// and the [`RequestInfo`] left out.
fn fixed_refusal(
    e: GatewayError,
    v: &Verdict,
    mut extensions: axum::http::Extensions,
) -> Result<Response, (GatewayError, axum::http::Extensions)> {
    use crate::telemetry::{APIGW_REQUESTID, X_AMZN_REQUESTID};
    // By the request id header they have room for: none, REST's, HTTP's.
    fn templates(error_type: &'static str) -> [HeaderMap; 3] {
        [None, Some(&X_AMZN_REQUESTID), Some(&APIGW_REQUESTID)]
            .map(|id| refusal_template(error_type, id))
    }
    static TOO_MANY: std::sync::LazyLock<[HeaderMap; 3]> =
        std::sync::LazyLock::new(|| templates("TooManyRequestsException"));
    static LIMIT_EXCEEDED: std::sync::LazyLock<[HeaderMap; 3]> =
        std::sync::LazyLock::new(|| templates("LimitExceededException"));
    let (template, body, retry_after) = match &e {
        GatewayError::TooManyRequests { retry_after_secs } => (
            &TOO_MANY,
            r#"{"message":"Too Many Requests"}"#,
            *retry_after_secs,
        ),
        GatewayError::LimitExceeded { retry_after_secs } => (
            &LIMIT_EXCEEDED,
            r#"{"message":"Limit Exceeded"}"#,
            *retry_after_secs,
        ),
        _ => return Err((e, extensions)),
    };
    // Taken out: the way out has its own copy, and an entry fewer keeps
    // the map from growing (a rehash) when the detail goes in beside an
    // API key's `AuthContext`.
    let info = extensions.remove::<RequestInfo>();
    // The template with room for the id's header, which the access-log
    // phase fills in place on the way out.
    let with_id = match info.as_ref().and_then(|info| info.id_header.as_ref()) {
        Some((name, _)) if **name == X_AMZN_REQUESTID => 1,
        Some((name, _)) if **name == APIGW_REQUESTID => 2,
        _ => 0,
    };
    let mut headers = HeaderMap::clone(&template[with_id]);
    let values = [
        number(retry_after),
        number(u64::from(v.limit)),
        number(u64::from(v.remaining)),
        number(v.reset.as_secs_f64().ceil() as u64),
    ];
    for (slot, value) in headers.values_mut().skip(RETRY_AFTER_AT).zip(values) {
        *slot = value;
    }
    let mut res = Response::new(axum::body::Body::from(body));
    *res.status_mut() = axum::http::StatusCode::TOO_MANY_REQUESTS;
    *res.headers_mut() = headers;
    extensions.insert(crate::error::ErrorDetail(e));
    *res.extensions_mut() = extensions;
    Ok(res)
}

/// Throttle & quota phase: every limiter of the serving stage. Decided
/// without awaiting on the common path (local limits, or live cluster
/// leases, and no quota); the `RateLimit-*` headers of the verdict go on
/// whatever response comes back. A Redis step or a quota count (a store
/// write) is awaited in the same box.
impl Phase for Throttles {
    fn call(self: Arc<Self>, req: Request, next: Next) -> PhaseFuture {
        enforce(&self.0, req, next)
    }
}

fn enforce(throttles: &Arc<Levels>, req: Request, next: Next) -> PhaseFuture {
    let Some(ctx) = req.extensions().get::<RouteContext>() else {
        return next.run(req);
    };
    let grant = crate::auth::api_key::grant_of(&req);
    let route = &ctx.route;
    let verdict = match throttles.check_now(route.config.index, &route.route_key, grant) {
        Some(Ok(v)) => v,
        Some(Err((e, v))) => return answer(refusal(e, v, req)),
        None => return Box::pin(enforce_awaiting(throttles.clone(), req, next)),
    };
    if let Some(g) = grant {
        if !throttles.quota_now(g) {
            return Box::pin(after_check(throttles.clone(), verdict, req, next));
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
    let grant = crate::auth::api_key::grant_of(&req);
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
    if let Some(g) = crate::auth::api_key::grant_of(&req) {
        if let Err(e) = throttles.consume_quota(g).await {
            if matches!(e, GatewayError::Internal(_)) {
                tracing::error!(target: "lambdagate::throttle", error = %e, "quota step failed");
            }
            return refusal(e, verdict, req);
        }
        throttles.record_usage(g);
    }
    let mut res = next.run(req).await;
    if let Some(v) = &verdict {
        rate_limit_headers(res.headers_mut(), v);
    }
    res
}

/// The rest of the pipeline, its response to carry `verdict`'s
/// `RateLimit-*` headers, set here on the way back.
fn respond_with(verdict: Option<Verdict>, req: Request, next: Next) -> PhaseFuture {
    let Some(v) = verdict else {
        return next.run(req);
    };
    let rest = next.run(req);
    Box::pin(async move {
        let mut res = rest.await;
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
/// request's route context moves to the response for the access log (with
/// a verdict, all of the request's extensions move: one map handed over
/// instead of one taken apart and another built).
fn refusal(e: GatewayError, v: Option<Verdict>, mut req: Request) -> Response {
    if let Some(v) = &v {
        let extensions = std::mem::take(req.extensions_mut());
        drop(req);
        return fixed_refusal(e, v, extensions).unwrap_or_else(|(e, extensions)| {
            let mut res = e.into_response();
            rate_limit_headers(res.headers_mut(), v);
            if let Some(ctx) = extensions.get::<RouteContext>() {
                res.extensions_mut().insert(ctx.clone());
            }
            res
        });
    }
    let ctx = req.extensions_mut().remove::<RouteContext>();
    let mut res = e.into_response();
    if let Some(ctx) = ctx {
        res.extensions_mut().insert(ctx);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route throttled to a bucket of two, as a phase with a terminal
    /// `Next`: the third request in a row is refused before the function,
    /// and every answer carries the `RateLimit-*` headers the phase sets
    /// on the way back.
    #[tokio::test]
    async fn the_phase_admits_a_burst_then_refuses_with_its_headers() {
        use crate::testing::{config, function, routed};
        let config = config(
            r#"
[[routes]]
method = "GET"
path = "/items"
mock = { status = 200 }
throttle = { rate = 0.001, burst = 2 }
"#,
        );
        let stage = config.stages[&config.gateway.stage].clone();
        let phase = Arc::new(Throttles::new(&config, &stage, None).unwrap());
        assert!(phase.applies_to(0, false));
        let f = function(axum::http::StatusCode::OK, "{}");
        let get = || {
            routed(
                &config,
                0,
                &[],
                Request::get("/items").body(Default::default()).unwrap(),
            )
        };
        for remaining in ["1", "0"] {
            let res = phase.clone().call(get(), f.next.clone()).await;
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["ratelimit-limit"], "2");
            assert_eq!(res.headers()["ratelimit-remaining"], remaining);
        }
        let res = phase.clone().call(get(), f.next.clone()).await;
        assert_eq!(res.status(), 429);
        assert!(res.headers().contains_key("retry-after"));
        assert_eq!(res.headers()["ratelimit-remaining"], "0");
        assert_eq!(f.calls(), 2);
    }

    /// Status, headers in order, body and error detail of a response.
    async fn parts(res: Response) -> (u16, Vec<(String, String)>, Vec<u8>, String) {
        let status = res.status().as_u16();
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let detail = format!("{:?}", res.extensions().get::<crate::error::ErrorDetail>());
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        (status, headers, body, detail)
    }

    #[tokio::test]
    async fn templated_refusals_are_the_errors_own_responses() {
        let verdicts = [
            Verdict {
                allowed: false,
                limit: 20,
                remaining: 0,
                reset: Duration::from_millis(2500),
                retry_after: Duration::from_millis(300),
            },
            Verdict {
                allowed: false,
                limit: 1_000_000,
                remaining: 999_999,
                reset: Duration::from_secs(86_400 * 40),
                retry_after: Duration::ZERO,
            },
        ];
        for v in verdicts {
            for e in [
                too_many(v.retry_after),
                GatewayError::LimitExceeded {
                    retry_after_secs: 4_000,
                },
            ] {
                let mut expected = e.clone().into_response();
                rate_limit_headers(expected.headers_mut(), &v);
                let templated = fixed_refusal(e.clone(), &v, Default::default()).unwrap();
                assert_eq!(parts(templated).await, parts(expected).await);
                // With the request id the access-log phase adds last.
                for name in [
                    &crate::telemetry::X_AMZN_REQUESTID,
                    &crate::telemetry::APIGW_REQUESTID,
                ] {
                    let id = HeaderValue::from_static("c0ffee-1");
                    let mut expected = e.clone().into_response();
                    rate_limit_headers(expected.headers_mut(), &v);
                    expected.headers_mut().insert(name, id.clone());
                    let mut extensions = axum::http::Extensions::new();
                    extensions.insert(RequestInfo {
                        request_id: "c0ffee-1".into(),
                        id_header: Some((name, id.clone())),
                        received_at: std::time::SystemTime::now(),
                        started: std::time::Instant::now(),
                        source_ip: std::net::Ipv4Addr::LOCALHOST.into(),
                        record: Arc::default(),
                    });
                    let mut templated = fixed_refusal(e.clone(), &v, extensions).unwrap();
                    // What the access-log phase then does: a replacement.
                    let before = templated.headers().len();
                    templated.headers_mut().insert(name, id);
                    assert_eq!(templated.headers().len(), before);
                    assert_eq!(parts(templated).await, parts(expected).await);
                }
            }
        }
        assert!(
            fixed_refusal(
                GatewayError::Internal("x".into()),
                &verdicts[0],
                Default::default()
            )
            .is_err()
        );
    }

    #[test]
    fn numbers_encode_the_same_from_the_table_the_cache_and_fresh() {
        for n in [0, 7, 1023, 1024, 999_999, 1_000_000, 1_000_016, u64::MAX] {
            for _ in 0..3 {
                assert_eq!(number(n), HeaderValue::from(n), "{n}");
            }
        }
    }
}
