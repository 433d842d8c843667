//! CORS: preflights answered by the gateway for every served path (no
//! OPTIONS route needed), headers on actual responses, config checks.

use crate::common::{client, start};

const ROUTES: &str = r#"
[cors]
allow_origins = ["https://app.example.com"]
allow_methods = ["GET", "POST"]
allow_headers = ["content-type", "authorization"]
expose_headers = ["x-total"]
allow_credentials = true
max_age = "600s"

[[routes]]
method = "POST"
path = "/items/{id}"
mock = { status = 201, body = "made", headers = { x-total = "1" } }

[[routes]]
method = "OPTIONS"
path = "/plain"
mock = { status = 204, headers = { allow = "GET" } }
"#;

#[tokio::test]
async fn preflight_is_answered_for_served_paths() {
    let gw = start(ROUTES).await;
    let c = client();
    let r = c
        .request(reqwest::Method::OPTIONS, gw.url("/items/9"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-methods"], "GET,POST");
    assert_eq!(
        h["access-control-allow-headers"],
        "content-type,authorization"
    );
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-max-age"], "600");

    // A path no route serves is still unknown.
    let r = c
        .request(reqwest::Method::OPTIONS, gw.url("/nothing"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Another origin gets no allow-origin.
    let r = c
        .request(reqwest::Method::OPTIONS, gw.url("/items/9"))
        .header("origin", "https://evil.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn actual_responses_carry_cors_headers_and_plain_options_reach_the_route() {
    let gw = start(ROUTES).await;
    let c = client();
    let r = c
        .post(gw.url("/items/9"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(r.headers()["access-control-expose-headers"], "x-total");
    assert_eq!(r.text().await.unwrap(), "made");

    let r = c
        .request(reqwest::Method::OPTIONS, gw.url("/plain"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["allow"], "GET");
}

#[tokio::test]
async fn wildcards_with_credentials_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    let src = r#"[cors]
allow_origins = ["*"]
allow_credentials = true
allow_methods = ["GET", "FETCH IT"]
"#;
    let err = lambdagate::config::parse(&path, src)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("routes.toml:2:18: `*` in `allow_origins` cannot be combined with `allow_credentials = true`"),
        "{err}"
    );
    assert!(
        err.contains("routes.toml:4:25: `FETCH IT` is not an HTTP method"),
        "{err}"
    );
}
