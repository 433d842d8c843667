//! `[invoke_api] auth`: the Lambda Invoke API verifies SigV4 (service
//! `lambda`) against the sigv4 authorizer's keys. boto3's `lambda` client
//! with the right key works; a wrong secret, an unknown key, no signature, a
//! body changed after signing and a skewed clock are refused the way Lambda
//! refuses them, before the function runs; another gateway's `lambda`
//! backend pointed at this one with the credentials works.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::python_json;
use crate::common::fake_lambda::{FakeLambda, LambdaGateway, Reply, gateway_on};
use crate::common::{client, spawn_binary};

const KEY: &str = "AKIDINVOKEEXAMPLE001";
const SECRET: &str = "invoke/secret+key/0123456789abcdefghijkl";
const REGION: &str = "eu-west-1";

/// Gateway B: `[invoke_api]` with `auth = "iam"`; its functions run on a
/// `lambda` backend answered by `fake`.
async fn signed_invoke_api() -> (FakeLambda, LambdaGateway, String) {
    let fake = FakeLambda::start(|inv| {
        let event: Value = serde_json::from_slice(&inv.payload).unwrap_or(Value::Null);
        Reply::json(json!({"echo": event, "function": inv.function}))
    })
    .await;
    let creds_dir = tempfile::tempdir().unwrap();
    let creds = creds_dir.path().join("credentials.toml");
    std::fs::write(
        &creds,
        format!(
            "[[keys]]\naccess_key_id = \"{KEY}\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"111122223333\"\n"
        ),
    )
    .unwrap();
    let gw = gateway_on(
        &fake,
        &format!("region = \"{REGION}\""),
        &format!(
            r#"
[invoke_api]
listen = "127.0.0.1:0"
auth = "iam"

[auth.iam]
kind = "sigv4"
credentials_file = "{}"

[functions.hello]
"#,
            creds.display()
        ),
    )
    .await;
    // The credentials file is read at start-up.
    drop(creds_dir);
    let addr = gw.process.invoke_addr.expect("the Invoke API is announced");
    let stderr = gw.process.stderr_lines.lock().unwrap().join("\n");
    assert!(
        !stderr.contains("not enforced"),
        "no warning when auth is configured:\n{stderr}"
    );
    (fake, gw, format!("http://{addr}"))
}

fn boto3_call(endpoint: &str, key: &str, secret: &str, skew_seconds: i64) -> Value {
    json!({
        "endpoint": endpoint, "region": REGION, "key": key, "secret": secret,
        "function": "hello", "payload": {"n": 1}, "skew_seconds": skew_seconds,
    })
}

// boto3 runs as a blocking child process while the fake function, in this
// process, must keep answering: a runtime with more than one thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_with_the_configured_key_works_and_bad_signatures_are_refused() {
    let (fake, _gw, endpoint) = signed_invoke_api().await;
    let results = python_json(
        "invoke_boto3.py",
        &json!([
            boto3_call(&endpoint, KEY, SECRET, 0),
            boto3_call(&endpoint, KEY, "not-the-secret", 0),
            boto3_call(&endpoint, "AKIDUNKNOWNEXAMPLE01", SECRET, 0),
            boto3_call(&endpoint, KEY, SECRET, -600),
            boto3_call(&endpoint, KEY, SECRET, 600),
        ]),
    );
    let r = results.as_array().unwrap();
    assert_eq!(r[0]["status"], 200, "{}", r[0]);
    assert_eq!(r[0]["payload"]["echo"], json!({"n": 1}), "{}", r[0]);
    assert_eq!(r[1]["error_code"], "InvalidSignatureException", "{}", r[1]);
    assert_eq!(r[1]["http_status"], 403);
    assert!(
        r[1]["message"]
            .as_str()
            .unwrap()
            .starts_with("The request signature we calculated does not match"),
        "{}",
        r[1]
    );
    assert_eq!(
        r[2]["error_code"], "UnrecognizedClientException",
        "{}",
        r[2]
    );
    assert_eq!(r[2]["http_status"], 403);
    assert_eq!(
        r[2]["message"],
        "The security token included in the request is invalid."
    );
    // A clock ten minutes behind, then ten minutes ahead.
    assert_eq!(r[3]["error_code"], "InvalidSignatureException", "{}", r[3]);
    assert!(
        r[3]["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired: "),
        "{}",
        r[3]
    );
    assert_eq!(r[4]["error_code"], "InvalidSignatureException", "{}", r[4]);
    assert!(
        r[4]["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature not yet current: "),
        "{}",
        r[4]
    );
    // Only the signed call reached the function.
    assert_eq!(fake.calls().len(), 1);
}

fn sign(jobs: &[Value]) -> Vec<Value> {
    python_json("sign_botocore.py", &json!(jobs))
        .as_array()
        .unwrap()
        .clone()
}

async fn post(signed: &Value, body: &str) -> (u16, String, Value) {
    let mut req = client().post(signed["url"].as_str().unwrap());
    for (k, v) in signed["headers"].as_object().unwrap() {
        if k.eq_ignore_ascii_case("host") || k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        req = req.header(k, v.as_str().unwrap());
    }
    let res = req.body(body.to_string()).send().await.unwrap();
    let status = res.status().as_u16();
    let kind = res
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, kind, body)
}

#[tokio::test]
async fn unsigned_tampered_and_presigned_calls() {
    let (fake, _gw, endpoint) = signed_invoke_api().await;
    let url = format!("{endpoint}/2015-03-31/functions/hello/invocations");

    // No signature at all.
    let res = client().post(&url).body("{}").send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.headers()["x-amzn-errortype"],
        "MissingAuthenticationTokenException"
    );
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"message": "Missing Authentication Token"})
    );

    let body = r#"{"n":2}"#;
    let job = |extra: Value| {
        let mut j = json!({
            "method": "POST", "url": url, "body": body, "headers": {},
            "key": KEY, "secret": SECRET, "region": REGION, "service": "lambda",
        });
        j.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        j
    };
    let signed = sign(&[
        job(json!({})),
        job(json!({"service": "execute-api"})),
        job(json!({"region": "us-west-2"})),
        job(json!({"presign": true, "expires": 60})),
    ]);
    // Signed as sent: the function runs.
    let (status, _, doc) = post(&signed[0], body).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["echo"], json!({"n": 2}));
    // The body changed after signing.
    let (status, kind, doc) = post(&signed[0], r#"{"n":3}"#).await;
    assert_eq!((status, kind.as_str()), (403, "InvalidSignatureException"));
    assert!(doc["message"].as_str().unwrap().contains("does not match"));
    // Signed for API Gateway, or for another region.
    let (status, kind, doc) = post(&signed[1], body).await;
    assert_eq!((status, kind.as_str()), (403, "InvalidSignatureException"));
    assert_eq!(
        doc["message"],
        "Credential should be scoped to correct service: 'lambda'. "
    );
    let (status, kind, _) = post(&signed[2], body).await;
    assert_eq!((status, kind.as_str()), (403, "InvalidSignatureException"));
    // The presigned form works too (botocore moves a JSON body into the
    // query and signs the empty body).
    let (status, _, doc) = post(&signed[3], "").await;
    assert_eq!(status, 200, "{doc}");
    // An Authorization header without its parts.
    let res = client()
        .post(&url)
        .header("authorization", "AWS4-HMAC-SHA256 Credential=x")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.headers()["x-amzn-errortype"],
        "IncompleteSignatureException"
    );
    assert_eq!(
        fake.calls().len(),
        2,
        "refused calls never reach the function"
    );
}

/// Gateway A's `lambda` backend calls gateway B's Invoke API with B's
/// credentials (aws-sdk-lambda signs); with the wrong secret nothing runs.
#[tokio::test]
async fn another_gateways_lambda_backend_signs_its_calls() {
    let (fake, _gw_b, endpoint) = signed_invoke_api().await;
    let start_a = |secret: &str| {
        let dir = tempfile::tempdir().unwrap();
        let routes = dir.path().join("routes.toml");
        std::fs::write(
            &routes,
            format!(
                r#"
[stages.dev]
backend = "b"

[backends.b]
kind = "lambda"
endpoint_url = "{endpoint}"

[functions.hello]

[[routes]]
method = "POST"
path = "/hello"
function = "hello"
"#
            ),
        )
        .unwrap();
        let env: HashMap<String, String> = [
            ("AWS_ACCESS_KEY_ID", KEY),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([
            (
                "AWS_CONFIG_FILE".to_string(),
                dir.path().join("none").display().to_string(),
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE".to_string(),
                dir.path().join("none").display().to_string(),
            ),
        ])
        .collect();
        (dir, routes, env)
    };
    let (_dir_a, routes, env) = start_a(SECRET);
    let gw_a = spawn_binary(&routes, &[], &env).await;
    let res = client()
        .post(gw_a.url("/hello"))
        .body("via A")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    // Gateway A's v2 event reached the function through B.
    assert_eq!(doc["echo"]["body"], "via A", "{doc}");
    assert_eq!(fake.calls().len(), 1);
    drop(gw_a);

    let (_dir_bad, routes, env) = start_a("wrong-secret");
    let gw_bad = spawn_binary(&routes, &[], &env).await;
    let res = client()
        .post(gw_bad.url("/hello"))
        .body("via A")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_server_error(), "{}", res.status());
    assert_eq!(
        fake.calls().len(),
        1,
        "a refused call never reaches the function"
    );
}

#[test]
fn invoke_api_auth_must_be_a_sigv4_authorizer() {
    let (_dir, path) = crate::common::write_config(
        r#"
[invoke_api]
listen = "127.0.0.1:0"
auth = "users"

[auth.users]
kind = "jwt"
jwks_url = "http://127.0.0.1:9/keys"
"#,
        &[],
    );
    let Err(err) = lambdagate::config::load(&path) else {
        panic!("a jwt authorizer cannot guard the Invoke API");
    };
    let err = err.to_string();
    assert!(
        err.contains("routes.toml:4:8")
            && err.contains("must name a `kind = \"sigv4\"` authorizer"),
        "{err}"
    );
}
