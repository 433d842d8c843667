//! `kind = "sigv4"`: requests signed by botocore (boto3's signer) and by the
//! npm `aws4` package, verified by the gateway; identity in the event;
//! tampering, replays and wrong hosts refused before the function.

use serde_json::{Value, json};

use super::{node_json, python_json};
use crate::common::client;
use crate::common::fake_lambda::{FakeLambda, LambdaGateway, Reply, gateway_on};

const KEY: &str = "AKIDALICEEXAMPLE0001";
const SECRET: &str = "alice/secret+key/0123456789abcdefghijklmn";
const TEMP_KEY: &str = "ASIATEMPEXAMPLE00002";
const TEMP_SECRET: &str = "temp-secret-0123456789abcdefghijklmnopqr";
const TEMP_TOKEN: &str = "FwoGZXIvYXdzEtemporary//session+token==";

fn credentials_file(dir: &std::path::Path) -> String {
    let path = dir.join("credentials.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[keys]]
access_key_id = "{KEY}"
secret_access_key = "{SECRET}"
account_id = "111122223333"
user_arn = "arn:aws:iam::111122223333:user/alice"
user_id = "AIDAALICE"

[[keys]]
access_key_id = "{TEMP_KEY}"
secret_access_key = "{TEMP_SECRET}"
session_token = "{TEMP_TOKEN}"
account_id = "111122223333"
user_arn = "arn:aws:sts::111122223333:assumed-role/ci/job"
"#
        ),
    )
    .unwrap();
    path.display().to_string()
}

async fn setup() -> (FakeLambda, LambdaGateway, tempfile::TempDir) {
    let fake = FakeLambda::start(|inv| {
        Reply::json(json!({"statusCode": 200, "body": String::from_utf8_lossy(&inv.payload)}))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let creds = credentials_file(dir.path());
    let gw = gateway_on(
        &fake,
        r#"region = "eu-west-1""#,
        &format!(
            r#"
[functions.hello]

[auth.iam]
kind = "sigv4"
credentials_file = "{creds}"

[[routes]]
method = "ANY"
path = "/items/{{id}}"
function = "hello"
auth = "iam"

[[routes]]
method = "GET"
path = "/v1/items/{{id}}"
function = "hello"
auth = "iam"
payload_version = "1.0"
"#
        ),
    )
    .await;
    (fake, gw, dir)
}

/// A signing job; `signer` is "botocore" or "aws4".
fn job(method: &str, url: &str, body: &str) -> Value {
    json!({
        "method": method, "url": url, "body": body, "headers": {},
        "key": KEY, "secret": SECRET, "region": "eu-west-1", "service": "execute-api",
    })
}

fn sign(signer: &str, jobs: &[Value]) -> Vec<Value> {
    let out = match signer {
        "botocore" => python_json("sign_botocore.py", &json!(jobs)),
        _ => node_json("sign_aws4.js", &json!(jobs)),
    };
    out.as_array().unwrap().clone()
}

/// Sends a signed request as signed, except for what the test changes.
async fn send(method: &str, signed: &Value, body: &str) -> reqwest::Response {
    let mut req = client().request(method.parse().unwrap(), signed["url"].as_str().unwrap());
    for (k, v) in signed["headers"].as_object().unwrap() {
        // The HTTP client writes Host and Content-Length from the URL and body.
        if k.eq_ignore_ascii_case("host") || k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        req = req.header(k, v.as_str().unwrap_or(&v.to_string()));
    }
    req.body(body.to_string()).send().await.unwrap()
}

async fn signed_requests_pass_and_tampered_ones_do_not(signer: &str) {
    let (fake, gw, _dir) = setup().await;
    let url = |p: &str| gw.url(p);
    let mut jobs = vec![
        // 0: GET, header form.
        job("GET", &url("/items/1?color=blue&size=m"), ""),
        // 1: POST with a body.
        job("POST", &url("/items/2"), r#"{"name":"widget"}"#),
        // 2: temporary credentials with a session token.
        json!({"method": "GET", "url": url("/items/3"), "body": "", "headers": {},
               "key": TEMP_KEY, "secret": TEMP_SECRET, "token": TEMP_TOKEN,
               "region": "eu-west-1", "service": "execute-api"}),
        // 3: UNSIGNED-PAYLOAD.
        job("PUT", &url("/items/4"), "12345678"),
        // 4: presigned URL.
        job("GET", &url("/items/5?x=1"), ""),
        // 5: payload 1.0 route.
        job("GET", &url("/v1/items/6"), ""),
        // 6: signed for another host.
        job("GET", "http://api.example.com/items/7", ""),
        // 7: body changed after signing.
        job("POST", &url("/items/8"), r#"{"amount":1}"#),
        // 8: a replay, signed six minutes ago.
        job("GET", &url("/items/9"), ""),
        // 9: the session token's key without its token.
        json!({"method": "GET", "url": url("/items/10"), "body": "", "headers": {},
               "key": TEMP_KEY, "secret": TEMP_SECRET,
               "region": "eu-west-1", "service": "execute-api"}),
        // 10: a wrong secret.
        json!({"method": "GET", "url": url("/items/11"), "body": "", "headers": {},
               "key": KEY, "secret": "not-the-secret", "region": "eu-west-1", "service": "execute-api"}),
        // 11: a query parameter changed after signing.
        job("GET", &url("/items/12?amount=1"), ""),
        // 12: the wrong region.
        json!({"method": "GET", "url": url("/items/13"), "body": "", "headers": {},
               "key": KEY, "secret": SECRET, "region": "us-east-1", "service": "execute-api"}),
        // 13: an unknown key.
        json!({"method": "GET", "url": url("/items/14"), "body": "", "headers": {},
               "key": "AKIDNOBODY0000000000", "secret": SECRET, "region": "eu-west-1", "service": "execute-api"}),
        // 14: presigned six minutes ago for 60 s: expired.
        job("GET", &url("/items/15"), ""),
    ];
    jobs[3]["headers"] = json!({"X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"});
    jobs[4]["presign"] = json!(true);
    jobs[4]["expires"] = json!(120);
    jobs[8]["age_seconds"] = json!(360);
    jobs[14]["presign"] = json!(true);
    jobs[14]["age_seconds"] = json!(360);
    let s = sign(signer, &jobs);

    // Allowed.
    let res = send("GET", &s[0], "").await;
    assert_eq!(
        res.status(),
        200,
        "{signer} GET: {}",
        res.text().await.unwrap()
    );
    let ev = fake.last().event();
    let iam = &ev["requestContext"]["authorizer"]["iam"];
    assert_eq!(iam["accessKey"], KEY);
    assert_eq!(iam["accountId"], "111122223333");
    assert_eq!(iam["userArn"], "arn:aws:iam::111122223333:user/alice");
    assert_eq!(iam["userId"], "AIDAALICE");
    let _: aws_lambda_events::apigw::ApiGatewayV2httpRequest = serde_json::from_value(ev).unwrap();

    let res = send("POST", &s[1], r#"{"name":"widget"}"#).await;
    assert_eq!(res.status(), 200, "{signer} POST");
    assert_eq!(fake.last().event()["body"], r#"{"name":"widget"}"#);

    let res = send("GET", &s[2], "").await;
    assert_eq!(res.status(), 200, "{signer} session token");
    assert_eq!(
        fake.last().event()["requestContext"]["authorizer"]["iam"]["accessKey"],
        TEMP_KEY
    );

    let res = send("PUT", &s[3], "12345678").await;
    assert_eq!(res.status(), 200, "{signer} UNSIGNED-PAYLOAD");
    // UNSIGNED-PAYLOAD means the body is not covered: a different one (of
    // the same length: aws4 signs Content-Length) passes.
    let res = send("PUT", &s[3], "87654321").await;
    assert_eq!(res.status(), 200, "{signer} UNSIGNED-PAYLOAD, other body");

    let res = send("GET", &s[4], "").await;
    assert_eq!(
        res.status(),
        200,
        "{signer} presigned: {}",
        res.text().await.unwrap()
    );

    let res = send("GET", &s[5], "").await;
    assert_eq!(res.status(), 200, "{signer} v1");
    let ev = fake.last().event();
    let identity = &ev["requestContext"]["identity"];
    assert_eq!(identity["accessKey"], KEY);
    assert_eq!(identity["accountId"], "111122223333");
    assert_eq!(identity["userArn"], "arn:aws:iam::111122223333:user/alice");
    assert_eq!(identity["user"], "AIDAALICE");
    let allowed = fake.calls().len();
    assert_eq!(allowed, 7);

    // Refused, all 403, none reaching the function.
    let host_swapped = {
        let mut v = s[6].clone();
        v["url"] = json!(url("/items/7"));
        v
    };
    let query_changed = {
        let mut v = s[11].clone();
        v["url"] = json!(
            v["url"]
                .as_str()
                .unwrap()
                .replace("amount=1", "amount=1000")
        );
        v
    };
    let unsigned = json!({"url": url("/items/1"), "headers": {}});
    let refused: Vec<(&str, &Value, &str, &str)> = vec![
        (
            "GET",
            &host_swapped,
            "",
            "Host differs from the signed host",
        ),
        (
            "POST",
            &s[7],
            r#"{"amount":1000}"#,
            "body changed after signing",
        ),
        ("GET", &s[8], "", "replay older than 5 minutes"),
        ("GET", &s[9], "", "session key without its token"),
        ("GET", &s[10], "", "wrong secret"),
        ("GET", &query_changed, "", "query changed after signing"),
        ("GET", &s[12], "", "wrong region"),
        ("GET", &s[13], "", "unknown key"),
        ("GET", &s[14], "", "expired presigned URL"),
        ("GET", &unsigned, "", "no signature"),
    ];
    for (method, signed, body, what) in refused {
        let res = send(method, signed, body).await;
        assert_eq!(res.status(), 403, "{signer}: {what}");
        assert_eq!(res.text().await.unwrap(), r#"{"message":"Forbidden"}"#);
    }
    // A wrong session token.
    let mut wrong_token = s[2].clone();
    let h = wrong_token["headers"].as_object_mut().unwrap();
    let token_header = h
        .keys()
        .find(|k| k.eq_ignore_ascii_case("x-amz-security-token"))
        .cloned()
        .expect("the signer sent the session token");
    h.insert(token_header, json!("forged-token"));
    assert_eq!(send("GET", &wrong_token, "").await.status(), 403);

    assert_eq!(
        fake.calls().len(),
        allowed,
        "a refused request reached the function"
    );
}

#[tokio::test]
async fn botocore_signed_requests() {
    signed_requests_pass_and_tampered_ones_do_not("botocore").await;
}

#[tokio::test]
async fn aws4_signed_requests() {
    signed_requests_pass_and_tampered_ones_do_not("aws4").await;
}
