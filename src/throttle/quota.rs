//! Quotas: a plan's `limit` requests per UTC day, week (from Monday) or
//! month, counted durably in the store and shared by every node, and the
//! batched per-day usage counts the admin API reports.
//!
//! A node does not write to the store per request: it takes a block of the
//! quota at a time ([`QuotaLeases`], one atomic conditional upsert per
//! block) and admits from it locally. The store never grants more than the
//! limit in all, so no node over-admits; what a node holds unspent is given
//! back on graceful shutdown and lost (counted as used) only if it dies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use time::{Date, Month, OffsetDateTime, Time};

use crate::config::QuotaPeriod;
use crate::store::Store;

/// The UTC period containing `now`: its start and the next period's start,
/// as Unix seconds.
pub fn period_bounds(period: QuotaPeriod, now: OffsetDateTime) -> (i64, i64) {
    let today = now.date();
    let (start, end) = match period {
        QuotaPeriod::Day => (today, today.next_day().unwrap_or(today)),
        QuotaPeriod::Week => {
            let back = i64::from(today.weekday().number_days_from_monday());
            let start = today - time::Duration::days(back);
            (start, start + time::Duration::days(7))
        }
        QuotaPeriod::Month => {
            let start = Date::from_calendar_date(today.year(), today.month(), 1).unwrap_or(today);
            let (y, m) = match today.month() {
                Month::December => (today.year() + 1, Month::January),
                m => (today.year(), m.next()),
            };
            (start, Date::from_calendar_date(y, m, 1).unwrap_or(start))
        }
    };
    let ts = |d: Date| d.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp();
    (ts(start), ts(end))
}

/// `YYYY-MM-DD` of a UTC instant.
pub fn day_string(t: OffsetDateTime) -> String {
    let d = t.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// `YYYY-MM-DD` of a day counted from the Unix epoch.
fn day_of_epoch(day: i64) -> String {
    OffsetDateTime::from_unix_timestamp(day.saturating_mul(86_400))
        .map(day_string)
        .unwrap_or_else(|_| "1970-01-01".to_string())
}

/// How many requests one block takes: a hundredth of the limit, at least
/// one (an exact count for small quotas), at most 1,000. A node holds at
/// most one block per key, so quota a node holds unspent, which another
/// node cannot admit and a killed node loses, is at most one block per node.
pub fn block_size(limit: u64) -> u64 {
    (limit / 100).clamp(1, 1000)
}

/// One key's block of its quota on this node.
#[derive(Debug, Default)]
pub struct QuotaLease {
    state: Mutex<LeaseState>,
    /// Held while a block is taken, so a node's requests for one key wait
    /// for one store round trip instead of each taking a block.
    refill: tokio::sync::Mutex<()>,
    /// The next block is being taken ahead of need.
    topping_up: AtomicBool,
}

#[derive(Debug, Default, Clone, Copy)]
struct LeaseState {
    /// The period the cells belong to (Unix seconds of its start and of
    /// the next period's).
    period_start: i64,
    period_end: i64,
    /// Requests still to admit.
    cells: u64,
}

/// Why a request could not be counted against its quota.
#[derive(Debug)]
pub enum QuotaError {
    /// The period's quota is spent.
    Spent,
    Store(crate::store::StoreError),
}

/// This node's blocks of quota, by key id. Bounded as the throttle's keyed
/// maps are: when the map has doubled since it was last swept, leases with
/// no cell left that no request holds are dropped.
pub struct QuotaLeases {
    store: Store,
    leases: Mutex<LeaseMap>,
}

struct LeaseMap {
    map: HashMap<Arc<str>, Arc<QuotaLease>>,
    sweep_at: usize,
}

/// A lease map is never swept below this many leases.
const MIN_SWEEP: usize = 1024;

impl QuotaLeases {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            leases: Mutex::new(LeaseMap {
                map: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
        }
    }

    /// `key_id`'s lease on this node (a request's grant keeps it, so later
    /// requests find it without a lookup).
    pub fn lease(&self, key_id: &Arc<str>) -> Arc<QuotaLease> {
        let mut m = lock(&self.leases);
        if let Some(l) = m.map.get(key_id) {
            return l.clone();
        }
        if m.map.len() >= m.sweep_at {
            m.map
                .retain(|_, l| Arc::strong_count(l) > 1 || lock(&l.state).cells > 0);
            m.sweep_at = (m.map.len() * 2).max(MIN_SWEEP);
        }
        m.map.entry(key_id.clone()).or_default().clone()
    }

    /// Counts one request of `key_id` (whose lease is `lease`) against a
    /// quota of `limit` for the period `(start, end)`, taking a new block
    /// from the store when this node's is spent.
    pub async fn consume(
        &self,
        key_id: &Arc<str>,
        lease: &QuotaLease,
        (period_start, period_end): (i64, i64),
        limit: u64,
    ) -> Result<(), QuotaError> {
        if lease.take_in(period_start) {
            return Ok(());
        }
        let _refilling = lease.refill.lock().await;
        // Another request may have taken a block meanwhile.
        if lease.take_in(period_start) {
            return Ok(());
        }
        let granted = self
            .store
            .lease_quota(key_id, period_start, limit, block_size(limit))
            .await
            .map_err(QuotaError::Store)?;
        if granted == 0 {
            return Err(QuotaError::Spent);
        }
        // A block of an earlier period is worth nothing now.
        *lock(&lease.state) = LeaseState {
            period_start,
            period_end,
            cells: granted - 1,
        };
        Ok(())
    }

    /// When `lease`'s block is down to a quarter (`left` cells), takes the
    /// next block in the background, so that requests keep being served
    /// from memory instead of waiting for the store when the block runs
    /// out. Blocks of fewer than 4 cells are not topped up (small quotas
    /// stay counted request by request).
    pub fn top_up(&self, key_id: &Arc<str>, lease: &Arc<QuotaLease>, left: u64, limit: u64) {
        let block = block_size(limit);
        // While the store is unreachable the next request that needs a
        // block tries it; a top-up per request would only fail.
        if block < 4
            || left > block / 4
            || self.store.is_down()
            || lease.topping_up.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let (store, key, lease) = (self.store.clone(), key_id.clone(), lease.clone());
        let LeaseState { period_start, .. } = *lock(&lease.state);
        tokio::spawn(async move {
            // After (or instead of) a refill a request is already doing.
            let _refilling = lease.refill.lock().await;
            match store.lease_quota(&key, period_start, limit, block).await {
                Ok(granted) => {
                    let mut s = lock(&lease.state);
                    // A block of a period that has ended meanwhile is worth
                    // nothing; it stays counted in that period.
                    if s.period_start == period_start {
                        s.cells += granted;
                    }
                }
                // An unreachable store logs that itself.
                Err(e) if e.is_unreachable() => {}
                Err(e) => {
                    tracing::warn!(error = %e, key_id = %key, "cannot take the next quota block ahead; the next request will");
                }
            }
            lease.topping_up.store(false, Ordering::Release);
        });
    }

    /// Requests this node holds unspent for `key_id` in the period starting
    /// at `period_start` (counted as used in the store).
    pub fn unspent(&self, key_id: &str, period_start: i64) -> u64 {
        lock(&self.leases).map.get(key_id).map_or(0, |l| {
            let s = *lock(&l.state);
            if s.period_start == period_start {
                s.cells
            } else {
                0
            }
        })
    }

    /// Gives every unspent cell back to the store (graceful shutdown, or a
    /// reload that replaces this node's limits). Returns how many.
    pub async fn release(&self) -> u64 {
        let held: Vec<(Arc<str>, LeaseState)> = {
            let m = lock(&self.leases);
            m.map
                .iter()
                .map(|(k, l)| {
                    let mut s = lock(&l.state);
                    let taken = *s;
                    s.cells = 0;
                    (k.clone(), taken)
                })
                .filter(|(_, s)| s.cells > 0)
                .collect()
        };
        let mut returned = 0;
        for (key, s) in held {
            match self.store.return_quota(&key, s.period_start, s.cells).await {
                Ok(()) => returned += s.cells,
                Err(e) => {
                    tracing::warn!(error = %e, key_id = %key, unspent = s.cells, "cannot give back unspent quota; it stays counted as used");
                }
            }
        }
        returned
    }
}

impl QuotaLease {
    /// Takes one cell of the block, if it has one for the period starting
    /// at `period_start`.
    fn take_in(&self, period_start: i64) -> bool {
        let mut s = lock(&self.state);
        if s.period_start == period_start && s.cells > 0 {
            s.cells -= 1;
            return true;
        }
        false
    }

    /// Takes one cell of the block if it holds one for the period that
    /// contains `now` (Unix seconds): the common case, decided without the
    /// calendar or the store. Returns the cells left.
    pub fn take_now(&self, now: i64) -> Option<u64> {
        let mut s = lock(&self.state);
        if s.period_start <= now && now < s.period_end && s.cells > 0 {
            s.cells -= 1;
            return Some(s.cells);
        }
        None
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// By key id: (day since the epoch, requests), oldest day first.
type Pending = HashMap<Arc<str>, Vec<(i64, u64)>>;

/// One key's requests on one day, counted without a lock: a cached key's
/// grant holds one (for the day the key was read, so a cell lives no longer
/// than the key cache's TTL) and the recorder finds it when it flushes.
#[derive(Debug)]
pub struct UsageCell {
    /// Days since the epoch.
    day: i64,
    count: AtomicU64,
    /// Whether the recorder holds this cell yet.
    registered: AtomicBool,
}

impl UsageCell {
    /// A cell for today.
    pub fn today() -> Arc<Self> {
        Arc::new(Self {
            day: crate::store::now_secs().div_euclid(86_400),
            count: AtomicU64::new(0),
            registered: AtomicBool::new(false),
        })
    }
}

/// Per-key, per-day request counts, kept in memory and written to the store
/// every `[api_keys] usage_flush_interval` and on shutdown (usage reports
/// are informational; quotas are not counted here). A request on a cached
/// key adds one to its [`UsageCell`] (an atomic add); others go to a map
/// under a lock, which allocates nothing once the key has an entry. Days
/// are counted from the epoch and turned into dates when written.
pub struct UsageRecorder {
    store: Store,
    pending: Mutex<Pending>,
    /// Cells in use, by key id; a cell is dropped once flushed after its
    /// cache entry let go of it.
    cells: Mutex<Vec<(Arc<str>, Arc<UsageCell>)>>,
}

impl UsageRecorder {
    /// Creates the recorder and its flush task (which ends when the
    /// recorder is dropped).
    pub fn start(store: Store, every: Duration) -> Arc<Self> {
        let this = Arc::new(Self {
            store,
            pending: Mutex::new(HashMap::new()),
            cells: Mutex::new(Vec::new()),
        });
        let weak: Weak<Self> = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(me) = weak.upgrade() else { break };
                me.flush().await;
            }
        });
        this
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        match self.pending.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Counts a request in `cell` (the key's cell for its cache entry), or,
    /// past the cell's day, as [`UsageRecorder::record`] does.
    pub fn record_in(&self, key_id: &Arc<str>, cell: &Arc<UsageCell>) {
        let day = crate::store::now_secs().div_euclid(86_400);
        if day != cell.day {
            return self.add(key_id, day, 1);
        }
        if !cell.registered.load(Ordering::Relaxed) && !cell.registered.swap(true, Ordering::AcqRel)
        {
            let mut cells = match self.cells.lock() {
                Ok(c) => c,
                Err(poisoned) => poisoned.into_inner(),
            };
            cells.push((key_id.clone(), cell.clone()));
        }
        cell.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Moves the cells' counts to the pending map; forgets cells no cache
    /// entry holds any more (nothing can count in them after that).
    fn collect_cells(&self) {
        let counted: Vec<(Arc<str>, i64, u64)> = {
            let mut cells = match self.cells.lock() {
                Ok(c) => c,
                Err(poisoned) => poisoned.into_inner(),
            };
            let mut counted = Vec::new();
            cells.retain(|(key, cell)| {
                let unheld = Arc::strong_count(cell) == 1;
                let n = cell.count.swap(0, Ordering::Relaxed);
                if n > 0 {
                    counted.push((key.clone(), cell.day, n));
                }
                !unheld
            });
            counted
        };
        for (key, day, n) in &counted {
            self.add(key, *day, *n);
        }
    }

    pub fn record(&self, key_id: &Arc<str>) {
        self.add(key_id, crate::store::now_secs().div_euclid(86_400), 1);
    }

    fn add(&self, key_id: &Arc<str>, day: i64, n: u64) {
        let mut p = self.pending();
        match p.get_mut(&**key_id) {
            Some(days) => match days.iter_mut().find(|(d, _)| *d == day) {
                Some((_, count)) => *count += n,
                None => days.push((day, n)),
            },
            None => {
                p.insert(key_id.clone(), vec![(day, n)]);
            }
        }
    }

    /// Writes the pending counts; on a store error they are kept for later.
    /// Returns how many requests were written.
    pub async fn flush(&self) -> u64 {
        self.collect_cells();
        let batch: Vec<(Arc<str>, i64, u64)> = {
            let mut p = self.pending();
            p.drain()
                .flat_map(|(k, days)| days.into_iter().map(move |(d, n)| (k.clone(), d, n)))
                .collect()
        };
        if batch.is_empty() {
            return 0;
        }
        let rows: Vec<(String, String, u64)> = batch
            .iter()
            .map(|(k, d, n)| (k.to_string(), day_of_epoch(*d), *n))
            .collect();
        match self.store.add_daily_usage(&rows).await {
            Ok(()) => rows.iter().map(|(_, _, n)| n).sum(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot write API key usage; will retry");
                for (k, d, n) in &batch {
                    self.add(k, *d, *n);
                }
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// A SQLite store in a folder that lives as long as the returned guard.
    async fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&crate::config::StoreConfig::Sqlite {
            path: dir.path().join("q.db"),
        })
        .await
        .unwrap();
        (dir, store)
    }

    #[test]
    fn blocks_are_a_hundredth_of_the_limit_within_bounds() {
        assert_eq!(block_size(1), 1);
        assert_eq!(block_size(100), 1);
        assert_eq!(block_size(10_000), 100);
        assert_eq!(block_size(u64::MAX), 1000);
    }

    #[tokio::test]
    async fn a_node_admits_exactly_the_limit_and_gives_back_what_it_holds() {
        let (_dir, store) = temp_store().await;
        let leases = QuotaLeases::new(store.clone());
        let key: Arc<str> = "k".into();
        // 250 in blocks of 2: exactly 250 admitted.
        let mut admitted = 0;
        let lease = leases.lease(&key);
        for _ in 0..300 {
            match leases.consume(&key, &lease, (0, 86_400), 250).await {
                Ok(()) => admitted += 1,
                Err(QuotaError::Spent) => {}
                Err(QuotaError::Store(e)) => panic!("{e}"),
            }
        }
        assert_eq!(admitted, 250);
        assert_eq!(store.quota_used("k", 0).await.unwrap(), 250);
        // A fresh period: one request takes a block of 2, one is unspent
        // until released; a block serves only inside its own period.
        leases
            .consume(&key, &lease, (86_400, 2 * 86_400), 250)
            .await
            .unwrap();
        assert_eq!(store.quota_used("k", 86_400).await.unwrap(), 2);
        assert_eq!(lease.take_now(2 * 86_400), None, "not past its period");
        assert_eq!(lease.take_now(86_399), None, "not before it");
        assert_eq!(leases.unspent("k", 86_400), 1);
        assert_eq!(leases.release().await, 1);
        assert_eq!(store.quota_used("k", 86_400).await.unwrap(), 1);
        assert_eq!(
            lease.take_now(86_400 + 10),
            None,
            "a released block is gone"
        );
        leases
            .consume(&key, &lease, (86_400, 2 * 86_400), 250)
            .await
            .unwrap();
        assert_eq!(
            lease.take_now(86_400 + 10),
            Some(0),
            "the block serves without the store"
        );
        assert_eq!(leases.unspent("k", 86_400), 0);
    }

    #[tokio::test]
    async fn a_block_down_to_a_quarter_is_topped_up_ahead_of_need() {
        let (_dir, store) = temp_store().await;
        let leases = QuotaLeases::new(store.clone());
        let key: Arc<str> = "k".into();
        let lease = leases.lease(&key);
        // Blocks of 100: the first request takes one, 99 left.
        leases
            .consume(&key, &lease, (0, i64::MAX), 10_000)
            .await
            .unwrap();
        let mut left = 99;
        while left > 26 {
            left = lease.take_now(10).unwrap();
            leases.top_up(&key, &lease, left, 10_000);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            store.quota_used("k", 0).await.unwrap(),
            100,
            "not before a quarter"
        );
        let left = lease.take_now(10).unwrap();
        assert_eq!(left, 25);
        leases.top_up(&key, &lease, left, 10_000);
        let mut waited = 0;
        while leases.unspent("k", 0) < 100 && waited < 200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        assert_eq!(
            leases.unspent("k", 0),
            125,
            "the next block joined the 25 left"
        );
        assert_eq!(store.quota_used("k", 0).await.unwrap(), 200);
    }

    #[test]
    fn utc_periods() {
        let t = datetime!(2026-11-26 10:30 UTC); // a Thursday
        let (s, e) = period_bounds(QuotaPeriod::Day, t);
        assert_eq!(s, datetime!(2026-11-26 0:00 UTC).unix_timestamp());
        assert_eq!(e, datetime!(2026-11-27 0:00 UTC).unix_timestamp());
        let (s, e) = period_bounds(QuotaPeriod::Week, t);
        assert_eq!(s, datetime!(2026-11-23 0:00 UTC).unix_timestamp());
        assert_eq!(e, datetime!(2026-11-30 0:00 UTC).unix_timestamp());
        let (s, e) = period_bounds(QuotaPeriod::Month, datetime!(2026-12-31 23:59 UTC));
        assert_eq!(s, datetime!(2026-12-01 0:00 UTC).unix_timestamp());
        assert_eq!(e, datetime!(2027-01-01 0:00 UTC).unix_timestamp());
        assert_eq!(day_string(t), "2026-11-26");
        assert_eq!(
            day_of_epoch(t.unix_timestamp().div_euclid(86_400)),
            "2026-11-26"
        );
    }
}
