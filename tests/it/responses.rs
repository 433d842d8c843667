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

/// Sends one raw request with `Connection: close` and returns every byte
/// the gateway wrote before closing.
async fn raw_get(url: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the gateway closes the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn an_interim_status_from_a_function_is_a_bad_response_not_the_answer() {
    for status in [json!(100), json!(101), json!(103), json!("199")] {
        let (_f, gw) = gateway_answering(Reply::json(json!({
            "statusCode": status,
            "body": "interim?"
        })))
        .await;
        for path in ["/r", "/r1"] {
            let raw = raw_get(&gw.url(""), path).await;
            assert!(
                raw.starts_with("HTTP/1.1 502 "),
                "statusCode {status} on {path}: {raw}"
            );
            assert_eq!(
                raw.matches("HTTP/1.1 ").count(),
                1,
                "exactly one response on the connection: {raw}"
            );
            assert!(
                raw.ends_with(r#"{"message":"Internal server error"}"#),
                "{raw}"
            );
        }
    }
}

#[tokio::test]
async fn hop_by_hop_headers_from_a_function_never_reach_the_client() {
    let hop = json!({
        "upgrade": "websocket",
        "keep-alive": "timeout=1",
        "te": "trailers",
        "trailer": "x-t",
        "proxy-connection": "keep-alive",
        "transfer-encoding": "chunked",
        "x-end-to-end": "kept"
    });
    let (_f, gw) = gateway_answering(Reply::json(json!({
        "statusCode": 200,
        "headers": hop,
        "multiValueHeaders": {"upgrade": ["h2c"], "x-multi": ["a", "b"]},
        "body": "ok"
    })))
    .await;
    for path in ["/r", "/r1"] {
        let raw = raw_get(&gw.url(""), path).await;
        let (head, body) = raw.split_once("\r\n\r\n").expect("a whole response");
        assert!(head.starts_with("HTTP/1.1 200 "), "{raw}");
        assert_eq!(body, "ok", "{raw}");
        let names: Vec<String> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        for dropped in [
            "upgrade",
            "keep-alive",
            "te",
            "trailer",
            "proxy-connection",
            "transfer-encoding",
        ] {
            assert!(
                !names.iter().any(|n| n == dropped),
                "{dropped} reached the client on {path}: {head}"
            );
        }
        assert!(names.iter().any(|n| n == "x-end-to-end"), "{head}");
        assert!(names.iter().any(|n| n == "content-length"), "{head}");
    }
}

#[tokio::test]
async fn methods_api_gateway_does_not_serve_never_reach_a_function() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (fake, gw) = gateway_answering(Reply::json(json!({"statusCode": 200, "body": "ok"}))).await;
    let addr = gw
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    for method in ["TRACE", "CONNECT", "PROPFIND", "FOO"] {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let target = if method == "CONNECT" {
            addr.clone()
        } else {
            "/r".into()
        };
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nCookie: secret=1\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .expect("the gateway closes the connection")
            .unwrap();
        let raw = String::from_utf8_lossy(&out);
        assert!(raw.starts_with("HTTP/1.1 404 "), "{method}: {raw}");
        assert!(
            raw.ends_with(r#"{"message":"Not Found"}"#),
            "{method}: {raw}"
        );
        assert!(
            !raw.contains("secret"),
            "{method} reflected the request: {raw}"
        );
    }
    assert!(fake.calls().is_empty(), "no method reached the function");
    // The methods API Gateway routes still do.
    let res = client().get(gw.url("/r")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(fake.calls().len(), 1);
}
