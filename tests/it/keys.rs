//! API keys, usage plans, throttling and quotas, and the admin API: in
//! process on SQLite, and as two real gateway processes sharing the
//! PostgreSQL and Redis running on this machine (a fresh schema and Redis
//! key prefix per test, dropped at the end).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lambdagate::config::{ConfigError, parse};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{GatewayProcess, client, spawn_binary, start_with};

const TOKEN: &str = "test-admin-token-7f3a";
const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL: &str = "redis://127.0.0.1:6379";

fn admin_routes(extra: &str) -> String {
    format!(
        r#"
[admin]
listen = "127.0.0.1:0"
token_file = "admin.token"

[[routes]]
method = "GET"
path = "/ping"
mock = {{ status = 200, body = "pong" }}
{extra}
"#
    )
}

/// One admin API call: (status, JSON body or null).
async fn admin(base: &str, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let c = client();
    let url = format!("{base}{path}");
    let mut req = match method {
        "GET" => c.get(&url),
        "POST" => c.post(&url),
        "PUT" => c.put(&url),
        "DELETE" => c.delete(&url),
        other => panic!("method {other}"),
    }
    .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn create_key(base: &str, name: &str, plan: &str) -> (String, String) {
    let (s, v) = admin(
        base,
        "POST",
        "/keys",
        Some(json!({"name": name, "plan": plan})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (
        v["id"].as_str().unwrap().to_string(),
        v["key"].as_str().unwrap().to_string(),
    )
}

async fn get_with_key(url: &str, key: &str) -> reqwest::Response {
    client()
        .get(url)
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_api_needs_the_token() {
    let gw = start_with(
        &admin_routes(""),
        &[("admin.token", format!("{TOKEN}\n").as_bytes())],
        Default::default(),
    )
    .await;
    let c = client();
    let url = gw.admin_url("/keys");

    let none = c.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let body: Value = none.json().await.unwrap();
    assert_eq!(body, json!({"message": "Unauthorized"}));

    let wrong = c.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let wrong_scheme = c
        .get(&url)
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_scheme.status(), 401);

    let ok = c.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(ok.status(), 200);

    let doc: Value = c
        .get(gw.admin_url("/openapi.json"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["info"]["title"], "lambdagate admin API");
    assert!(doc["paths"]["/keys/{id}/usage"]["get"].is_object(), "{doc}");
    assert!(doc["components"]["schemas"]["PlanInput"].is_object());

    // The public listener does not serve the admin API.
    let public = c
        .get(gw.url("/keys"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_ne!(public.status(), 200);
}

#[tokio::test]
async fn admin_refuses_to_start_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(
        &path,
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"LAMBDAGATE_TEST_UNSET_TOKEN\"\n",
    )
    .unwrap();
    let config = lambdagate::config::load(&path).unwrap();
    let err = lambdagate::Gateway::new(config, Default::default())
        .await
        .err()
        .expect("must not start");
    assert!(err.0.contains("LAMBDAGATE_TEST_UNSET_TOKEN"), "{err}");
}

const KEYED: &str = r#"
[plans.gold]
throttle = { rate = 100, burst = 50 }

[[routes]]
method = "GET"
path = "/items"
api_key = true
mock = { status = 200, body = "items" }
"#;

#[tokio::test]
async fn key_lifecycle_over_the_admin_api() {
    let gw = start_with(
        &admin_routes(KEYED),
        &[("admin.token", TOKEN.as_bytes())],
        Default::default(),
    )
    .await;
    let base = format!("http://{}", gw.admin_addr.unwrap());
    let items = gw.url("/items");

    // No key, a malformed key, an unknown key: 403 Forbidden, as AWS.
    let res = client().get(&items).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"message": "Forbidden"})
    );
    assert_eq!(get_with_key(&items, "nonsense").await.status(), 403);
    let unknown = format!("lg_aaaaaaaaaa_{}", "A".repeat(43));
    assert_eq!(get_with_key(&items, &unknown).await.status(), 403);

    let (id, key) = create_key(&base, "acme", "gold").await;
    assert!(key.starts_with(&format!("lg_{id}_")));
    let res = get_with_key(&items, &key).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["ratelimit-limit"], "50");
    assert!(res.headers().contains_key("ratelimit-remaining"));
    assert!(res.headers().contains_key("ratelimit-reset"));
    // Routes without a key requirement don't ask for one.
    assert_eq!(
        client().get(gw.url("/ping")).send().await.unwrap().status(),
        200
    );

    // The secret is never listed again.
    let (s, list) = admin(&base, "GET", "/keys", None).await;
    assert_eq!(s, 200);
    assert_eq!(list[0]["id"], id.as_str());
    assert!(!list.to_string().contains(&key));

    // Disable → refused at once on this node; enable → accepted.
    let (s, v) = admin(&base, "POST", &format!("/keys/{id}/disable"), None).await;
    assert_eq!((s, v["enabled"].clone()), (StatusCode::OK, json!(false)));
    assert_eq!(get_with_key(&items, &key).await.status(), 403);
    admin(&base, "POST", &format!("/keys/{id}/enable"), None).await;
    assert_eq!(get_with_key(&items, &key).await.status(), 200);

    // Rotate: the old secret stops working, the new one works.
    let (s, rotated) = admin(&base, "POST", &format!("/keys/{id}/rotate"), None).await;
    assert_eq!(s, 200);
    let new_key = rotated["key"].as_str().unwrap();
    assert_eq!(get_with_key(&items, &key).await.status(), 403);
    assert_eq!(get_with_key(&items, new_key).await.status(), 200);

    // Detached from every plan: refused, as API Gateway does.
    let (s, _) = admin(
        &base,
        "PUT",
        &format!("/keys/{id}/plan"),
        Some(json!({"plan": null})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(get_with_key(&items, new_key).await.status(), 403);
    admin(
        &base,
        "PUT",
        &format!("/keys/{id}/plan"),
        Some(json!({"plan": "gold"})),
    )
    .await;

    // Usage counts accepted requests per UTC day.
    let (s, usage) = admin(&base, "GET", &format!("/keys/{id}/usage"), None).await;
    assert_eq!(s, 200);
    assert_eq!(usage["days"][0]["requests"], 3, "{usage}");

    let (s, _) = admin(&base, "DELETE", &format!("/keys/{id}"), None).await;
    assert_eq!(s, 204);
    assert_eq!(get_with_key(&items, new_key).await.status(), 403);
    let (s, v) = admin(&base, "GET", &format!("/keys/{id}"), None).await;
    assert_eq!(s, 404, "{v}");
}

#[tokio::test]
async fn bad_admin_input_is_a_clear_4xx() {
    let gw = start_with(
        &admin_routes(KEYED),
        &[("admin.token", TOKEN.as_bytes())],
        Default::default(),
    )
    .await;
    let base = format!("http://{}", gw.admin_addr.unwrap());
    let c = client();

    // Malformed JSON.
    let res = c
        .post(format!("{base}/keys"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"name\": \"acme\",")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert!(
        v["message"].as_str().unwrap().contains("invalid JSON"),
        "{v}"
    );

    // Wrong field type, unknown field.
    let (s, v) = admin(&base, "POST", "/keys", Some(json!({"name": 5}))).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = admin(
        &base,
        "POST",
        "/keys",
        Some(json!({"name": "x", "colour": 1})),
    )
    .await;
    assert_eq!(s, 400, "{v}");

    // Unknown plan.
    let (s, v) = admin(
        &base,
        "POST",
        "/keys",
        Some(json!({"name": "acme", "plan": "platinum"})),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("unknown plan `platinum`"),
        "{v}"
    );

    // Duplicate key name.
    create_key(&base, "acme", "gold").await;
    let (s, v) = admin(
        &base,
        "POST",
        "/keys",
        Some(json!({"name": "acme", "plan": "gold"})),
    )
    .await;
    assert_eq!(s, 409);
    assert!(
        v["message"].as_str().unwrap().contains("already exists"),
        "{v}"
    );

    // Bad name and expiry.
    let (s, _) = admin(&base, "POST", "/keys", Some(json!({"name": "a b"}))).await;
    assert_eq!(s, 400);
    let (s, _) = admin(
        &base,
        "POST",
        "/keys",
        Some(json!({"name": "b", "expires_in": "soon"})),
    )
    .await;
    assert_eq!(s, 400);

    // Unknown key.
    let (s, v) = admin(&base, "POST", "/keys/nosuchkey0/disable", None).await;
    assert_eq!(s, 404);
    assert!(v["message"].as_str().unwrap().contains("nosuchkey0"));

    // Plans: absurd limits, duplicates, read-only config plans, plans in use.
    for bad in [
        json!({"name": "p", "throttle": {"rate": 0}}),
        json!({"name": "p", "throttle": {"rate": -5}}),
        json!({"name": "p", "throttle": {"rate": 10, "burst": 0}}),
        json!({"name": "p", "throttle": {"rate": 10, "burst": 99999999999u64}}),
        json!({"name": "p", "quota": {"limit": 0, "period": "day"}}),
        json!({"name": "p", "quota": {"limit": 5, "period": "fortnight"}}),
    ] {
        let (s, v) = admin(&base, "POST", "/plans", Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad} → {v}");
        assert!(v["message"].is_string());
    }
    let silver = json!({"name": "silver", "throttle": {"rate": 5, "burst": 5}, "quota": {"limit": 10, "period": "month"}});
    let (s, v) = admin(&base, "POST", "/plans", Some(silver.clone())).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["source"], "store");
    let (s, _) = admin(&base, "POST", "/plans", Some(silver)).await;
    assert_eq!(s, 409);
    let (s, _) = admin(&base, "POST", "/plans", Some(json!({"name": "gold"}))).await;
    assert_eq!(s, 409);
    let (s, _) = admin(&base, "DELETE", "/plans/gold", None).await;
    assert_eq!(s, 409);
    let (s, plans) = admin(&base, "GET", "/plans", None).await;
    assert_eq!(s, 200);
    assert_eq!(plans.as_array().unwrap().len(), 2);

    // A runtime plan works for keys, and cannot be deleted while in use.
    let (id, key) = create_key(&base, "beta", "silver").await;
    let res = get_with_key(&gw.url("/items"), &key).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["ratelimit-limit"], "5");
    let (s, _) = admin(&base, "DELETE", "/plans/silver", None).await;
    assert_eq!(s, 409);
    admin(&base, "DELETE", &format!("/keys/{id}"), None).await;
    let (s, _) = admin(&base, "DELETE", "/plans/silver", None).await;
    assert_eq!(s, 204);
}

#[tokio::test]
async fn throttled_route_answers_429_with_retry_after_and_ratelimit_headers() {
    let gw = start_with(
        r#"
[[routes]]
method = "GET"
path = "/slow"
throttle = { rate = 0.5, burst = 2 }
mock = { status = 200, body = "ok" }

[[routes]]
method = "GET"
path = "/free"
mock = { status = 200, body = "ok" }
"#,
        &[],
        Default::default(),
    )
    .await;
    let c = client();
    for left in ["1", "0"] {
        let res = c.get(gw.url("/slow")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["ratelimit-limit"], "2");
        assert_eq!(res.headers()["ratelimit-remaining"], left);
    }
    let res = c.get(gw.url("/slow")).send().await.unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(res.headers()["ratelimit-remaining"], "0");
    assert_eq!(
        res.headers()["x-amzn-errortype"],
        "TooManyRequestsException"
    );
    // The request id once, filled in (the refusal's template has its slot).
    let ids: Vec<_> = res.headers().get_all("apigw-requestid").iter().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(ids[0].len(), 36, "{ids:?}");
    assert!(res.headers().get("x-amzn-requestid").is_none());
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"message": "Too Many Requests"})
    );
    // Other routes are not affected, and carry no RateLimit headers.
    let res = c.get(gw.url("/free")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(!res.headers().contains_key("ratelimit-limit"));
}

/// `RateLimit-*` headers go on every response that comes back through the
/// throttle phase after it admitted the request (a backend failure, a
/// validation refusal, a quota refusal), and on no response decided before
/// it (a missing key).
#[tokio::test]
async fn ratelimit_headers_are_on_every_answer_behind_the_throttle() {
    let gw = start_with(
        &admin_routes(
            r#"
[backends.dead]
kind = "http"
url = "http://127.0.0.1:1"

[plans.small]
throttle = { rate = 100, burst = 40 }
quota = { limit = 1, period = "day" }

[[routes]]
method = "GET"
path = "/dead"
throttle = { rate = 100, burst = 30 }
backend = "dead"

[[routes]]
method = "GET"
path = "/strict"
throttle = { rate = 100, burst = 20 }
request = { required_query = ["lang"] }
mock = { status = 200 }

[[routes]]
method = "GET"
path = "/keyed"
api_key = true
mock = { status = 200 }
"#,
        ),
        &[("admin.token", TOKEN.as_bytes())],
        Default::default(),
    )
    .await;
    let c = client();
    let res = c.get(gw.url("/dead")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(res.headers()["ratelimit-limit"], "30");
    assert_eq!(res.headers()["ratelimit-remaining"], "29");
    assert!(res.headers().contains_key("ratelimit-reset"));
    let res = c.get(gw.url("/strict")).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["ratelimit-limit"], "20");
    assert_eq!(res.headers()["ratelimit-remaining"], "19");

    let res = c.get(gw.url("/keyed")).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(!res.headers().contains_key("ratelimit-limit"));
    let base = format!("http://{}", gw.admin_addr.unwrap());
    let (_, key) = create_key(&base, "acme", "small").await;
    let res = get_with_key(&gw.url("/keyed"), &key).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["ratelimit-limit"], "40");
    assert_eq!(res.headers()["ratelimit-remaining"], "39");
    // The quota is spent: the refusal carries the throttle's verdict.
    let res = get_with_key(&gw.url("/keyed"), &key).await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["x-amzn-errortype"], "LimitExceededException");
    assert_eq!(res.headers()["ratelimit-limit"], "40");
    assert!(res.headers().contains_key("ratelimit-remaining"));
    assert!(res.headers().contains_key("ratelimit-reset"));
}

#[tokio::test]
async fn stage_and_gateway_throttles_apply_to_every_route() {
    let gw = start_with(
        r#"
[gateway]
throttle = { rate = 0.1, burst = 3 }

[stages.dev]
throttle = { rate = 0.1, burst = 2 }

[[routes]]
method = "GET"
path = "/a"
mock = { status = 200 }

[[routes]]
method = "GET"
path = "/b"
mock = { status = 200 }
"#,
        &[],
        Default::default(),
    )
    .await;
    let c = client();
    assert_eq!(c.get(gw.url("/a")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(gw.url("/b")).send().await.unwrap().status(), 200);
    // The stage's bucket (2) is empty, whichever route.
    assert_eq!(c.get(gw.url("/a")).send().await.unwrap().status(), 429);
}

#[tokio::test]
async fn quota_exhausted_is_limit_exceeded() {
    let gw = start_with(
        &admin_routes(
            r#"
[plans.trial]
quota = { limit = 3, period = "month" }

[[routes]]
method = "GET"
path = "/items"
api_key = true
mock = { status = 200, body = "items" }
"#,
        ),
        &[("admin.token", TOKEN.as_bytes())],
        Default::default(),
    )
    .await;
    let base = format!("http://{}", gw.admin_addr.unwrap());
    let (id, key) = create_key(&base, "acme", "trial").await;
    for _ in 0..3 {
        assert_eq!(get_with_key(&gw.url("/items"), &key).await.status(), 200);
    }
    let res = get_with_key(&gw.url("/items"), &key).await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["x-amzn-errortype"], "LimitExceededException");
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"message": "Limit Exceeded"})
    );
    let (_, usage) = admin(&base, "GET", &format!("/keys/{id}/usage"), None).await;
    assert_eq!(usage["quota"]["used"], 3, "{usage}");
    assert_eq!(usage["quota"]["remaining"], 0);
    assert_eq!(usage["quota"]["period"], "month");
}

/// Routes where a key's plan allows 3 requests in all and `/tight` lets
/// one through: requests `/tight` refuses must leave the key's bucket alone.
const KEY_AND_ROUTE_THROTTLES: &str = r#"
[plans.three]
throttle = { rate = 0.001, burst = 3 }

[[routes]]
method = "GET"
path = "/tight"
api_key = true
throttle = { rate = 0.001, burst = 1 }
mock = { status = 200 }

[[routes]]
method = "GET"
path = "/open"
api_key = true
mock = { status = 200 }
"#;

/// Spends `/tight`'s one request, has it refuse five more, then shows the
/// key still has its other two.
async fn a_route_refusal_leaves_the_key_bucket(tight: &str, open: &str, key: &str) {
    assert_eq!(get_with_key(tight, key).await.status(), 200);
    for _ in 0..5 {
        let res = get_with_key(tight, key).await;
        assert_eq!(res.status(), 429);
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({"message": "Too Many Requests"})
        );
    }
    for n in 0..2 {
        assert_eq!(
            get_with_key(open, key).await.status(),
            200,
            "request {n} on the key's own cells"
        );
    }
    assert_eq!(
        get_with_key(open, key).await.status(),
        429,
        "the key's 3 are spent"
    );
}

#[tokio::test]
async fn a_request_refused_at_one_level_spends_nothing_at_another() {
    let gw = start_with(
        &admin_routes(KEY_AND_ROUTE_THROTTLES),
        &[("admin.token", TOKEN.as_bytes())],
        Default::default(),
    )
    .await;
    let base = format!("http://{}", gw.admin_addr.unwrap());
    let (_, key) = create_key(&base, "acme", "three").await;
    a_route_refusal_leaves_the_key_bucket(&gw.url("/tight"), &gw.url("/open"), &key).await;
}

#[tokio::test]
async fn a_request_refused_at_one_level_spends_nothing_at_another_in_cluster_mode() {
    let shared = Shared::new();
    let a = shared
        .node(&shared.routes("a.toml", KEY_AND_ROUTE_THROTTLES))
        .await;
    let (_, key) = create_key(&admin_base(&a), "acme", "three").await;
    a_route_refusal_leaves_the_key_bucket(&a.url("/tight"), &a.url("/open"), &key).await;
    drop(a);
    shared.cleanup().await;
}

#[tokio::test]
async fn custom_header_and_api_key_authorizer() {
    let gw = start_with(
        &admin_routes(
            r#"
[api_keys]
header = "X-Partner-Key"

[auth.partner_keys]
kind = "api_key"
header = "authorization-key"

[plans.gold]

[[routes]]
method = "GET"
path = "/a"
api_key = true
mock = { status = 200 }

[[routes]]
method = "GET"
path = "/b"
auth = "partner_keys"
mock = { status = 200 }
"#,
        ),
        &[("admin.token", TOKEN.as_bytes())],
        Default::default(),
    )
    .await;
    let base = format!("http://{}", gw.admin_addr.unwrap());
    let (_, key) = create_key(&base, "acme", "gold").await;
    let c = client();
    assert_eq!(get_with_key(&gw.url("/a"), &key).await.status(), 403);
    let ok = c
        .get(gw.url("/a"))
        .header("x-partner-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(c.get(gw.url("/b")).send().await.unwrap().status(), 403);
    let ok = c
        .get(gw.url("/b"))
        .header("authorization-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn redis_down_falls_back_to_local_limits_or_refuses_when_fail_closed() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let routes = |fail_closed: bool| {
        format!(
            r#"
[cluster]
redis_url = "redis://127.0.0.1:{port}"
fail_closed = {fail_closed}

[[routes]]
method = "GET"
path = "/t"
throttle = {{ rate = 0.1, burst = 2 }}
mock = {{ status = 200 }}
"#
        )
    };
    let open = start_with(&routes(false), &[], Default::default()).await;
    let c = client();
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(
                c.get(open.url("/t"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
        }
        v
    };
    assert_eq!(statuses, [200, 200, 429]);

    let closed = start_with(&routes(true), &[], Default::default()).await;
    let res = c.get(closed.url("/t")).send().await.unwrap();
    assert_eq!(res.status(), 503);
}

/// API Gateway's AUTHORIZER key source on a REST API: a Lambda authorizer
/// (a Python `awslambdaric` function the local backend starts) maps the
/// caller's token to an API key and returns it as `usageIdentifierKey`; the
/// route's `api_key = true` then meters that key's plan (throttle and
/// quota), the key reaches the event, and a header key is ignored.
#[tokio::test]
async fn lambda_authorizer_usage_identifier_key_is_metered() {
    let handler = r#"
import json

def authorize(event, context):
    with open("partners.json") as f:
        partners = json.load(f)
    token = event.get("authorizationToken", "")
    out = {
        "principalId": token,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}],
        },
    }
    if partners.get(token):
        out["usageIdentifierKey"] = partners[token]
    return out

def echo(event, context):
    return {"statusCode": 200, "body": json.dumps(event["requestContext"]["identity"])}
"#;
    let py = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let gw = start_with(
        &admin_routes(&format!(
            r#"
[gateway]
flavor = "rest"

[api_keys]
source = "authorizer"

[backends.local]
kind = "local"

[functions.authz]
command = [{py:?}, "-m", "awslambdaric", "fns.authorize"]

[functions.echo]
command = [{py:?}, "-m", "awslambdaric", "fns.echo"]

[auth.partners]
kind = "lambda"
function = "authz"
type = "token"
identity_sources = ["method.request.header.Authorization"]
response = "iam"

[plans.throttled]
throttle = {{ rate = 0.01, burst = 2 }}

[plans.metered]
quota = {{ limit = 3, period = "day" }}

[[routes]]
method = "GET"
path = "/items"
function = "echo"
auth = "partners"
api_key = true
"#
        )),
        &[
            ("admin.token", TOKEN.as_bytes()),
            ("fns.py", handler.as_bytes()),
        ],
        Default::default(),
    )
    .await;
    let base = format!("http://{}", gw.admin_addr.unwrap());
    let (throttled_id, throttled_key) = create_key(&base, "acme", "throttled").await;
    let (metered_id, metered_key) = create_key(&base, "globex", "metered").await;
    let (disabled_id, disabled_key) = create_key(&base, "initech", "metered").await;
    let (s, _) = admin(&base, "POST", &format!("/keys/{disabled_id}/disable"), None).await;
    assert_eq!(s, 200);
    // A well-formed key the store has never seen.
    let unknown = format!("lg_zzzzzzzzzz_{}", "A".repeat(43));
    std::fs::write(
        gw.dir.path().join("partners.json"),
        json!({
            "tok-acme": throttled_key,
            "tok-globex": metered_key,
            "tok-initech": disabled_key,
            "tok-nobody": unknown,
            "tok-nokey": null,
        })
        .to_string(),
    )
    .unwrap();
    let c = client();
    let call = |token: &str, header_key: Option<&str>| {
        let mut r = c.get(gw.url("/items")).header("authorization", token);
        if let Some(k) = header_key {
            r = r.header("x-api-key", k);
        }
        r.send()
    };

    // The plan's throttle (burst 2, then one request per 100 s) applies to
    // the authorizer's key; x-api-key is not the key source here.
    for _ in 0..2 {
        let res = call("tok-acme", Some(&metered_key)).await.unwrap();
        assert_eq!(res.status(), 200);
        let identity: Value = res.json().await.unwrap();
        assert_eq!(identity["apiKeyId"], throttled_id.as_str(), "{identity}");
        assert_eq!(identity["apiKey"], throttled_key.as_str(), "{identity}");
    }
    // A REST API's 429s carry its request id header, once, filled in.
    let rest_id = |res: &reqwest::Response| {
        let ids: Vec<_> = res.headers().get_all("x-amzn-requestid").iter().collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert_eq!(ids[0].len(), 36, "{ids:?}");
        assert!(res.headers().get("apigw-requestid").is_none());
    };
    let res = call("tok-acme", None).await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    rest_id(&res);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"message": "Too Many Requests"})
    );

    // The other key's plan: a quota of 3 a day, counted in the store.
    for _ in 0..3 {
        let res = call("tok-globex", None).await.unwrap();
        assert_eq!(res.status(), 200);
        let identity: Value = res.json().await.unwrap();
        assert_eq!(identity["apiKeyId"], metered_id.as_str(), "{identity}");
    }
    let res = call("tok-globex", None).await.unwrap();
    assert_eq!(res.status(), 429);
    rest_id(&res);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"message": "Limit Exceeded"})
    );
    let (_, usage) = admin(&base, "GET", &format!("/keys/{metered_id}/usage"), None).await;
    assert_eq!(usage["quota"]["used"], 3, "{usage}");
    assert_eq!(usage["days"][0]["requests"], 3, "{usage}");

    // A disabled or unknown key from the authorizer, or none at all, is 403
    // even when the client sends a valid key in x-api-key.
    for token in ["tok-initech", "tok-nobody", "tok-nokey"] {
        let res = call(token, Some(&throttled_key)).await.unwrap();
        assert_eq!(res.status(), 403, "{token}");
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({"message": "Forbidden"}),
            "{token}"
        );
    }
    gw.stop().await;
}

/// Throttle refusals (by level) and spent quotas (by plan) are counted in
/// the admin listener's `/metrics`; key ids never become label values.
#[tokio::test]
async fn throttled_and_quota_refusals_are_metrics() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), TOKEN).unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(
        &path,
        admin_routes(
            r#"
[plans.tiny]
throttle = { rate = 0.01, burst = 1 }

[plans.one]
quota = { limit = 1, period = "day" }

[[routes]]
method = "GET"
path = "/items"
api_key = true
mock = { status = 200 }

[[routes]]
method = "GET"
path = "/slow"
throttle = { rate = 0.01, burst = 1 }
mock = { status = 200 }
"#,
        ),
    )
    .unwrap();
    let gw = spawn_binary(&path, &[], &HashMap::new()).await;
    let base = admin_base(&gw);
    let (tiny_id, tiny) = create_key(&base, "acme", "tiny").await;
    let (one_id, one) = create_key(&base, "globex", "one").await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            get_with_key(&gw.url("/items"), &tiny)
                .await
                .status()
                .as_u16(),
        );
    }
    for _ in 0..2 {
        statuses.push(
            get_with_key(&gw.url("/items"), &one)
                .await
                .status()
                .as_u16(),
        );
    }
    for _ in 0..4 {
        statuses.push(
            c.get(gw.url("/slow"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 429, 429, 200, 429, 200, 429, 429, 429]);
    let text = c
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    };
    assert_eq!(
        value(r#"lambdagate_throttled_total{scope="key"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(r#"lambdagate_throttled_total{scope="route"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(r#"lambdagate_quota_exceeded_total{plan="one"}"#),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains(&tiny_id) && !text.contains(&one_id),
        "{text}"
    );
}

/// Usage counted in memory is written on SIGTERM: with the periodic flush
/// an hour away, N requests, a graceful stop and a restart on the same
/// store report N; the quota counted before the restart still binds after.
#[tokio::test]
async fn usage_is_flushed_on_sigterm_and_quotas_span_restarts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), TOKEN).unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(
        &path,
        admin_routes(
            r#"
[api_keys]
usage_flush_interval = "1h"

[plans.ten]
quota = { limit = 10, period = "day" }

[[routes]]
method = "GET"
path = "/items"
api_key = true
mock = { status = 200 }
"#,
        ),
    )
    .unwrap();
    let mut gw = spawn_binary(&path, &[], &HashMap::new()).await;
    let (id, key) = create_key(&admin_base(&gw), "acme", "ten").await;
    const N: u64 = 7;
    for _ in 0..N {
        assert_eq!(get_with_key(&gw.url("/items"), &key).await.status(), 200);
    }
    // Nothing was written yet: the usage is still in the gateway's memory.
    let store_path = dir.path().join("lambdagate.db");
    let written = || async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", store_path.display()))
            .await
            .unwrap();
        let n: Option<(i64,)> =
            sqlx::query_as("SELECT SUM(requests) FROM daily_usage WHERE key_id = $1")
                .bind(&id)
                .fetch_optional(&pool)
                .await
                .unwrap();
        pool.close().await;
        n.map_or(0, |(n,)| n)
    };
    assert_eq!(written().await, 0);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), gw.child.wait())
        .await
        .expect("gateway exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert_eq!(written().await, N as i64);
    drop(gw);

    let gw = spawn_binary(&path, &[], &HashMap::new()).await;
    let base = admin_base(&gw);
    let (_, usage) = admin(&base, "GET", &format!("/keys/{id}/usage"), None).await;
    assert_eq!(usage["days"][0]["requests"], N, "{usage}");
    assert_eq!(usage["quota"]["used"], N, "{usage}");
    for _ in N..10 {
        assert_eq!(get_with_key(&gw.url("/items"), &key).await.status(), 200);
    }
    let res = get_with_key(&gw.url("/items"), &key).await;
    assert_eq!(res.status(), 429);
    let (_, usage) = admin(&base, "GET", &format!("/keys/{id}/usage"), None).await;
    assert_eq!(usage["days"][0]["requests"], 10, "{usage}");
    assert_eq!(usage["quota"]["remaining"], 0, "{usage}");
}

// ---- routes.toml errors ----

fn errors(src: &str) -> Vec<ConfigError> {
    match parse(Path::new("routes.toml"), src) {
        Ok(_) => panic!("config was accepted:\n{src}"),
        Err(e) => e.0,
    }
}

fn one_at(src: &str, line: usize, column: usize, needle: &str) {
    let e = errors(src);
    assert_eq!(e.len(), 1, "{e:#?}");
    let e = &e[0];
    assert_eq!((e.line, e.column), (line, column), "{e}");
    assert!(
        e.message.contains(needle),
        "`{}` lacks `{needle}`",
        e.message
    );
    assert!(
        e.to_string()
            .starts_with(&format!("routes.toml:{line}:{column}: "))
    );
}

#[test]
fn absurd_throttles_and_quotas_in_routes_toml_are_errors_with_positions() {
    one_at(
        "[cluster]\nredis_url = \"redis://127.0.0.1:6379\"\nlease = \"2s\"\n",
        3,
        9,
        "at most 1s",
    );
    one_at(
        "[cluster]\nredis_url = \"redis://127.0.0.1:6379\"\nlease = \"fast\"\n",
        3,
        9,
        "not a duration",
    );
    let route = "[[routes]]\nmethod = \"GET\"\npath = \"/a\"\nmock = { status = 200 }\n";
    one_at(
        &format!("{route}throttle = {{ rate = 0, burst = 1 }}\n"),
        5,
        21,
        "more than 0",
    );
    one_at(
        &format!("{route}throttle = {{ rate = -5 }}\n"),
        5,
        21,
        "more than 0",
    );
    one_at(
        &format!("{route}throttle = {{ rate = 1e12 }}\n"),
        5,
        21,
        "at most 1e9",
    );
    one_at(
        &format!("{route}throttle = {{ rate = inf }}\n"),
        5,
        21,
        "more than 0",
    );
    one_at(
        &format!("{route}throttle = {{ rate = nan }}\n"),
        5,
        21,
        "more than 0",
    );
    one_at(
        &format!("{route}throttle = {{ rate = 5, burst = 0 }}\n"),
        5,
        32,
        "burst",
    );
    one_at(
        &format!("{route}throttle = {{ rate = 5, burst = 99999999999 }}\n"),
        5,
        32,
        "burst",
    );
    // Beyond 64 bits: TOML itself refuses, still with a position.
    let e = errors(&format!(
        "{route}throttle = {{ rate = 5, burst = 99999999999999999999 }}\n"
    ));
    assert_eq!(e[0].line, 5, "{e:#?}");
    one_at(
        "[stages.dev]\nthrottle = { rate = -1 }\n",
        2,
        21,
        "more than 0",
    );
    one_at("[gateway]\nthrottle = { rate = 0 }\n", 2, 21, "more than 0");
    one_at(
        "[plans.gold]\nthrottle = { rate = 0 }\n",
        2,
        21,
        "more than 0",
    );
    one_at(
        "[plans.gold]\nquota = { limit = 0, period = \"day\" }\n",
        2,
        19,
        "positive",
    );
    one_at(
        "[plans.gold]\nquota = { limit = -3, period = \"day\" }\n",
        2,
        19,
        "positive",
    );
    one_at(
        "[plans.gold]\nquota = { limit = 3, period = \"fortnight\" }\n",
        2,
        31,
        "\"day\", \"week\" or \"month\"",
    );
    one_at(
        &format!("[plans.gold]\nroute_throttles = {{ \"GET /nope\" = {{ rate = 1 }} }}\n{route}"),
        2,
        21,
        "no route `GET /nope`",
    );
    one_at(
        "[api_keys]\nsource = \"cookie\"\n",
        2,
        10,
        "\"header\" or \"authorizer\"",
    );
}

// ---- several gateway processes sharing PostgreSQL and Redis ----

/// A unique Postgres schema and Redis key prefix; dropped by `cleanup`.
struct Shared {
    name: String,
    dir: tempfile::TempDir,
}

impl Shared {
    fn new() -> Self {
        let name = format!("lgtest_{}", uuid::Uuid::new_v4().simple());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.token"), TOKEN).unwrap();
        Self { name, dir }
    }

    /// Writes a routes file for one node (its own admin listener).
    fn routes(&self, file: &str, body: &str) -> PathBuf {
        self.routes_with_lease(file, None, body)
    }

    /// The same with `[cluster] lease` set.
    fn routes_with_lease(&self, file: &str, lease: Option<&str>, body: &str) -> PathBuf {
        let lease = lease
            .map(|l| format!("lease = \"{l}\""))
            .unwrap_or_default();
        let config = format!(
            r#"
[store]
kind = "postgres"
url = "{PG_URL}"
schema = "{name}"

[cluster]
redis_url = "{REDIS_URL}"
key_prefix = "{name}"
{lease}

[admin]
listen = "127.0.0.1:0"
token_file = "admin.token"

{body}
"#,
            name = self.name
        );
        let path = self.dir.path().join(file);
        std::fs::write(&path, config).unwrap();
        path
    }

    async fn node(&self, path: &Path) -> GatewayProcess {
        spawn_binary(
            path,
            &[],
            &HashMap::from([("RUST_LOG".into(), "warn".into())]),
        )
        .await
    }

    async fn cleanup(self) {
        use sqlx::Executor;
        if let Ok(pool) = sqlx::PgPool::connect(PG_URL).await {
            let _ = pool
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                    self.name
                )))
                .await;
        }
        if let Ok(c) = redis::Client::open(REDIS_URL)
            && let Ok(mut conn) = c.get_multiplexed_async_connection().await
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", self.name))
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
            }
        }
    }
}

fn admin_base(p: &GatewayProcess) -> String {
    format!("http://{}", p.admin_addr.expect("admin listener"))
}

/// Six clients spread over `urls` send keyed GETs back to back for
/// `window`: (admitted, refused, seconds taken). Anything but 200/429 fails.
async fn overload(urls: &[String; 2], key: &str, window: Duration) -> (f64, u64, f64) {
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let shared_client = client();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let url = urls[i % 2].clone();
        let key = key.to_string();
        let (acc, rej) = (accepted.clone(), refused.clone());
        let c = shared_client.clone();
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < window {
                let res = c.get(&url).header("x-api-key", &key).send().await.unwrap();
                match res.status().as_u16() {
                    200 => acc.fetch_add(1, Ordering::Relaxed),
                    429 => rej.fetch_add(1, Ordering::Relaxed),
                    other => panic!("unexpected status {other}"),
                };
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (
        accepted.load(Ordering::Relaxed) as f64,
        refused.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
    )
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_together_admit_one_plans_rate() {
    let shared = Shared::new();
    let body = r#"
[plans.metered]
throttle = { rate = 40, burst = 10 }

[[routes]]
method = "GET"
path = "/items"
api_key = true
mock = { status = 200, body = "ok" }
"#;
    let a = shared.node(&shared.routes("a.toml", body)).await;
    let b = shared.node(&shared.routes("b.toml", body)).await;
    let (_, key) = create_key(&admin_base(&a), "acme", "metered").await;
    // Warm both nodes' key caches (2 of the 10 cells), then measure.
    let urls = [a.url("/items"), b.url("/items")];
    for u in &urls {
        assert_eq!(get_with_key(u, &key).await.status(), 200);
    }
    let (accepted, refused, elapsed) = overload(&urls, &key, Duration::from_secs(4)).await;
    let expected = 8.0 + 40.0 * elapsed;
    assert!(refused > 0, "the load must exceed the rate");
    assert!(
        (accepted - expected).abs() <= expected * 0.05,
        "two nodes admitted {accepted} in {elapsed:.2}s; one plan's rate allows {expected:.0}"
    );
    eprintln!(
        "two nodes: {accepted} admitted, {refused} refused in {elapsed:.2}s (one plan allows {expected:.0})"
    );
    // Redis names the level that refused: the key's plan, as on one node.
    let metrics = client()
        .get(format!("{}/metrics", admin_base(&a)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key_refusals: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"lambdagate_throttled_total{scope="key"}"#))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(key_refusals > 0.0, "{metrics}");
    drop((a, b));
    shared.cleanup().await;
}

/// With leasing (here 10 cells per Redis step: a second of rate 100, capped
/// at a tenth of the burst), two nodes still admit one plan's rate: every
/// admitted request spent a cell Redis granted, and the cells a node still
/// holds at the end are at most one lease each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_with_leases_together_admit_one_plans_rate() {
    let shared = Shared::new();
    let body = r#"
[plans.leased]
throttle = { rate = 100, burst = 100 }

[[routes]]
method = "GET"
path = "/items"
api_key = true
mock = { status = 200, body = "ok" }
"#;
    let a = shared
        .node(&shared.routes_with_lease("a.toml", Some("1s"), body))
        .await;
    let b = shared
        .node(&shared.routes_with_lease("b.toml", Some("1s"), body))
        .await;
    let (_, key) = create_key(&admin_base(&a), "acme", "leased").await;
    // Warm both nodes' key caches: each takes a lease of 10 cells and spends
    // one, so 98 of the 100 burst cells are left to measure.
    let urls = [a.url("/items"), b.url("/items")];
    for u in &urls {
        assert_eq!(get_with_key(u, &key).await.status(), 200);
    }
    let (accepted, refused, elapsed) = overload(&urls, &key, Duration::from_secs(4)).await;
    let expected = 98.0 + 100.0 * elapsed;
    assert!(refused > 0, "the load must exceed the rate");
    assert!(
        (accepted - expected).abs() <= expected * 0.05,
        "two leasing nodes admitted {accepted} in {elapsed:.2}s; one plan's rate allows {expected:.0}"
    );
    eprintln!(
        "two leasing nodes: {accepted} admitted, {refused} refused in {elapsed:.2}s (one plan allows {expected:.0})"
    );
    drop((a, b));
    shared.cleanup().await;
}

/// A lease's cells are spent without asking Redis: once a node holds a
/// lease, emptying the shared bucket behind its back refuses only after the
/// lease is spent. A plan too slow for a lease (rate × lease under 2 cells,
/// or a tenth of its burst under 2) takes a Redis step per request, exact
/// as without leasing.
#[tokio::test]
async fn leased_cells_are_spent_locally_and_slow_plans_are_not_leased() {
    let shared = Shared::new();
    let body = r#"
[plans.leased]
throttle = { rate = 100, burst = 100 }

[plans.slow]
throttle = { rate = 40, burst = 10 }

[[routes]]
method = "GET"
path = "/items"
api_key = true
mock = { status = 200, body = "ok" }
"#;
    let a = shared
        .node(&shared.routes_with_lease("a.toml", Some("1s"), body))
        .await;
    let admin = admin_base(&a);
    let mut conn = redis::Client::open(REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for (plan, lease) in [("leased", 10), ("slow", 1)] {
        // A lease lives 1 s: on a machine too busy to send the requests
        // within it, the round proves nothing and runs again with a new key.
        let mut statuses = Vec::new();
        for attempt in 1..=3 {
            let (id, key) = create_key(&admin, &format!("{plan}{attempt}"), plan).await;
            let url = a.url("/items");
            assert_eq!(get_with_key(&url, &key).await.status(), 200);
            // The bucket's theoretical arrival time, far in the future: Redis
            // refuses every further step on it.
            let bucket = format!("{}:k:{plan}:{id}", shared.name);
            let _: () = redis::cmd("SET")
                .arg(&bucket)
                .arg("1e18")
                .query_async(&mut conn)
                .await
                .unwrap();
            let started = Instant::now();
            statuses.clear();
            for _ in 0..lease {
                statuses.push(get_with_key(&url, &key).await.status().as_u16());
            }
            if started.elapsed() < Duration::from_millis(900) {
                break;
            }
            assert!(attempt < 3, "three rounds outlived their lease");
        }
        let mut expected = vec![200; lease - 1];
        expected.push(429);
        assert_eq!(statuses, expected, "plan {plan}");
    }
    drop(a);
    shared.cleanup().await;
}

const QUOTA_ROUTES: &str = r#"
[plans.hundred]
quota = { limit = 100, period = "day" }

[plans.five]
quota = { limit = 5, period = "week" }

[[routes]]
method = "GET"
path = "/items"
api_key = true
mock = { status = 200, body = "ok" }
"#;

#[tokio::test]
async fn quota_is_exact_under_concurrency_across_nodes() {
    let shared = Shared::new();
    let a = shared.node(&shared.routes("a.toml", QUOTA_ROUTES)).await;
    let b = shared.node(&shared.routes("b.toml", QUOTA_ROUTES)).await;
    let (_, key) = create_key(&admin_base(&a), "acme", "hundred").await;
    let c = client();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let url = if i % 2 == 0 {
            a.url("/items")
        } else {
            b.url("/items")
        };
        let (c, key) = (c.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let res = c.get(&url).header("x-api-key", &key).send().await.unwrap();
            let status = res.status().as_u16();
            let body = res.text().await.unwrap();
            (status, body)
        }));
    }
    let mut ok = 0;
    let mut exceeded = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => ok += 1,
            (429, body) if body.contains("Limit Exceeded") => exceeded += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((ok, exceeded), (100, 100));
    drop((a, b));
    shared.cleanup().await;
}

/// The store's count of `key_id`'s quota (every period).
async fn quota_in_store(shared: &Shared, key_id: &str) -> i64 {
    let pool = sqlx::PgPool::connect(PG_URL).await.unwrap();
    let n: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT SUM(used)::BIGINT FROM \"{}\".quota_usage WHERE key_id = $1",
        shared.name
    )))
    .bind(key_id)
    .fetch_optional(&pool)
    .await
    .unwrap();
    pool.close().await;
    n.map_or(0, |(n,)| n)
}

#[tokio::test]
async fn quota_is_leased_in_blocks_and_what_a_node_holds_comes_back_or_stays_bounded() {
    const ROUTES: &str = r#"
[plans.big]
quota = { limit = 10000, period = "day" }

[[routes]]
method = "GET"
path = "/items"
api_key = true
mock = { status = 200, body = "ok" }
"#;
    // Blocks of a hundredth of the limit: 100 requests per store write; a
    // node takes the next block when a quarter of its block is left, so it
    // holds at most 1¼ blocks unspent.
    const BLOCK: i64 = 100;
    const HELD: i64 = BLOCK + BLOCK / 4;
    let shared = Shared::new();
    let mut a = shared.node(&shared.routes("a.toml", ROUTES)).await;
    let mut b = shared.node(&shared.routes("b.toml", ROUTES)).await;
    let (id, key) = create_key(&admin_base(&a), "acme", "big").await;
    let c = client();
    let mut admitted = 0i64;
    // 290 requests: not a whole number of blocks.
    for round in 0..29 {
        let mut calls = Vec::new();
        for i in 0..10 {
            let url = if (round + i) % 2 == 0 {
                a.url("/items")
            } else {
                b.url("/items")
            };
            let (c, key) = (c.clone(), key.clone());
            calls.push(async move {
                c.get(&url)
                    .header("x-api-key", &key)
                    .send()
                    .await
                    .unwrap()
                    .status()
            });
        }
        for status in futures::future::join_all(calls).await {
            assert_eq!(status, 200);
            admitted += 1;
        }
    }
    // Each node took whole blocks: the store counts what was admitted plus
    // what each node holds unspent, never less.
    let counted = quota_in_store(&shared, &id).await;
    assert!(
        (admitted..=admitted + 2 * HELD).contains(&counted),
        "admitted {admitted}, counted {counted}"
    );
    assert!(counted % BLOCK == 0, "whole blocks were taken: {counted}");
    // The admin API of a node reports usage without that node's unspent
    // cells.
    let (_, usage) = admin(&admin_base(&a), "GET", &format!("/keys/{id}/usage"), None).await;
    let reported = usage["quota"]["used"].as_i64().unwrap();
    assert!((admitted..=admitted + HELD).contains(&reported), "{usage}");
    // A graceful stop gives A's unspent block back.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &a.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), a.child.wait())
        .await
        .expect("node A exits after SIGTERM")
        .unwrap();
    assert!(exit.success());
    let counted = quota_in_store(&shared, &id).await;
    assert!(
        (admitted..=admitted + HELD).contains(&counted),
        "after A's graceful stop: admitted {admitted}, counted {counted}"
    );
    // A killed node loses what it held (at most 1¼ blocks): counted as
    // used, never admitted twice.
    b.child.kill().await.unwrap();
    let after_kill = quota_in_store(&shared, &id).await;
    assert_eq!(after_kill, counted);
    drop((a, b));
    shared.cleanup().await;
}

#[tokio::test]
async fn quota_survives_a_restart() {
    let shared = Shared::new();
    let path = shared.routes("a.toml", QUOTA_ROUTES);
    let mut a = shared.node(&path).await;
    let (id, key) = create_key(&admin_base(&a), "acme", "five").await;
    for _ in 0..3 {
        assert_eq!(get_with_key(&a.url("/items"), &key).await.status(), 200);
    }
    a.child.kill().await.unwrap();
    drop(a);

    let a = shared.node(&path).await;
    for _ in 0..2 {
        assert_eq!(get_with_key(&a.url("/items"), &key).await.status(), 200);
    }
    let res = get_with_key(&a.url("/items"), &key).await;
    assert_eq!(res.status(), 429);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"message": "Limit Exceeded"})
    );
    let (_, usage) = admin(&admin_base(&a), "GET", &format!("/keys/{id}/usage"), None).await;
    assert_eq!(usage["quota"]["used"], 5, "{usage}");
    drop(a);
    shared.cleanup().await;
}

#[tokio::test]
async fn key_revoked_on_one_node_is_refused_on_another_within_the_ttl() {
    let shared = Shared::new();
    let body = r#"
[api_keys]
cache_ttl = "2s"

[plans.gold]

[[routes]]
method = "GET"
path = "/items"
api_key = true
mock = { status = 200, body = "ok" }
"#;
    let a = shared.node(&shared.routes("a.toml", body)).await;
    let b = shared.node(&shared.routes("b.toml", body)).await;
    let (id, key) = create_key(&admin_base(&a), "acme", "gold").await;
    // B has the key cached as valid.
    assert_eq!(get_with_key(&b.url("/items"), &key).await.status(), 200);

    let (s, _) = admin(
        &admin_base(&a),
        "POST",
        &format!("/keys/{id}/disable"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let revoked = Instant::now();
    // A refuses at once (its own cache was invalidated).
    assert_eq!(get_with_key(&a.url("/items"), &key).await.status(), 403);
    // B refuses within the TTL.
    loop {
        let status = get_with_key(&b.url("/items"), &key).await.status();
        if status == 403 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked.elapsed() < Duration::from_millis(2500),
            "node B still accepts a revoked key after {:?}",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((a, b));
    shared.cleanup().await;
}

#[tokio::test]
async fn cli_issues_keys_in_the_store_and_through_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), TOKEN).unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(
        &path,
        admin_routes(
            r#"
[plans.gold]
quota = { limit = 10, period = "day" }

[[routes]]
method = "GET"
path = "/items"
api_key = true
mock = { status = 200 }
"#,
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(crate::common::binary())
            .arg("--config")
            .arg(&path)
            .arg("keys")
            .args(args)
            .env(lambdagate::admin::DEFAULT_TOKEN_ENV, TOKEN)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // Directly in the store (SQLite beside routes.toml), before serving.
    let (ok, out, err) = cli(&[
        "create",
        "--name",
        "acme",
        "--plan",
        "gold",
        "--expires",
        "30d",
        "--json",
    ]);
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(created["expires_at"].as_i64().unwrap() > 0);
    let (ok, _, err) = cli(&["create", "--name", "other", "--plan", "platinum"]);
    assert!(!ok);
    assert!(err.contains("unknown plan `platinum`"), "{err}");

    let gw = spawn_binary(&path, &[], &HashMap::new()).await;
    assert_eq!(get_with_key(&gw.url("/items"), &key).await.status(), 200);
    let url = admin_base(&gw);
    let (ok, out, err) = cli(&["list", "--admin-url", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("acme") && out.contains("gold"), "{out}");
    assert!(!out.contains(&key));
    let id = created["id"].as_str().unwrap();
    let (ok, out, err) = cli(&["usage", id, "--admin-url", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("quota: 1 of 10 per day used, 9 left"), "{out}");
    let (ok, _, err) = cli(&["revoke", id, "--admin-url", &url]);
    assert!(ok, "{err}");
    assert_eq!(get_with_key(&gw.url("/items"), &key).await.status(), 403);
    // Wrong token through the CLI: a clear error.
    let out = std::process::Command::new(crate::common::binary())
        .arg("--config")
        .arg(&path)
        .args(["keys", "list", "--admin-url", &url])
        .env(lambdagate::admin::DEFAULT_TOKEN_ENV, "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}
