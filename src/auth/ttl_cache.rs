//! A small bounded cache with an expiry per entry, for the auth phase's
//! hot lookups (API keys by id, verified JWTs by their bytes). Not a
//! pipeline phase. A hit is one hash, a read lock and a clock read: far less
//! than a general-purpose cache's bookkeeping (such as moka's read log and
//! frequency sketch on every hit).
//!
//! Sharded behind read-write locks and hashed with foldhash, seeded per
//! process (the keys come from requests). Each entry has a weight; a shard
//! over its share of the capacity first drops its expired entries, then
//! arbitrary ones, until the new entry fits. Expiry is checked on every
//! read, so an entry is never served past its deadline.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

/// Shards per cache.
pub const SHARDS: usize = 16;

pub struct TtlCache<K: ?Sized, V> {
    shards: Box<[RwLock<Shard<K, V>>]>,
    hasher: foldhash::fast::RandomState,
    /// Weight each shard may hold.
    per_shard: u64,
}

struct Shard<K: ?Sized, V> {
    map: HashMap<Box<K>, Entry<V>, foldhash::fast::RandomState>,
    weight: u64,
}

struct Entry<V> {
    expires: Instant,
    weight: u64,
    value: Arc<V>,
}

impl<K, V> TtlCache<K, V>
where
    K: ?Sized + Hash + Eq,
    for<'a> Box<K>: From<&'a K>,
{
    /// A cache holding entries of total weight `capacity` at most.
    pub fn new(capacity: u64) -> Self {
        let hasher = foldhash::fast::RandomState::default();
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    RwLock::new(Shard {
                        map: HashMap::with_hasher(hasher.clone()),
                        weight: 0,
                    })
                })
                .collect(),
            hasher,
            per_shard: capacity.div_ceil(SHARDS as u64).max(1),
        }
    }

    fn shard(&self, key: &K) -> &RwLock<Shard<K, V>> {
        let h = self.hasher.hash_one(key);
        // The high bits: the map inside uses the low ones.
        &self.shards[(h >> 60) as usize % SHARDS]
    }

    /// The entry for `key` if it has not expired.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let shard = read(self.shard(key));
        let e = shard.map.get(key)?;
        (Instant::now() < e.expires).then(|| e.value.clone())
    }

    /// Keeps `value` for `key` until `expires`. An entry heavier than a
    /// shard's share is not kept.
    pub fn insert(&self, key: &K, value: Arc<V>, expires: Instant, weight: u64) {
        if weight > self.per_shard {
            return;
        }
        let now = Instant::now();
        let mut shard = write(self.shard(key));
        if let Some(old) = shard.map.remove(key) {
            shard.weight -= old.weight;
        }
        if shard.weight + weight > self.per_shard {
            let Shard { map, weight: held } = &mut *shard;
            map.retain(|_, e| {
                let keep = now < e.expires;
                if !keep {
                    *held -= e.weight;
                }
                keep
            });
            while *held + weight > self.per_shard {
                let Some(victim) = map.keys().next().map(|k| Box::<K>::from(&**k)) else {
                    break;
                };
                if let Some(e) = map.remove(&*victim) {
                    *held -= e.weight;
                }
            }
        }
        shard.weight += weight;
        shard.map.insert(
            key.into(),
            Entry {
                expires,
                weight,
                value,
            },
        );
    }

    pub fn invalidate(&self, key: &K) {
        let mut shard = write(self.shard(key));
        if let Some(old) = shard.map.remove(key) {
            shard.weight -= old.weight;
        }
    }

    pub fn invalidate_all(&self) {
        for s in &self.shards {
            let mut s = write(s);
            s.map.clear();
            s.weight = 0;
        }
    }

    /// Entries held, expired ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| read(s).map.len()).sum()
    }

    /// Total weight held, expired entries included.
    #[cfg(test)]
    pub(crate) fn weight(&self) -> u64 {
        self.shards.iter().map(|s| read(s).weight).sum()
    }
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn entries_expire_at_their_own_deadline() {
        let c: TtlCache<[u8], u32> = TtlCache::new(1000);
        let now = Instant::now();
        c.insert(b"short", Arc::new(1), now + Duration::from_millis(50), 1);
        c.insert(b"long", Arc::new(2), now + Duration::from_secs(60), 1);
        assert_eq!(c.get(b"short").as_deref(), Some(&1));
        std::thread::sleep(Duration::from_millis(80));
        assert!(c.get(b"short").is_none());
        assert_eq!(c.get(b"long").as_deref(), Some(&2));
        assert!(c.get(b"other").is_none());
    }

    #[test]
    fn weight_stays_within_the_capacity() {
        let c: TtlCache<str, usize> = TtlCache::new(SHARDS as u64 * 100);
        let later = Instant::now() + Duration::from_secs(60);
        for i in 0..5000 {
            let k = format!("token-{i}");
            c.insert(&k, Arc::new(i), later, 30);
            assert_eq!(c.get(&k).as_deref(), Some(&i), "the newest entry is kept");
        }
        assert!(c.weight() <= SHARDS as u64 * 100, "{}", c.weight());
        // Replacing an entry does not count it twice; too heavy is skipped.
        c.invalidate_all();
        c.insert("a", Arc::new(1), later, 40);
        c.insert("a", Arc::new(2), later, 40);
        assert_eq!(c.weight(), 40);
        c.insert("huge", Arc::new(3), later, 101);
        assert!(c.get("huge").is_none());
        c.invalidate("a");
        assert_eq!((c.len(), c.weight()), (0, 0));
    }
}
