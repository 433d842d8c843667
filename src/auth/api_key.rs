//! API key check, the last step of the auth phase (as in API Gateway, where
//! the key is checked after the authorizer): routes with `api_key = true` (or
//! `auth` naming a `kind = "api_key"` authorizer) need a valid key in
//! `x-api-key` (or `[api_keys] header`, or the Lambda authorizer's
//! `usageIdentifierKey` with `[api_keys] source = "authorizer"`). A missing,
//! unknown, disabled or expired key, or one in no usage plan, is
//! `403 {"message":"Forbidden"}`; a key that must be read from a store that
//! cannot be reached is neither accepted nor refused: `503`. The key id and the key reach the event as
//! `requestContext.identity.apiKeyId` / `apiKey`; the key's plan goes on to
//! the throttle & quota phase as a [`KeyGrant`] in the [`AuthContext`].
//!
//! Keys look like `lg_<id>_<secret>`: a 10-character public id and 256 random
//! bits (base64url). Only the SHA-256 of the whole key is stored; lookups go
//! by id and compare hashes in constant time. Each node caches what it read
//! (the key, its plan, and the key as last verified, so a repeat request is
//! one constant-time compare and no hashing) for `[api_keys] cache_ttl`
//! (default 5 s), so a revocation reaches every node within that time
//! without a store read per request.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::HeaderName;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::{ApiKeyIdentity, AuthContext};
use crate::config::{
    ApiKeySource, AuthKind, Config, PlanConfig, QuotaConfig, QuotaPeriod, ThrottleConfig,
};
use crate::error::GatewayError;
use crate::pipeline::phase::{Next, Phase, PhaseFuture, answer};
use crate::routing::RouteContext;
use crate::store::{KeyRecord, PlanRecord, Store, StoreError, now_secs};
use crate::throttle::limiter::KeyBucket;
use crate::throttle::quota::{QuotaLease, UsageCell};

const PREFIX: &str = "lg_";
const ID_LEN: usize = 10;
const SECRET_BYTES: usize = 32;
const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A freshly generated key: shown once, then only its hash is kept.
pub struct GeneratedKey {
    pub id: String,
    pub key: String,
    pub hash: String,
}

/// Generates a key id and secret from the OS-seeded CSPRNG.
pub fn generate() -> GeneratedKey {
    let id = new_id();
    generate_for(&id)
}

/// A new secret for an existing id (rotation).
pub fn generate_for(id: &str) -> GeneratedKey {
    let secret: [u8; SECRET_BYTES] = rand::random();
    let key = format!(
        "{PREFIX}{id}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    GeneratedKey {
        id: id.to_string(),
        hash: hash(&key),
        key,
    }
}

fn new_id() -> String {
    let bytes: [u8; ID_LEN] = rand::random();
    bytes
        .iter()
        .map(|b| ID_ALPHABET[*b as usize % ID_ALPHABET.len()] as char)
        .collect()
}

/// Hex SHA-256 of a key, the only form the store keeps.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// What each byte may be in a key, so checking a key's shape (on every
/// keyed request) is a table read per byte without branches: bit 0, an id
/// byte (a-z, 0-9); bit 1, a secret byte (URL-safe base64).
const KEY_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            t[i] |= 1;
        }
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            t[i] |= 2;
        }
        i += 1;
    }
    t
};

/// The public id inside a well-formed key.
pub fn key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_at_checked(ID_LEN)?;
    let secret = secret.strip_prefix('_')?;
    let id_ok = id.bytes().fold(1, |ok, b| ok & KEY_BYTES[usize::from(b)]);
    let secret_ok = secret
        .bytes()
        .fold(2, |ok, b| ok & KEY_BYTES[usize::from(b)]);
    (id_ok != 0 && secret.len() == 43 && secret_ok != 0).then_some(id)
}

/// Whether `key` is the key `record` was made from (constant time).
pub fn matches(record: &KeyRecord, key: &str) -> bool {
    let presented = hash(key);
    presented
        .as_bytes()
        .ct_eq(record.key_hash.as_bytes())
        .into()
}

/// Whether two byte strings are equal, in time that depends only on their
/// lengths (which are public: every key has the same): XOR-folds them a
/// 64-bit word at a time, with no branch on their contents.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u64;
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in wa.by_ref().zip(wb.by_ref()) {
        let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or_default());
        diff |= word(x) ^ word(y);
    }
    for (x, y) in wa.remainder().iter().zip(wb.remainder()) {
        diff |= u64::from(x ^ y);
    }
    // Keeps the compiler from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// What the throttle & quota phase needs about an accepted key
/// ([`AuthContext::key_grant`], see [`grant_of`]). Cheap to clone: every
/// part is shared with the key cache.
#[derive(Debug, Clone)]
pub struct KeyGrant {
    pub key_id: Arc<str>,
    pub plan: Arc<PlanConfig>,
    /// Where the key's requests today are counted, when the key is cached.
    pub usage: Option<Arc<UsageCell>>,
    /// The key's local bucket of its plan's throttle, once found (shared by
    /// every request the cached entry admits).
    pub bucket: Arc<OnceLock<KeyBucket>>,
    /// This node's block of the key's quota, once found (shared likewise).
    pub quota_lease: Arc<OnceLock<Arc<QuotaLease>>>,
}

/// The grant of the key a request was accepted with.
pub fn grant_of(req: &Request) -> Option<&KeyGrant> {
    req.extensions()
        .get::<AuthContext>()
        .and_then(|a| a.key_grant.as_ref())
}

/// Where one route reads its key from.
#[derive(Debug, Clone)]
enum KeySource {
    Header(HeaderName),
    Authorizer,
}

/// A key as this node last read it from the store, its plan resolved, kept
/// for `cache_ttl`.
struct CachedKey {
    /// None: no key has this id.
    record: Option<KeyRecord>,
    /// What the key grants when it is enabled and unexpired, or why it
    /// grants nothing (no plan, a plan that does not exist).
    grant: Result<KeyGrant, String>,
    /// The key as presented when it last matched the stored hash. Later
    /// requests compare against it in constant time instead of hashing
    /// again; it never leaves this node's memory.
    verified: OnceLock<Arc<str>>,
}

impl CachedKey {
    /// Whether `presented` is this key: a constant-time comparison with the
    /// key verified before, else the SHA-256 check (remembered on success).
    fn verify(&self, record: &KeyRecord, presented: &str) -> Option<Arc<str>> {
        if let Some(v) = self.verified.get()
            && ct_eq(v.as_bytes(), presented.as_bytes())
        {
            return Some(v.clone());
        }
        if !matches(record, presented) {
            return None;
        }
        let v: Arc<str> = Arc::from(presented);
        let _ = self.verified.set(v.clone());
        Some(v)
    }
}

/// Keys and plans as the request path sees them: the store behind a short
/// cache, and which routes need a key.
pub struct ApiKeys {
    store: Store,
    /// `[plans.X]` from routes.toml, shared by every grant.
    config_plans: HashMap<String, Arc<PlanConfig>>,
    /// By route index; None for routes without a key requirement.
    routes: Vec<Option<KeySource>>,
    /// Read without awaiting, so a cache hit decides a request at once;
    /// misses are loaded one at a time per id ([`ApiKeys::loading`]).
    keys: Option<KeyCache<CachedKey>>,
    /// Locks that make concurrent misses on one id wait for a single store
    /// read (an id picks its lock by hash).
    loading: [tokio::sync::Mutex<()>; LOAD_LOCKS],
    plans: Option<moka::future::Cache<String, Option<Arc<PlanConfig>>>>,
}

/// How many ids may be loaded from the store at once.
const LOAD_LOCKS: usize = 16;

/// How many key ids (known or not) one node caches at most.
const KEY_CACHE_CAPACITY: usize = 100_000;

/// The key cache: entries by key id, each dropped `ttl` after it was read
/// from the store (checked on every read, so a revocation is seen within
/// the TTL), at most `capacity` of them ([`super::ttl_cache`]).
struct KeyCache<V> {
    inner: super::ttl_cache::TtlCache<str, V>,
    ttl: Duration,
}

#[cfg(test)]
const KEY_CACHE_SHARDS: usize = super::ttl_cache::SHARDS;

impl<V> KeyCache<V> {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            inner: super::ttl_cache::TtlCache::new(capacity as u64),
            ttl,
        }
    }

    /// The entry for `id` if it is younger than the TTL.
    fn get(&self, id: &str) -> Option<Arc<V>> {
        self.inner.get(id)
    }

    fn insert(&self, id: &str, v: Arc<V>) {
        self.inner.insert(id, v, Instant::now() + self.ttl, 1);
    }

    fn invalidate(&self, id: &str) {
        self.inner.invalidate(id);
    }

    fn invalidate_all(&self) {
        self.inner.invalidate_all();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.len()
    }
}

impl ApiKeys {
    /// Whether route `index` requires an API key.
    pub fn required_on(&self, index: usize) -> bool {
        self.routes.get(index).is_some_and(Option::is_some)
    }

    pub fn new(config: Arc<Config>, store: Store) -> Result<Self, String> {
        let settings = &config.api_keys;
        let default_header = HeaderName::from_bytes(settings.header.as_bytes())
            .map_err(|e| format!("[api_keys] header: {e}"))?;
        let mut routes = Vec::with_capacity(config.routes.len());
        for r in &config.routes {
            let via_auth = r
                .auth
                .as_ref()
                .and_then(|a| config.auth.get(a))
                .filter(|a| a.kind == AuthKind::ApiKey);
            let source = match (r.api_key, via_auth) {
                (_, Some(a)) => Some(match &a.header {
                    Some(h) => KeySource::Header(
                        HeaderName::from_bytes(h.as_bytes())
                            .map_err(|e| format!("[auth.{}] header: {e}", a.name))?,
                    ),
                    None => KeySource::Header(default_header.clone()),
                }),
                (true, None) => Some(match settings.source {
                    ApiKeySource::Header => KeySource::Header(default_header.clone()),
                    ApiKeySource::Authorizer => KeySource::Authorizer,
                }),
                (false, None) => None,
            };
            routes.push(source);
        }
        let ttl = settings.cache_ttl;
        Ok(Self {
            store,
            config_plans: config
                .plans
                .iter()
                .map(|(name, p)| (name.clone(), Arc::new(p.clone())))
                .collect(),
            routes,
            keys: (!ttl.is_zero()).then(|| KeyCache::new(ttl, KEY_CACHE_CAPACITY)),
            loading: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
            plans: cache(ttl, 10_000),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A key and its plan, from the cache when fresh, else from the store
    /// (then cached): one read per id however many requests wait for it.
    async fn cached_key(&self, id: &str) -> Result<Arc<CachedKey>, GatewayError> {
        match &self.keys {
            None => self.load_key(id, false).await,
            Some(cache) => {
                let lock = id.bytes().fold(0usize, |h, b| {
                    h.wrapping_mul(31).wrapping_add(usize::from(b))
                });
                let _turn = self.loading[lock % LOAD_LOCKS].lock().await;
                match cache.get(id) {
                    Some(hit) => Ok(hit),
                    None => self.load_key(id, true).await.inspect(|loaded| {
                        cache.insert(id, loaded.clone());
                    }),
                }
            }
        }
    }

    /// Reads a key and resolves its plan; a key to be cached gets a usage
    /// cell.
    async fn load_key(&self, id: &str, cached: bool) -> Result<Arc<CachedKey>, GatewayError> {
        let record = self.store.key(id).await.map_err(|e| lookup_failed(&e))?;
        let grant = match &record {
            None => Err(format!("unknown API key {id}")),
            Some(r) => match r.plan.as_deref() {
                None => Err(format!("API key {id} is in no usage plan")),
                Some(plan_name) => {
                    match self.plan(plan_name).await.map_err(|e| lookup_failed(&e))? {
                        Some(plan) => Ok(KeyGrant {
                            key_id: Arc::from(r.id.as_str()),
                            plan,
                            usage: cached.then(UsageCell::today),
                            bucket: Arc::default(),
                            quota_lease: Arc::default(),
                        }),
                        None => Err(format!("API key {id}: plan `{plan_name}` does not exist")),
                    }
                }
            },
        };
        Ok(Arc::new(CachedKey {
            record,
            grant,
            verified: OnceLock::new(),
        }))
    }

    /// A plan by name: `[plans.X]` in routes.toml first, then the store.
    pub async fn plan(&self, name: &str) -> Result<Option<Arc<PlanConfig>>, Arc<StoreError>> {
        if let Some(p) = self.config_plans.get(name) {
            return Ok(Some(p.clone()));
        }
        let load = async {
            self.store
                .plan(name)
                .await
                .map(|r| r.map(|r| Arc::new(plan_from_record(&r))))
        };
        match &self.plans {
            Some(c) => c.try_get_with(name.to_string(), load).await,
            None => load.await.map_err(Arc::new),
        }
    }

    /// Forgets this node's cached copy of a key (after an admin change).
    pub async fn invalidate_key(&self, id: &str) {
        if let Some(c) = &self.keys {
            c.invalidate(id);
        }
    }

    /// Forgets this node's cached copy of a plan (after an admin change),
    /// and the cached keys, which hold their plan.
    pub async fn invalidate_plan(&self, name: &str) {
        if let Some(c) = &self.plans {
            c.invalidate(name).await;
        }
        if let Some(c) = &self.keys {
            c.invalidate_all();
        }
    }

    /// Checks a presented key from the cache alone: `None` when its entry
    /// must be read first ([`ApiKeys::check`]).
    fn check_cached(&self, presented: &str) -> Option<Result<(KeyGrant, Arc<str>), GatewayError>> {
        let Some(id) = key_id(presented) else {
            return Some(Err(GatewayError::Forbidden("malformed API key".into())));
        };
        let cached = self.keys.as_ref()?.get(id)?;
        Some(Self::decide(id, &cached, presented))
    }

    /// Checks a presented key: the grant and the key as verified, or the
    /// reason for a 403.
    async fn check(&self, presented: &str) -> Result<(KeyGrant, Arc<str>), GatewayError> {
        let id =
            key_id(presented).ok_or_else(|| GatewayError::Forbidden("malformed API key".into()))?;
        let cached = self.cached_key(id).await?;
        Self::decide(id, &cached, presented)
    }

    /// What a key's cache entry says about the key presented.
    fn decide(
        id: &str,
        cached: &CachedKey,
        presented: &str,
    ) -> Result<(KeyGrant, Arc<str>), GatewayError> {
        let Some(record) = &cached.record else {
            return Err(GatewayError::Forbidden(format!("unknown API key {id}")));
        };
        let Some(verified) = cached.verify(record, presented) else {
            return Err(GatewayError::Forbidden(format!(
                "wrong secret for API key {id}"
            )));
        };
        if !record.enabled {
            return Err(GatewayError::Forbidden(format!("API key {id} is disabled")));
        }
        if record.expires_at.is_some_and(|t| t <= now_secs()) {
            return Err(GatewayError::Forbidden(format!("API key {id} has expired")));
        }
        match &cached.grant {
            Ok(g) => Ok((g.clone(), verified)),
            Err(why) => Err(GatewayError::Forbidden(why.clone())),
        }
    }
}

/// Why a key could not be checked: `503` while the store is unreachable
/// (the key is neither accepted nor refused), `500` for anything else.
fn lookup_failed(e: &StoreError) -> GatewayError {
    if e.is_unreachable() {
        GatewayError::Unavailable(format!("API key lookup: {e}"))
    } else {
        GatewayError::Internal(format!("API key lookup failed: {e}"))
    }
}

/// A TTL cache, or none when the TTL is zero.
fn cache<V: Clone + Send + Sync + 'static>(
    ttl: Duration,
    capacity: u64,
) -> Option<moka::future::Cache<String, V>> {
    (!ttl.is_zero()).then(|| {
        moka::future::Cache::builder()
            .time_to_live(ttl)
            .max_capacity(capacity)
            .build()
    })
}

/// A store plan as the gateway uses it.
pub fn plan_from_record(r: &PlanRecord) -> PlanConfig {
    PlanConfig {
        name: r.name.clone(),
        throttle: r.rate.map(|rate| ThrottleConfig {
            rate,
            burst: r
                .burst
                .and_then(|b| u32::try_from(b).ok())
                .unwrap_or_else(|| rate.ceil().clamp(1.0, u32::MAX as f64) as u32),
        }),
        route_throttles: Default::default(),
        quota: match (r.quota_limit, r.quota_period.as_deref()) {
            (Some(limit), Some(period)) if limit > 0 => {
                parse_period(period).map(|period| QuotaConfig {
                    limit: limit as u64,
                    period,
                })
            }
            _ => None,
        },
        description: r.description.clone(),
    }
}

pub fn parse_period(s: &str) -> Option<QuotaPeriod> {
    match s {
        "day" => Some(QuotaPeriod::Day),
        "week" => Some(QuotaPeriod::Week),
        "month" => Some(QuotaPeriod::Month),
        _ => None,
    }
}

pub fn period_name(p: QuotaPeriod) -> &'static str {
    match p {
        QuotaPeriod::Day => "day",
        QuotaPeriod::Week => "week",
        QuotaPeriod::Month => "month",
    }
}

/// Parses `30d`, `12h`, `90m` into a duration (for `--expires`).
pub fn parse_expiry(s: &str) -> Result<Duration, String> {
    crate::config::values::parse_duration(s)
}

/// Auth phase, API key step, for one route that requires a key: the
/// gateway's keys and plans, and where the route reads its key from.
pub struct RequireKey {
    keys: Arc<ApiKeys>,
    source: KeySource,
}

impl ApiKeys {
    /// The key step of route `index`, if it requires a key.
    pub fn phase_for(self: &Arc<Self>, index: usize) -> Option<RequireKey> {
        let source = self.routes.get(index)?.clone()?;
        Some(RequireKey {
            keys: self.clone(),
            source,
        })
    }
}

/// A key found in the cache is decided at once and the rest's future
/// handed back; only a key read from the store is awaited, in a box.
impl Phase for RequireKey {
    fn call(self: Arc<Self>, req: Request, next: Next) -> PhaseFuture {
        require_key(&self.keys, &self.source, req, next)
    }
}

fn require_key(keys: &Arc<ApiKeys>, source: &KeySource, req: Request, next: Next) -> PhaseFuture {
    let presented = match source {
        KeySource::Header(h) => req.headers().get(h).and_then(|v| v.to_str().ok()),
        KeySource::Authorizer => req
            .extensions()
            .get::<AuthContext>()
            .and_then(|a| a.usage_identifier_key.as_deref()),
    };
    let result = match presented {
        Some(k) if !k.is_empty() => match keys.check_cached(k) {
            Some(result) => result,
            None => {
                let (keys, k) = (keys.clone(), k.to_string());
                return Box::pin(async move {
                    let result = keys.check(&k).await;
                    decided(result, req, next).await
                });
            }
        },
        _ => Err(GatewayError::Forbidden("no API key".into())),
    };
    decided(result, req, next)
}

/// Goes on with an accepted key's grant and identity, or answers 403.
fn decided(
    result: Result<(KeyGrant, Arc<str>), GatewayError>,
    mut req: Request,
    next: Next,
) -> PhaseFuture {
    match result {
        Ok((grant, key)) => {
            let identity = ApiKeyIdentity {
                id: grant.key_id.clone(),
                key,
            };
            let ext = req.extensions_mut();
            match ext.get_mut::<AuthContext>() {
                Some(a) => {
                    a.api_key = Some(identity);
                    a.key_grant = Some(grant);
                }
                None => {
                    ext.insert(AuthContext {
                        api_key: Some(identity),
                        key_grant: Some(grant),
                        ..Default::default()
                    });
                }
            }
            next.run(req)
        }
        Err(e) => answer(refusal(e, req)),
    }
}

/// The 403 (or 500), logged; the request's route context moves to the
/// response for the access log.
fn refusal(e: GatewayError, mut req: Request) -> Response {
    let ctx = req.extensions_mut().remove::<RouteContext>();
    tracing::info!(
        target: "lambdagate::auth",
        route = ctx.as_ref().map_or("-", |c| c.route.route_key.as_str()),
        kind = "api_key",
        decision = "deny",
        reason = %e,
    );
    let mut res = e.into_response();
    if let Some(ctx) = ctx {
        res.extensions_mut().insert(ctx);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_parse_back() {
        let a = generate();
        let b = generate();
        assert_ne!(a.key, b.key);
        assert_eq!(key_id(&a.key), Some(a.id.as_str()));
        assert_eq!(a.hash, hash(&a.key));
        assert!(!a.hash.contains(&a.key));
        assert!(a.key.len() >= 3 + 10 + 1 + 43);
        assert!(key_id("lg_short").is_none());
        assert!(key_id(&a.key.replace("lg_", "xx_")).is_none());
        // Bytes outside each part's alphabet.
        let (head, secret) = a.key.split_at(14);
        assert!(key_id(&format!("{head}{}+", &secret[..42])).is_none());
        assert!(key_id(&format!("{head}{}\u{e9}", &secret[..41])).is_none());
        assert!(key_id(&format!("lg_A{}{}", &a.id[1..], &a.key[13..])).is_none());
        assert!(key_id(&format!("lg_{}-{}", &a.id[..9], &a.key[13..])).is_none());
        assert_eq!(
            key_id(&format!("{head}{}_", &secret[..42])),
            Some(a.id.as_str())
        );
        let rotated = generate_for(&a.id);
        assert_eq!(rotated.id, a.id);
        assert_ne!(rotated.key, a.key);
    }

    #[test]
    fn key_cache_keeps_entries_for_the_ttl_only() {
        let c = KeyCache::new(Duration::from_millis(100), 10);
        c.insert("a", Arc::new(1));
        assert_eq!(c.get("a").as_deref(), Some(&1));
        assert!(c.get("b").is_none());
        std::thread::sleep(Duration::from_millis(150));
        assert!(c.get("a").is_none(), "expired after the TTL");
        // A fresh read starts a fresh TTL.
        c.insert("a", Arc::new(2));
        assert_eq!(c.get("a").as_deref(), Some(&2));
    }

    #[test]
    fn key_cache_forgets_revoked_keys_at_once() {
        let c = KeyCache::new(Duration::from_secs(60), 100);
        for id in ["a", "b", "c"] {
            c.insert(id, Arc::new(id.len()));
        }
        c.invalidate("b");
        assert!(c.get("b").is_none());
        assert!(c.get("a").is_some() && c.get("c").is_some());
        c.invalidate_all();
        assert_eq!(c.len(), 0);
        assert!(c.get("a").is_none());
    }

    #[test]
    fn key_cache_stays_within_its_bound() {
        let c = KeyCache::new(Duration::from_secs(60), 64);
        for i in 0..10_000 {
            let id = format!("id{i}");
            c.insert(&id, Arc::new(i));
            // The entry just read is always there.
            assert_eq!(c.get(&id).as_deref(), Some(&i));
        }
        assert!(c.len() <= 64, "{} entries", c.len());
        // Expired entries are dropped first when a shard is full.
        let c = KeyCache::new(Duration::from_millis(50), KEY_CACHE_SHARDS);
        for i in 0..KEY_CACHE_SHARDS * 4 {
            c.insert(&format!("old{i}"), Arc::new(i));
        }
        std::thread::sleep(Duration::from_millis(80));
        c.insert("new", Arc::new(0));
        assert!(c.len() <= KEY_CACHE_SHARDS);
        assert!(c.get("new").is_some());
    }
}
