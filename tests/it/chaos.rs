//! Chaos: the gateway under load while what it depends on fails. Each test
//! starts its own PostgreSQL and Redis ([`crate::common::services`]) and
//! real `lambdagate` processes, then kills, stops and restarts them; what
//! each scenario must show is what docs/routes.md ("Operations") promises
//! an operator: which answers clients get, and that the gateway recovers by
//! itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::services::{Postgres, Redis};
use crate::common::{GatewayProcess, spawn_binary};

const TOKEN: &str = "chaos-admin-token-51c2";

/// The integration timeout of an HTTP-flavor route: no answer may take
/// longer, whatever fails behind the gateway.
const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A client that gives up after the integration timeout, so a hang fails
/// the test instead of stalling it.
fn bounded_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(INTEGRATION_TIMEOUT)
        .build()
        .expect("client")
}

/// Writes `body` as `file` in `dir`, with the admin listener every node
/// here has.
fn node_config(dir: &Path, file: &str, body: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            r#"
[admin]
listen = "127.0.0.1:0"

{body}
"#
        ),
    )
    .unwrap();
    path
}

async fn node(config: &Path) -> GatewayProcess {
    spawn_binary(
        config,
        &["--no-watch"],
        &HashMap::from([
            ("RUST_LOG".into(), "warn".into()),
            (lambdagate::admin::DEFAULT_TOKEN_ENV.into(), TOKEN.into()),
        ]),
    )
    .await
}

/// One admin API call: (status, JSON body or null).
async fn admin(node: &GatewayProcess, method: &str, path: &str, body: Option<Value>) -> Value {
    let url = node.admin_url(path);
    let c = bounded_client();
    let mut req = match method {
        "GET" => c.get(&url),
        "POST" => c.post(&url),
        other => panic!("method {other}"),
    }
    .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {v}");
    v
}

/// Issues a key on `plan`: (id, key).
async fn create_key(node: &GatewayProcess, plan: &str) -> (String, String) {
    let v = admin(
        node,
        "POST",
        "/keys",
        Some(json!({"name": format!("chaos-{plan}"), "plan": plan})),
    )
    .await;
    (
        v["id"].as_str().unwrap().to_string(),
        v["key"].as_str().unwrap().to_string(),
    )
}

/// What one request got: when it was sent (since the load started), its
/// status and body.
#[derive(Debug, Clone)]
struct Answer {
    at: Duration,
    /// Which of the load's URLs it went to.
    target: usize,
    /// How long the answer took.
    took: Duration,
    status: u16,
    body: String,
}

/// How long each load client pauses between requests: enough traffic to
/// see every phase of a scenario, without starving the tests that run
/// beside it of CPU.
const PACE: Duration = Duration::from_millis(5);

/// Keyed GETs sent by `clients` tasks (each pausing [`PACE`] between
/// requests), each to its URLs in turn, until stopped; every answer is
/// recorded. A request that gets no answer within the integration timeout
/// fails the test.
struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(urls: Vec<String>, key: &str, clients: usize) -> Self {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let c = bounded_client();
        let tasks = (0..clients)
            .map(|i| {
                let (urls, key, c) = (urls.clone(), key.to_string(), c.clone());
                let (stop, answers) = (stop.clone(), answers.clone());
                tokio::spawn(async move {
                    let mut n = i;
                    while !stop.load(Ordering::Relaxed) {
                        let target = n % urls.len();
                        let url = &urls[target];
                        n += 1;
                        let at = started.elapsed();
                        let res = match c.get(url).header("x-api-key", &key).send().await {
                            Ok(r) => r,
                            Err(e) if e.is_timeout() => {
                                panic!("{url}: no answer within the integration timeout")
                            }
                            // A node being killed drops its connections, and
                            // a dead one refuses them.
                            Err(_) => {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            }
                        };
                        let status = res.status().as_u16();
                        let body = res.text().await.unwrap_or_default();
                        let took = started.elapsed() - at;
                        answers.lock().unwrap().push(Answer {
                            at,
                            target,
                            took,
                            status,
                            body,
                        });
                        tokio::time::sleep(PACE).await;
                    }
                })
            })
            .collect();
        Self {
            started,
            stop,
            answers,
            tasks,
        }
    }

    /// Answers so far.
    fn answers(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }

    /// Time since the load started.
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until at least `n` more answers than now have arrived
    /// (bounded), so each phase of a test sees traffic.
    async fn wait_for_more(&self, n: usize) {
        let have = self.answers.lock().unwrap().len();
        let deadline = Instant::now() + INTEGRATION_TIMEOUT;
        while self.answers.lock().unwrap().len() < have + n {
            assert!(Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `target` gave `n` answers after `since` (failures
    /// elsewhere, quick as they are, do not count).
    async fn wait_for_from(&self, target: usize, since: Duration, n: usize) {
        let deadline = Instant::now() + INTEGRATION_TIMEOUT;
        loop {
            let got = self
                .answers
                .lock()
                .unwrap()
                .iter()
                .filter(|a| a.target == target && a.at > since)
                .count();
            if got >= n {
                return;
            }
            assert!(Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the clients; all answers.
    async fn finish(mut self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        for t in std::mem::take(&mut self.tasks) {
            t.await.expect("a load task failed");
        }
        self.answers()
    }
}

/// Counts answers by status, and the slowest answer (for the test's log).
fn summary(answers: &[Answer]) -> String {
    let mut m = std::collections::BTreeMap::<u16, usize>::new();
    for a in answers {
        *m.entry(a.status).or_default() += 1;
    }
    let slowest = answers.iter().map(|a| a.took).max().unwrap_or_default();
    format!("{m:?}, slowest {slowest:?}")
}

/// Waits (bounded) until some captured stderr line contains `text`.
async fn wait_for_log(node: &GatewayProcess, text: &str) {
    let deadline = Instant::now() + INTEGRATION_TIMEOUT;
    loop {
        if node
            .stderr_lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(text))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {text:?}; got:\n{}",
            node.stderr_lines.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends keyed GETs one at a time (bounded) until one answers `want`.
async fn wait_for_status(url: &str, key: &str, want: u16) {
    let c = bounded_client();
    let deadline = Instant::now() + INTEGRATION_TIMEOUT;
    loop {
        let res = c.get(url).header("x-api-key", key).send().await.unwrap();
        if res.status().as_u16() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} never answered {want}; last {}",
            res.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- PostgreSQL stopped and started again under load ----

/// PostgreSQL goes away under load: a node keeps serving the keys it has
/// cached until their `cache_ttl` runs out, then answers `503` at once (no
/// request waits for the dead store past the integration timeout), as it
/// does for a quota step that needs the store; when PostgreSQL is back the
/// node reconnects by itself and serves `200` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_load_serves_from_the_key_cache_then_503_then_recovers() {
    let mut pg = Postgres::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(
        dir.path(),
        "routes.toml",
        &format!(
            r#"
[store]
kind = "postgres"
url = "{url}"

[api_keys]
cache_ttl = "2s"

[plans.gold]
throttle = {{ rate = 10000, burst = 10000 }}

# A quota of 100 or less is counted request by request: each request
# takes its block from the store.
[plans.small]
quota = {{ limit = 100, period = "day" }}

[[routes]]
method = "GET"
path = "/items"
api_key = true
mock = {{ status = 200, body = "ok" }}
"#,
            url = pg.url()
        ),
    );
    let gw = node(&config).await;
    let (_, key) = create_key(&gw, "gold").await;
    let (_, counted) = create_key(&gw, "small").await;
    let url = gw.url("/items");
    wait_for_status(&url, &key, 200).await;

    let load = Load::start(vec![url.clone()], &key, 4);
    load.wait_for_more(20).await;
    // The counted key is in the cache; its quota is not.
    wait_for_status(&url, &counted, 200).await;
    let stopped_at = load.now();
    pg.stop().await;
    let res = bounded_client()
        .get(&url)
        .header("x-api-key", &counted)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503, "a quota step without the store");
    assert_eq!(
        res.headers()["x-amzn-errortype"],
        "ServiceUnavailableException"
    );
    // The cache entry read last before the stop lives on for its TTL, then
    // every request needs the store: 503s.
    let deadline = Instant::now() + INTEGRATION_TIMEOUT;
    while !load.answers().iter().any(|a| a.status == 503) {
        assert!(Instant::now() < deadline, "no 503 while the store is down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    load.wait_for_more(20).await;
    wait_for_log(&gw, "store unreachable").await;
    let restarted_at = load.now();
    pg.start_again().await;
    // Back without a restart of the gateway.
    let deadline = Instant::now() + INTEGRATION_TIMEOUT;
    while !load
        .answers()
        .iter()
        .any(|a| a.at > restarted_at && a.status == 200)
    {
        assert!(
            Instant::now() < deadline,
            "no 200 after PostgreSQL came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    load.wait_for_more(20).await;
    wait_for_status(&url, &counted, 200).await;
    let answers = load.finish().await;
    eprintln!(
        "postgres restart: {} (stopped at {stopped_at:?}, back at {restarted_at:?})",
        summary(&answers)
    );
    for a in &answers {
        match a.status {
            200 => assert_eq!(a.body, "ok"),
            503 => {
                assert!(a.at >= stopped_at, "503 before the store stopped: {a:?}");
                assert_eq!(a.body, r#"{"message":"Service Unavailable"}"#);
            }
            _ => panic!("unexpected answer {a:?}"),
        }
    }
    // Served from the cache after the stop, before the first 503.
    let first_503 = answers
        .iter()
        .filter(|a| a.status == 503)
        .map(|a| a.at)
        .min()
        .unwrap();
    assert!(
        answers
            .iter()
            .any(|a| a.status == 200 && a.at > stopped_at && a.at < first_503),
        "no request was served from the key cache while the store was down"
    );
    let last = answers.iter().map(|a| a.at).max().unwrap();
    assert!(
        answers
            .iter()
            .filter(|a| a.at == last)
            .all(|a| a.status == 200),
        "the load did not end on 200s"
    );
}

// ---- one of two nodes killed under load ----

/// Requests `key` admitted by its quota so far, as `node`'s admin API
/// reports it.
async fn quota_used(node: &GatewayProcess, key_id: &str) -> i64 {
    let usage = admin(node, "GET", &format!("/keys/{key_id}/usage"), None).await;
    usage["quota"]["used"]
        .as_i64()
        .unwrap_or_else(|| panic!("no quota in {usage}"))
}

/// Two nodes share a quota in PostgreSQL (and throttle state in Redis);
/// one is killed with SIGKILL under load. The other keeps answering; the
/// killed one, restarted with the same config, serves again; and however
/// the quota is then spent, the nodes together never admit more than its
/// limit, and lose at most what the killed node held (`1¼ × block`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_at_most_its_quota_block_and_rejoins() {
    // Blocks of limit / 100 = 20 requests; a node holds at most 1¼ blocks.
    const LIMIT: i64 = 2000;
    const HELD: i64 = 25;
    const CLIENTS: i64 = 6;
    let pg = Postgres::start().await;
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        r#"
[store]
kind = "postgres"
url = "{pg}"

[cluster]
redis_url = "{redis}"

[plans.metered]
throttle = {{ rate = 100000, burst = 100000 }}
quota = {{ limit = {LIMIT}, period = "day" }}

[[routes]]
method = "GET"
path = "/items"
api_key = true
mock = {{ status = 200, body = "ok" }}
"#,
        pg = pg.url(),
        redis = redis.url()
    );
    let config_a = node_config(dir.path(), "a.toml", &body);
    let config_b = node_config(dir.path(), "b.toml", &body);
    let a = node(&config_a).await;
    let mut b = node(&config_b).await;
    let (id, key) = create_key(&a, "metered").await;

    // Both nodes under load; B is killed in the middle of it.
    let load = Load::start(
        vec![a.url("/items"), b.url("/items")],
        &key,
        CLIENTS as usize,
    );
    load.wait_for_more(300).await;
    let killed_at = load.now();
    b.child.kill().await.unwrap();
    load.wait_for_from(0, killed_at, 300).await;
    let before = load.finish().await;
    eprintln!("before B's restart: {}", summary(&before));
    let from_a_after_kill: Vec<&Answer> = before
        .iter()
        .filter(|a| a.target == 0 && a.at > killed_at)
        .collect();
    assert!(from_a_after_kill.len() >= 300);
    for ans in before.iter().filter(|a| a.target == 0) {
        assert_eq!((ans.status, ans.body.as_str()), (200, "ok"), "{ans:?}");
    }

    // B again, same config (new ports): it serves, and the two spend the
    // rest of the quota.
    let b = node(&config_b).await;
    wait_for_status(&b.url("/items"), &key, 200).await;
    let load = Load::start(
        vec![a.url("/items"), b.url("/items")],
        &key,
        CLIENTS as usize,
    );
    let deadline = Instant::now() + INTEGRATION_TIMEOUT;
    loop {
        let answers = load.answers();
        let spent_on = |n: usize| {
            answers
                .iter()
                .any(|a| a.target == n && a.body == r#"{"message":"Limit Exceeded"}"#)
        };
        if spent_on(0) && spent_on(1) {
            break;
        }
        assert!(Instant::now() < deadline, "the quota was never spent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = load.finish().await;
    eprintln!("after B's restart: {}", summary(&after));
    assert!(
        after.iter().any(|a| a.target == 1 && a.status == 200),
        "the restarted node admitted nothing"
    );
    for ans in &after {
        match ans.status {
            200 => assert_eq!(ans.body, "ok"),
            429 => assert_eq!(ans.body, r#"{"message":"Limit Exceeded"}"#),
            _ => panic!("unexpected answer {ans:?}"),
        }
    }

    // Never over the limit; short of it by at most what B held when killed
    // and the requests it admitted but never answered (one per client at
    // most); both live nodes spent their blocks before answering
    // Limit Exceeded. The request that showed the restarted B serving
    // counts too.
    let admitted = before
        .iter()
        .chain(&after)
        .filter(|a| a.status == 200)
        .count() as i64
        + 1;
    eprintln!("admitted {admitted} of a quota of {LIMIT}");
    assert!(
        (LIMIT - HELD - CLIENTS..=LIMIT).contains(&admitted),
        "admitted {admitted} of {LIMIT}"
    );
    // The store counted the whole quota: what was admitted plus what B lost.
    assert_eq!(quota_used(&a, &id).await, LIMIT);
    assert_eq!(quota_used(&b, &id).await, LIMIT);
}

// ---- Redis stopped and started again ----

/// `n` GETs sent one at a time to `urls` in turn: the statuses.
async fn statuses(urls: &[String], n: usize) -> Vec<u16> {
    let c = bounded_client();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let res = c.get(&urls[i % urls.len()]).send().await.unwrap();
        out.push(res.status().as_u16());
    }
    out
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// Redis stops and comes back. With `fail_closed = false` two nodes sharing
/// a route throttle fall back to their own local limits (each admits its
/// own burst) and go back to the shared bucket in Redis by themselves when
/// it returns; a node with `fail_closed = true` answers `503` meanwhile
/// and `200` again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_falls_back_to_local_limits_or_503_and_comes_back_by_itself() {
    let mut redis = Redis::start().await;
    let dir = tempfile::tempdir().unwrap();
    // One cell per 100 s: within the test a bucket only empties.
    let open = |prefix: &str| {
        format!(
            r#"
[cluster]
redis_url = "{url}"
key_prefix = "{prefix}"

[[routes]]
method = "GET"
path = "/t"
throttle = {{ rate = 0.01, burst = 4 }}
mock = {{ status = 200, body = "ok" }}
"#,
            url = redis.url()
        )
    };
    let closed = format!(
        r#"
[cluster]
redis_url = "{url}"
key_prefix = "closed"
fail_closed = true

[[routes]]
method = "GET"
path = "/t"
throttle = {{ rate = 1000, burst = 1000 }}
mock = {{ status = 200, body = "ok" }}
"#,
        url = redis.url()
    );
    let a = node(&node_config(dir.path(), "a.toml", &open("shared"))).await;
    let b = node(&node_config(dir.path(), "b.toml", &open("shared"))).await;
    let c = node(&node_config(dir.path(), "c.toml", &closed)).await;
    let both = [a.url("/t"), b.url("/t")];

    // Redis up: the two nodes share one bucket of 4.
    let up = statuses(&both, 10).await;
    assert_eq!((count(&up, 200), count(&up, 429)), (4, 6), "{up:?}");
    assert_eq!(statuses(&[c.url("/t")], 3).await, [200, 200, 200]);

    redis.stop().await;
    // Each open node on its own limits: its own bucket of 4.
    let down = statuses(&both, 10).await;
    assert_eq!((count(&down, 200), count(&down, 429)), (8, 2), "{down:?}");
    for n in [&a, &b] {
        wait_for_log(n, "Redis unreachable: throttling with local limits").await;
    }
    // The fail-closed node refuses.
    let res = bounded_client().get(c.url("/t")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"message":"Service Unavailable"}"#
    );

    redis.start_again().await;
    // Each node goes back to Redis on its own (within a second of its last
    // failure); the fail-closed one answers 200 again.
    wait_for_status(&c.url("/t"), "", 200).await;
    for n in [&a, &b] {
        let deadline = Instant::now() + INTEGRATION_TIMEOUT;
        while !n
            .stderr_lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("Redis reachable again; cluster throttling resumed"))
        {
            assert!(Instant::now() < deadline, "a node never went back to Redis");
            let _ = bounded_client().get(n.url("/t")).send().await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The shared bucket is in the new Redis again. Reset it to full: the two
    // nodes together admit 4 again (on their spent local buckets they would
    // admit none).
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("shared:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        !keys.is_empty(),
        "no throttle state in Redis after it came back"
    );
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
    let back = statuses(&both, 10).await;
    assert_eq!((count(&back, 200), count(&back, 429)), (4, 6), "{back:?}");
}

// ---- local functions that hang or crash at start-up ----

/// A provided.al2-style bootstrap: `/hang` never answers (it waits on a
/// child of its own); anything else answers 200. It logs each start and
/// each hang (its pid and the child's) in `events`.
const BOOTSTRAP: &str = r#"#!/bin/bash
set -u
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
echo "start $$" >> "$PWD/events"
while true; do
    HEADERS="$(mktemp)"
    EVENT="$(curl -sS -D "$HEADERS" "$API/invocation/next")" || exit 1
    ID="$(grep -i '^lambda-runtime-aws-request-id:' "$HEADERS" | cut -d: -f2 | tr -d '[:space:]')"
    rm -f "$HEADERS"
    case "$EVENT" in
        *'"rawPath":"/hang"'*)
            sleep 300 &
            echo "hang $$ $!" >> "$PWD/events"
            wait ;;
        *)
            curl -sS -X POST "$API/invocation/$ID/response" -d '{"statusCode":200,"body":"ok"}' > /dev/null ;;
    esac
done
"#;

/// Lines of the bootstrap's `events` file that start with `what`, as pids.
fn events(dir: &Path, what: &str) -> Vec<Vec<u32>> {
    std::fs::read_to_string(dir.join("events"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(what))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .collect()
}

/// Whether a process is gone (or a zombie waiting to be reaped).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// A function that hangs, under load: each hanging invocation is killed
/// (with the child it waits on) at the function's timeout and answered
/// `504`, while the other requests keep getting `200` from fresh
/// processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_function_is_killed_at_its_timeout_and_replaced_under_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bootstrap"), BOOTSTRAP).unwrap();
    let config = node_config(
        dir.path(),
        "routes.toml",
        r#"
[backends.local]
kind = "local"

[functions.f]
command = ["bash", "bootstrap"]
timeout = "1s"
concurrency = 2

[[routes]]
method = "GET"
path = "/hang"
function = "f"

[[routes]]
method = "GET"
path = "/ok"
function = "f"
"#,
    );
    let gw = node(&config).await;
    let load = Load::start(vec![gw.url("/ok")], "", 2);
    load.wait_for_more(20).await;
    let c = bounded_client();
    for _ in 0..3 {
        let res = c.get(gw.url("/hang")).send().await.unwrap();
        assert_eq!(res.status(), 504);
        assert_eq!(
            res.text().await.unwrap(),
            r#"{"message":"Endpoint request timed out"}"#
        );
        load.wait_for_more(10).await;
    }
    let answers = load.finish().await;
    eprintln!("while three invocations hung: {}", summary(&answers));
    for a in &answers {
        assert_eq!((a.status, a.body.as_str()), (200, "ok"), "{a:?}");
    }
    // Each hung process and the child it waited on are gone, and each was
    // replaced by a new process.
    let hung = events(dir.path(), "hang ");
    assert_eq!(hung.len(), 3, "{hung:?}");
    let deadline = Instant::now() + INTEGRATION_TIMEOUT;
    while !hung.iter().flatten().all(|p| is_dead(*p)) {
        assert!(
            Instant::now() < deadline,
            "hung processes still alive: {hung:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let starts = events(dir.path(), "start ").len();
    assert!(starts >= 4, "{starts} processes started for 3 hangs");
    wait_for_log(&gw, "function timed out; killing its process").await;
}

/// A function that exits at start-up, hammered by four clients for two
/// seconds: every request is answered `502` at once, and the function is
/// started a handful of times (backed off: 250 ms, then doubled), not once
/// per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_crashing_at_start_up_is_backed_off_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(
        dir.path(),
        "routes.toml",
        r#"
[backends.local]
kind = "local"

[functions.dies]
command = ["bash", "-c", "echo \"start $$\" >> \"$PWD/events\"; exit 3"]

[[routes]]
method = "GET"
path = "/dies"
function = "dies"
"#,
    );
    let gw = node(&config).await;
    let load = Load::start(vec![gw.url("/dies")], "", 4);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        load.wait_for_more(1).await;
    }
    let answers = load.finish().await;
    let starts = events(dir.path(), "start ").len();
    eprintln!(
        "crash loop: {} answers ({}), {starts} starts",
        answers.len(),
        summary(&answers)
    );
    for a in &answers {
        assert_eq!(
            (a.status, a.body.as_str()),
            (502, r#"{"message":"Internal server error"}"#),
            "{a:?}"
        );
    }
    // The first requests start up to `concurrency` (4) processes together
    // before any has failed; then one start at most each time the back-off
    // (250 ms, doubled per failure in a row) lets requests through, and
    // four failures in a row already wait 2 s.
    assert!((1..=12).contains(&starts), "{starts} starts in two seconds");
    assert!(answers.len() > 10 * starts, "{} answers", answers.len());
    wait_for_log(&gw, "function process failed at start-up; backing off").await;
}
