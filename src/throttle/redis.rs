//! Cluster throttling: every level's GCRA state lives in Redis, and one Lua
//! script checks and updates all the levels a request passes in a single
//! atomic round trip (using Redis's clock, so nodes' clocks don't matter).
//! N nodes together admit the configured rate, not N×.
//!
//! Leasing: a Redis step may take several cells of a bucket at once (a
//! [`Lease`]), which the node then spends locally without a round trip until
//! they run out or expire (`[cluster] lease`, 5 ms by default). The lease
//! size is the rate times that time, at most a tenth of the burst; for low
//! rates it is 1 cell, so every request takes its own step as without
//! leasing. Cells a lease still holds when it expires are handed back to the
//! bucket with the node's next step on it. One request per node takes a
//! multi-cell lease's next lease; requests that find it empty meanwhile wait
//! for that step instead of stepping too. Every admitted request spent a
//! cell Redis granted, so the nodes never admit more than the shared bucket
//! plus what leases hold (at most `rate × lease` cells over any window).
//!
//! When Redis cannot be reached the caller falls back (to local limiters, or
//! to refusing with `fail_closed`); this module stops trying for a second
//! after a failure, logs at most once per interval, and reconnects by itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Verdict;
use crate::config::ThrottleConfig;

/// One GCRA step over several buckets. KEYS: one per level. ARGV: for each
/// level, the emission interval (microseconds), the burst, the cells wanted
/// and the cells handed back (an expired lease's unspent ones). Admits only
/// if every level has at least one cell; then each level grants up to the
/// cells wanted. Returns {allowed, retry_after_us, refusing level (1-based,
/// 0: none), then per level: cells granted, cells left after the grant}.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local tats = {}
local grants = {}
local backs = {}
local out = {1, 0, 0}
local refused = false
local retry = 0
for i = 1, n do
  local interval = tonumber(ARGV[4 * i - 3])
  local burst = tonumber(ARGV[4 * i - 2])
  local want = tonumber(ARGV[4 * i - 1])
  local back = tonumber(ARGV[4 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now) or now
  if back > 0 then tat = tat - back * interval end
  if tat < now then tat = now end
  tats[i] = tat
  backs[i] = back
  local avail = math.floor((now - tat) / interval + burst)
  local g = 0
  if avail < 1 then
    local wait = tat + interval - burst * interval - now
    if not refused or wait > retry then
      retry = wait
      out[3] = i
    end
    refused = true
    avail = 0
  else
    g = want
    if avail < g then g = avail end
  end
  grants[i] = g
  out[2 * i + 2] = g
  out[2 * i + 3] = avail - g
end
for i = 1, n do
  local interval = tonumber(ARGV[4 * i - 3])
  local tat = tats[i]
  if not refused then tat = tat + grants[i] * interval end
  if not refused or backs[i] > 0 then
    local ttl = math.ceil((tat - now) / 1000) + 1000
    redis.call('SET', KEYS[i], string.format('%.3f', tat), 'PX', ttl)
  end
end
if refused then
  out[1] = 0
  out[2] = math.max(1, math.ceil(retry))
end
return out
"#;

/// A node's lease on one shared bucket: cells Redis granted that requests on
/// this node spend without a round trip until they run out or expire.
pub struct Lease {
    /// The bucket's Redis key.
    key: String,
    state: Mutex<LeaseState>,
    /// Signalled when a step taking this bucket's next lease is over.
    refreshed: tokio::sync::Notify,
}

#[derive(Default)]
struct LeaseState {
    /// Cells still to spend.
    cells: u32,
    /// Microseconds since the client's epoch when the cells expire.
    expires_us: i64,
    /// Cells the bucket had left after the last grant (for `RateLimit-*`).
    remaining: u32,
    /// A request of this node is taking the next lease (multi-cell leases
    /// only): others wait for it instead of stepping too.
    refreshing: bool,
}

impl Lease {
    pub fn new(key: String) -> Self {
        Self {
            key,
            state: Mutex::new(LeaseState::default()),
            refreshed: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LeaseState> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// How many cells one step on a bucket takes: `lease` worth of the rate, at
/// most a tenth of the burst, at least 1 (no leasing).
pub fn lease_cells(t: &ThrottleConfig, lease: Duration) -> u32 {
    let by_rate = (t.rate * lease.as_secs_f64()).floor();
    let cap = f64::from(t.burst / 10);
    by_rate.min(cap).max(1.0) as u32
}

/// One level of a cluster check: its bucket's lease and its throttle.
pub struct Step<'a> {
    pub lease: &'a Lease,
    pub config: ThrottleConfig,
}

/// Leases on the per-key buckets, by plan name (and plan route), then key id;
/// created on first use. A lookup takes a read lock and allocates nothing
/// once a key has its lease.
#[derive(Default)]
pub struct KeyLeases {
    by_plan: RwLock<HashMap<String, PlanLeases>>,
}

#[derive(Default)]
struct PlanLeases {
    whole: LeaseMap,
    /// By route key.
    routes: HashMap<String, LeaseMap>,
}

impl PlanLeases {
    fn get(&self, route: Option<&str>) -> Option<&LeaseMap> {
        match route {
            None => Some(&self.whole),
            Some(r) => self.routes.get(r),
        }
    }
}

/// One bucket's leases by key id, bounded like the local keyed limiters:
/// when the map has doubled since it was last swept, leases with no live
/// cell that nobody else holds are dropped (a new lease on the same Redis
/// bucket starts exactly as the dropped one would have).
struct LeaseMap {
    map: HashMap<Arc<str>, Arc<Lease>>,
    sweep_at: usize,
}

/// A lease map is never swept below this many leases.
const MIN_SWEEP: usize = 1024;

impl Default for LeaseMap {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            sweep_at: MIN_SWEEP,
        }
    }
}

impl LeaseMap {
    fn sweep(&mut self, now_us: i64) {
        self.map.retain(|_, l| {
            if Arc::strong_count(l) > 1 {
                return true;
            }
            let s = l.lock();
            s.refreshing || (s.cells > 0 && now_us < s.expires_us)
        });
        self.sweep_at = (self.map.len() * 2).max(MIN_SWEEP);
    }
}

impl KeyLeases {
    /// The lease on `key_id`'s bucket of `plan` (or of the plan's `route`);
    /// `redis_key` names the bucket when it is new.
    pub fn get(
        &self,
        plan: &str,
        route: Option<&str>,
        key_id: &Arc<str>,
        now_us: impl FnOnce() -> i64,
        redis_key: impl FnOnce() -> String,
    ) -> Arc<Lease> {
        {
            let map = match self.by_plan.read() {
                Ok(m) => m,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(l) = map
                .get(plan)
                .and_then(|p| p.get(route))
                .and_then(|keys| keys.map.get(&**key_id))
            {
                return l.clone();
            }
        }
        let mut map = match self.by_plan.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let plan = map.entry(plan.to_string()).or_default();
        let keys = match route {
            None => &mut plan.whole,
            Some(r) => plan.routes.entry(r.to_string()).or_default(),
        };
        if keys.map.len() >= keys.sweep_at && !keys.map.contains_key(key_id) {
            keys.sweep(now_us());
        }
        keys.map
            .entry(key_id.clone())
            .or_insert_with(|| Arc::new(Lease::new(redis_key())))
            .clone()
    }
}

/// How long one Redis step may take.
const STEP_TIMEOUT: Duration = Duration::from_millis(750);

/// The leases one check is renewing; dropping it ends the renewal.
struct Refreshing<'a>([Option<&'a Lease>; 4]);

impl Drop for Refreshing<'_> {
    fn drop(&mut self) {
        for lease in self.0.iter().flatten() {
            lease.lock().refreshing = false;
            lease.refreshed.notify_waiters();
        }
    }
}

/// How long to stop trying Redis after a failure.
const BACKOFF: Duration = Duration::from_secs(1);
/// At most one "Redis unreachable" log line per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(30);

pub struct RedisGcra {
    conn: ConnectionManager,
    script: redis::Script,
    prefix: String,
    /// How long a lease's worth of the rate is, and how long its cells live.
    lease: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` before which Redis is not tried (0: up).
    down_until_ms: AtomicI64,
    last_log_ms: AtomicI64,
    failures: AtomicU64,
}

/// Why a cluster check did not happen.
#[derive(Debug)]
pub struct Unreachable;

/// Per level of one check: what the lease had to offer.
#[derive(Clone, Copy, Default)]
struct Local {
    /// A leased cell was spent.
    taken: bool,
    /// Expired cells handed back with this step.
    back: u32,
    /// The bucket's estimated cells left (`RateLimit-Remaining`).
    remaining: u32,
}

impl RedisGcra {
    /// Prepares the client; connects lazily, so a gateway starts even while
    /// Redis is down.
    pub fn new(url: &str, prefix: &str, lease: Duration) -> Result<Self, String> {
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
            lease,
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

    /// Microseconds since the client's epoch.
    pub(crate) fn now_us(&self) -> i64 {
        self.epoch.elapsed().as_micros() as i64
    }

    /// The verdict when every level's lease still holds a live cell (each
    /// then spends one), decided without a round trip; `None` (and nothing
    /// spent or handed back) when some level needs a Redis step, which
    /// [`RedisGcra::check`] takes.
    pub fn try_leased(&self, levels: &[Step<'_>]) -> Option<Verdict> {
        let now_us = self.now_us();
        let mut local = [Local::default(); 4];
        let n = levels.len().min(4);
        for (i, step) in levels.iter().take(n).enumerate() {
            let mut s = step.lease.lock();
            if s.cells > 0 && now_us < s.expires_us {
                s.cells -= 1;
                local[i].taken = true;
                local[i].remaining = s.remaining.saturating_add(s.cells);
            } else {
                drop(s);
                self.undo(&levels[..i], &local[..i]);
                return None;
            }
        }
        Some(admitted(levels, &local[..n]))
    }

    /// One GCRA step over `levels`: the verdict and, when refused, the index
    /// of the level that refused. Levels whose lease still holds a live cell
    /// spend it; the others take their next lease in one atomic Redis step
    /// (none when every level had a cell).
    pub async fn check(
        &self,
        levels: &[Step<'_>],
    ) -> Result<(Verdict, Option<usize>), Unreachable> {
        // One step per lease and node: when a lease runs out, the requests
        // that find it empty while another one is taking the next lease wait
        // for that step (at most twice, each at most a step's timeout)
        // instead of all stepping at once.
        for _ in 0..2 {
            let Some(busy) = self.refreshing_elsewhere(levels) else {
                break;
            };
            let notified = busy.refreshed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if busy.lock().refreshing {
                let _ = tokio::time::timeout(STEP_TIMEOUT, notified).await;
            }
        }
        let now_us = self.now_us();
        let now = now_us / 1000;
        let mut local = [Local::default(); 4];
        let local = &mut local[..levels.len().min(4)];
        let mut remote = 0;
        // Clears the `refreshing` marks this request set, however it ends
        // (also when its future is dropped mid-step), and wakes the waiters.
        let mut refreshing = Refreshing([None; 4]);
        for ((step, l), mark) in levels
            .iter()
            .zip(local.iter_mut())
            .zip(refreshing.0.iter_mut())
        {
            let mut s = step.lease.lock();
            if s.cells > 0 && now_us < s.expires_us {
                s.cells -= 1;
                l.taken = true;
                l.remaining = s.remaining.saturating_add(s.cells);
            } else {
                l.back = std::mem::take(&mut s.cells);
                remote += 1;
                if !s.refreshing && lease_cells(&step.config, self.lease) > 1 {
                    s.refreshing = true;
                    *mark = Some(step.lease);
                }
            }
        }
        if remote == 0 {
            return Ok((admitted(levels, local), None));
        }
        if now < self.down_until_ms.load(Ordering::Relaxed) {
            self.undo(levels, local);
            return Err(Unreachable);
        }
        let mut inv = self.script.prepare_invoke();
        for (step, l) in levels.iter().zip(local.iter()) {
            if !l.taken {
                let t = &step.config;
                inv.key(&step.lease.key)
                    .arg(1_000_000.0 / t.rate)
                    .arg(t.burst)
                    .arg(lease_cells(t, self.lease))
                    .arg(l.back);
            }
        }
        let mut conn = self.conn.clone();
        let call = inv.invoke_async::<Vec<i64>>(&mut conn);
        let out = match tokio::time::timeout(STEP_TIMEOUT, call).await {
            Ok(Ok(out)) if out.len() == 3 + 2 * remote => out,
            Ok(Ok(out)) => {
                self.undo(levels, local);
                self.mark_down(
                    now,
                    &format!("unexpected script reply of {} values", out.len()),
                );
                return Err(Unreachable);
            }
            Ok(Err(e)) => {
                self.undo(levels, local);
                self.mark_down(now, &e.to_string());
                return Err(Unreachable);
            }
            Err(_) => {
                self.undo(levels, local);
                self.mark_down(now, "timed out");
                return Err(Unreachable);
            }
        };
        if self.down_until_ms.swap(0, Ordering::Relaxed) != 0 {
            tracing::warn!(target: "lambdagate::throttle", "Redis reachable again; cluster throttling resumed");
        }
        let cells = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
        if out[0] != 1 {
            self.undo(levels, local);
            // The refusing level, counted among the levels sent.
            let refused_by = usize::try_from(out[2]).ok().and_then(|i| {
                let i = i.checked_sub(1)?;
                local
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| !l.taken)
                    .nth(i)
                    .map(|(j, _)| j)
            });
            let limit = refused_by
                .and_then(|i| levels.get(i))
                .map_or(0, |s| s.config.burst);
            let verdict = Verdict {
                allowed: false,
                limit,
                remaining: 0,
                reset: refused_by
                    .and_then(|i| levels.get(i))
                    .map_or(Duration::ZERO, |s| {
                        per_cell(&s.config).mul_f64(f64::from(limit))
                    }),
                retry_after: Duration::from_micros(out[1].max(0) as u64),
            };
            return Ok((verdict, refused_by));
        }
        let expires_us = now_us + self.lease.as_micros() as i64;
        let mut granted = out[3..].chunks_exact(2);
        for (step, l) in levels.iter().zip(local.iter_mut()) {
            if l.taken {
                continue;
            }
            let Some(&[g, left]) = granted.next() else {
                break;
            };
            let mut s = step.lease.lock();
            // One granted cell is this request's; concurrent steps add up.
            s.cells = s.cells.saturating_add(cells(g).saturating_sub(1));
            s.expires_us = expires_us;
            s.remaining = cells(left);
            l.remaining = s.remaining.saturating_add(s.cells);
        }
        Ok((admitted(levels, local), None))
    }

    /// A multi-cell lease this check needs that has no live cell and that
    /// another request is renewing.
    fn refreshing_elsewhere<'a>(&self, levels: &[Step<'a>]) -> Option<&'a Lease> {
        let now_us = self.now_us();
        levels.iter().find_map(|step| {
            let s = step.lease.lock();
            let live = s.cells > 0 && now_us < s.expires_us;
            (!live && s.refreshing && lease_cells(&step.config, self.lease) > 1)
                .then_some(step.lease)
        })
    }

    /// Puts back the leased cells a check spent when the request is not
    /// admitted after all.
    fn undo(&self, levels: &[Step<'_>], local: &[Local]) {
        for (step, l) in levels.iter().zip(local) {
            if l.taken {
                let mut s = step.lease.lock();
                s.cells = s.cells.saturating_add(1);
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

fn per_cell(t: &ThrottleConfig) -> Duration {
    Duration::from_secs_f64(1.0 / t.rate)
}

/// The verdict of an admitted request: the level with the fewest cells left.
fn admitted(levels: &[Step<'_>], local: &[Local]) -> Verdict {
    let mut best: Option<(u32, &ThrottleConfig)> = None;
    for (step, l) in levels.iter().zip(local) {
        let remaining = l.remaining.min(step.config.burst);
        if best.is_none_or(|(r, _)| remaining < r) {
            best = Some((remaining, &step.config));
        }
    }
    let (remaining, t) = best.unwrap_or((
        0,
        &ThrottleConfig {
            rate: 1.0,
            burst: 0,
        },
    ));
    Verdict {
        allowed: true,
        limit: t.burst,
        remaining,
        reset: per_cell(t).mul_f64(f64::from(t.burst - remaining)),
        retry_after: Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spent_leases_nobody_holds_are_dropped_so_the_map_stays_bounded() {
        let leases = KeyLeases::default();
        let now = 1_000_000;
        let live: Arc<str> = "live".into();
        {
            let l = leases.get("gold", None, &live, || now, || "k:live".into());
            let mut s = l.lock();
            s.cells = 5;
            s.expires_us = now + 10_000_000;
        }
        let held: Arc<str> = "held".into();
        let held_lease = leases.get("gold", None, &held, || now, || "k:held".into());
        for i in 0..100_000u32 {
            let key: Arc<str> = i.to_string().into();
            leases.get("gold", None, &key, || now, || format!("k:{i}"));
        }
        let len = leases.by_plan.read().unwrap()["gold"].whole.map.len();
        assert!(len < 3 * MIN_SWEEP, "100k distinct keys left {len} leases");
        // A lease with live cells, and one a check holds, are kept.
        let again = leases.get("gold", None, &live, || now, || unreachable!());
        assert_eq!(again.lock().cells, 5);
        assert!(Arc::ptr_eq(
            &held_lease,
            &leases.get("gold", None, &held, || now, || unreachable!())
        ));
    }

    #[test]
    fn lease_size_follows_the_rate_within_a_tenth_of_the_burst() {
        let t = |rate, burst| ThrottleConfig { rate, burst };
        let ms = Duration::from_millis;
        // The bench's plan: a tenth of the burst.
        assert_eq!(lease_cells(&t(1e9, 1_000_000), ms(5)), 100_000);
        // 5 ms of 1000/s.
        assert_eq!(lease_cells(&t(1000.0, 1000), ms(5)), 5);
        // Low rates and small bursts: one cell, a Redis step per request.
        assert_eq!(lease_cells(&t(200.0, 20), ms(5)), 1);
        assert_eq!(lease_cells(&t(40.0, 10), ms(1000)), 1);
        assert_eq!(lease_cells(&t(1e6, 15), ms(5)), 1);
        // Leasing off.
        assert_eq!(lease_cells(&t(1e9, 1_000_000), ms(0)), 1);
    }
}
