//! Route matching as API Gateway does it, per flavor, over a socket.

use std::collections::HashMap;

use crate::common::{client, start};

const ROUTES: &str = r#"
[stages.dev]
[stages.prod]

[[routes]]
method = "GET"
path = "/items/{id}"
mock = { status = 200, body = "param" }

[[routes]]
method = "GET"
path = "/items/special"
mock = { status = 200, body = "literal" }

[[routes]]
method = "ANY"
path = "/items/{id}/{proxy+}"
mock = { status = 200, body = "greedy" }

[[routes]]
method = "GET"
path = "/"
mock = { status = 200, body = "root" }
"#;

fn config(flavor: &str, extra: &str) -> String {
    format!("[gateway]\nflavor = \"{flavor}\"\nstage = \"dev\"\n{ROUTES}{extra}")
}

async fn body(url: String) -> (u16, String, HashMap<String, String>) {
    let res = client().get(url).send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    (status, res.text().await.unwrap(), headers)
}

#[tokio::test]
async fn most_specific_template_wins() {
    let gw = start(&config("http", "")).await;
    assert_eq!(body(gw.url("/items/special")).await.1, "literal");
    assert_eq!(body(gw.url("/items/7")).await.1, "param");
    assert_eq!(body(gw.url("/items/7/a/b")).await.1, "greedy");
    assert_eq!(body(gw.url("/")).await.1, "root");
}

#[tokio::test]
async fn http_flavor_unknown_route_and_wrong_method_are_404() {
    let gw = start(&config("http", "")).await;
    let (s, b, h) = body(gw.url("/nothing/here")).await;
    assert_eq!((s, b.as_str()), (404, r#"{"message":"Not Found"}"#));
    assert_eq!(h["content-type"], "application/json");
    assert!(h.contains_key("apigw-requestid"));
    let res = client()
        .delete(gw.url("/items/special"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.text().await.unwrap(), r#"{"message":"Not Found"}"#);
}

#[tokio::test]
async fn rest_flavor_unknown_route_and_wrong_method_are_403_missing_token() {
    let gw = start(&config("rest", "")).await;
    let (s, b, h) = body(gw.url("/nothing")).await;
    assert_eq!(
        (s, b.as_str()),
        (403, r#"{"message":"Missing Authentication Token"}"#)
    );
    assert_eq!(h["x-amzn-errortype"], "MissingAuthenticationTokenException");
    assert!(h.contains_key("x-amzn-requestid"));
    let res = client().post(gw.url("/items/7")).send().await.unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn stage_prefix_is_optional_and_only_for_the_served_stage() {
    let gw = start(&config("http", "")).await;
    assert_eq!(body(gw.url("/dev/items/7")).await.1, "param");
    assert_eq!(body(gw.url("/dev")).await.1, "root");
    assert_eq!(body(gw.url("/prod/items/7")).await.0, 404);
}

#[tokio::test]
async fn serving_another_stage_moves_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(&path, config("http", "")).unwrap();
    let gw = crate::common::spawn_binary(&path, &["--stage", "prod"], &HashMap::new()).await;
    assert_eq!(body(gw.url("/prod/items/7")).await.1, "param");
    assert_eq!(body(gw.url("/dev/items/7")).await.0, 404);
}

#[tokio::test]
async fn default_route_catches_everything_else() {
    let extra = "\n[[routes]]\nmethod = \"ANY\"\npath = \"$default\"\nmock = { status = 200, body = \"default\" }\n";
    let gw = start(&config("http", extra)).await;
    assert_eq!(body(gw.url("/zzz/yyy")).await.1, "default");
    assert_eq!(body(gw.url("/items/7")).await.1, "param");
    let res = client()
        .post(gw.url("/items/special"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "default");
}
