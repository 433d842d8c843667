//! The optional shared tier of the response cache, in Redis (`[cache]
//! shared = true` with `[cluster] redis_url`): every node stores what it
//! caches there and looks there before calling a backend, so a response
//! cached by one node is a hit on all of them. The local `moka` cache stays
//! in front (and keeps coalescing per node). Redis trouble never fails a
//! request: a slow or broken Redis is a miss. After a failure the shared
//! tier is skipped for a second (no request waits for a dead Redis), the
//! outage is logged at most every 30 s, and its end once.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use base64::Engine;
use bytes::Bytes;
use redis::aio::ConnectionManager;
use serde_json::{Value, json};

use super::store::StoredResponse;

/// How long one Redis round trip may take before it counts as a miss.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// How long the shared tier is skipped after a Redis failure.
const BACKOFF: Duration = Duration::from_secs(1);
/// At most one "unreachable" log line per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(30);

pub struct SharedCache {
    conn: ConnectionManager,
    /// `lambdagate:cache:{api id}:{stage}:`
    prefix: String,
    health: Health,
}

/// Whether Redis answered the shared tier lately.
struct Health {
    epoch: Instant,
    /// Milliseconds since `epoch` before which Redis is not asked (0: up).
    down_until_ms: AtomicI64,
    last_log_ms: AtomicI64,
}

impl Health {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            down_until_ms: AtomicI64::new(0),
            last_log_ms: AtomicI64::new(-(LOG_INTERVAL.as_millis() as i64)),
        }
    }

    fn now_ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }

    /// Whether Redis may be asked now.
    fn available(&self) -> bool {
        let until = self.down_until_ms.load(Ordering::Relaxed);
        until == 0 || self.now_ms() >= until
    }

    fn answered(&self) {
        if self.down_until_ms.swap(0, Ordering::Relaxed) != 0 {
            tracing::warn!(
                target: "lambdagate::cache",
                "shared cache reachable again"
            );
        }
    }

    fn failed(&self, why: &str) {
        let now = self.now_ms();
        self.down_until_ms
            .store((now + BACKOFF.as_millis() as i64).max(1), Ordering::Relaxed);
        let last = self.last_log_ms.load(Ordering::Relaxed);
        if now - last >= LOG_INTERVAL.as_millis() as i64
            && self
                .last_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(
                target: "lambdagate::cache",
                error = why,
                "shared cache unreachable: each node serves from its own cache until Redis is back"
            );
        }
    }
}

impl SharedCache {
    pub async fn connect(url: &str, api_id: &str, stage: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis url `{url}`: {e}"))?;
        let conn = tokio::time::timeout(Duration::from_secs(5), client.get_connection_manager())
            .await
            .map_err(|_| format!("redis at `{url}` did not answer within 5s"))?
            .map_err(|e| format!("redis at `{url}`: {e}"))?;
        Ok(Self {
            conn,
            prefix: format!("lambdagate:cache:{api_id}:{stage}:"),
            health: Health::new(),
        })
    }

    fn key(&self, key: &str) -> String {
        use sha2::Digest;
        format!(
            "{}{}",
            self.prefix,
            hex::encode(sha2::Sha256::digest(key.as_bytes()))
        )
    }

    /// A stored response and how long it has left to live.
    pub async fn get(&self, key: &str) -> Option<(StoredResponse, Duration)> {
        if !self.health.available() {
            return None;
        }
        let k = self.key(key);
        let mut conn = self.conn.clone();
        let reply = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::pipe()
                .cmd("GET")
                .arg(&k)
                .cmd("PTTL")
                .arg(&k)
                .query_async::<(Option<Vec<u8>>, i64)>(&mut conn),
        )
        .await;
        match reply {
            Ok(Ok((Some(bytes), ttl_ms))) if ttl_ms > 0 => {
                self.health.answered();
                decode(&bytes).map(|r| (r, Duration::from_millis(ttl_ms as u64)))
            }
            Ok(Ok(_)) => {
                self.health.answered();
                None
            }
            Ok(Err(e)) => {
                self.health.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.health.failed("timed out");
                None
            }
        }
    }

    /// Stores a response for `ttl` (best effort).
    pub async fn put(&self, key: &str, r: &StoredResponse, ttl: Duration) {
        if !self.health.available() {
            return;
        }
        let k = self.key(key);
        let mut conn = self.conn.clone();
        let ms = ttl.as_millis().max(1) as u64;
        let done = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("SET")
                .arg(&k)
                .arg(encode(r))
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut conn),
        )
        .await;
        match done {
            Ok(Ok(())) => self.health.answered(),
            Ok(Err(e)) => self.health.failed(&e.to_string()),
            Err(_) => self.health.failed("timed out"),
        }
    }

    /// Drops an entry (best effort).
    pub async fn delete(&self, key: &str) {
        if !self.health.available() {
            return;
        }
        let k = self.key(key);
        let mut conn = self.conn.clone();
        let _ = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("DEL").arg(&k).query_async::<()>(&mut conn),
        )
        .await;
    }
}

fn encode(r: &StoredResponse) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let headers: Vec<Value> = r
        .headers
        .iter()
        .filter(|(k, _)| *k != super::store::X_CACHE)
        .map(|(k, v)| json!([k.as_str(), b64.encode(v.as_bytes())]))
        .collect();
    json!({
        "status": r.status.as_u16(),
        "headers": headers,
        "body": b64.encode(&r.body),
    })
    .to_string()
    .into_bytes()
}

fn decode(bytes: &[u8]) -> Option<StoredResponse> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let status = StatusCode::from_u16(u16::try_from(v["status"].as_u64()?).ok()?).ok()?;
    let mut headers = HeaderMap::new();
    for h in v["headers"].as_array()? {
        let name = HeaderName::from_bytes(h[0].as_str()?.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(&b64.decode(h[1].as_str()?).ok()?).ok()?;
        headers.append(name, value);
    }
    let body = Bytes::from(b64.decode(v["body"].as_str()?).ok()?);
    Some(StoredResponse::new(status, headers, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_failure_redis_is_skipped_for_a_while_then_asked_again() {
        // A clock a minute old, so that an instant before "now" exists.
        let h = Health {
            epoch: Instant::now() - Duration::from_secs(60),
            ..Health::new()
        };
        assert!(h.available());
        h.failed("connection refused");
        assert!(!h.available(), "skipped right after a failure");
        // The pause is over: asked again; an answer ends the outage.
        h.down_until_ms.store(1, Ordering::Relaxed);
        assert!(h.available());
        h.answered();
        assert_eq!(h.down_until_ms.load(Ordering::Relaxed), 0);
        assert!(h.available());
    }

    #[test]
    fn round_trip() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("image/png"));
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        let r = StoredResponse::new(
            StatusCode::CREATED,
            headers,
            Bytes::from_static(&[0, 159, 146, 150]),
        );
        let back = decode(&encode(&r)).unwrap();
        assert_eq!(back.status, r.status);
        assert_eq!(back.headers, r.headers);
        assert_eq!(back.body, r.body);
    }
}
