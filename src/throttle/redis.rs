//! Cluster throttling: every level's GCRA state lives in Redis, and one Lua
//! script checks and updates all the levels a request passes in a single
//! atomic round trip (using Redis's clock, so nodes' clocks don't matter).
//! N nodes together admit the configured rate, not N×.
//!
//! When Redis cannot be reached the caller falls back (to local limiters, or
//! to refusing with `fail_closed`); this module stops trying for a second
//! after a failure, logs at most once per interval, and reconnects by itself.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Verdict;
use crate::config::ThrottleConfig;

/// One GCRA step over several buckets. KEYS: one per level. ARGV: for each
/// level, the emission interval and the burst (microseconds, cells). Admits
/// only if every level admits; then advances every level. Returns {allowed,
/// retry_after_us, limit, remaining, reset_us} for the most restrictive level.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local new_tats = {}
local retry = 0
local refused_by = 0
local best_limit, best_rem, best_reset = 0, -1, 0
for i = 1, n do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if now < allow_at then
    local wait = allow_at - now
    if wait > retry then
      retry = wait
      refused_by = i
    end
  end
  new_tats[i] = new_tat
  local rem = math.floor((now - allow_at) / interval)
  if rem < 0 then rem = 0 end
  if best_rem < 0 or rem < best_rem then
    best_rem = rem
    best_limit = burst
    best_reset = new_tat - now
  end
end
if retry > 0 then
  return {0, math.ceil(retry), best_limit, 0, math.ceil(best_reset), refused_by}
end
for i = 1, n do
  local ttl = math.ceil((new_tats[i] - now) / 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%.3f', new_tats[i]), 'PX', ttl)
end
return {1, 0, best_limit, best_rem, math.ceil(best_reset), 0}
"#;

/// How long to stop trying Redis after a failure.
const BACKOFF: Duration = Duration::from_secs(1);
/// At most one "Redis unreachable" log line per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(30);

pub struct RedisGcra {
    conn: ConnectionManager,
    script: redis::Script,
    prefix: String,
    epoch: Instant,
    /// Milliseconds since `epoch` before which Redis is not tried (0: up).
    down_until_ms: AtomicI64,
    last_log_ms: AtomicI64,
    failures: AtomicU64,
}

/// Why a cluster check did not happen.
#[derive(Debug)]
pub struct Unreachable;

impl RedisGcra {
    /// Prepares the client; connects lazily, so a gateway starts even while
    /// Redis is down.
    pub fn new(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("[cluster] redis_url: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("[cluster] redis: {e}"))?;
        Ok(Self {
            conn,
            script: redis::Script::new(GCRA),
            prefix: prefix.to_string(),
            epoch: Instant::now(),
            down_until_ms: AtomicI64::new(0),
            last_log_ms: AtomicI64::new(-(LOG_INTERVAL.as_millis() as i64)),
            failures: AtomicU64::new(0),
        })
    }

    /// The Redis key of one bucket.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    fn now_ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }

    /// One atomic GCRA step over `levels` (bucket key, throttle): the
    /// verdict and, when refused, the index of the level that refused.
    pub async fn check(
        &self,
        levels: &[(String, ThrottleConfig)],
    ) -> Result<(Verdict, Option<usize>), Unreachable> {
        let now = self.now_ms();
        if now < self.down_until_ms.load(Ordering::Relaxed) {
            return Err(Unreachable);
        }
        let mut inv = self.script.prepare_invoke();
        for (key, t) in levels {
            let interval_us = 1_000_000.0 / t.rate;
            inv.key(key).arg(interval_us).arg(t.burst);
        }
        let mut conn = self.conn.clone();
        let call = inv.invoke_async::<(i64, i64, i64, i64, i64, i64)>(&mut conn);
        match tokio::time::timeout(Duration::from_millis(750), call).await {
            Ok(Ok((allowed, retry_us, limit, remaining, reset_us, refused_by))) => {
                if self.down_until_ms.swap(0, Ordering::Relaxed) != 0 {
                    tracing::warn!(target: "lambdagate::throttle", "Redis reachable again; cluster throttling resumed");
                }
                let verdict = Verdict {
                    allowed: allowed == 1,
                    limit: u32::try_from(limit).unwrap_or(u32::MAX),
                    remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
                    reset: Duration::from_micros(reset_us.max(0) as u64),
                    retry_after: Duration::from_micros(retry_us.max(0) as u64),
                };
                let refused_by = usize::try_from(refused_by)
                    .ok()
                    .and_then(|i| i.checked_sub(1));
                Ok((verdict, refused_by))
            }
            Ok(Err(e)) => {
                self.mark_down(now, &e.to_string());
                Err(Unreachable)
            }
            Err(_) => {
                self.mark_down(now, "timed out");
                Err(Unreachable)
            }
        }
    }

    fn mark_down(&self, now: i64, why: &str) {
        self.down_until_ms
            .store(now + BACKOFF.as_millis() as i64, Ordering::Relaxed);
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let last = self.last_log_ms.load(Ordering::Relaxed);
        if now - last >= LOG_INTERVAL.as_millis() as i64
            && self
                .last_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(
                target: "lambdagate::throttle",
                error = why,
                failures = n,
                "Redis unreachable: throttling with local limits (or refusing, with fail_closed) until it is back"
            );
        }
    }
}
