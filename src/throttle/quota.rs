//! Quotas: a plan's `limit` requests per UTC day, week (from Monday) or
//! month, counted durably in the store (one atomic conditional upsert per
//! request, so a quota survives restarts and is shared by every node), and
//! the batched per-day usage counts the admin API reports.

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
