//! The store: API keys (as SHA-256 hashes only), usage plans defined at run
//! time, quota counters and daily usage. Embedded default: SQLite
//! ([`sqlite`]); several nodes share PostgreSQL ([`postgres`]). Both are
//! created and migrated on first open (versioned migrations under
//! `migrations/`); the SQL below is written once and runs on both.
//!
//! Not a request phase itself: the key check, the quota step and the admin
//! API call it. Quota consumption is one atomic conditional upsert, so
//! concurrent requests on any number of nodes never over-admit.
//!
//! The reads and writes a request waits for (a key, a plan, a quota block)
//! are bounded ([`STEP_TIMEOUT`]); when the store cannot be reached the
//! request path stops asking it for a second ([`RETRY_AFTER`]) and fails at
//! once meanwhile ([`StoreError::Unreachable`], a `503` to the client),
//! then one request tries again. The pool reconnects by itself: the first
//! request that gets an answer ends the outage. It is logged once per
//! [`LOG_INTERVAL`] at most, and its end once.

pub mod postgres;
pub mod sqlite;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::{PgPool, SqlitePool};

use crate::config::StoreConfig;

/// A store failure, classified for the admin API's statuses.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique name or id is taken.
    #[error("{0}")]
    Conflict(String),
    #[error("store unavailable: {0}")]
    Db(#[from] sqlx::Error),
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The store did not answer (refused, cut, timed out), now or moments
    /// ago: a request that needs it is answered `503`.
    #[error("store unreachable: {0}")]
    Unreachable(String),
}

impl StoreError {
    /// Whether the store could not be reached (as opposed to a query it
    /// refused): the request path answers these with `503`.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Unreachable(_) => true,
            StoreError::Db(e) => connection_failure(e),
            _ => false,
        }
    }
}

/// Whether a query failed because the server is out of reach or going
/// away, rather than because of the query: connection errors, pool
/// timeouts, and PostgreSQL's connection-exception (`08`), operator
/// intervention (`57`, a shutdown or restart) and missing-database (`3D`)
/// classes.
fn connection_failure(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57") || c.starts_with("3D")),
        _ => false,
    }
}

/// How long one read or write a request waits for may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the request path stops asking an unreachable store.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// At most one "store unreachable" log line per this interval.
pub const LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Whether the store answers, as the request path last saw it.
#[derive(Debug)]
struct Health {
    epoch: Instant,
    /// Milliseconds since `epoch` before which the request path does not
    /// try the store (0: it answered last time).
    down_until_ms: AtomicI64,
    /// Why it was last unreachable, for the requests that fail meanwhile.
    last_error: std::sync::Mutex<String>,
    last_log_ms: AtomicI64,
    failures: AtomicU64,
}

impl Health {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            down_until_ms: AtomicI64::new(0),
            last_error: std::sync::Mutex::new(String::new()),
            last_log_ms: AtomicI64::new(-(LOG_INTERVAL.as_millis() as i64)),
            failures: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }

    /// Whether a request may try the store now: always while it is up; once
    /// `RETRY_AFTER` has passed since a failure, for one request (the
    /// others keep failing at once while it tries).
    fn admit(&self) -> Result<(), StoreError> {
        let until = self.down_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return Ok(());
        }
        let now = self.now_ms();
        let retry = RETRY_AFTER.as_millis() as i64;
        if now >= until
            && self
                .down_until_ms
                .compare_exchange(until, now + retry, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Ok(());
        }
        let why = match self.last_error.lock() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        Err(StoreError::Unreachable(why))
    }

    /// The store answered: an outage, if there was one, is over.
    fn up(&self) {
        if self.down_until_ms.swap(0, Ordering::Relaxed) != 0 {
            tracing::warn!(
                target: "lambdagate::store",
                "store reachable again; keys and quotas are read from it as before"
            );
        }
    }

    /// The store could not be reached: the request path fails at once for
    /// `RETRY_AFTER`; logged at most once per `LOG_INTERVAL`.
    fn down(&self, why: &str) {
        let now = self.now_ms();
        self.down_until_ms.store(
            (now + RETRY_AFTER.as_millis() as i64).max(1),
            Ordering::Relaxed,
        );
        match self.last_error.lock() {
            Ok(mut e) => why.clone_into(&mut e),
            Err(poisoned) => why.clone_into(&mut poisoned.into_inner()),
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let last = self.last_log_ms.load(Ordering::Relaxed);
        if now - last >= LOG_INTERVAL.as_millis() as i64
            && self
                .last_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(
                target: "lambdagate::store",
                error = why,
                failures = n,
                "store unreachable: requests that need it (a key not in the cache, the next quota block) get 503 until it is back"
            );
        }
    }

    /// Runs one read or write a request waits for: at once `Unreachable`
    /// while the store is marked down, else the query, bounded by
    /// `STEP_TIMEOUT`, its outcome recorded.
    async fn step<T>(
        &self,
        query: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        self.admit()?;
        match tokio::time::timeout(STEP_TIMEOUT, query).await {
            Ok(Ok(v)) => {
                self.up();
                Ok(v)
            }
            Ok(Err(e)) if connection_failure(&e) => {
                let why = e.to_string();
                self.down(&why);
                Err(StoreError::Unreachable(why))
            }
            Ok(Err(e)) => {
                // The server answered: it is up, the query failed.
                self.up();
                Err(e.into())
            }
            Err(_) => {
                let why = format!("no answer within {STEP_TIMEOUT:?}");
                self.down(&why);
                Err(StoreError::Unreachable(why))
            }
        }
    }
}

fn map_unique(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
        _ => StoreError::Db(e),
    }
}

/// One API key as stored (never the key itself).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub key_hash: String,
    pub plan: Option<String>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
}

/// A usage plan created through the admin API.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PlanRecord {
    pub name: String,
    pub rate: Option<f64>,
    pub burst: Option<i64>,
    pub quota_limit: Option<i64>,
    pub quota_period: Option<String>,
    pub description: Option<String>,
    pub created_at: i64,
}

/// A new key's row.
pub struct NewKey<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub key_hash: &'a str,
    pub plan: Option<&'a str>,
    pub expires_at: Option<i64>,
    pub now: i64,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same query text on whichever pool the store has.
macro_rules! on_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match &$self.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// Keys, plans and usage; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    health: Arc<Health>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.pool {
            Pool::Sqlite(_) => "Store(sqlite)",
            Pool::Postgres(_) => "Store(postgres)",
        })
    }
}

macro_rules! key_columns {
    () => {
        "id, name, key_hash, plan, enabled, created_at, updated_at, expires_at"
    };
}
macro_rules! plan_columns {
    () => {
        "name, rate, burst, quota_limit, quota_period, description, created_at"
    };
}

impl Store {
    /// Opens (creating and migrating on first use) the configured store.
    pub async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let pool = match config {
            StoreConfig::Sqlite { path } => Pool::Sqlite(sqlite::open(path).await?),
            StoreConfig::Postgres { url, schema } => {
                Pool::Postgres(postgres::open(url, schema.as_deref()).await?)
            }
        };
        Ok(Self {
            pool,
            health: Arc::new(Health::new()),
        })
    }

    /// Whether the request path has found the store unreachable and not
    /// yet reached it again.
    pub fn is_down(&self) -> bool {
        self.health.down_until_ms.load(Ordering::Relaxed) != 0
    }

    pub fn kind(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Reachability check for `/readyz`: one trivial query on a pooled
    /// connection (a dead one is replaced first).
    /// A successful ping ends an outage the request path had seen.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        self.health.up();
        Ok(())
    }

    // ---- keys ----

    pub async fn create_key(&self, k: &NewKey<'_>) -> Result<KeyRecord, StoreError> {
        let sql = concat!(
            "INSERT INTO api_keys (id, name, key_hash, plan, enabled, created_at, updated_at, expires_at) \
             VALUES ($1, $2, $3, $4, TRUE, $5, $5, $6) RETURNING ",
            key_columns!()
        );
        on_pool!(self, p => sqlx::query_as::<_, KeyRecord>(sql)
            .bind(k.id)
            .bind(k.name)
            .bind(k.key_hash)
            .bind(k.plan)
            .bind(k.now)
            .bind(k.expires_at)
            .fetch_one(p)
            .await)
        .map_err(|e| map_unique(e, || format!("a key named `{}` already exists", k.name)))
    }

    /// A key by id (request path: bounded, fails at once while the store
    /// is unreachable).
    pub async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let sql = concat!("SELECT ", key_columns!(), " FROM api_keys WHERE id = $1");
        self.health
            .step(async {
                on_pool!(self, p => sqlx::query_as::<_, KeyRecord>(sql).bind(id).fetch_optional(p).await)
            })
            .await
    }

    pub async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys ORDER BY created_at, id"
        );
        Ok(on_pool!(self, p => sqlx::query_as::<_, KeyRecord>(sql).fetch_all(p).await)?)
    }

    pub async fn set_key_enabled(
        &self,
        id: &str,
        enabled: bool,
        now: i64,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let sql = concat!(
            "UPDATE api_keys SET enabled = $2, updated_at = $3 WHERE id = $1 RETURNING ",
            key_columns!()
        );
        Ok(on_pool!(self, p => sqlx::query_as::<_, KeyRecord>(sql)
            .bind(id).bind(enabled).bind(now).fetch_optional(p).await)?)
    }

    pub async fn set_key_plan(
        &self,
        id: &str,
        plan: Option<&str>,
        now: i64,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let sql = concat!(
            "UPDATE api_keys SET plan = $2, updated_at = $3 WHERE id = $1 RETURNING ",
            key_columns!()
        );
        Ok(on_pool!(self, p => sqlx::query_as::<_, KeyRecord>(sql)
            .bind(id).bind(plan).bind(now).fetch_optional(p).await)?)
    }

    /// Replaces a key's hash (rotation): the old key stops working.
    pub async fn set_key_hash(
        &self,
        id: &str,
        key_hash: &str,
        now: i64,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let sql = concat!(
            "UPDATE api_keys SET key_hash = $2, updated_at = $3 WHERE id = $1 RETURNING ",
            key_columns!()
        );
        Ok(on_pool!(self, p => sqlx::query_as::<_, KeyRecord>(sql)
            .bind(id).bind(key_hash).bind(now).fetch_optional(p).await)?)
    }

    /// Deletes a key and its counters; false if there was no such key.
    pub async fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => {
            sqlx::query("DELETE FROM quota_usage WHERE key_id = $1").bind(id).execute(p).await?;
            sqlx::query("DELETE FROM daily_usage WHERE key_id = $1").bind(id).execute(p).await?;
            sqlx::query("DELETE FROM api_keys WHERE id = $1").bind(id).execute(p).await?.rows_affected()
        });
        Ok(n > 0)
    }

    pub async fn keys_on_plan(&self, plan: &str) -> Result<i64, StoreError> {
        let (n,): (i64,) = on_pool!(self, p => sqlx::query_as("SELECT COUNT(*) FROM api_keys WHERE plan = $1")
            .bind(plan).fetch_one(p).await)?;
        Ok(n)
    }

    // ---- plans ----

    pub async fn create_plan(&self, plan: &PlanRecord) -> Result<PlanRecord, StoreError> {
        let sql = concat!(
            "INSERT INTO plans (",
            plan_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
            plan_columns!()
        );
        on_pool!(self, p => sqlx::query_as::<_, PlanRecord>(sql)
            .bind(&plan.name)
            .bind(plan.rate)
            .bind(plan.burst)
            .bind(plan.quota_limit)
            .bind(&plan.quota_period)
            .bind(&plan.description)
            .bind(plan.created_at)
            .fetch_one(p)
            .await)
        .map_err(|e| map_unique(e, || format!("a plan named `{}` already exists", plan.name)))
    }

    /// Replaces a plan's limits; None if there is no such plan.
    pub async fn update_plan(&self, plan: &PlanRecord) -> Result<Option<PlanRecord>, StoreError> {
        let sql = concat!(
            "UPDATE plans SET rate = $2, burst = $3, quota_limit = $4, quota_period = $5, description = $6 \
             WHERE name = $1 RETURNING ",
            plan_columns!()
        );
        Ok(on_pool!(self, p => sqlx::query_as::<_, PlanRecord>(sql)
            .bind(&plan.name)
            .bind(plan.rate)
            .bind(plan.burst)
            .bind(plan.quota_limit)
            .bind(&plan.quota_period)
            .bind(&plan.description)
            .fetch_optional(p)
            .await)?)
    }

    /// A plan by name (request path, as [`Store::key`]).
    pub async fn plan(&self, name: &str) -> Result<Option<PlanRecord>, StoreError> {
        let sql = concat!("SELECT ", plan_columns!(), " FROM plans WHERE name = $1");
        self.health
            .step(async {
                on_pool!(self, p => sqlx::query_as::<_, PlanRecord>(sql).bind(name).fetch_optional(p).await)
            })
            .await
    }

    pub async fn plans(&self) -> Result<Vec<PlanRecord>, StoreError> {
        let sql = concat!("SELECT ", plan_columns!(), " FROM plans ORDER BY name");
        Ok(on_pool!(self, p => sqlx::query_as::<_, PlanRecord>(sql).fetch_all(p).await)?)
    }

    pub async fn delete_plan(&self, name: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query("DELETE FROM plans WHERE name = $1")
            .bind(name).execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    // ---- usage ----

    /// Takes a block of up to `block` requests of `key_id`'s quota period
    /// starting at `period_start`, never past `limit`: returns how many were
    /// granted, 0 when the quota is spent. One atomic statement, so
    /// concurrent callers on any node never take more than `limit` in all.
    /// Request path, as [`Store::key`]: a block granted by a statement
    /// whose answer timed out stays counted as used (never admitted twice).
    pub async fn lease_quota(
        &self,
        key_id: &str,
        period_start: i64,
        limit: u64,
        block: u64,
    ) -> Result<u64, StoreError> {
        // Every SET expression reads the row as it was, so `last_grant` and
        // `used` agree on the grant.
        const SQL: &str = "INSERT INTO quota_usage (key_id, period_start, used, last_grant) \
             VALUES ($1, $2, CASE WHEN $4 < $3 THEN $4 ELSE $3 END, CASE WHEN $4 < $3 THEN $4 ELSE $3 END) \
             ON CONFLICT (key_id, period_start) DO UPDATE SET \
             last_grant = CASE WHEN $3 - quota_usage.used < $4 THEN $3 - quota_usage.used ELSE $4 END, \
             used = CASE WHEN $3 - quota_usage.used < $4 THEN $3 ELSE quota_usage.used + $4 END \
             WHERE quota_usage.used < $3 RETURNING last_grant";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let block = i64::try_from(block.max(1)).unwrap_or(i64::MAX);
        let row: Option<(i64,)> = self
            .health
            .step(async {
                on_pool!(self, p => sqlx::query_as(SQL)
                    .bind(key_id).bind(period_start).bind(limit).bind(block).fetch_optional(p).await)
            })
            .await?;
        Ok(row.map_or(0, |(n,)| n.max(0) as u64))
    }

    /// Gives back `unspent` requests of a block taken by [`Store::lease_quota`]
    /// (a node shutting down with part of its block unused).
    pub async fn return_quota(
        &self,
        key_id: &str,
        period_start: i64,
        unspent: u64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE quota_usage SET used = CASE WHEN used > $3 THEN used - $3 ELSE 0 END \
             WHERE key_id = $1 AND period_start = $2";
        let unspent = i64::try_from(unspent).unwrap_or(i64::MAX);
        on_pool!(self, p => sqlx::query(SQL)
            .bind(key_id).bind(period_start).bind(unspent).execute(p).await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Requests counted in a quota period so far.
    pub async fn quota_used(&self, key_id: &str, period_start: i64) -> Result<u64, StoreError> {
        let row: Option<(i64,)> = on_pool!(self, p => sqlx::query_as(
            "SELECT used FROM quota_usage WHERE key_id = $1 AND period_start = $2")
            .bind(key_id).bind(period_start).fetch_optional(p).await)?;
        Ok(row.map_or(0, |(n,)| n.max(0) as u64))
    }

    /// Adds request counts to keys' daily usage (`day` is `YYYY-MM-DD`,
    /// UTC), all or none: one transaction, so a failed batch can be retried
    /// whole without counting anything twice.
    pub async fn add_daily_usage(
        &self,
        counts: &[(String, String, u64)],
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO daily_usage (key_id, day, requests) VALUES ($1, $2, $3) \
             ON CONFLICT (key_id, day) DO UPDATE SET requests = daily_usage.requests + excluded.requests";
        on_pool!(self, p => {
            let mut tx = p.begin().await?;
            for (key_id, day, n) in counts {
                let n = i64::try_from(*n).unwrap_or(i64::MAX);
                sqlx::query(SQL).bind(key_id).bind(day).bind(n).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// A key's daily request counts from `since_day` on, oldest first.
    pub async fn daily_usage(
        &self,
        key_id: &str,
        since_day: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT day, requests FROM daily_usage WHERE key_id = $1 AND day >= $2 ORDER BY day")
            .bind(key_id).bind(since_day).fetch_all(p).await)?;
        Ok(rows
            .into_iter()
            .map(|(d, n)| (d, n.max(0) as u64))
            .collect())
    }
}

/// Now, in Unix seconds.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::Sqlite {
            path: dir.path().join("t.db"),
        })
        .await
        .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn keys_round_trip_and_names_are_unique() {
        let (_d, s) = temp_store().await;
        let k = NewKey {
            id: "abc",
            name: "acme",
            key_hash: "h",
            plan: Some("gold"),
            expires_at: None,
            now: 10,
        };
        let rec = s.create_key(&k).await.unwrap();
        assert!(rec.enabled);
        assert_eq!(s.key("abc").await.unwrap(), Some(rec));
        let dup = NewKey { id: "def", ..k };
        assert!(matches!(
            s.create_key(&dup).await,
            Err(StoreError::Conflict(_))
        ));
        let off = s.set_key_enabled("abc", false, 11).await.unwrap().unwrap();
        assert!(!off.enabled);
        assert!(s.delete_key("abc").await.unwrap());
        assert!(s.key("abc").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn quota_blocks_stop_at_the_limit_and_come_back() {
        let (_d, s) = temp_store().await;
        assert_eq!(s.lease_quota("k", 0, 10, 4).await.unwrap(), 4);
        assert_eq!(s.lease_quota("k", 0, 10, 4).await.unwrap(), 4);
        // Only what is left of the limit.
        assert_eq!(s.lease_quota("k", 0, 10, 4).await.unwrap(), 2);
        assert_eq!(s.lease_quota("k", 0, 10, 4).await.unwrap(), 0);
        assert_eq!(s.quota_used("k", 0).await.unwrap(), 10);
        // Unspent requests given back can be taken again.
        s.return_quota("k", 0, 3).await.unwrap();
        assert_eq!(s.quota_used("k", 0).await.unwrap(), 7);
        assert_eq!(s.lease_quota("k", 0, 10, 1).await.unwrap(), 1);
        // A block larger than the limit takes the limit.
        assert_eq!(s.lease_quota("k", 100, 3, 1000).await.unwrap(), 3);
        // A new period starts from zero.
        assert_eq!(s.lease_quota("k", 200, 3, 1).await.unwrap(), 1);
    }

    #[test]
    fn an_unreachable_store_fails_at_once_then_one_request_tries_again() {
        // A clock a minute old, so that an instant before "now" exists.
        let h = Health {
            epoch: Instant::now() - Duration::from_secs(60),
            ..Health::new()
        };
        assert!(h.admit().is_ok());
        h.down("connection refused");
        assert!(
            matches!(h.admit(), Err(StoreError::Unreachable(why)) if why == "connection refused")
        );
        // Once the pause is over, one request tries; the others still fail
        // at once while it does.
        h.down_until_ms.store(1, Ordering::Relaxed);
        assert!(h.admit().is_ok());
        assert!(h.admit().is_err());
        // It got an answer: everyone may try again.
        h.up();
        assert!(h.admit().is_ok());
        assert!(h.admit().is_ok());
    }

    #[tokio::test]
    async fn a_query_that_times_out_or_cannot_connect_marks_the_store_down() {
        let h = Health::new();
        let refused = h
            .step(async {
                Err::<(), _>(sqlx::Error::Io(std::io::Error::from(
                    std::io::ErrorKind::ConnectionRefused,
                )))
            })
            .await;
        assert!(
            matches!(refused, Err(ref e) if e.is_unreachable()),
            "{refused:?}"
        );
        // Meanwhile nothing is tried: the query below is never polled.
        let meanwhile = h
            .step(async { unreachable!("the store is not asked") })
            .await;
        assert!(matches!(
            meanwhile,
            Err::<(), _>(StoreError::Unreachable(_))
        ));
        // A query the server refused is not an outage.
        h.up();
        let bad = h
            .step(async { Err::<(), _>(sqlx::Error::RowNotFound) })
            .await;
        assert!(matches!(bad, Err(ref e) if !e.is_unreachable()), "{bad:?}");
        assert!(h.admit().is_ok());
    }

    #[tokio::test]
    async fn daily_usage_adds_up() {
        let (_d, s) = temp_store().await;
        s.add_daily_usage(&[("k".into(), "2026-01-02".into(), 3)])
            .await
            .unwrap();
        s.add_daily_usage(&[("k".into(), "2026-01-02".into(), 2)])
            .await
            .unwrap();
        assert_eq!(
            s.daily_usage("k", "2026-01-01").await.unwrap(),
            vec![("2026-01-02".to_string(), 5)]
        );
    }
}
