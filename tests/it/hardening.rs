//! Hardening: slow and greedy clients, framing tricks, path tricks and
//! secrets. Most tests speak raw TCP, because real HTTP clients refuse to
//! send what is being tested (dot segments, conflicting framing).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::Uri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::raw::{closed_within, exchange_until_closed, read_answer_text};
use crate::common::{client, serve_router, spawn_binary, start};

const PING: &str = r#"
[[routes]]
method = "GET"
path = "/ping"
mock = { status = 200, body = "pong", headers = { content-type = "text/plain" } }
"#;

#[tokio::test]
async fn slowloris_trickling_headers_is_cut_off() {
    let gw = start(&format!(
        "[gateway.limits]\nheader_read_timeout = \"300ms\"\n{PING}"
    ))
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (mut rd, mut wr) = s.into_split();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = rd.read_to_end(&mut out).await;
        (Instant::now(), out)
    });
    // One header line every 100 ms, never finishing the head.
    let mut i = 0;
    while !reader.is_finished() && started.elapsed() < Duration::from_secs(10) {
        if wr
            .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
            .await
            .is_err()
        {
            break;
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (closed_at, out) = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("connection was never cut")
        .unwrap();
    let took = closed_at - started;
    assert!(took < Duration::from_secs(5), "cut after {took:?}");
    assert!(
        !String::from_utf8_lossy(&out).contains("200 OK"),
        "the trickled request must not be served"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let gw = start(&format!(
        "[gateway.limits]\nidle_timeout = \"300ms\"\nheader_read_timeout = \"30s\"\n{PING}"
    ))
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_answer_text(&mut s).await.contains("pong"));
    assert!(
        closed_within(&mut s, Duration::from_secs(5)).await,
        "an idle connection stays open past idle_timeout"
    );
}

#[tokio::test]
async fn connections_past_max_connections_are_closed() {
    let gw = start(&format!("[gateway.limits]\nmax_connections = 2\n{PING}")).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(read_answer_text(&mut s).await.contains("pong"));
        open.push(s);
    }
    let mut third = TcpStream::connect(gw.addr).await.unwrap();
    let _ = third
        .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut out))
        .await
        .expect("the third connection is closed at once");
    assert!(!String::from_utf8_lossy(&out).contains("pong"));
    // A slot frees up when a connection closes.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = exchange_until_closed(
            gw.addr,
            b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        if res.contains("pong") {
            break;
        }
        assert!(Instant::now() < deadline, "no slot came free");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn oversized_bodies_and_headers_are_refused_before_the_body_is_read() {
    let gw = start(&format!("[gateway.limits]\nmax_body = \"1KB\"\n{PING}")).await;
    // Declares 100 MB and sends none of it: the answer must not wait for it.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        .await
        .unwrap();
    let res = read_answer_text(&mut s).await;
    assert!(res.starts_with("HTTP/1.1 413"), "{res}");
    assert!(res.contains("Request Entity Too Large"));
    // 12 KB of headers: over the 10,240-byte default.
    let big = format!(
        "GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(12 * 1024)
    );
    let res = exchange_until_closed(gw.addr, big.as_bytes()).await;
    assert!(res.starts_with("HTTP/1.1 431"), "{res}");
    // 1 MB of headers: hyper stops buffering long before that.
    let huge = format!(
        "GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let _ = s.write_all(huge.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.is_empty() || out.starts_with("HTTP/1.1 431"),
        "unexpected answer to 1 MB of headers: {out}"
    );
}

#[tokio::test]
async fn conflicting_content_length_and_transfer_encoding_is_refused_and_closed() {
    let gw = start(PING).await;
    // A smuggling attempt: framed by CL it is one request, by TE two.
    let res = exchange_until_closed(
        gw.addr,
        b"GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 35\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 400"), "{res}");
    assert!(
        res.contains("Content-Length and Transfer-Encoding"),
        "{res}"
    );
    assert_eq!(
        res.matches("HTTP/1.1 ").count(),
        1,
        "the smuggled request must not be answered: {res}"
    );
    // Header order does not matter.
    let res = exchange_until_closed(
        gw.addr,
        b"POST /ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 400"), "{res}");
    // Two different Content-Lengths: hyper refuses them itself.
    let res = exchange_until_closed(
        gw.addr,
        b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 400"), "{res}");
    // A normal chunked request on the same server still works.
    let res = exchange_until_closed(
        gw.addr,
        b"GET /ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
}

#[tokio::test]
async fn path_normalisation_policy() {
    // The upstream echoes the path it was sent.
    let upstream = serve_router(
        Router::new().fallback(|uri: Uri| async move { format!("upstream-path={}", uri.path()) }),
    )
    .await;
    let gw = start(&format!(
        r#"
[backends.files]
kind = "http"
url = "{}"

[[routes]]
method = "GET"
path = "/items/{{id}}"
mock = {{ status = 200, body = "item" }}

[[routes]]
method = "ANY"
path = "/files/{{proxy+}}"
backend = "files"
"#,
        upstream.url("/base")
    ))
    .await;
    let get = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
    };
    // Dot segments in any spelling: 400, never forwarded.
    for p in [
        "/items/../items/1",
        "/files/a/../../etc/passwd",
        "/files/%2e%2e/secret",
        "/files/a/%2E%2e/b",
        "/files/a%2f..%2fb",
        "/items/.",
    ] {
        let res = exchange_until_closed(gw.addr, &get(p)).await;
        assert!(res.starts_with("HTTP/1.1 400"), "{p}: {res}");
        assert!(!res.contains("upstream-path"), "{p} reached the upstream");
    }
    // Double slashes are empty segments: no `{param}` matches one...
    let res = exchange_until_closed(gw.addr, &get("/items//1")).await;
    assert!(res.starts_with("HTTP/1.1 404"), "{res}");
    // ...but a greedy parameter keeps them as sent.
    let res = exchange_until_closed(gw.addr, &get("/files/a//b")).await;
    assert!(res.contains("upstream-path=/base/a//b"), "{res}");
    // An encoded slash stays encoded on its way upstream.
    let res = exchange_until_closed(gw.addr, &get("/files/a%2Fb/c")).await;
    assert!(res.contains("upstream-path=/base/a%2Fb/c"), "{res}");
    // Names that merely contain dots are ordinary.
    let res = exchange_until_closed(gw.addr, &get("/items/..hidden")).await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
}

#[tokio::test]
async fn secrets_never_reach_logs_or_error_bodies() {
    const ADMIN_TOKEN: &str = "admin-tok-Zq81Xv0pLmN3";
    const API_KEY: &str = "apikey-Hh27Ls90QwErTy55";
    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtdXNlciJ9.sig-Pp4Kk9Jj2";
    const HS_SECRET: &str = "hs-secret-Vb66Nm12Cx09";
    const AWS_SECRET: &str = "aws-secret-Yu7Ti8Re5We4Qw3";
    let dir = tempfile::tempdir().unwrap();
    // A lambda backend that cannot be reached, so the signing code runs
    // with the credentials and the failure is logged.
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        r#"
[admin]
listen = "127.0.0.1:0"

[backends.aws]
kind = "lambda"
region = "eu-west-1"
endpoint_url = "http://127.0.0.1:9"

[functions.hello]
timeout = "2s"

[stages.dev]
backend = "aws"

[[routes]]
method = "GET"
path = "/ping"
mock = { status = 200, body = "pong" }

[[routes]]
method = "GET"
path = "/fn"
function = "hello"
"#,
    )
    .unwrap();
    let env: HashMap<String, String> = [
        ("LAMBDAGATE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ("JWT_HS_SECRET", HS_SECRET),
        ("RUST_LOG", "debug"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut gw = spawn_binary(&routes, &["--admin-listen", "127.0.0.1:0"], &env).await;
    let c = client();
    let mut bodies = Vec::new();
    for path in ["/ping", "/fn", "/nope", "/items/../x"] {
        let res = c
            .get(gw.url(path))
            .header("authorization", format!("Bearer {JWT}"))
            .header("x-api-key", API_KEY)
            .header("cookie", format!("session={HS_SECRET}"))
            .send()
            .await
            .unwrap();
        bodies.push(res.text().await.unwrap());
    }
    for token in [ADMIN_TOKEN, "wrong-token", API_KEY] {
        let res = c
            .get(gw.admin_url("/openapi.json"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        if token != ADMIN_TOKEN {
            assert_eq!(status, 401);
            bodies.push(body);
        }
    }
    // Stop the process so every line is flushed.
    let pid = gw.pid().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(20), gw.child.wait()).await;
    // The reader task may still be draining the pipe.
    tokio::task::yield_now().await;
    let logs = gw.stderr_lines.lock().unwrap().join("\n");
    assert!(
        logs.contains("lambdagate::access") || logs.contains("route="),
        "no access log captured:\n{logs}"
    );
    for secret in [
        ADMIN_TOKEN,
        API_KEY,
        JWT,
        HS_SECRET,
        AWS_SECRET,
        "sig-Pp4Kk9Jj2",
    ] {
        assert!(!logs.contains(secret), "secret {secret} in logs:\n{logs}");
        for b in &bodies {
            assert!(!b.contains(secret), "secret {secret} in body {b}");
        }
    }
}
