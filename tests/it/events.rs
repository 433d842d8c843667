//! Golden vectors: the events the gateway builds for payload 1.0 and 2.0,
//! field by field, and their round trip through `aws_lambda_events`.

use base64::Engine;
use serde_json::{Value, json};

use crate::common::client;
use crate::common::fake_lambda::{FakeLambda, Reply, gateway_on};

const ITEMS: &str = r#"
[functions.hello]

[[routes]]
method = "POST"
path = "/items/{id}"
function = "hello"

[[routes]]
method = "GET"
path = "/items/{id}"
function = "hello"

[[routes]]
method = "ANY"
path = "/files/{proxy+}"
function = "hello"

[[routes]]
method = "ANY"
path = "/api/myfunc"
function = "hello"
"#;

async fn ok_fake() -> FakeLambda {
    FakeLambda::start(|_| Reply::json(json!({"statusCode": 200, "body": "ok"}))).await
}

fn is_request_time(s: &str) -> bool {
    // 09/Apr/2015:12:34:56 +0000
    let b = s.as_bytes();
    s.len() == 26 && b[2] == b'/' && b[6] == b'/' && b[11] == b':' && s.ends_with(" +0000")
}

#[tokio::test]
async fn payload_v2_event_field_for_field() {
    let fake = ok_fake().await;
    let gw = gateway_on(&fake, "", ITEMS).await;
    let res = client()
        .post(gw.url("/dev/items/42?lang=en&tag=a&tag=b%20c"))
        .header("content-type", "application/json")
        .header("user-agent", "golden/1.0")
        .header("x-multi", "one")
        .header("x-multi", "two")
        .header("cookie", "a=1; b=2")
        .body(r#"{"name":"widget"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let request_id = res.headers()["apigw-requestid"]
        .to_str()
        .unwrap()
        .to_string();
    let e = fake.last().event();
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], "POST /items/{id}");
    assert_eq!(e["rawPath"], "/dev/items/42");
    assert_eq!(e["rawQueryString"], "lang=en&tag=a&tag=b%20c");
    assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
    assert_eq!(e["headers"]["x-multi"], "one,two");
    assert_eq!(e["headers"]["content-type"], "application/json");
    assert!(
        e["headers"].get("cookie").is_none(),
        "cookies move to `cookies`"
    );
    assert_eq!(
        e["queryStringParameters"],
        json!({"lang": "en", "tag": "a,b c"})
    );
    assert_eq!(e["pathParameters"], json!({"id": "42"}));
    assert_eq!(
        e["stageVariables"],
        json!({"alias": "dev", "color": "blue"})
    );
    assert_eq!(e["body"], r#"{"name":"widget"}"#);
    assert_eq!(e["isBase64Encoded"], false);
    let ctx = &e["requestContext"];
    assert_eq!(ctx["routeKey"], "POST /items/{id}");
    assert_eq!(ctx["stage"], "dev");
    assert_eq!(ctx["requestId"], request_id.as_str());
    assert_eq!(ctx["accountId"], "123456789012");
    assert_eq!(ctx["apiId"], "local");
    assert_eq!(ctx["domainName"], gw.process.addr.to_string());
    assert_eq!(ctx["http"]["method"], "POST");
    assert_eq!(ctx["http"]["path"], "/dev/items/42");
    assert_eq!(ctx["http"]["protocol"], "HTTP/1.1");
    assert_eq!(ctx["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(ctx["http"]["userAgent"], "golden/1.0");
    assert!(
        is_request_time(ctx["time"].as_str().unwrap()),
        "{}",
        ctx["time"]
    );
    let epoch = ctx["timeEpoch"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((now - epoch).abs() < 60_000);

    let typed: aws_lambda_events::apigw::ApiGatewayV2httpRequest =
        serde_json::from_value(e.clone()).expect("aws_lambda_events reads the event");
    assert_eq!(typed.route_key.as_deref(), Some("POST /items/{id}"));
    assert_eq!(
        typed.path_parameters.get("id").map(String::as_str),
        Some("42")
    );
}

#[tokio::test]
async fn payload_v1_event_field_for_field() {
    let fake = ok_fake().await;
    let gw = gateway_on(&fake, "flavor = \"rest\"", ITEMS).await;
    let res = client()
        .get(gw.url("/dev/items/42?x=1&x=2&y=%C3%BC"))
        .header("user-agent", "golden/1.0")
        .header("x-multi", "one")
        .header("x-multi", "two")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let request_id = res.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_string();
    let e = fake.last().event();
    assert_eq!(e["resource"], "/items/{id}");
    assert_eq!(e["path"], "/items/42");
    assert_eq!(e["httpMethod"], "GET");
    assert_eq!(
        e["headers"]["x-multi"], "two",
        "single-value map keeps the last"
    );
    assert_eq!(e["multiValueHeaders"]["x-multi"], json!(["one", "two"]));
    assert_eq!(e["queryStringParameters"], json!({"x": "2", "y": "ü"}));
    assert_eq!(
        e["multiValueQueryStringParameters"],
        json!({"x": ["1", "2"], "y": ["ü"]})
    );
    assert_eq!(e["pathParameters"], json!({"id": "42"}));
    assert_eq!(
        e["stageVariables"],
        json!({"alias": "dev", "color": "blue"})
    );
    assert_eq!(e["body"], Value::Null);
    assert_eq!(e["isBase64Encoded"], false);
    let ctx = &e["requestContext"];
    assert_eq!(ctx["resourcePath"], "/items/{id}");
    assert_eq!(ctx["httpMethod"], "GET");
    assert_eq!(ctx["path"], "/dev/items/42");
    assert_eq!(ctx["stage"], "dev");
    assert_eq!(ctx["requestId"], request_id.as_str());
    assert_eq!(ctx["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(ctx["identity"]["userAgent"], "golden/1.0");
    assert_eq!(ctx["protocol"], "HTTP/1.1");
    assert!(is_request_time(ctx["requestTime"].as_str().unwrap()));
    assert!(ctx["requestTimeEpoch"].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(ctx["resourceId"].as_str().unwrap().len(), 6);

    let typed: aws_lambda_events::apigw::ApiGatewayProxyRequest =
        serde_json::from_value(e.clone()).expect("aws_lambda_events reads the event");
    assert_eq!(typed.resource.as_deref(), Some("/items/{id}"));
    assert_eq!(
        typed.multi_value_query_string_parameters.all("x"),
        Some(vec!["1", "2"])
    );
}

#[tokio::test]
async fn binary_bodies_reach_the_function_base64_encoded() {
    let fake = ok_fake().await;
    let gw = gateway_on(
        &fake,
        "flavor = \"rest\"\nbinary_media_types = [\"image/*\"]",
        ITEMS,
    )
    .await;
    let png: Vec<u8> = vec![
        0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0xff, 0x10,
    ];
    client()
        .post(gw.url("/items/1"))
        .header("content-type", "image/png")
        .body(png.clone())
        .send()
        .await
        .unwrap();
    let e = fake.last().event();
    assert_eq!(e["isBase64Encoded"], true);
    let body = base64::engine::general_purpose::STANDARD
        .decode(e["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(body, png);
}

#[tokio::test]
async fn v2_sends_non_text_content_base64_and_text_as_is() {
    let fake = ok_fake().await;
    let gw = gateway_on(&fake, "", ITEMS).await;
    client()
        .post(gw.url("/items/1"))
        .header("content-type", "idk")
        .body("hello")
        .send()
        .await
        .unwrap();
    let e = fake.last().event();
    assert_eq!(e["isBase64Encoded"], true);
    assert_eq!(e["body"], "aGVsbG8=");
    client()
        .post(gw.url("/items/1"))
        .header("content-type", "text/csv")
        .body("a,b")
        .send()
        .await
        .unwrap();
    let e = fake.last().event();
    assert_eq!(e["isBase64Encoded"], false);
    assert_eq!(e["body"], "a,b");
}

#[tokio::test]
async fn greedy_and_encoded_path_parameters_are_decoded() {
    let fake = ok_fake().await;
    let gw = gateway_on(&fake, "", ITEMS).await;
    client()
        .delete(gw.url("/files/docs/J%C3%BCrgen%20M.txt"))
        .send()
        .await
        .unwrap();
    let e = fake.last().event();
    assert_eq!(e["pathParameters"], json!({"proxy": "docs/Jürgen M.txt"}));
    // HTTP APIs hand the function the decoded path, in both places.
    assert_eq!(e["rawPath"], "/files/docs/Jürgen M.txt");
    assert_eq!(
        e["requestContext"]["http"]["path"],
        "/files/docs/Jürgen M.txt"
    );
    assert_eq!(e["routeKey"], "ANY /files/{proxy+}");
    assert_eq!(e["requestContext"]["http"]["method"], "DELETE");
}

/// REST APIs keep the path as the client encoded it (`path`,
/// `requestContext.path`); only the parameters are decoded.
#[tokio::test]
async fn rest_flavor_keeps_the_path_encoded() {
    let fake = ok_fake().await;
    let gw = gateway_on(&fake, "flavor = \"rest\"", ITEMS).await;
    client()
        .delete(gw.url("/dev/files/docs/J%C3%BCrgen%20M.txt"))
        .send()
        .await
        .unwrap();
    let e = fake.last().event();
    assert_eq!(e["pathParameters"], json!({"proxy": "docs/Jürgen M.txt"}));
    assert_eq!(e["path"], "/files/docs/J%C3%BCrgen%20M.txt");
    assert_eq!(
        e["requestContext"]["path"],
        "/dev/files/docs/J%C3%BCrgen%20M.txt"
    );
}

/// Payload 1.0 on an HTTP API: `path` is decoded like `rawPath` is.
#[tokio::test]
async fn http_flavor_payload_v1_path_is_decoded() {
    let fake = ok_fake().await;
    let routes = ITEMS.replace(
        "path = \"/files/{proxy+}\"",
        "path = \"/files/{proxy+}\"\npayload_version = \"1.0\"",
    );
    let gw = gateway_on(&fake, "", &routes).await;
    client().get(gw.url("/files/a%20b")).send().await.unwrap();
    let e = fake.last().event();
    assert_eq!(e["path"], "/files/a b");
    assert_eq!(e["requestContext"]["path"], "/files/a b");
}

/// The seed: a friendly path maps to a function for any method, and the
/// function sees the method, path and query the client sent.
#[tokio::test]
async fn friendly_path_reaches_the_function_with_the_original_request() {
    let fake = ok_fake().await;
    let gw = gateway_on(&fake, "", ITEMS).await;
    for method in ["GET", "PUT", "PATCH", "DELETE", "POST"] {
        let res = client()
            .request(method.parse().unwrap(), gw.url("/api/myfunc?q=1"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{method}");
        let e = fake.last().event();
        assert_eq!(e["requestContext"]["http"]["method"], method);
        assert_eq!(e["rawPath"], "/api/myfunc");
        assert_eq!(e["rawQueryString"], "q=1");
    }
}
