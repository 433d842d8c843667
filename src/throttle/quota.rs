//! Quotas: a plan's `limit` requests per UTC day, week (from Monday) or
//! month, counted durably in the store (one atomic conditional upsert per
//! request, so a quota survives restarts and is shared by every node), and
//! the batched per-day usage counts the admin API reports.

use std::collections::HashMap;
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

/// Per-key, per-day request counts, kept in memory and written to the store
/// about once a second (usage reports are informational; quotas are not
/// counted here).
pub struct UsageRecorder {
    store: Store,
    pending: Mutex<HashMap<(String, String), u64>>,
}

impl UsageRecorder {
    /// Creates the recorder and its flush task (which ends when the
    /// recorder is dropped).
    pub fn start(store: Store) -> Arc<Self> {
        let this = Arc::new(Self {
            store,
            pending: Mutex::new(HashMap::new()),
        });
        let weak: Weak<Self> = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(me) = weak.upgrade() else { break };
                me.flush().await;
            }
        });
        this
    }

    pub fn record(&self, key_id: &str) {
        let day = day_string(OffsetDateTime::now_utc());
        let mut p = match self.pending.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        *p.entry((key_id.to_string(), day)).or_insert(0) += 1;
    }

    /// Writes the pending counts; on a store error they are kept for later.
    pub async fn flush(&self) {
        let batch: Vec<(String, String, u64)> = {
            let mut p = match self.pending.lock() {
                Ok(p) => p,
                Err(poisoned) => poisoned.into_inner(),
            };
            p.drain().map(|((k, d), n)| (k, d, n)).collect()
        };
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.store.add_daily_usage(&batch).await {
            tracing::warn!(error = %e, "cannot write API key usage; will retry");
            let mut p = match self.pending.lock() {
                Ok(p) => p,
                Err(poisoned) => poisoned.into_inner(),
            };
            for (k, d, n) in batch {
                *p.entry((k, d)).or_insert(0) += n;
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
    }
}
