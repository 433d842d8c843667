//! Response cache: hits and misses, coalescing, TTL bounds, what is never
//! cached, invalidation, through the real gateway with a counting upstream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;

use crate::common::{TestServer, client, serve_router, start, start_with};
use lambdagate::GatewayOptions;

#[derive(Clone, Default)]
struct Upstream {
    calls: Arc<AtomicUsize>,
}

/// `/items/{id}` answers after a short delay with a body naming the call;
/// `/big` answers 2 MB; `/fail` answers 500.
async fn upstream() -> (TestServer, Arc<AtomicUsize>) {
    let u = Upstream::default();
    let calls = u.calls.clone();
    let app =
        Router::new()
            .route(
                "/items/{id}",
                get(
                    |State(u): State<Upstream>,
                     Path(id): Path<String>,
                     q: axum::extract::RawQuery| async move {
                        let n = u.calls.fetch_add(1, Ordering::SeqCst) + 1;
                        tokio::time::sleep(Duration::from_millis(150)).await;
                        format!("item {id} q={} call {n}", q.0.unwrap_or_default())
                    },
                ),
            )
            .route(
                "/big",
                get(|State(u): State<Upstream>| async move {
                    u.calls.fetch_add(1, Ordering::SeqCst);
                    vec![b'x'; 2 * 1024 * 1024]
                }),
            )
            .route(
                "/fail",
                get(|State(u): State<Upstream>| async move {
                    u.calls.fetch_add(1, Ordering::SeqCst);
                    (StatusCode::INTERNAL_SERVER_ERROR, "nope")
                }),
            )
            .with_state(u);
    (serve_router(app).await, calls)
}

fn routes(upstream: &TestServer, invalidation: &str) -> String {
    format!(
        r#"
[backends.up]
kind = "http"
url = "{}"

[[routes]]
method = "GET"
path = "/items/{{id}}"
backend = "up"
cache = {{ ttl = "60s", key = ["path.id", "query.lang"], invalidation = "{invalidation}" }}

[[routes]]
method = "GET"
path = "/big"
backend = "up"
cache = {{ ttl = "60s" }}

[[routes]]
method = "GET"
path = "/fail"
backend = "up"
cache = {{ ttl = "60s" }}
"#,
        upstream.url("")
    )
}

#[tokio::test]
async fn second_request_is_a_hit_and_key_parameters_separate_entries() {
    let (up, calls) = upstream().await;
    let gw = start(&routes(&up, "nobody")).await;
    let c = client();
    let first = c.get(gw.url("/items/1?lang=en&x=1")).send().await.unwrap();
    assert_eq!(first.headers()["x-cache"], "Miss");
    let first_body = first.text().await.unwrap();
    assert_eq!(first_body, "item 1 q=lang=en&x=1 call 1");
    // `x` is not part of the key: same entry.
    let second = c.get(gw.url("/items/1?lang=en&x=2")).send().await.unwrap();
    assert_eq!(second.headers()["x-cache"], "Hit");
    assert_eq!(second.text().await.unwrap(), first_body);
    // Another `lang` or another id is another entry.
    let other = c.get(gw.url("/items/1?lang=fr")).send().await.unwrap();
    assert_eq!(other.headers()["x-cache"], "Miss");
    let other = c.get(gw.url("/items/2?lang=en")).send().await.unwrap();
    assert_eq!(other.headers()["x-cache"], "Miss");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let stats = &gw.gateway.state().cache.as_ref().unwrap().stats;
    assert_eq!((stats.hits(), stats.misses()), (1, 3));
}

#[tokio::test]
async fn concurrent_misses_invoke_the_backend_once() {
    let (up, calls) = upstream().await;
    let gw = start(&routes(&up, "nobody")).await;
    let c = client();
    let url = gw.url("/items/7?lang=en");
    let answers = futures::future::join_all((0..20).map(|_| {
        let c = c.clone();
        let url = url.clone();
        async move {
            let r = c.get(url).send().await.unwrap();
            let x = r.headers()["x-cache"].to_str().unwrap().to_string();
            (x, r.text().await.unwrap())
        }
    }))
    .await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "20 concurrent misses, one upstream call"
    );
    assert!(answers.iter().all(|(_, b)| b == "item 7 q=lang=en call 1"));
    assert_eq!(answers.iter().filter(|(x, _)| x == "Miss").count(), 1);
}

#[tokio::test]
async fn failures_and_large_responses_are_not_cached() {
    let (up, calls) = upstream().await;
    let gw = start(&routes(&up, "nobody")).await;
    let c = client();
    for _ in 0..2 {
        let r = c.get(gw.url("/fail")).send().await.unwrap();
        assert_eq!(r.status(), 500);
        assert_eq!(r.headers()["x-cache"], "Miss");
    }
    for _ in 0..2 {
        let r = c.get(gw.url("/big")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-cache"], "Miss");
        assert_eq!(r.bytes().await.unwrap().len(), 2 * 1024 * 1024);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn max_age_zero_refreshes_only_when_the_route_allows_it() {
    let (up, calls) = upstream().await;
    // Not allowed: the header is ignored and the cached answer served.
    let gw = start(&routes(&up, "nobody")).await;
    let c = client();
    c.get(gw.url("/items/1")).send().await.unwrap();
    let r = c
        .get(gw.url("/items/1"))
        .header("cache-control", "max-age=0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-cache"], "Hit");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    gw.stop().await;

    // "authorized" with no authorizer on the route: nobody is authorized.
    let gw = start(&routes(&up, "authorized")).await;
    c.get(gw.url("/items/1")).send().await.unwrap();
    let r = c
        .get(gw.url("/items/1"))
        .header("cache-control", "max-age=0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-cache"], "Hit");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    gw.stop().await;

    // Allowed: the entry is refreshed and the new answer cached.
    let gw = start(&routes(&up, "anyone")).await;
    c.get(gw.url("/items/1")).send().await.unwrap();
    let r = c
        .get(gw.url("/items/1"))
        .header("cache-control", "max-age=0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-cache"], "Miss");
    assert_eq!(r.text().await.unwrap(), "item 1 q= call 4");
    let r = c.get(gw.url("/items/1")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Hit");
    assert_eq!(r.text().await.unwrap(), "item 1 q= call 4");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn cache_config_errors_point_at_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    let src = r#"
[[routes]]
method = "GET"
path = "/items/{id}"
mock = { status = 200 }
cache = { ttl = "2h", key = ["path.nope", "cookie.x"] }
"#;
    let err = lambdagate::config::parse(&path, src)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("routes.toml:6:17: cache `ttl` is at most 3600s"),
        "{err}"
    );
    assert!(
        err.contains("`path.nope`: the route's path has no parameter `{nope}`"),
        "{err}"
    );
    assert!(err.contains("cache key `cookie.x` is not"), "{err}");
}

/// Serves `routes` with a stand-in authorizer in front of the pipeline: a
/// request's `x-test-user` header becomes the caller identity (an API key
/// id) the auth phase would have stored.
async fn start_with_identities(routes: &str) -> (TestServer, tempfile::TempDir) {
    use lambdagate::auth::{ApiKeyIdentity, AuthContext};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(&path, routes).unwrap();
    let config = lambdagate::config::load(&path).unwrap();
    let gateway = lambdagate::Gateway::new(config, Default::default())
        .await
        .unwrap();
    let app = gateway.router().layer(axum::middleware::map_request(
        |mut req: axum::extract::Request| async move {
            if let Some(user) = req
                .headers()
                .get("x-test-user")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
            {
                req.extensions_mut().insert(AuthContext {
                    api_key: Some(ApiKeyIdentity {
                        id: user.as_str().into(),
                        key: format!("key-of-{user}").into(),
                    }),
                    ..Default::default()
                });
            }
            req
        },
    ));
    (serve_router(app).await, dir)
}

#[tokio::test]
async fn per_identity_entries_and_authorized_invalidation() {
    let (up, calls) = upstream().await;
    let routes = format!(
        r#"
[backends.up]
kind = "http"
url = "{}"

[[routes]]
method = "GET"
path = "/items/{{id}}"
backend = "up"
cache = {{ ttl = "60s", key = ["path.id"], per_identity = true, invalidation = "authorized" }}
"#,
        up.url("")
    );
    let (gw, _dir) = start_with_identities(&routes).await;
    let c = client();
    let get = |user: Option<&'static str>, refresh: bool| {
        let mut r = c.get(gw.url("/items/1"));
        if let Some(u) = user {
            r = r.header("x-test-user", u);
        }
        if refresh {
            r = r.header("cache-control", "max-age=0");
        }
        async move {
            let res = r.send().await.unwrap();
            let x = res.headers()["x-cache"].to_str().unwrap().to_string();
            (x, res.text().await.unwrap())
        }
    };
    assert_eq!(get(Some("alice"), false).await.0, "Miss");
    assert_eq!(get(Some("alice"), false).await.0, "Hit");
    // Another caller never gets alice's entry.
    assert_eq!(get(Some("bob"), false).await.0, "Miss");
    assert_eq!(get(None, false).await.0, "Miss");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // An anonymous caller cannot invalidate; an identified one can.
    assert_eq!(get(None, true).await.0, "Hit");
    let (x, body) = get(Some("alice"), true).await;
    assert_eq!((x.as_str(), body.as_str()), ("Miss", "item 1 q= call 4"));
    assert_eq!(get(Some("alice"), false).await.1, "item 1 q= call 4");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn shared_cache_in_redis_serves_every_node() {
    let (up, calls) = upstream().await;
    let api_id = format!("t{}", std::process::id() as u64 * 1000 + rand_suffix());
    let routes = format!(
        r#"
[gateway]
api_id = "{api_id}"

[cluster]
redis_url = "redis://127.0.0.1:6379"

[cache]
shared = true

[backends.up]
kind = "http"
url = "{}"

[[routes]]
method = "GET"
path = "/items/{{id}}"
backend = "up"
cache = {{ ttl = "60s", key = ["path.id"] }}
"#,
        up.url("")
    );
    let node_a = start(&routes).await;
    let node_b = start(&routes).await;
    let c = client();
    let r = c.get(node_a.url("/items/5")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Miss");
    let body = r.text().await.unwrap();
    // Another node finds the entry in Redis: a hit, no upstream call.
    let r = c.get(node_b.url("/items/5")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Hit");
    assert_eq!(r.text().await.unwrap(), body);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A per-test suffix so parallel runs never share Redis keys.
fn rand_suffix() -> u64 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or_default();
    nanos + N.fetch_add(1, Ordering::SeqCst)
}

#[tokio::test]
async fn shared_cache_needs_the_cluster_redis() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    let err = lambdagate::config::parse(&path, "[cache]\nshared = true\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("routes.toml:2:10: `shared = true` needs `[cluster] redis_url`"),
        "{err}"
    );
}

/// An HS256 token for `sub` with `scope`, valid for an hour.
fn token(secret: &[u8], sub: &str, scope: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://issuer.test", "aud": "api", "sub": sub,
        "scope": scope, "iat": now, "exp": now + 3600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[tokio::test]
async fn auth_runs_before_a_cached_answer_and_entries_are_per_identity() {
    let (up, calls) = upstream().await;
    let secret = b"cache-test-shared-secret-0123456789";
    let routes = format!(
        r#"
[auth.users]
kind = "jwt"
secret_file = "secret.txt"
issuer = "https://issuer.test"
audience = ["api"]
algorithms = ["HS256"]

[backends.up]
kind = "http"
url = "{}"

[[routes]]
method = "GET"
path = "/items/{{id}}"
backend = "up"
auth = "users"
scopes = ["items:read"]
cache = {{ ttl = "60s", key = ["path.id"], per_identity = true, invalidation = "authorized" }}
"#,
        up.url("")
    );
    let gw = start_with(
        &routes,
        &[("secret.txt", secret.as_slice())],
        GatewayOptions::default(),
    )
    .await;
    let c = client();
    let alice = token(secret, "alice", "items:read");
    let bob = token(secret, "bob", "items:read");
    let carol = token(secret, "carol", "other");
    let get = |tok: Option<&str>, refresh: bool| {
        let mut r = c.get(gw.url("/items/1"));
        if let Some(t) = tok {
            r = r.bearer_auth(t);
        }
        if refresh {
            r = r.header("cache-control", "max-age=0");
        }
        async move {
            let res = r.send().await.unwrap();
            let status = res.status().as_u16();
            let x = res
                .headers()
                .get("x-cache")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (status, x)
        }
    };
    assert_eq!(get(Some(&alice), false).await, (200, "Miss".into()));
    assert_eq!(get(Some(&alice), false).await, (200, "Hit".into()));
    // The entry is cached, yet refused callers never see it.
    assert_eq!(get(None, false).await, (401, String::new()));
    assert_eq!(get(Some("not-a-token"), false).await, (401, String::new()));
    assert_eq!(get(Some(&carol), false).await, (403, String::new()));
    // Another identity has its own entry.
    assert_eq!(get(Some(&bob), false).await, (200, "Miss".into()));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // An authorized caller may refresh.
    assert_eq!(get(Some(&alice), true).await, (200, "Miss".into()));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// An upstream answering with the method, the body it got and a call count.
async fn echo_upstream() -> (TestServer, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = Router::new().fallback(move |method: axum::http::Method, body: String| {
        let counter = counter.clone();
        async move {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            format!("{method} body={body} call {n}")
        }
    });
    (serve_router(app).await, calls)
}

#[tokio::test]
async fn the_body_is_part_of_the_key_or_the_request_bypasses_the_cache() {
    let (up, calls) = echo_upstream().await;
    let gw = start(&format!(
        r#"
[backends.up]
kind = "http"
url = "{}"

[[routes]]
method = "POST"
path = "/search"
backend = "up"
cache = {{ ttl = "60s", key = ["body"] }}

[[routes]]
method = "GET"
path = "/items/{{id}}"
backend = "up"
cache = {{ ttl = "60s", key = ["path.id"] }}
"#,
        up.url("")
    ))
    .await;
    let c = client();
    let post = |body: &'static str| c.post(gw.url("/search")).body(body).send();

    // Keyed on the body: one entry per body.
    let r = post(r#"{"q":"lamp"}"#).await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Miss");
    assert_eq!(r.text().await.unwrap(), r#"POST body={"q":"lamp"} call 1"#);
    let r = post(r#"{"q":"desk"}"#).await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Miss");
    assert_eq!(r.text().await.unwrap(), r#"POST body={"q":"desk"} call 2"#);
    let r = post(r#"{"q":"lamp"}"#).await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Hit");
    assert_eq!(r.text().await.unwrap(), r#"POST body={"q":"lamp"} call 1"#);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Not keyed on the body: a request with one never reads nor fills the
    // entry, so neither caller gets the other's answer.
    let with_body = |body: &'static str| c.get(gw.url("/items/1")).body(body).send();
    let r = with_body("mine").await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Miss");
    assert_eq!(r.text().await.unwrap(), "GET body=mine call 3");
    let r = c.get(gw.url("/items/1")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Miss");
    assert_eq!(r.text().await.unwrap(), "GET body= call 4");
    let r = with_body("yours").await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Miss");
    assert_eq!(r.text().await.unwrap(), "GET body=yours call 5");
    let r = c.get(gw.url("/items/1")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Hit");
    assert_eq!(r.text().await.unwrap(), "GET body= call 4");
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_cached_route_with_a_body_method_must_key_on_the_body() {
    let path = std::path::Path::new("routes.toml");
    let src = r#"
[[routes]]
method = "POST"
path = "/search"
mock = { status = 200 }
cache = { ttl = "60s", key = ["query.q"] }

[[routes]]
method = "PUT"
path = "/items/{id}"
mock = { status = 200 }
cache = { key = ["path.id", "body", "body"] }

[[routes]]
method = "ANY"
path = "/any"
mock = { status = 200 }
cache = { ttl = "60s" }
"#;
    let err = lambdagate::config::parse(path, src)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "routes.toml:6:9: a cached POST route must key on its body: add \"body\" to the cache `key`"
        ),
        "{err}"
    );
    assert!(
        err.contains("routes.toml:12:37: cache key `body` is listed twice"),
        "{err}"
    );
    assert!(!err.contains(":18:"), "ANY routes may cache: {err}");
    assert_eq!(err.matches("must key on its body").count(), 1, "{err}");
}
