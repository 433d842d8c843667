//! Proxy responses mapped to HTTP exactly as API Gateway maps them, and
//! every way a response can be refused.

use base64::Engine;
use serde_json::json;

use crate::common::client;
use crate::common::fake_lambda::{FakeLambda, Reply, gateway_on};

const ROUTE: &str = r#"
[functions.f]

[[routes]]
method = "ANY"
path = "/r"
function = "f"

[[routes]]
method = "ANY"
path = "/r1"
function = "f"
payload_version = "1.0"
"#;

async fn gateway_answering(
    reply: Reply,
) -> (FakeLambda, crate::common::fake_lambda::LambdaGateway) {
    let fake = FakeLambda::start(move |_| reply.clone()).await;
    let gw = gateway_on(&fake, "", ROUTE).await;
    (fake, gw)
}

#[tokio::test]
async fn v1_merges_headers_and_multi_value_headers() {
    let (_f, gw) = gateway_answering(Reply::json(json!({
        "statusCode": 201,
        "headers": {"x-single": "s", "x-both": "from-headers", "content-type": "text/plain"},
        "multiValueHeaders": {"x-both": ["m1", "m2"], "set-cookie": ["a=1", "b=2"]},
        "body": "created"
    })))
    .await;
    let res = client().get(gw.url("/r1")).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let h = res.headers();
    assert_eq!(h["x-single"], "s");
    let both: Vec<_> = h
        .get_all("x-both")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        both,
        ["m1", "m2"],
        "multiValueHeaders win for a key in both"
    );
    assert_eq!(h.get_all("set-cookie").iter().count(), 2);
    assert_eq!(res.text().await.unwrap(), "created");
}

#[tokio::test]
async fn v1_defaults_content_type_to_json_and_allows_null_body() {
    let (_f, gw) = gateway_answering(Reply::json(json!({"statusCode": 204, "body": null}))).await;
    let res = client().get(gw.url("/r1")).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn v2_cookies_become_set_cookie_headers() {
    let (_f, gw) = gateway_answering(Reply::json(json!({
        "statusCode": 200,
        "cookies": ["session=abc; HttpOnly", "theme=dark"],
        "headers": {"content-type": "text/html"},
        "body": "<p>hi</p>"
    })))
    .await;
    let res = client().get(gw.url("/r")).send().await.unwrap();
    let cookies: Vec<_> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(cookies, ["session=abc; HttpOnly", "theme=dark"]);
    assert_eq!(res.headers()["content-type"], "text/html");
}

#[tokio::test]
async fn base64_bodies_go_out_as_bytes() {
    let bytes: Vec<u8> = (0u8..=255).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let (_f, gw) = gateway_answering(Reply::json(json!({
        "statusCode": 200,
        "headers": {"content-type": "application/octet-stream"},
        "body": b64,
        "isBase64Encoded": true
    })))
    .await;
    for path in ["/r", "/r1"] {
        let res = client().get(gw.url(path)).send().await.unwrap();
        assert_eq!(res.headers()["content-length"], "256");
        assert_eq!(res.bytes().await.unwrap().to_vec(), bytes, "{path}");
    }
}

#[tokio::test]
async fn v2_infers_a_200_json_response_from_a_bare_value() {
    let (_f, gw) = gateway_answering(Reply::json(json!({"items": [1, 2]}))).await;
    let res = client().get(gw.url("/r")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.text().await.unwrap(), r#"{"items":[1,2]}"#);

    let (_f, gw) = gateway_answering(Reply::raw("\"just a string\"")).await;
    let res = client().get(gw.url("/r")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "\"just a string\"");
}

#[tokio::test]
async fn malformed_responses_are_502() {
    let cases = [
        ("/r1", Reply::raw("not json")),
        ("/r1", Reply::json(json!({"body": "no status"}))),
        ("/r1", Reply::json(json!(["an", "array"]))),
        (
            "/r1",
            Reply::json(json!({"statusCode": 200, "body": {"not": "a string"}})),
        ),
        ("/r1", Reply::json(json!({"statusCode": 999}))),
        (
            "/r1",
            Reply::json(json!({"statusCode": 200, "headers": {"x": ["a"]}})),
        ),
        (
            "/r1",
            Reply::json(json!({"statusCode": 200, "body": "%%%", "isBase64Encoded": true})),
        ),
        ("/r", Reply::raw("{not json")),
        ("/r", Reply::json(json!({"statusCode": "abc"}))),
        (
            "/r",
            Reply::json(json!({"statusCode": 200, "cookies": "a=1"})),
        ),
    ];
    for (i, (path, reply)) in cases.into_iter().enumerate() {
        let (_f, gw) = gateway_answering(reply).await;
        let res = client().get(gw.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 502, "case {i}");
        assert_eq!(
            res.text().await.unwrap(),
            r#"{"message":"Internal server error"}"#,
            "case {i}"
        );
    }
}

#[tokio::test]
async fn response_over_six_megabytes_is_502() {
    let big = "x".repeat(6 * 1024 * 1024 + 10);
    let (_f, gw) = gateway_answering(Reply::json(json!({"statusCode": 200, "body": big}))).await;
    let res = client().get(gw.url("/r")).send().await.unwrap();
    assert_eq!(res.status(), 502);
}

#[tokio::test]
async fn request_body_over_the_limit_is_413_and_never_invoked() {
    let fake = FakeLambda::start(|_| Reply::json(json!({"statusCode": 200}))).await;
    let gw = gateway_on(&fake, "limits = { max_body = \"1KB\" }", ROUTE).await;
    let res = client()
        .post(gw.url("/r"))
        .body(vec![b'a'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"message":"Request Entity Too Large"}"#
    );
    // Chunked bodies (no Content-Length) are capped while streaming.
    let stream = futures::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'b'; 512]))),
    );
    let res = client()
        .post(gw.url("/r"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn event_over_the_function_payload_limit_is_413() {
    let fake = FakeLambda::start(|_| Reply::json(json!({"statusCode": 200}))).await;
    let gw = gateway_on(&fake, "limits = { max_function_payload = \"4KB\" }", ROUTE).await;
    let res = client()
        .post(gw.url("/r"))
        .header("content-type", "text/plain")
        .body("y".repeat(5000))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn headers_over_the_limit_are_431() {
    let fake = FakeLambda::start(|_| Reply::json(json!({"statusCode": 200}))).await;
    let gw = gateway_on(&fake, "", ROUTE).await;
    let res = client()
        .get(gw.url("/r"))
        .header("x-big", "z".repeat(11_000))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 431);
    assert!(fake.calls().is_empty());
    let res = client()
        .get(gw.url("/r"))
        .header("x-ok", "z".repeat(9_000))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
