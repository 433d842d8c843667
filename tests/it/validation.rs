//! Request validation: required parameters and JSON Schema bodies refused
//! with API Gateway's 400s before any backend call; bad schemas are config
//! errors naming the schema file.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::post;

use crate::common::{client, serve_router, start_with};
use lambdagate::GatewayOptions;

const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["name", "price"],
  "properties": {
    "name": { "type": "string", "minLength": 1 },
    "price": { "type": "number", "minimum": 0 }
  }
}"#;

#[tokio::test]
async fn invalid_input_is_refused_before_the_backend() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let up = serve_router(Router::new().route(
        "/items",
        post(move |body: String| async move {
            counter.fetch_add(1, Ordering::SeqCst);
            format!("got {body}")
        }),
    ))
    .await;
    let routes = format!(
        r#"
[backends.up]
kind = "http"
url = "{}"

[[routes]]
method = "POST"
path = "/items"
backend = "up"
request = {{ body_schema = "schemas/item.json", required_query = ["lang"], required_headers = ["X-Tenant"] }}
"#,
        up.url("")
    );
    let gw = start_with(
        &routes,
        &[("schemas/item.json", SCHEMA.as_bytes())],
        GatewayOptions::default(),
    )
    .await;
    let c = client();
    let r = c
        .post(gw.url("/items"))
        .body(r#"{"name":"a","price":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"message":"Missing required request parameters: [lang, X-Tenant]"}"#
    );

    let r = c
        .post(gw.url("/items?lang=en"))
        .header("x-tenant", "t1")
        .header("content-type", "application/json")
        .body(r#"{"name":"","price":-3}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-amzn-errortype"], "BadRequestException");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["message"], "Invalid request body");
    let errors: Vec<String> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().any(|e| e.starts_with("/name:")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.starts_with("/price:")),
        "{errors:?}"
    );

    let r = c
        .post(gw.url("/items?lang=en"))
        .header("x-tenant", "t1")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no invalid request reached the backend"
    );

    let r = c
        .post(gw.url("/items?lang=en"))
        .header("x-tenant", "t1")
        .body(r#"{"name":"lamp","price":12.5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        r#"got {"name":"lamp","price":12.5}"#
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

fn load(routes: &str, files: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let path = dir.path().join("routes.toml");
    std::fs::write(&path, routes).unwrap();
    lambdagate::config::load(&path).unwrap_err().to_string()
}

#[tokio::test]
async fn bad_schemas_are_config_errors_naming_the_file() {
    let routes = r#"
[[routes]]
method = "POST"
path = "/a"
mock = { status = 200 }
request = { body_schema = "schemas/broken.json" }

[[routes]]
method = "POST"
path = "/b"
mock = { status = 200 }
request = { body_schema = "schemas/wrong.json" }

[[routes]]
method = "POST"
path = "/c"
mock = { status = 200 }
request = { body_schema = "schemas/missing.json" }
"#;
    let err = load(
        routes,
        &[
            (
                "schemas/broken.json",
                "{\n  \"type\": \"object\",\n  oops\n}",
            ),
            (
                "schemas/wrong.json",
                "{\n  \"type\": \"object\",\n  \"minLength\": \"three\"\n}",
            ),
        ],
    );
    assert!(
        err.contains("schemas/broken.json:3:3: not valid JSON"),
        "{err}"
    );
    assert!(
        err.contains("schemas/wrong.json:3:3: not a valid JSON Schema at `/minLength`"),
        "{err}"
    );
    assert!(
        err.contains("routes.toml:18:27: cannot read JSON Schema"),
        "{err}"
    );
}
