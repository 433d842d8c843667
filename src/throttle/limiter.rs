//! Local GCRA limiters (governor): one per route, stage and the gateway, and
//! per plan (and plan route) a bucket per API key.
//! Used alone on one node, and as the fallback when Redis is unreachable.
//!
//! A request passes several levels, and one refused at a later level must
//! not have spent a cell at an earlier one. governor decides each level;
//! its state lives in [`UndoableState`], which remembers the last change it
//! made on this thread so that [`check_all`] can take a cell back.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use std::cell::Cell;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::{NotKeyed, StateStore};
use governor::{Quota, RateLimiter};

use crate::config::ThrottleConfig;

use super::Verdict;

type Direct = RateLimiter<NotKeyed, UndoableState, DefaultClock, StateInformationMiddleware>;

/// A bucket's GCRA state (its theoretical arrival time, in nanoseconds from
/// the limiter's start; 0 for a bucket never used), updated as governor's
/// own in-memory state is, by compare-and-swap. Each successful update is
/// also noted for the calling thread, so that the cell it spent can be
/// taken back.
#[derive(Debug, Default, Clone)]
pub struct UndoableState(Arc<AtomicU64>);

thread_local! {
    /// The last update an [`UndoableState`] made on this thread: (before, after).
    static LAST_UPDATE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

impl StateStore for UndoableState {
    type Key = NotKeyed;

    fn measure_and_replace<T, F, E>(&self, _key: &NotKeyed, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let stored = |v: u64| (v != 0).then(|| Nanos::from(v));
        let mut prev = self.0.load(Ordering::Acquire);
        loop {
            let (result, next) = f(stored(prev))?;
            let next = next.as_u64();
            match self
                .0
                .compare_exchange_weak(prev, next, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    LAST_UPDATE.with(|l| l.set((prev, next)));
                    return Ok(result);
                }
                Err(now) => prev = now,
            }
        }
    }
}

impl UndoableState {
    /// Takes back one cell spent by the update `(before, after)`: restores
    /// `before` if nothing changed since, else moves the arrival time back
    /// by the cell's `interval` (arrival times add up, so this leaves the
    /// bucket as if only the later updates had happened).
    fn undo(&self, (before, after): (u64, u64), interval: u64) {
        if self
            .0
            .compare_exchange(after, before, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            let _ = self
                .0
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| {
                    Some(v.saturating_sub(interval))
                });
        }
    }
}

/// governor's quota for a validated throttle (rate > 0, burst ≥ 1).
pub fn quota(t: &ThrottleConfig) -> Quota {
    let period = Duration::from_secs_f64(1.0 / t.rate).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(t.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst)
}

/// The time one cell takes to come back.
fn per_cell(t: &ThrottleConfig) -> Duration {
    Duration::from_secs_f64(1.0 / t.rate)
}

/// Converts a governor decision into a [`Verdict`]; `per_cell` is
/// [`per_cell`] of `t`, computed once per limiter.
fn verdict(
    t: &ThrottleConfig,
    per_cell: Duration,
    outcome: Result<
        governor::middleware::StateSnapshot,
        governor::NotUntil<<DefaultClock as Clock>::Instant>,
    >,
    clock: &DefaultClock,
) -> Verdict {
    match outcome {
        Ok(snap) => {
            let remaining = snap.remaining_burst_capacity();
            Verdict {
                allowed: true,
                limit: t.burst,
                remaining,
                reset: per_cell.mul_f64(f64::from(t.burst.saturating_sub(remaining))),
                retry_after: Duration::ZERO,
            }
        }
        Err(not_until) => {
            let wait = not_until.wait_time_from(clock.now());
            Verdict {
                allowed: false,
                limit: t.burst,
                remaining: 0,
                reset: per_cell.mul_f64(f64::from(t.burst)),
                retry_after: wait,
            }
        }
    }
}

/// One shared bucket (a route, the stage, the gateway, or one API key's
/// bucket of a plan).
pub struct DirectLimiter {
    config: ThrottleConfig,
    per_cell: Duration,
    limiter: Direct,
    /// The limiter's state, shared with it, for [`DirectLimiter::undo`].
    state: UndoableState,
    clock: DefaultClock,
    /// The clock reading `last_used` counts from.
    epoch: <DefaultClock as Clock>::Instant,
    /// When the bucket was last checked, in nanoseconds since `epoch`.
    last_used: AtomicU64,
    /// How long an unused bucket takes to refill completely, in
    /// nanoseconds: past that it is indistinguishable from a new one.
    refill: u64,
}

impl std::fmt::Debug for DirectLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectLimiter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DirectLimiter {
    pub fn new(config: ThrottleConfig) -> Self {
        Self::with_clock(config, &DefaultClock::default())
    }

    fn with_clock(config: ThrottleConfig, clock: &DefaultClock) -> Self {
        let per_cell = per_cell(&config);
        let epoch = clock.now();
        let state = UndoableState::default();
        Self {
            limiter: Direct::new(quota(&config), state.clone(), clock.clone()),
            state,
            refill: u64::try_from(per_cell.saturating_mul(config.burst.max(1)).as_nanos())
                .unwrap_or(u64::MAX),
            per_cell,
            config,
            clock: clock.clone(),
            epoch,
            last_used: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    pub fn check(&self) -> Verdict {
        self.last_used.store(self.since_epoch(), Ordering::Relaxed);
        verdict(
            &self.config,
            self.per_cell,
            self.limiter.check(),
            &self.clock,
        )
    }

    /// Checks like [`DirectLimiter::check`]; an admitted check also returns
    /// what it changed, for [`DirectLimiter::undo`].
    fn check_undoable(&self) -> (Verdict, (u64, u64)) {
        LAST_UPDATE.with(|l| l.set((0, 0)));
        let v = self.check();
        (v, LAST_UPDATE.with(Cell::get))
    }

    /// Takes back the cell an admitted [`DirectLimiter::check_undoable`] spent.
    fn undo(&self, update: (u64, u64)) {
        let interval = u64::try_from(self.per_cell.max(Duration::from_nanos(1)).as_nanos())
            .unwrap_or(u64::MAX);
        self.state.undo(update, interval);
    }

    fn since_epoch(&self) -> u64 {
        self.clock.now().duration_since(self.epoch).as_u64()
    }

    /// Whether the bucket has refilled completely since it was last
    /// checked: dropping it then changes no answer.
    fn is_full(&self) -> bool {
        self.since_epoch()
            .saturating_sub(self.last_used.load(Ordering::Relaxed))
            >= self.refill
    }
}

/// Checks a request against every level it passes, in order, all or
/// nothing: admitted, it spent one cell at each level and gets each level's
/// verdict; refused at level `i`, the cells it took at the levels before
/// `i` are given back, so a refusal spends nothing anywhere.
pub fn check_all<'a>(
    levels: impl IntoIterator<Item = &'a DirectLimiter>,
    mut admitted: impl FnMut(usize, Verdict),
) -> Result<(), (usize, Verdict)> {
    let mut taken: smallvec::SmallVec<[(&DirectLimiter, (u64, u64)); 4]> =
        smallvec::SmallVec::new();
    for (i, level) in levels.into_iter().enumerate() {
        let (v, update) = level.check_undoable();
        if !v.allowed {
            for (l, update) in taken {
                l.undo(update);
            }
            return Err((i, v));
        }
        taken.push((level, update));
        admitted(i, v);
    }
    Ok(())
}

/// One API key's bucket of a plan (or of a plan's route). A key's cached
/// grant remembers its plan bucket, so a repeat request checks it directly
/// instead of looking it up by plan and key.
pub type KeyBucket = Arc<DirectLimiter>;

/// A bucket per API key, for one plan (or one route within a plan).
///
/// Bounded by idle eviction: when the map has doubled since it was last
/// swept, buckets that have refilled completely and that no cached key
/// grant holds are dropped (a new bucket for the key answers exactly as the
/// dropped one would have). So the map holds about twice the buckets in
/// use, however many distinct keys were ever seen.
struct KeyedLimiter {
    config: ThrottleConfig,
    buckets: RwLock<Buckets>,
}

struct Buckets {
    map: HashMap<Arc<str>, KeyBucket, RandomState>,
    /// The size at which the next insertion sweeps first.
    sweep_at: usize,
}

/// A keyed map is never swept below this many buckets.
const MIN_SWEEP: usize = 1024;

impl KeyedLimiter {
    fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            buckets: RwLock::new(Buckets {
                map: HashMap::default(),
                sweep_at: MIN_SWEEP,
            }),
        }
    }

    fn bucket(&self, key_id: &Arc<str>, clock: &DefaultClock) -> KeyBucket {
        if let Some(b) = read(&self.buckets).map.get(key_id) {
            return b.clone();
        }
        let mut buckets = write(&self.buckets);
        if buckets.map.len() >= buckets.sweep_at && !buckets.map.contains_key(key_id) {
            // One held only by this map, and full: nobody can tell it
            // from a new one.
            buckets
                .map
                .retain(|_, b| Arc::strong_count(b) > 1 || !b.is_full());
            buckets.sweep_at = (buckets.map.len() * 2).max(MIN_SWEEP);
        }
        buckets
            .map
            .entry(key_id.clone())
            .or_insert_with(|| Arc::new(DirectLimiter::with_clock(self.config, clock)))
            .clone()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        read(&self.buckets).map.len()
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One plan's keyed limiters: the plan's own and its per-route ones.
#[derive(Default)]
struct PlanLimiters {
    whole: Option<KeyedLimiter>,
    /// By route key.
    routes: HashMap<String, KeyedLimiter, RandomState>,
}

impl PlanLimiters {
    fn get(&self, route: Option<&str>) -> Option<&KeyedLimiter> {
        match route {
            None => self.whole.as_ref(),
            Some(r) => self.routes.get(r),
        }
    }
}

/// Keyed limiters by plan name, created on first use; rebuilt when a
/// runtime plan's limits change. Finding a key's bucket takes read locks
/// and allocates nothing once the key has one. Plan names and route keys
/// come from the config and the store, never from a request, so the maps
/// use the cheaper foldhash (key ids are checked against the store before
/// they get here).
pub struct KeyLimiters {
    by_plan: RwLock<HashMap<String, PlanLimiters, RandomState>>,
    clock: DefaultClock,
}

impl Default for KeyLimiters {
    fn default() -> Self {
        Self {
            by_plan: RwLock::new(HashMap::default()),
            clock: DefaultClock::default(),
        }
    }
}

impl KeyLimiters {
    /// Checks `key_id` against `plan`'s bucket (or the plan's bucket for
    /// `route`, a route key).
    pub fn check(
        &self,
        plan: &str,
        route: Option<&str>,
        config: &ThrottleConfig,
        key_id: &Arc<str>,
    ) -> Verdict {
        self.bucket(plan, route, config, key_id).check()
    }

    /// `key_id`'s bucket of `plan` (or of the plan's `route`) with limits
    /// `config`; a fresh one when the limits changed.
    pub fn bucket(
        &self,
        plan: &str,
        route: Option<&str>,
        config: &ThrottleConfig,
        key_id: &Arc<str>,
    ) -> KeyBucket {
        {
            let map = read(&self.by_plan);
            if let Some(l) = map
                .get(plan)
                .and_then(|p| p.get(route))
                .filter(|l| l.config == *config)
            {
                return l.bucket(key_id, &self.clock);
            }
        }
        let mut map = write(&self.by_plan);
        let limiters = map.entry(plan.to_string()).or_default();
        let l = match route {
            None => match &mut limiters.whole {
                Some(l) if l.config == *config => l,
                slot => slot.insert(KeyedLimiter::new(*config)),
            },
            Some(r) => {
                let fresh = !limiters.routes.get(r).is_some_and(|l| l.config == *config);
                if fresh {
                    limiters
                        .routes
                        .insert(r.to_string(), KeyedLimiter::new(*config));
                }
                &limiters.routes[r]
            }
        };
        l.bucket(key_id, &self.clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_with_a_retry_time() {
        let l = DirectLimiter::new(ThrottleConfig {
            rate: 1.0,
            burst: 3,
        });
        for left in [2, 1, 0] {
            let v = l.check();
            assert!(v.allowed);
            assert_eq!(v.remaining, left);
        }
        let v = l.check();
        assert!(!v.allowed);
        assert!(v.retry_after > Duration::from_millis(500));
        assert!(v.retry_after <= Duration::from_secs(1));
    }

    #[test]
    fn a_refusal_at_a_later_level_spends_nothing_at_an_earlier_one() {
        let slow = |burst| ThrottleConfig { rate: 0.001, burst };
        let key = DirectLimiter::new(slow(3));
        let route = DirectLimiter::new(slow(1));
        assert!(check_all([&key, &route], |_, _| {}).is_ok());
        for _ in 0..5 {
            let (at, v) = check_all([&key, &route], |_, _| {}).unwrap_err();
            assert_eq!(at, 1, "the route refuses");
            assert!(!v.allowed);
        }
        // The key spent one cell, for the one admitted request.
        let mut seen = Vec::new();
        assert!(check_all([&key], |_, v| seen.push(v.remaining)).is_ok());
        assert_eq!(seen, [1]);
        assert!(key.check().allowed);
        assert!(!key.check().allowed);
    }

    #[test]
    fn the_undoable_state_decides_as_governors_own() {
        use governor::clock::FakeRelativeClock;
        type Ours = RateLimiter<
            NotKeyed,
            UndoableState,
            FakeRelativeClock,
            governor::middleware::NoOpMiddleware<governor::nanos::Nanos>,
        >;
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for burst in [1, 2, 5, 50] {
            let t = ThrottleConfig { rate: 100.0, burst };
            let clock = FakeRelativeClock::default();
            let ours = Ours::new(quota(&t), UndoableState::default(), clock.clone());
            let theirs = RateLimiter::direct_with_clock(quota(&t), clock.clone());
            for step in 0..5_000 {
                clock.advance(Duration::from_micros(next() % 25_000));
                assert_eq!(
                    ours.check().is_ok(),
                    theirs.check().is_ok(),
                    "burst {burst}, step {step}"
                );
            }
        }
    }

    #[test]
    fn an_undone_check_leaves_the_bucket_as_it_was() {
        let t = ThrottleConfig {
            rate: 0.001,
            burst: 4,
        };
        let (a, b) = (DirectLimiter::new(t), DirectLimiter::new(t));
        for _ in 0..2 {
            assert!(a.check().allowed);
            assert!(b.check().allowed);
        }
        // `a` takes and gives back a cell; `b` does nothing.
        let (v, update) = a.check_undoable();
        assert!(v.allowed);
        a.undo(update);
        // Given back after another check moved the state too.
        let (v, first) = a.check_undoable();
        assert!(v.allowed);
        assert!(a.check().allowed);
        a.undo(first);
        assert!(b.check().allowed);
        for _ in 0..2 {
            assert_eq!(a.check().allowed, b.check().allowed);
        }
        assert!(!a.check().allowed && !b.check().allowed);
    }

    #[test]
    fn idle_full_buckets_are_dropped_so_the_map_stays_bounded() {
        let clock = DefaultClock::default();
        // Refills in 1 ms.
        let t = ThrottleConfig {
            rate: 1000.0,
            burst: 1,
        };
        let l = KeyedLimiter::new(t);
        // A bucket a cached grant holds, emptied and kept busy.
        let held_key: Arc<str> = "held".into();
        let held = l.bucket(&held_key, &clock);
        let mut peak = 0;
        for i in 0..200_000u32 {
            let key: Arc<str> = i.to_string().into();
            assert!(l.bucket(&key, &clock).check().allowed);
            peak = peak.max(l.len());
            if i % 50_000 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert!(
            peak < 120_000,
            "200k distinct keys, the map peaked at {peak} buckets"
        );
        // The held bucket is never swept: it is the one the grant checks.
        assert!(Arc::ptr_eq(&held, &l.bucket(&held_key, &clock)));
        // A bucket in use keeps its state across sweeps: emptied, it is
        // still refused right after.
        let busy: Arc<str> = "busy".into();
        let slow = KeyedLimiter::new(ThrottleConfig {
            rate: 0.001,
            burst: 1,
        });
        assert!(slow.bucket(&busy, &clock).check().allowed);
        for i in 0..5_000u32 {
            let key: Arc<str> = format!("k{i}").into();
            slow.bucket(&key, &clock);
        }
        assert!(!slow.bucket(&busy, &clock).check().allowed);
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let k = KeyLimiters::default();
        let t = ThrottleConfig {
            rate: 1.0,
            burst: 1,
        };
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        assert!(k.check("gold", None, &t, &a).allowed);
        assert!(!k.check("gold", None, &t, &a).allowed);
        assert!(k.check("gold", None, &t, &b).allowed);
        // A plan's route bucket is separate from the plan's own.
        assert!(k.check("gold", Some("GET /x"), &t, &a).allowed);
        // Changed limits start a fresh bucket.
        let wider = ThrottleConfig {
            rate: 1.0,
            burst: 2,
        };
        assert!(k.check("gold", None, &wider, &a).allowed);
        // A key's bucket is one shared object, found again by plan and key.
        let t2 = ThrottleConfig {
            rate: 1.0,
            burst: 2,
        };
        let bucket = k.bucket("silver", None, &t2, &a);
        assert!(bucket.check().allowed);
        assert!(k.check("silver", None, &t2, &a).allowed);
        assert!(!bucket.check().allowed);
        assert!(Arc::ptr_eq(&bucket, &k.bucket("silver", None, &t2, &a)));
    }
}
