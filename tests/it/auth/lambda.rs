//! `kind = "lambda"`: authorizer functions on the stage's `lambda` backend
//! (a fake Invoke API), TOKEN/REQUEST events, IAM policies and simple
//! responses, the result cache and its per-ARN re-evaluation.

use serde_json::{Value, json};

use crate::common::client;
use crate::common::fake_lambda::{FakeLambda, Invocation, Reply, gateway_on};

/// `authz` answers by the caller's token; `authz_simple` by user and tenant;
/// every other function echoes its event.
fn responder(inv: &Invocation) -> Reply {
    let event = inv.event();
    match inv.function.as_str() {
        "authz" => {
            let token = event["authorizationToken"]
                .as_str()
                .or_else(|| event["headers"]["authorization"].as_str())
                .unwrap_or_default()
                .to_string();
            let policy = |effect: &str, resources: Value| {
                json!({
                    "principalId": "user-7",
                    "policyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resources}]
                    },
                    "context": {"tenant": "t1", "n": 1, "vip": true},
                    "usageIdentifierKey": "key-123"
                })
            };
            match token.as_str() {
                "allow-get-pets" => Reply::json(policy(
                    "Allow",
                    json!([
                        "arn:aws:execute-api:*:*:*/*/GET/pets/*",
                        "arn:aws:execute-api:*:*:*/*/GET/v1pets/*"
                    ]),
                )),
                "deny" => Reply::json(policy("Deny", json!("*"))),
                // Slow enough that requests sent together all miss the cache.
                "slow-allow" => Reply {
                    delay: std::time::Duration::from_millis(500),
                    ..Reply::json(policy("Allow", json!("*")))
                },
                "unauthorized" => Reply {
                    function_error: Some("Unhandled".into()),
                    ..Reply::json(json!({"errorMessage": "Unauthorized", "errorType": "Error"}))
                },
                "crash" => Reply {
                    function_error: Some("Unhandled".into()),
                    ..Reply::json(json!({"errorMessage": "boom", "errorType": "Error"}))
                },
                _ => Reply::raw("not json"),
            }
        }
        "authz_simple" => {
            let user = event["headers"]["x-user"].as_str().unwrap_or_default();
            let tenant = event["queryStringParameters"]["tenant"].as_str();
            Reply::json(json!({
                "isAuthorized": user != "mallory",
                "context": {"user": user, "tenant": tenant}
            }))
        }
        _ => Reply::json(json!({"statusCode": 200, "body": String::from_utf8_lossy(&inv.payload)})),
    }
}

fn calls_to(fake: &FakeLambda, function: &str) -> Vec<Value> {
    fake.calls()
        .iter()
        .filter(|c| c.function == function)
        .map(Invocation::event)
        .collect()
}

const HTTP_ROUTES: &str = r#"
[functions.hello]
[functions.authz]
[functions.authz_simple]

[auth.policy]
kind = "lambda"
function = "authz"
type = "request"
identity_sources = ["$request.header.Authorization"]
response = "iam"
payload_version = "1.0"
ttl = "300s"

[auth.simple]
kind = "lambda"
function = "authz_simple"
response = "simple"
payload_version = "2.0"
identity_sources = ["$request.header.X-User", "$request.querystring.tenant"]

[auth.nocache]
kind = "lambda"
function = "authz_simple"
response = "simple"
identity_sources = ["$request.header.X-User"]
ttl = "0s"

[[routes]]
method = "GET"
path = "/pets/{id}"
function = "hello"
auth = "policy"

[[routes]]
method = "DELETE"
path = "/pets/{id}"
function = "hello"
auth = "policy"

[[routes]]
method = "GET"
path = "/v1pets/{id}"
function = "hello"
auth = "policy"
payload_version = "1.0"

[[routes]]
method = "GET"
path = "/simple"
function = "hello"
auth = "simple"

[[routes]]
method = "GET"
path = "/nocache"
function = "hello"
auth = "nocache"
"#;

#[tokio::test]
async fn iam_policy_is_cached_and_reevaluated_per_method_arn() {
    let fake = FakeLambda::start(responder).await;
    let gw = gateway_on(&fake, "", HTTP_ROUTES).await;
    let send = |method: reqwest::Method, path: &str, token: Option<&str>| {
        let mut r = client().request(method, gw.url(path));
        if let Some(t) = token {
            r = r.header("authorization", t);
        }
        r.send()
    };

    let res = send(reqwest::Method::GET, "/pets/1", Some("allow-get-pets"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let authz = calls_to(&fake, "authz");
    assert_eq!(authz.len(), 1);
    // HTTP API, payload 1.0 authorizer event.
    let ev = &authz[0];
    assert_eq!(ev["version"], "1.0");
    assert_eq!(ev["type"], "REQUEST");
    assert_eq!(ev["identitySource"], "allow-get-pets");
    assert_eq!(ev["authorizationToken"], "allow-get-pets");
    let arn = ev["methodArn"].as_str().unwrap();
    assert!(
        arn.starts_with("arn:aws:execute-api:us-east-1:123456789012:"),
        "{arn}"
    );
    assert!(arn.ends_with("/dev/GET/pets/1"), "{arn}");
    assert_eq!(ev["resource"], "/pets/{id}");
    assert_eq!(ev["pathParameters"]["id"], "1");
    assert!(ev.get("body").is_none());
    let _: aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV1Request =
        serde_json::from_value(ev.clone()).expect("aws_lambda_events reads the authorizer event");
    // The context reaches the function (v2: authorizer.lambda).
    let hello = calls_to(&fake, "hello");
    assert_eq!(
        hello[0]["requestContext"]["authorizer"]["lambda"],
        json!({"tenant": "t1", "n": 1, "vip": true})
    );

    // Cached: another id, no second invocation.
    let res = send(reqwest::Method::GET, "/pets/2", Some("allow-get-pets"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Payload 1.0 route: principalId and context under authorizer.
    let res = send(reqwest::Method::GET, "/v1pets/9", Some("allow-get-pets"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v1 = calls_to(&fake, "hello").pop().unwrap();
    assert_eq!(v1["requestContext"]["authorizer"]["principalId"], "user-7");
    assert_eq!(v1["requestContext"]["authorizer"]["tenant"], "t1");
    let _: aws_lambda_events::apigw::ApiGatewayProxyRequest =
        serde_json::from_value(v1).expect("aws_lambda_events reads the v1 event");
    // The cached policy allows only GET /pets/*: DELETE is denied from cache.
    let res = send(reqwest::Method::DELETE, "/pets/1", Some("allow-get-pets"))
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(calls_to(&fake, "authz").len(), 1, "all from the cache");
    assert_eq!(
        calls_to(&fake, "hello").len(),
        3,
        "DELETE never reached the function"
    );

    // Missing identity source: 401 without invoking the authorizer.
    let res = send(reqwest::Method::GET, "/pets/1", None).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.text().await.unwrap(), r#"{"message":"Unauthorized"}"#);
    assert_eq!(calls_to(&fake, "authz").len(), 1);

    // Explicit deny, "Unauthorized", a crashing and a nonsense authorizer.
    let res = send(reqwest::Method::GET, "/pets/1", Some("deny"))
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"message":"User is not authorized to access this resource with an explicit deny"}"#
    );
    let res = send(reqwest::Method::GET, "/pets/1", Some("unauthorized"))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = send(reqwest::Method::GET, "/pets/1", Some("crash"))
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let res = send(reqwest::Method::GET, "/pets/1", Some("garbage"))
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    assert_eq!(
        calls_to(&fake, "hello").len(),
        3,
        "refusals never reach the function"
    );
}

#[tokio::test]
async fn concurrent_misses_invoke_the_authorizer_once() {
    let fake = FakeLambda::start(responder).await;
    let gw = gateway_on(&fake, "", HTTP_ROUTES).await;
    // Requests sent together for one identity that is not cached yet: one
    // invocation decides them all.
    let sends = (0..8).map(|i| {
        client()
            .get(gw.url(&format!("/pets/{i}")))
            .header("authorization", "slow-allow")
            .send()
    });
    for res in futures::future::join_all(sends).await {
        assert_eq!(res.unwrap().status(), 200);
    }
    assert_eq!(calls_to(&fake, "authz").len(), 1, "one invocation");
    assert_eq!(calls_to(&fake, "hello").len(), 8);

    // Concurrent misses on a failing authorizer share its failure, and the
    // failure is not cached: the next request asks again.
    let sends = (0..4).map(|_| {
        client()
            .get(gw.url("/pets/1"))
            .header("authorization", "crash")
            .send()
    });
    for res in futures::future::join_all(sends).await {
        assert_eq!(res.unwrap().status(), 500);
    }
    let crashes = calls_to(&fake, "authz").len() - 1;
    assert!((1..=4).contains(&crashes), "{crashes} invocations");
    let res = client()
        .get(gw.url("/pets/1"))
        .header("authorization", "crash")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    assert_eq!(calls_to(&fake, "authz").len(), crashes + 2, "not cached");

    // A cached value is found however the header's bytes arrive: the same
    // value hits, a value that differs by a byte or comes twice does not.
    let res = client()
        .get(gw.url("/pets/3"))
        .header("authorization", "slow-allow")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        calls_to(&fake, "authz").len(),
        crashes + 2,
        "from the cache"
    );
    let res = client()
        .get(gw.url("/pets/3"))
        .header("authorization", "slow-allow")
        .header("authorization", "slow-allow")
        .send()
        .await
        .unwrap();
    // "slow-allow,slow-allow" is another identity (the function answers
    // nonsense for it).
    assert_eq!(res.status(), 500);
    assert_eq!(calls_to(&fake, "authz").len(), crashes + 3);
}

#[tokio::test]
async fn simple_responses_cache_by_every_identity_source() {
    let fake = FakeLambda::start(responder).await;
    let gw = gateway_on(&fake, "", HTTP_ROUTES).await;
    let send = |path: &str, user: Option<&str>| {
        let mut r = client().get(gw.url(path));
        if let Some(u) = user {
            r = r.header("x-user", u);
        }
        r.send()
    };
    let res = send("/simple?tenant=a", Some("alice")).await.unwrap();
    assert_eq!(res.status(), 200);
    let authz = calls_to(&fake, "authz_simple");
    assert_eq!(authz.len(), 1);
    let ev = &authz[0];
    assert_eq!(ev["version"], "2.0");
    assert_eq!(ev["type"], "REQUEST");
    assert_eq!(ev["identitySource"], json!(["alice", "a"]));
    assert_eq!(ev["rawPath"], "/simple");
    assert_eq!(ev["routeKey"], "GET /simple");
    assert!(
        ev["routeArn"]
            .as_str()
            .unwrap()
            .ends_with("/dev/GET/simple")
    );
    let _: aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request =
        serde_json::from_value(ev.clone()).expect("aws_lambda_events reads the authorizer event");
    let hello = calls_to(&fake, "hello");
    assert_eq!(
        hello[0]["requestContext"]["authorizer"]["lambda"],
        json!({"user": "alice", "tenant": "a"})
    );

    assert_eq!(
        send("/simple?tenant=a", Some("alice"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(calls_to(&fake, "authz_simple").len(), 1, "cached");
    assert_eq!(
        send("/simple?tenant=b", Some("alice"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        calls_to(&fake, "authz_simple").len(),
        2,
        "another tenant, another key"
    );

    let res = send("/simple?tenant=a", Some("mallory")).await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.text().await.unwrap(), r#"{"message":"Forbidden"}"#);

    let before = calls_to(&fake, "authz_simple").len();
    assert_eq!(send("/simple", Some("alice")).await.unwrap().status(), 401);
    assert_eq!(calls_to(&fake, "authz_simple").len(), before, "not invoked");

    // ttl = 0: every request asks the authorizer.
    assert_eq!(send("/nocache", Some("bob")).await.unwrap().status(), 200);
    assert_eq!(send("/nocache", Some("bob")).await.unwrap().status(), 200);
    assert_eq!(calls_to(&fake, "authz_simple").len(), before + 2);
    let hello = calls_to(&fake, "hello");
    assert_eq!(hello.len(), 5);

    // The cache compares every identity value: ("alic", "ea") is not the
    // cached ("alice", "a"), though the values run together the same.
    let before = calls_to(&fake, "authz_simple").len();
    let res = send("/simple?tenant=ea", Some("alic")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(calls_to(&fake, "authz_simple").len(), before + 1, "invoked");
    let hello = calls_to(&fake, "hello");
    assert_eq!(
        hello[5]["requestContext"]["authorizer"]["lambda"],
        json!({"user": "alic", "tenant": "ea"})
    );
}

#[tokio::test]
async fn rest_token_and_request_authorizers() {
    let fake = FakeLambda::start(responder).await;
    let gw = gateway_on(
        &fake,
        r#"flavor = "rest""#,
        r#"
[functions.hello]
[functions.authz]

[auth.tok]
kind = "lambda"
function = "authz"
type = "token"

[auth.req]
kind = "lambda"
function = "authz"
type = "request"
identity_sources = ["method.request.header.Authorization"]

[[routes]]
method = "GET"
path = "/pets/{id}"
function = "hello"
auth = "tok"

[[routes]]
method = "GET"
path = "/v1pets/{id}"
function = "hello"
auth = "req"
"#,
    )
    .await;
    let res = client()
        .get(gw.url("/dev/pets/1"))
        .header("authorization", "allow-get-pets")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ev = calls_to(&fake, "authz").pop().unwrap();
    assert_eq!(ev["type"], "TOKEN");
    assert_eq!(ev["authorizationToken"], "allow-get-pets");
    assert!(
        ev["methodArn"]
            .as_str()
            .unwrap()
            .ends_with("/dev/GET/pets/1")
    );
    assert_eq!(ev.as_object().unwrap().len(), 3, "{ev}");
    let _: aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequest =
        serde_json::from_value(ev).unwrap();
    let hello = calls_to(&fake, "hello").pop().unwrap();
    let a = &hello["requestContext"]["authorizer"];
    assert_eq!(a["principalId"], "user-7");
    assert_eq!(a["tenant"], "t1");
    assert_eq!(a["vip"], true);

    let res = client()
        .get(gw.url("/v1pets/2?x=1"))
        .header("authorization", "allow-get-pets")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ev = calls_to(&fake, "authz").pop().unwrap();
    assert_eq!(ev["type"], "REQUEST");
    assert!(
        ev.get("version").is_none(),
        "REST request events carry no version"
    );
    assert!(
        ev["methodArn"]
            .as_str()
            .unwrap()
            .ends_with("/dev/GET/v1pets/2")
    );
    assert_eq!(ev["queryStringParameters"]["x"], "1");
    assert_eq!(ev["requestContext"]["resourcePath"], "/v1pets/{id}");
    let _: aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest =
        serde_json::from_value(ev).unwrap();
    // A cached REST token policy still refuses an ARN it does not cover.
    let res = client()
        .get(gw.url("/pets/1"))
        .header("authorization", "deny")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

/// The authorizer runs on the `local` backend too: a Python `awslambdaric`
/// function started by the gateway, cached like any other.
#[tokio::test]
async fn authorizer_on_the_local_backend() {
    let handler = r#"
import json

calls = 0

def authorize(event, context):
    global calls
    calls += 1
    user = event["headers"].get("x-user", "")
    return {"isAuthorized": user == "alice", "context": {"user": user, "calls": calls}}

def echo(event, context):
    return {"statusCode": 200, "body": json.dumps(event["requestContext"]["authorizer"])}
"#;
    let py = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let gw = crate::common::start_with(
        &format!(
            r#"
[backends.local]
kind = "local"

[functions.authz]
command = [{py:?}, "-m", "awslambdaric", "fns.authorize"]

[functions.echo]
command = [{py:?}, "-m", "awslambdaric", "fns.echo"]

[auth.local]
kind = "lambda"
function = "authz"
response = "simple"
identity_sources = ["$request.header.X-User"]

[[routes]]
method = "GET"
path = "/me"
function = "echo"
auth = "local"
"#
        ),
        &[("fns.py", handler.as_bytes())],
        Default::default(),
    )
    .await;
    for _ in 0..2 {
        let res = client()
            .get(gw.url("/me"))
            .header("x-user", "alice")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let authorizer: Value = res.json().await.unwrap();
        // `calls` stays 1: the second request is answered from the cache.
        assert_eq!(authorizer["lambda"], json!({"user": "alice", "calls": 1}));
    }
    let res = client()
        .get(gw.url("/me"))
        .header("x-user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    gw.stop().await;
}

/// IAM `Condition`s in an authorizer's policy are evaluated for every
/// request, cached or not: source IP, user agent, referer, time, TLS; a
/// condition the gateway cannot evaluate fails closed and is logged.
#[tokio::test]
async fn policy_conditions_are_evaluated_per_request() {
    fn policy(statements: Value) -> Reply {
        Reply::json(json!({
            "principalId": "user-9",
            "policyDocument": {"Version": "2012-10-17", "Statement": statements},
        }))
    }
    let fake = FakeLambda::start(|inv| {
        if inv.function != "authz" {
            return Reply::json(json!({"statusCode": 200, "body": "ok"}));
        }
        let allow = |condition: Value| {
            json!({"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*", "Condition": condition})
        };
        let token = inv.event()["authorizationToken"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match token.as_str() {
            "from-127.0.0.1" => policy(json!([allow(
                json!({"IpAddress": {"aws:SourceIp": ["127.0.0.1/32", "::1"]}})
            )])),
            "no-evil-referer" => policy(json!([
                allow(json!({})),
                {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": "*",
                 "Condition": {"StringLike": {"aws:Referer": "*evil.example*"}}}
            ])),
            "curl-only" => policy(json!([allow(
                json!({"ForAnyValue:StringLike": {"aws:UserAgent": ["curl/*"]}})
            )])),
            "until-2000" => policy(json!([allow(
                json!({"DateLessThan": {"aws:CurrentTime": "2000-01-01T00:00:00Z"}})
            )])),
            "now-and-plain-http" => policy(json!([allow(json!({
                "DateGreaterThan": {"aws:CurrentTime": "2000-01-01T00:00:00Z"},
                "NumericGreaterThan": {"aws:EpochTime": 946684800},
                "Bool": {"aws:SecureTransport": "false"},
                "StringNotEqualsIfExists": {"aws:Referer": "https://evil.example/"}
            }))])),
            "unknown-key" => policy(json!([allow(
                json!({"StringEquals": {"aws:PrincipalTag/team": "blue"}})
            )])),
            "unknown-operator-in-deny" => policy(json!([
                allow(json!({})),
                {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": "*",
                 "Condition": {"StringSoundsLike": {"aws:UserAgent": "curl"}}}
            ])),
            _ => Reply::raw("not json"),
        }
    })
    .await;
    let gw = gateway_on(
        &fake,
        "",
        r#"
[functions.hello]
[functions.authz]

[auth.cond]
kind = "lambda"
function = "authz"
type = "token"
ttl = "300s"

[[routes]]
method = "GET"
path = "/things/{id}"
function = "hello"
auth = "cond"
"#,
    )
    .await;
    let from = |ip: &str| {
        reqwest::Client::builder()
            .no_proxy()
            .local_address(Some(ip.parse().unwrap()))
            .build()
            .unwrap()
    };
    let status = |client: reqwest::Client,
                  token: &'static str,
                  headers: Vec<(&'static str, &'static str)>| {
        let url = gw.url("/things/1");
        async move {
            let mut r = client.get(url).header("authorization", token);
            for (k, v) in headers {
                r = r.header(k, v);
            }
            r.send().await.unwrap().status().as_u16()
        }
    };
    let ua = |v: &'static str| vec![("user-agent", v)];

    // The same cached policy, decided by each request's source address.
    assert_eq!(
        status(from("127.0.0.1"), "from-127.0.0.1", vec![]).await,
        200
    );
    assert_eq!(
        status(from("127.0.0.2"), "from-127.0.0.1", vec![]).await,
        403
    );
    assert_eq!(
        status(from("127.0.0.1"), "from-127.0.0.1", vec![]).await,
        200
    );
    // A conditional Deny applies only when its condition holds.
    assert_eq!(status(client(), "no-evil-referer", vec![]).await, 200);
    assert_eq!(
        status(
            client(),
            "no-evil-referer",
            vec![("referer", "https://evil.example/x")]
        )
        .await,
        403
    );
    assert_eq!(
        status(
            client(),
            "no-evil-referer",
            vec![("referer", "https://good.example/")]
        )
        .await,
        200
    );
    assert_eq!(status(client(), "curl-only", ua("curl/8.5.0")).await, 200);
    assert_eq!(status(client(), "curl-only", ua("Mozilla/5.0")).await, 403);
    assert_eq!(status(client(), "until-2000", vec![]).await, 403);
    assert_eq!(status(client(), "now-and-plain-http", vec![]).await, 200);
    // Cannot be evaluated: an Allow grants nothing, a Deny still denies.
    assert_eq!(status(client(), "unknown-key", vec![]).await, 403);
    assert_eq!(
        status(client(), "unknown-operator-in-deny", vec![]).await,
        403
    );

    // One authorizer call per token: every decision above after the first
    // per token came from the cache, re-evaluated.
    assert_eq!(calls_to(&fake, "authz").len(), 7);
    assert_eq!(calls_to(&fake, "hello").len(), 6);
    let log = gw.process.stderr_lines.lock().unwrap().join("\n");
    assert!(
        log.contains("aws:PrincipalTag/team") && log.contains("StringSoundsLike"),
        "problems are logged:\n{log}"
    );
}
