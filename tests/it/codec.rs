//! The strict HTTP/1.1 request codec, spoken to over raw TCP: `Host`
//! (RFC 9112 §3.2), absolute-form targets, transfer codings (§6.1, §7),
//! the chunked grammar (§7.1), `Content-Length` lists, the request line's
//! length and version (§2.3). Every refusal is checked for its status, its
//! API Gateway-style body, the connection closing after it, and nothing
//! having reached the upstream.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::raw::{Answer, closed_quietly_within, connect, fill, read_answer_by_length};
use crate::common::{TestGateway, TestServer, serve_router, start};

/// What the upstream received, one entry per request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A gateway with an `http` route (`/echo/{proxy+}`) to an upstream that
/// records every request it gets, and a `mock` route (`/mock`).
async fn gateway() -> (TestGateway, TestServer, Log) {
    let log: Log = Arc::default();
    let record = log.clone();
    let router = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push(Seen {
                    method: method.to_string(),
                    target: uri.to_string(),
                    headers,
                    body: body.to_vec(),
                });
                "upstream"
            }
        },
    );
    let up = serve_router(router).await;
    let gw = start(&format!(
        r#"
[gateway.limits]
max_body = "1MB"
max_header_bytes = 2048

[backends.up]
kind = "http"
url = "http://{}"

[[routes]]
method = "ANY"
path = "/echo/{{proxy+}}"
backend = "up"

[[routes]]
method = "ANY"
path = "/mock"
mock = {{ status = 200, body = "pong", headers = {{ content-type = "text/plain" }} }}
"#,
        up.addr
    ))
    .await;
    (gw, up, log)
}

/// Sends `raw` on a fresh connection and expects a refusal with `status`,
/// an API Gateway-style JSON body carrying `message` (when given),
/// `connection: close` and the connection closed after it.
async fn refused(gw: &TestGateway, raw: &[u8], status: u16, message: Option<&str>) {
    let what = String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned();
    let mut s = connect(gw.addr).await;
    // The server may close before reading everything sent; that is fine.
    let _ = s.write_all(raw).await;
    let mut buf = Vec::new();
    let a = read_answer_by_length(&mut s, &mut buf).await;
    assert_eq!(a.status, status, "{what:?}: {a:?}");
    assert_eq!(
        a.header("content-type"),
        Some("application/json"),
        "{what:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&a.text()).unwrap();
    assert!(body["message"].is_string(), "{what:?}: {}", a.text());
    if let Some(m) = message {
        assert_eq!(body["message"], m, "{what:?}");
    }
    assert_eq!(a.header("connection"), Some("close"), "{what:?}");
    assert!(buf.is_empty(), "{what:?}: more after the refusal: {buf:?}");
    assert!(
        closed_quietly_within(&mut s, Duration::from_secs(5)).await,
        "{what:?}: connection kept open"
    );
}

/// Sends `raw` and returns the one answer, the connection still open.
async fn served(gw: &TestGateway, raw: &[u8]) -> (Answer, TcpStream) {
    let mut s = connect(gw.addr).await;
    s.write_all(raw).await.unwrap();
    let mut buf = Vec::new();
    let a = read_answer_by_length(&mut s, &mut buf).await;
    assert!(buf.is_empty(), "{buf:?}");
    (a, s)
}

fn nothing_forwarded(log: &Log) {
    let seen = log.lock().unwrap();
    assert!(seen.is_empty(), "reached the upstream: {seen:?}");
}

#[tokio::test]
async fn host_is_required_once_and_well_formed_on_http11() {
    let (gw, _up, log) = gateway().await;
    for raw in [
        &b"GET /echo/x HTTP/1.1\r\n\r\n"[..],
        b"GET /echo/x HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n",
        b"GET /echo/x HTTP/1.1\r\nHost: a.example\r\nhost: b.example\r\n\r\n",
        b"GET /echo/x HTTP/1.1\r\nHost: a.example/evil\r\n\r\n",
        b"GET /echo/x HTTP/1.1\r\nHost: user@a.example\r\n\r\n",
        b"GET /echo/x HTTP/1.1\r\nHost: a example\r\n\r\n",
        b"GET /echo/x HTTP/1.1\r\nHost: a.example:\r\n\r\n",
        b"GET /echo/x HTTP/1.1\r\nHost: a.example:80x\r\n\r\n",
        b"GET /echo/x HTTP/1.1\r\nHost: a.example:99999\r\n\r\n",
        b"GET /echo/x HTTP/1.1\r\nHost: a.example, b.example\r\n\r\n",
        b"GET /echo/x HTTP/1.1\r\nHost:\r\n\r\n",
        b"GET /echo/x HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /mock HTTP/1.1\r\n\r\n",
    ] {
        refused(&gw, raw, 400, None).await;
    }
    nothing_forwarded(&log);

    // Well-formed hosts, and HTTP/1.0 without one, are served.
    for raw in [
        &b"GET /echo/a HTTP/1.1\r\nHost: a.example:8080\r\n\r\n"[..],
        b"GET /echo/b HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n",
        b"GET /echo/c HTTP/1.0\r\n\r\n",
    ] {
        let (a, _s) = served(&gw, raw).await;
        assert_eq!((a.status, a.text().as_str()), (200, "upstream"), "{raw:?}");
    }
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].headers["x-forwarded-host"], "a.example:8080");
    assert_eq!(seen[1].headers["x-forwarded-host"], "[::1]:8443");
    assert!(seen[2].headers.get("x-forwarded-host").is_none());
}

#[tokio::test]
async fn an_absolute_form_target_wins_over_host() {
    let (gw, _up, log) = gateway().await;
    let (a, mut s) = served(
        &gw,
        b"GET http://api.example:8080/echo/items?id=7 HTTP/1.1\r\nHost: other.example\r\n\r\n",
    )
    .await;
    assert_eq!((a.status, a.text().as_str()), (200, "upstream"));
    // The connection stays usable, and a later origin-form request on it
    // has its own host.
    s.write_all(b"GET /echo/next HTTP/1.1\r\nHost: third.example\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_answer_by_length(&mut s, &mut buf).await.status, 200);
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("GET", "/items?id=7")
    );
    let forwarded: Vec<_> = seen[0].headers.get_all("x-forwarded-host").iter().collect();
    assert_eq!(forwarded, ["api.example:8080"]);
    assert_eq!(seen[1].target, "/next");
    assert_eq!(seen[1].headers["x-forwarded-host"], "third.example");

    // The target's authority is checked like a Host, and Host is still
    // required beside it.
    for raw in [
        &b"GET http://user@api.example/echo/x HTTP/1.1\r\nHost: api.example\r\n\r\n"[..],
        b"GET http:///echo/x HTTP/1.1\r\nHost: api.example\r\n\r\n",
        b"GET ftp://api.example/echo/x HTTP/1.1\r\nHost: api.example\r\n\r\n",
        b"GET api.example:443 HTTP/1.1\r\nHost: api.example\r\n\r\n",
        b"GET http://api.example/echo/x HTTP/1.1\r\n\r\n",
    ] {
        refused(&gw, raw, 400, None).await;
    }
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn transfer_codings_other_than_one_final_chunked_are_refused() {
    let (gw, _up, log) = gateway().await;
    let body = "3\r\nabc\r\n0\r\n\r\n";
    for (te, status, message) in [
        ("gzip, chunked", 501, Some("Not Implemented")),
        ("identity, chunked", 501, Some("Not Implemented")),
        ("chunked, gzip", 501, Some("Not Implemented")),
        ("x-custom", 501, Some("Not Implemented")),
        ("gzip", 501, Some("Not Implemented")),
        ("chunked, chunked", 400, None),
        ("chunked\r\nTransfer-Encoding: chunked", 400, None),
        ("chunked\r\nContent-Length: 14", 400, None),
    ] {
        for path in ["/echo/x", "/mock"] {
            let raw =
                format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n{body}");
            refused(&gw, raw.as_bytes(), status, message).await;
        }
    }
    nothing_forwarded(&log);
    // The one accepted form reaches the upstream decoded.
    let raw =
        format!("POST /echo/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n{body}");
    let (a, _s) = served(&gw, raw.as_bytes()).await;
    assert_eq!(a.status, 200);
    assert_eq!(log.lock().unwrap()[0].body, b"abc");
}

#[tokio::test]
async fn malformed_chunked_bodies_are_refused_on_every_route_kind() {
    let (gw, _up, log) = gateway().await;
    let zeros = "0".repeat(100_000);
    let bad_bodies = [
        "3\nabc\r\n0\r\n\r\n",
        "3\r\nabc\n0\r\n\r\n",
        "3\r\nabc\r\n0\n\r\n",
        "3\r\nabc\r\n0\r\n\n",
        "3\rabc\r\n0\r\n\r\n",
        "3\r\nabc\r\n0\r\nX-T: 1\n\r\n",
        "3 \r\nabc\r\n0\r\n\r\n",
        "3 junk\r\nabc\r\n0\r\n\r\n",
        "3x\r\nabc\r\n0\r\n\r\n",
        "3;\r\nabc\r\n0\r\n\r\n",
        "3;a=\"b\x01\"\r\nabc\r\n0\r\n\r\n",
        "3;a b\r\nabc\r\n0\r\n\r\n",
        "00000000000000003\r\nabc\r\n0\r\n\r\n",
        "3\r\nabc\r\n0\r\nX T: 1\r\n\r\n",
        "3\r\nabc\r\n0\r\n X: 1\r\n\r\n",
        "3\r\nabcd\r\n0\r\n\r\n",
        "-3\r\nabc\r\n0\r\n\r\n",
        zeros.as_str(),
    ];
    for body in bad_bodies {
        for path in ["/echo/x", "/mock"] {
            let raw = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
            );
            refused(&gw, raw.as_bytes(), 400, None).await;
        }
    }
    nothing_forwarded(&log);
    // The same grammar, written correctly, with extensions and trailers.
    let raw = "POST /echo/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
               0000000000000003 ; a=1 ; b=\"q;\\\"\"\r\nabc\r\n2;c\r\nde\r\n0\r\nX-T: 1\r\n\r\n";
    let (a, _s) = served(&gw, raw.as_bytes()).await;
    assert_eq!(a.status, 200);
    assert_eq!(log.lock().unwrap()[0].body, b"abcde");
}

#[tokio::test]
async fn a_listed_content_length_is_one_length_checked_before_100_continue() {
    let (gw, _up, log) = gateway().await;
    // Equal values are one length; the upstream gets the body once.
    let (a, mut s) = served(
        &gw,
        b"POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert_eq!(a.status, 200);
    {
        let seen = log.lock().unwrap();
        assert_eq!(seen[0].body, b"hello");
        let lengths: Vec<_> = seen[0].headers.get_all("content-length").iter().collect();
        assert_eq!(lengths, ["5"]);
    }
    // And the kept-alive connection carries the next request.
    s.write_all(b"GET /mock HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_answer_by_length(&mut s, &mut buf).await.text(), "pong");

    // Over `max_body` as a list: 413 first, no `100 Continue`, closed.
    let mut s = connect(gw.addr).await;
    s.write_all(
        b"PUT /echo/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 99999999, 99999999\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    fill(&mut s, &mut buf).await;
    assert!(
        buf.starts_with(b"HTTP/1.1 413"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    let a = read_answer_by_length(&mut s, &mut buf).await;
    assert_eq!(a.text(), r#"{"message":"Request Entity Too Large"}"#);
    assert!(closed_quietly_within(&mut s, Duration::from_secs(5)).await);
    // Different values are still refused.
    refused(
        &gw,
        b"POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello",
        400,
        None,
    )
    .await;
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_over_long_request_line_is_414_and_an_over_long_head_431() {
    let (gw, _up, log) = gateway().await;
    // Longer than `max_header_bytes` (2048) but within what is buffered:
    // the whole head is read, then refused.
    let long = format!("/echo/{}", "a".repeat(3000));
    let raw = format!("GET {long} HTTP/1.1\r\nHost: x\r\n\r\n");
    let (a, _s) = served(&gw, raw.as_bytes()).await;
    assert_eq!(a.status, 414);
    assert_eq!(a.text(), r#"{"message":"Request-URI Too Long"}"#);
    // Longer than anything buffered: refused while being read, closed.
    let longer = format!("/echo/{}", "a".repeat(20_000));
    for raw in [
        format!("GET {longer} HTTP/1.1\r\nHost: x\r\n\r\n"),
        format!("GET {longer}"),
    ] {
        refused(&gw, raw.as_bytes(), 414, Some("Request-URI Too Long")).await;
    }
    // A short line with too many header bytes stays 431.
    let raw = format!(
        "GET /echo/x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    refused(
        &gw,
        raw.as_bytes(),
        431,
        Some("Request Header Fields Too Large"),
    )
    .await;
    let raw = format!(
        "GET /echo/x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(3000)
    );
    let (a, _s) = served(&gw, raw.as_bytes()).await;
    assert_eq!(a.status, 431);
    nothing_forwarded(&log);
}

#[tokio::test]
async fn higher_minor_versions_are_served_as_http11_and_others_get_505() {
    let (gw, _up, log) = gateway().await;
    let (a, mut s) = served(&gw, b"GET /echo/v HTTP/1.2\r\nHost: x\r\n\r\n").await;
    assert_eq!((a.status, a.text().as_str()), (200, "upstream"));
    assert_eq!(a.header("connection"), None, "kept alive as HTTP/1.1");
    s.write_all(b"GET /mock HTTP/1.9\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_answer_by_length(&mut s, &mut buf).await.text(), "pong");
    // Served as 1.1, so Host is required.
    refused(&gw, b"GET /echo/v HTTP/1.3\r\n\r\n", 400, None).await;
    for raw in [
        &b"GET /echo/v HTTP/2.0\r\nHost: x\r\n\r\n"[..],
        b"GET /echo/v HTTP/0.9\r\nHost: x\r\n\r\n",
        b"GET /echo/v HTTP/3\r\nHost: x\r\n\r\n",
        b"GET /echo/v HTTP/12.1\r\nHost: x\r\n\r\n",
    ] {
        refused(&gw, raw, 505, Some("HTTP Version Not Supported")).await;
    }
    for raw in [
        &b"GET /echo/v HTTPS/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /echo/v HTTP/1.\r\nHost: x\r\n\r\n",
        b"GET /echo/v\r\nHost: x\r\n\r\n",
    ] {
        refused(&gw, raw, 400, None).await;
    }
    assert_eq!(log.lock().unwrap().len(), 1);
    // HTTP/2's preface still opens an HTTP/2 connection (not a 505).
    let mut s = connect(gw.addr).await;
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut frame = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut frame))
        .await
        .expect("a SETTINGS frame in time")
        .unwrap();
    assert_eq!(frame[3], 0x4, "the server's first frame is SETTINGS");
}
