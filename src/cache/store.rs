//! The response cache store on `moka`: one cache for the whole gateway,
//! bounded by the bytes of its entries, each entry living for its route's
//! TTL. Concurrent misses for one key are coalesced: one caller runs the
//! backend, the others wait for its answer.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use bytes::Bytes;
use moka::Expiry;
use moka::future::Cache;

use super::shared::SharedCache;
use crate::config::CacheSettings;

/// The header saying whether an answer came from the cache.
pub static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
pub static HIT: HeaderValue = HeaderValue::from_static("Hit");
pub static MISS: HeaderValue = HeaderValue::from_static("Miss");

/// A response held in memory: what is cached, and what coalesced waiters
/// get. Its headers are ready to send as a hit (`X-Cache: Hit` included),
/// so serving one is a header-map clone and a `Bytes` reference.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl StoredResponse {
    /// A response as received from the inner phases, made ready to serve.
    pub fn new(status: StatusCode, mut headers: HeaderMap, body: Bytes) -> Self {
        headers.insert(X_CACHE.clone(), HIT.clone());
        Self {
            status,
            headers,
            body,
        }
    }

    /// The response to send (a hit; the caller marks a miss).
    pub fn to_response(&self) -> Response<Body> {
        let mut res = Response::new(Body::from(self.body.clone()));
        *res.status_mut() = self.status;
        *res.headers_mut() = self.headers.clone();
        res
    }

    /// Bytes the entry costs the cache.
    fn weight(&self) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 16)
            .sum();
        u32::try_from(self.body.len() + headers + 64).unwrap_or(u32::MAX)
    }
}

/// What an entry costs beyond its key and its response's bytes: the
/// `HeaderMap`'s tables, the `Arc`s, and the cache's own bookkeeping per
/// entry (bench/distinct-keys-rss.sh shows what entries really cost).
const ENTRY_OVERHEAD: usize = 1024;

/// Bytes an entry costs the cache: its key (built from client-controlled
/// path, query and headers, so it can be large), its response, and the
/// fixed overhead. `max_size` bounds memory, not only bodies.
fn entry_weight(key: &str, entry: &Entry) -> u32 {
    let total = key.len() as u64 + u64::from(entry.response.weight()) + ENTRY_OVERHEAD as u64;
    u32::try_from(total).unwrap_or(u32::MAX)
}

#[derive(Debug, Clone)]
struct Entry {
    response: Arc<StoredResponse>,
    ttl: Duration,
    /// Found in the shared (Redis) tier rather than fetched by this node.
    from_shared: bool,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _at: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Hit and miss counts since start.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl CacheStats {
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

/// Whether an answer came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Miss,
}

/// A route's hit and miss counters in `/metrics`, looked up once.
pub struct RouteCounters {
    hits: metrics::Counter,
    misses: metrics::Counter,
}

impl RouteCounters {
    pub fn record(&self, outcome: Outcome) {
        match outcome {
            Outcome::Hit => self.hits.increment(1),
            Outcome::Miss => self.misses.increment(1),
        }
    }
}

pub struct ResponseCache {
    cache: Cache<String, Entry>,
    max_entry_size: usize,
    shared: Option<SharedCache>,
    pub stats: CacheStats,
    /// Per route index, taken on the route's first lookup (after the
    /// binary installed its metrics recorder).
    counters: Box<[OnceLock<RouteCounters>]>,
}

impl ResponseCache {
    /// The cache for a config with `routes` routes.
    pub fn new(settings: &CacheSettings, routes: usize) -> Self {
        let cache = Cache::builder()
            .max_capacity(settings.max_size)
            .weigher(|k: &String, v: &Entry| entry_weight(k, v))
            .expire_after(PerEntryTtl)
            .build();
        Self {
            cache,
            max_entry_size: settings.max_entry_size,
            shared: None,
            stats: CacheStats::default(),
            counters: (0..routes).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Counts a lookup for the route at `index` (`route_key` labels it)
    /// in the stats and in `/metrics`.
    pub fn record(&self, index: usize, route_key: &str, outcome: Outcome) {
        match outcome {
            Outcome::Hit => self.stats.hits.fetch_add(1, Ordering::Relaxed),
            Outcome::Miss => self.stats.misses.fetch_add(1, Ordering::Relaxed),
        };
        let make = || {
            let (hits, misses) = crate::metrics::cache_counters(route_key);
            RouteCounters { hits, misses }
        };
        match self.counters.get(index) {
            Some(slot) => slot.get_or_init(make).record(outcome),
            None => make().record(outcome),
        }
    }

    /// A fresh entry for `key`, if there is one (not counted).
    pub async fn get(&self, key: &str) -> Option<Arc<StoredResponse>> {
        self.cache.get(key).await.map(|e| e.response)
    }

    /// Adds the shared Redis tier (cluster mode).
    pub fn with_shared(mut self, shared: SharedCache) -> Self {
        self.shared = Some(shared);
        self
    }

    /// May this response be cached? Only successes, only up to the entry size.
    pub fn cacheable(&self, r: &StoredResponse) -> bool {
        r.status.is_success() && r.body.len() <= self.max_entry_size
    }

    /// The cached answer for `key`, or the one `fetch` produces. Concurrent
    /// callers with the same key share one `fetch`; only cacheable answers
    /// are stored.
    pub async fn get_or_fetch<F>(
        &self,
        key: String,
        ttl: Duration,
        fetch: F,
    ) -> (Arc<StoredResponse>, Outcome)
    where
        F: Future<Output = StoredResponse>,
    {
        // Fast path: a fresh entry, no coalescing machinery.
        if let Some(entry) = self.cache.get(&key).await {
            return (entry.response, Outcome::Hit);
        }
        let max = self.max_entry_size;
        let shared = self.shared.as_ref();
        let shared_key = key.clone();
        let result = self
            .cache
            .entry(key)
            .or_try_insert_with(async move {
                if let Some(tier) = shared
                    && let Some((r, left)) = tier.get(&shared_key).await
                {
                    return Ok(Entry {
                        response: Arc::new(r),
                        ttl: left.min(ttl),
                        from_shared: true,
                    });
                }
                let r = fetch.await;
                if r.status.is_success() && r.body.len() <= max {
                    if let Some(tier) = shared {
                        tier.put(&shared_key, &r, ttl).await;
                    }
                    Ok(Entry {
                        response: Arc::new(r),
                        ttl,
                        from_shared: false,
                    })
                } else {
                    Err(r)
                }
            })
            .await;
        match result {
            Ok(entry) if entry.is_fresh() && !entry.value().from_shared => {
                (entry.into_value().response, Outcome::Miss)
            }
            Ok(entry) => (entry.into_value().response, Outcome::Hit),
            Err(uncacheable) => (uncacheable, Outcome::Miss),
        }
    }

    /// Replaces (or drops) the entry for `key` with a fresh answer.
    pub async fn refresh(
        &self,
        key: String,
        ttl: Duration,
        r: StoredResponse,
    ) -> Arc<StoredResponse> {
        let r = Arc::new(r);
        if self.cacheable(&r) {
            if let Some(tier) = &self.shared {
                tier.put(&key, &r, ttl).await;
            }
            self.cache
                .insert(
                    key,
                    Entry {
                        response: r.clone(),
                        ttl,
                        from_shared: false,
                    },
                )
                .await;
        } else {
            if let Some(tier) = &self.shared {
                tier.delete(&key).await;
            }
            self.cache.invalidate(&key).await;
        }
        r
    }

    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &'static str) -> StoredResponse {
        StoredResponse::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from_static(body.as_bytes()),
        )
    }

    #[tokio::test]
    async fn hit_after_miss_and_failures_not_stored() {
        let c = ResponseCache::new(&CacheSettings::default(), 0);
        let ttl = Duration::from_secs(60);
        let (_, o) = c.get_or_fetch("a".into(), ttl, async { ok("1") }).await;
        assert_eq!(o, Outcome::Miss);
        let (r, o) = c.get_or_fetch("a".into(), ttl, async { ok("2") }).await;
        assert_eq!(o, Outcome::Hit);
        assert_eq!(r.body, "1");
        let fail = || async {
            StoredResponse {
                status: StatusCode::BAD_GATEWAY,
                headers: HeaderMap::new(),
                body: Bytes::new(),
            }
        };
        let (_, o) = c.get_or_fetch("b".into(), ttl, fail()).await;
        assert_eq!(o, Outcome::Miss);
        let (_, o) = c.get_or_fetch("b".into(), ttl, fail()).await;
        assert_eq!(o, Outcome::Miss);
        assert_eq!(r.headers[&X_CACHE], "Hit");
    }

    #[test]
    fn an_entry_weighs_its_key_and_its_overhead_not_only_its_body() {
        let entry = Entry {
            response: Arc::new(ok("12345")),
            ttl: Duration::from_secs(1),
            from_shared: false,
        };
        let small = entry_weight("k", &entry);
        let long_key = entry_weight(&"k".repeat(10_001), &entry);
        assert_eq!(long_key - small, 10_000);
        assert!(small as usize > ENTRY_OVERHEAD + 5, "{small}");
    }

    #[tokio::test]
    async fn max_size_bounds_entries_by_their_whole_cost() {
        // 64 KiB holds at most 64 entries of 1 KiB overhead each, however
        // small their bodies.
        let c = ResponseCache::new(
            &CacheSettings {
                max_size: 64 * 1024,
                max_entry_size: 1024,
                shared: false,
            },
            0,
        );
        let ttl = Duration::from_secs(60);
        for i in 0..1000 {
            c.get_or_fetch(format!("key-{i}"), ttl, async { ok("x") })
                .await;
        }
        c.cache.run_pending_tasks().await;
        assert!(c.cache.entry_count() <= 64, "{}", c.cache.entry_count());
        assert!(c.cache.entry_count() > 0);
    }

    #[tokio::test]
    async fn large_entries_are_not_cached() {
        let c = ResponseCache::new(
            &CacheSettings {
                max_size: 1 << 20,
                max_entry_size: 4,
                shared: false,
            },
            0,
        );
        let ttl = Duration::from_secs(60);
        c.get_or_fetch("a".into(), ttl, async { ok("12345") }).await;
        let (_, o) = c.get_or_fetch("a".into(), ttl, async { ok("12345") }).await;
        assert_eq!(o, Outcome::Miss);
    }
}
