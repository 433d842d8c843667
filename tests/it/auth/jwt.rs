//! `kind = "jwt"`: tokens minted by PyJWT (RSA, EC, HMAC keys), keys served
//! from a JWKS endpoint (and its OIDC discovery document) this test starts.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get as route_get;
use serde_json::{Value, json};

use super::python_json;
use crate::common::fake_lambda::{FakeLambda, LambdaGateway, Reply, gateway_on};
use crate::common::{TestServer, client, serve_router};

const SECRET: &str = "hs256-shared-secret-for-the-auth-tests-0123456789";

#[derive(Default)]
struct JwksState {
    base: Mutex<String>,
    jwks: Mutex<Value>,
    hits: AtomicUsize,
    failing: AtomicBool,
}

/// The issuer: discovery document, JWKS (switchable, countable), a slow JWKS.
struct Issuer {
    server: TestServer,
    state: Arc<JwksState>,
    tokens: Value,
    minted: Value,
    _secret_dir: tempfile::TempDir,
    secret_file: String,
}

impl Issuer {
    async fn start() -> Self {
        let state = Arc::new(JwksState::default());
        let router = Router::new()
            .route(
                "/.well-known/openid-configuration",
                route_get(|State(s): State<Arc<JwksState>>| async move {
                    let base = s.base.lock().unwrap().clone();
                    axum::Json(json!({"issuer": base, "jwks_uri": format!("{base}/keys")}))
                }),
            )
            .route(
                "/keys",
                route_get(|State(s): State<Arc<JwksState>>| async move {
                    s.hits.fetch_add(1, Ordering::SeqCst);
                    if s.failing.load(Ordering::SeqCst) {
                        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    }
                    axum::Json(s.jwks.lock().unwrap().clone()).into_response()
                }),
            )
            .route(
                "/slow",
                route_get(|| async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    axum::Json(json!({"keys": []}))
                }),
            )
            .with_state(state.clone());
        let server = serve_router(router).await;
        let base = server.url("");
        *state.base.lock().unwrap() = base.clone();
        let minted = python_json("tokens.py", &json!({"issuer": base, "secret": SECRET}));
        *state.jwks.lock().unwrap() = minted["jwks"].clone();
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("jwt-secret");
        std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
        Self {
            server,
            state,
            tokens: minted["tokens"].clone(),
            minted,
            _secret_dir: dir,
            secret_file: secret_file.display().to_string(),
        }
    }

    fn token(&self, name: &str) -> String {
        self.tokens[name]
            .as_str()
            .unwrap_or_else(|| panic!("no token {name}"))
            .to_string()
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    fn routes(&self) -> String {
        let issuer = self.server.url("");
        format!(
            r#"
[auth.users]
kind = "jwt"
issuer = "{issuer}"
audience = ["api"]

[auth.direct]
kind = "jwt"
jwks_url = "{issuer}/keys"
issuer = "{issuer}"
audience = ["api"]
algorithms = ["RS256"]

[auth.shared]
kind = "jwt"
secret_file = "{secret}"
issuer = "{issuer}"
audience = ["api"]
algorithms = ["HS256"]

[auth.nocache]
kind = "jwt"
jwks_url = "{issuer}/keys"
issuer = "{issuer}"
audience = ["api"]
algorithms = ["RS256"]
token_cache = false

[auth.slow]
kind = "jwt"
jwks_url = "{issuer}/slow"
audience = ["api"]

[auth.custom]
kind = "jwt"
issuer = "{issuer}"
audience = ["api"]
identity_sources = ["$request.header.X-Token"]

[functions.hello]

[[routes]]
method = "GET"
path = "/items/{{id}}"
function = "hello"
auth = "users"
scopes = ["items:read"]

[[routes]]
method = "GET"
path = "/v1/items/{{id}}"
function = "hello"
auth = "users"
payload_version = "1.0"

[[routes]]
method = "GET"
path = "/admin"
function = "hello"
auth = "users"
scopes = ["admin"]

[[routes]]
method = "GET"
path = "/direct"
function = "hello"
auth = "direct"

[[routes]]
method = "GET"
path = "/hs"
function = "hello"
auth = "shared"

[[routes]]
method = "GET"
path = "/nocache"
function = "hello"
auth = "nocache"

[[routes]]
method = "GET"
path = "/slow"
function = "hello"
auth = "slow"

[[routes]]
method = "GET"
path = "/custom"
function = "hello"
auth = "custom"
"#,
            secret = self.secret_file
        )
    }
}

async fn echo_fake() -> FakeLambda {
    FakeLambda::start(|inv| {
        Reply::json(json!({
            "statusCode": 200,
            "body": String::from_utf8_lossy(&inv.payload),
        }))
    })
    .await
}

async fn get(gw: &LambdaGateway, path: &str, headers: &[(&str, String)]) -> reqwest::Response {
    let mut req = client().get(gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send().await.unwrap()
}

fn bearer(t: String) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {t}"))]
}

/// Waits (bounded) until the gateway's log has a line satisfying `pred`.
async fn wait_for_log(gw: &LambdaGateway, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = gw.process.stderr_lines.lock().unwrap().clone();
        if lines.iter().any(|l| pred(l)) || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn valid_tokens_reach_the_function_with_claims_and_scopes() {
    let issuer = Issuer::start().await;
    let fake = echo_fake().await;
    let gw = gateway_on(&fake, "", &issuer.routes()).await;

    // RS256 via OIDC discovery, payload 2.0.
    let res = get(&gw, "/items/1", &bearer(issuer.token("rs256"))).await;
    assert_eq!(res.status(), 200);
    let event = fake.last().event();
    let jwt = &event["requestContext"]["authorizer"]["jwt"];
    assert_eq!(jwt["claims"]["sub"], "user-1");
    assert_eq!(jwt["claims"]["iss"], issuer.server.url(""));
    // AWS hands every claim over as a string.
    assert_eq!(jwt["claims"]["tenant"], "42");
    assert_eq!(jwt["claims"]["groups"], "[admins staff]");
    assert_eq!(jwt["scopes"], json!(["items:read", "items:write"]));
    let typed: aws_lambda_events::apigw::ApiGatewayV2httpRequest =
        serde_json::from_value(event.clone()).expect("aws_lambda_events reads the v2 event");
    let claims = &typed
        .request_context
        .authorizer
        .unwrap()
        .jwt
        .unwrap()
        .claims;
    assert_eq!(claims.get("sub").map(String::as_str), Some("user-1"));

    // Payload 1.0: requestContext.authorizer.claims.
    let res = get(&gw, "/v1/items/1", &bearer(issuer.token("rs256"))).await;
    assert_eq!(res.status(), 200);
    let event = fake.last().event();
    assert_eq!(
        event["requestContext"]["authorizer"]["claims"]["sub"],
        "user-1"
    );
    assert_eq!(
        event["requestContext"]["authorizer"]["scopes"],
        json!(["items:read", "items:write"])
    );
    let _: aws_lambda_events::apigw::ApiGatewayProxyRequest =
        serde_json::from_value(event).expect("aws_lambda_events reads the v1 event");

    // EC keys, PSS, client_id instead of aud, scp instead of scope, a bare
    // token without "Bearer", HS256 with the configured secret, a custom header.
    for (path, headers, sub) in [
        ("/items/2", bearer(issuer.token("es256")), "ec-user"),
        ("/items/3", bearer(issuer.token("ps256")), "user-1"),
        ("/items/4", bearer(issuer.token("client_id")), "user-1"),
        ("/items/5", bearer(issuer.token("scp_array")), "user-1"),
        (
            "/items/6",
            vec![("authorization", issuer.token("rs256_2"))],
            "user-2",
        ),
        ("/hs", bearer(issuer.token("hs256")), "hs-user"),
        ("/direct", bearer(issuer.token("rs256")), "user-1"),
        (
            "/custom",
            vec![("x-token", issuer.token("rs256"))],
            "user-1",
        ),
    ] {
        let res = get(&gw, path, &headers).await;
        assert_eq!(res.status(), 200, "{path} {headers:?}");
        let event = fake.last().event();
        assert_eq!(
            event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"], sub,
            "{path}"
        );
    }
    // Keys were fetched once for all of that (discovery authorizers share nothing
    // but each fetches once: users, direct, custom).
    assert!(issuer.hits() <= 3, "JWKS fetched {} times", issuer.hits());

    // A repeated token is served from the verified-token cache.
    let lines = wait_for_log(&gw, |l| l.contains("(cached)")).await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("lambdagate::auth") && l.contains("(cached)")),
        "no cached decision logged:\n{}",
        lines.join("\n")
    );
}

#[tokio::test]
async fn every_bad_token_is_401_with_the_reason_and_never_reaches_the_function() {
    let issuer = Issuer::start().await;
    let fake = echo_fake().await;
    let gw = gateway_on(&fake, "", &issuer.routes()).await;
    let t = |n: &str| issuer.token(n);
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        ("/items/1", vec![], "Bearer"),
        ("/items/1", bearer(t("alg_none")), "alg none"),
        (
            "/items/1",
            bearer(t("hs_with_rsa_public_key")),
            "algorithm HS256 is not accepted",
        ),
        (
            "/hs",
            bearer(t("hs_with_rsa_public_key")),
            "signature is invalid",
        ),
        ("/hs", bearer(t("rs256")), "algorithm RS256 is not accepted"),
        ("/items/1", bearer(t("expired")), "the token has expired"),
        ("/items/1", bearer(t("not_yet_valid")), "not valid yet"),
        ("/items/1", bearer(t("wrong_issuer")), "valid issuer"),
        ("/items/1", bearer(t("wrong_audience")), "valid audience"),
        ("/items/1", bearer(t("unknown_kid")), "kid is not in"),
        (
            "/items/1",
            bearer(t("bad_signature")),
            "signature is invalid",
        ),
        (
            "/items/1",
            bearer(t("stranger_key")),
            "signature is invalid",
        ),
        ("/items/1", bearer(t("no_exp")), "no exp claim"),
        ("/items/1", bearer(t("future_iat")), "issued in the future"),
        ("/hs", bearer(t("hs_wrong_secret")), "signature is invalid"),
        ("/items/1", bearer(t("malformed")), "malformed"),
        (
            "/items/1",
            vec![("authorization", "Basic dXNlcjpwYXNz".into())],
            "malformed",
        ),
        (
            "/direct",
            bearer(t("es256")),
            "algorithm ES256 is not accepted",
        ),
        // The token in the wrong place.
        ("/items/1", vec![("x-token", t("rs256"))], "Bearer"),
        ("/custom", bearer(t("rs256")), "Bearer"),
    ];
    for (path, headers, why) in &cases {
        let res = get(&gw, path, headers).await;
        assert_eq!(res.status(), 401, "{path} {headers:?}");
        let www = res
            .headers()
            .get("www-authenticate")
            .unwrap_or_else(|| panic!("no WWW-Authenticate for {path} {headers:?}"))
            .to_str()
            .unwrap()
            .to_string();
        assert!(www.contains(why), "{path}: {www:?} does not say {why:?}");
        assert_eq!(res.text().await.unwrap(), r#"{"message":"Unauthorized"}"#);
    }
    // In the query string is not in the Authorization header either.
    let res = client()
        .get(gw.url(&format!("/items/1?access_token={}", t("rs256"))))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    assert!(
        fake.calls().is_empty(),
        "a refused request reached the function"
    );

    // Decisions are logged with route, authorizer and reason; never the token.
    let lines = wait_for_log(&gw, |l| l.contains("the token has expired")).await;
    let auth_lines: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("lambdagate::auth"))
        .collect();
    assert!(
        auth_lines
            .iter()
            .any(|l| l.contains("the token has expired")
                && l.contains("users")
                && l.contains("GET /items/{id}")),
        "no decision line with route, authorizer and reason:\n{}",
        lines.join("\n")
    );
    for name in ["expired", "rs256", "bad_signature", "hs_wrong_secret"] {
        let tok = t(name);
        let sig = tok.rsplit('.').next().unwrap();
        assert!(
            !lines
                .iter()
                .any(|l| l.contains(&tok) || (sig.len() > 10 && l.contains(sig))),
            "the log contains the {name} token"
        );
    }
}

#[tokio::test]
async fn a_cached_token_vouches_only_for_itself() {
    let issuer = Issuer::start().await;
    let fake = echo_fake().await;
    let gw = gateway_on(&fake, "", &issuer.routes()).await;
    let good = issuer.token("rs256");
    for _ in 0..2 {
        assert_eq!(
            get(&gw, "/items/1", &bearer(good.clone())).await.status(),
            200
        );
    }
    // The same header and claims under another signature, and the cached
    // token with a byte more or less, are checked in full.
    let (message, _) = good.rsplit_once('.').unwrap();
    let mut longer = good.clone();
    longer.push('A');
    for token in [
        issuer.token("bad_signature"),
        longer,
        good[..good.len() - 1].to_string(),
        format!("{message}."),
    ] {
        assert!(token.starts_with(message));
        let res = get(&gw, "/items/1", &bearer(token.clone())).await;
        assert_eq!(res.status(), 401, "{token}");
        let www = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(www.contains("invalid_token"), "{www:?}");
    }
    assert_eq!(get(&gw, "/items/1", &bearer(good)).await.status(), 200);
    assert_eq!(fake.calls().len(), 3);
}

#[tokio::test]
async fn tokens_read_the_same_from_the_cache_and_without_it() {
    let issuer = Issuer::start().await;
    let fake = echo_fake().await;
    let gw = gateway_on(&fake, "", &issuer.routes()).await;
    let good = issuer.token("rs256");
    let mut allowed = 0;
    // `/direct` caches verified tokens (the first request fetches the keys
    // and verifies, the rest are cache hits); `/nocache` verifies each.
    for path in ["/direct", "/nocache"] {
        for header in [
            format!("Bearer {good}"),
            format!("bearer   {good}"),
            format!("  BEARER {good}\t"),
            good.clone(),
            format!("\t{good} "),
        ] {
            let res = get(&gw, path, &[("authorization", header.clone())]).await;
            assert_eq!(res.status(), 200, "{path} {header:?}");
            allowed += 1;
        }
        // Twice in one request, the values are joined: no such token.
        let res = client()
            .get(gw.url(path))
            .header("authorization", format!("Bearer {good}"))
            .header("authorization", format!("Bearer {good}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{path}");
        // The good token and a byte that is not text: no token at all.
        let mut raw = format!("Bearer {good}").into_bytes();
        raw.push(0xff);
        let res = client()
            .get(gw.url(path))
            .header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(&raw).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{path}");
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        // A bad signature after good tokens is still checked in full.
        let res = get(&gw, path, &bearer(issuer.token("bad_signature"))).await;
        assert_eq!(res.status(), 401, "{path}");
    }
    assert_eq!(fake.calls().len(), allowed);
}

#[tokio::test]
async fn missing_scopes_are_403() {
    let issuer = Issuer::start().await;
    let fake = echo_fake().await;
    let gw = gateway_on(&fake, "", &issuer.routes()).await;
    let res = get(&gw, "/items/1", &bearer(issuer.token("no_scope"))).await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.text().await.unwrap(), r#"{"message":"Forbidden"}"#);
    let res = get(&gw, "/admin", &bearer(issuer.token("rs256"))).await;
    assert_eq!(res.status(), 403);
    assert!(fake.calls().is_empty());
    // The same token is fine where its scopes suffice.
    let res = get(&gw, "/items/1", &bearer(issuer.token("rs256"))).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn jwks_rotation_unknown_kid_flood_and_issuer_down() {
    let issuer = Issuer::start().await;
    let fake = echo_fake().await;
    let gw = gateway_on(&fake, "", &issuer.routes()).await;

    assert_eq!(
        get(&gw, "/direct", &bearer(issuer.token("rs256")))
            .await
            .status(),
        200
    );
    assert_eq!(
        get(&gw, "/direct", &bearer(issuer.token("rs256_2")))
            .await
            .status(),
        200
    );
    assert_eq!(issuer.hits(), 1, "keys are cached");

    // The issuer rotates: a token with the new kid triggers one refresh.
    *issuer.state.jwks.lock().unwrap() = issuer.minted["jwks_rotated"].clone();
    assert_eq!(
        get(&gw, "/direct", &bearer(issuer.token("rotated")))
            .await
            .status(),
        200
    );
    assert_eq!(issuer.hits(), 2);

    // A flood of bogus kids does not hammer the issuer.
    for b in issuer.minted["bogus"].as_array().unwrap() {
        let res = get(&gw, "/direct", &bearer(b.as_str().unwrap().to_string())).await;
        assert_eq!(res.status(), 401);
    }
    assert_eq!(issuer.hits(), 2, "unknown-kid refreshes are rate-limited");

    // Issuer down: a fresh gateway fetches once, then the issuer fails; the
    // refresh an unknown kid triggers fails, and cached keys keep working.
    let gw2 = gateway_on(&fake, "", &issuer.routes()).await;
    assert_eq!(
        get(&gw2, "/direct", &bearer(issuer.token("rs256")))
            .await
            .status(),
        200
    );
    let before = issuer.hits();
    issuer.state.failing.store(true, Ordering::SeqCst);
    assert_eq!(
        get(&gw2, "/direct", &bearer(issuer.token("unknown_kid")))
            .await
            .status(),
        401
    );
    assert_eq!(issuer.hits(), before + 1, "the unknown kid tried a refresh");
    assert_eq!(
        get(&gw2, "/direct", &bearer(issuer.token("rs256_2")))
            .await
            .status(),
        200
    );
    assert_eq!(
        get(&gw2, "/direct", &bearer(issuer.token("rotated")))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_hanging_jwks_endpoint_fails_within_the_fetch_timeout() {
    let issuer = Issuer::start().await;
    let fake = echo_fake().await;
    let gw = gateway_on(&fake, "", &issuer.routes()).await;
    let started = Instant::now();
    let res = get(&gw, "/slow", &bearer(issuer.token("rs256"))).await;
    let took = started.elapsed();
    assert_eq!(res.status(), 401);
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(
        took >= Duration::from_millis(1400),
        "took {took:?}: no timeout happened?"
    );
    let www = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(www.contains("could not be fetched"), "{www}");
    assert!(fake.calls().is_empty());
}
