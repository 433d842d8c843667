//! The `http` integration: what reaches the upstream, what comes back, and
//! how its failures are answered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use axum::routing::any;

use crate::common::{client, serve_router, start};

#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

async fn upstream() -> (crate::common::TestServer, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s = seen.clone();
    let router = Router::new()
        .route(
            "/slow",
            any(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .fallback(any(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move {
                    s.lock().unwrap().push(Seen {
                        method,
                        uri,
                        headers,
                        body,
                    });
                    (
                        [
                            ("x-upstream", "yes"),
                            ("connection", "keep-alive, x-secret-hop"),
                            ("x-secret-hop", "drop me"),
                        ],
                        "from upstream",
                    )
                        .into_response()
                }
            },
        ));
    (serve_router(router).await, seen)
}

fn routes(url: &str) -> String {
    format!(
        r#"
[backends.legacy]
kind = "http"
url = "{url}"
timeout = "500ms"

[[routes]]
method = "ANY"
path = "/legacy/{{proxy+}}"
backend = "legacy"

[[routes]]
method = "POST"
path = "/orders/{{id}}"
backend = "legacy"
"#
    )
}

#[tokio::test]
async fn forwards_method_path_query_headers_and_body() {
    let (up, seen) = upstream().await;
    let gw = start(&routes(&up.url("/base"))).await;
    let res = client()
        .patch(gw.url("/legacy/a/b%20c?x=1&x=2"))
        .header("x-custom", "v")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "must not pass")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-upstream"], "yes");
    assert!(
        !res.headers().contains_key("x-secret-hop"),
        "response hop-by-hop stripped"
    );
    assert_eq!(res.text().await.unwrap(), "from upstream");
    let s = seen.lock().unwrap().pop().unwrap();
    assert_eq!(s.method, Method::PATCH);
    assert_eq!(
        s.uri.path(),
        "/base/a/b%20c",
        "the {{proxy+}} remainder, still encoded"
    );
    assert_eq!(s.uri.query(), Some("x=1&x=2"));
    assert_eq!(s.headers["x-custom"], "v");
    assert!(
        !s.headers.contains_key("x-hop"),
        "hop-by-hop named in Connection"
    );
    assert_eq!(s.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(s.headers["x-forwarded-proto"], "http");
    assert_eq!(s.headers["x-forwarded-host"], gw.addr.to_string());
    assert!(s.headers.contains_key("x-amzn-requestid"));
    assert_eq!(s.body, "payload");
}

#[tokio::test]
async fn non_greedy_routes_forward_the_whole_path() {
    let (up, seen) = upstream().await;
    let gw = start(&routes(&up.url(""))).await;
    client().post(gw.url("/orders/9")).send().await.unwrap();
    assert_eq!(seen.lock().unwrap().pop().unwrap().uri.path(), "/orders/9");
}

#[tokio::test]
async fn upstream_timeout_is_504() {
    let (up, _) = upstream().await;
    let gw = start(&routes(&up.url(""))).await;
    let res = client().get(gw.url("/legacy/slow")).send().await.unwrap();
    assert_eq!(res.status(), 504);
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"message":"Endpoint request timed out"}"#
    );
}

#[tokio::test]
async fn connect_failure_is_502() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gw = start(&routes(&format!("http://127.0.0.1:{port}"))).await;
    let res = client().get(gw.url("/legacy/x")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"message":"Internal server error"}"#
    );
}
