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

/// Reads one request (its head and `Content-Length` body) from `stream`
/// into `buf` and drops it; `false` when the connection ended, or `stop`
/// finished, before a whole head arrived.
async fn read_request(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    stop: impl std::future::Future<Output = ()>,
) -> bool {
    use tokio::io::AsyncReadExt;
    let mut stop = std::pin::pin!(stop);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::select! {
            n = stream.read(&mut chunk) => n.unwrap_or(0),
            _ = &mut stop => 0,
        };
        if n == 0 {
            return false;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&buf[..head_end]).unwrap();
    let len: usize = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        assert!(n > 0, "request body cut short");
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..head_end + len);
    true
}

/// How the scripted upstream below treats each connection.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// Answers every request and keeps the connection open.
    KeepAlive,
    /// Answers with `Connection: close` and closes.
    CloseHeader,
    /// Answers the first request on a connection; reads the second and
    /// closes without answering.
    DropSecond,
}

/// An HTTP/1.1 upstream written against the socket, so a test controls
/// exactly when connections open and close.
struct ScriptedUpstream {
    addr: std::net::SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    /// Tells every open connection to close; each acknowledges once closed.
    close_all: tokio::sync::watch::Sender<u32>,
    closed: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<()>>,
}

impl ScriptedUpstream {
    async fn start(behaviour: Behaviour, body: &'static [u8]) -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (close_all, close_rx) = tokio::sync::watch::channel(0u32);
        let (closed_tx, closed_rx) = tokio::sync::mpsc::unbounded_channel();
        let (c, r) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let requests = r.clone();
                let mut close = close_rx.clone();
                close.mark_unchanged();
                let closed = closed_tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut answered = 0;
                    loop {
                        let stop = async {
                            let _ = close.changed().await;
                        };
                        if !read_request(&mut stream, &mut buf, stop).await {
                            drop(stream);
                            let _ = closed.send(());
                            return;
                        }
                        requests.fetch_add(1, Ordering::SeqCst);
                        if behaviour == Behaviour::DropSecond && answered == 1 {
                            drop(stream);
                            let _ = closed.send(());
                            return;
                        }
                        let connection = match behaviour {
                            Behaviour::CloseHeader => "Connection: close\r\n",
                            _ => "",
                        };
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{connection}\r\n",
                            body.len()
                        );
                        stream.write_all(head.as_bytes()).await.unwrap();
                        stream.write_all(body).await.unwrap();
                        answered += 1;
                        if behaviour == Behaviour::CloseHeader {
                            drop(stream);
                            let _ = closed.send(());
                            return;
                        }
                    }
                });
            }
        });
        ScriptedUpstream {
            addr,
            connections,
            requests,
            close_all,
            closed: tokio::sync::Mutex::new(closed_rx),
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Closes every open connection (as an upstream's keep-alive timeout
    /// does) and waits until `n` have closed.
    async fn close_connections(&self, n: usize) {
        self.close_all.send_modify(|g| *g += 1);
        let mut closed = self.closed.lock().await;
        for _ in 0..n {
            closed.recv().await.unwrap();
        }
    }
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let up = ScriptedUpstream::start(Behaviour::KeepAlive, b"pooled").await;
    let gw = start(&routes(&format!("http://{}", up.addr))).await;
    for i in 0..5 {
        // A new client connection each time: reuse is the gateway's doing.
        let res = client()
            .get(gw.url(&format!("/legacy/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "pooled");
    }
    assert_eq!(up.requests(), 5);
    assert_eq!(up.connections(), 1, "one keep-alive connection serves all");
}

#[tokio::test]
async fn a_large_streamed_body_is_read_through_and_the_connection_reused() {
    static BIG: std::sync::LazyLock<Vec<u8>> =
        std::sync::LazyLock::new(|| (0..3_000_000u32).map(|i| (i % 251) as u8).collect());
    let up = ScriptedUpstream::start(Behaviour::KeepAlive, BIG.as_slice()).await;
    let gw = start(&routes(&format!("http://{}", up.addr))).await;
    for _ in 0..2 {
        let res = client().get(gw.url("/legacy/big")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.bytes().await.unwrap().as_ref(), BIG.as_slice());
    }
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn an_upstream_answering_connection_close_gets_a_new_connection_per_request() {
    let up = ScriptedUpstream::start(Behaviour::CloseHeader, b"once").await;
    let gw = start(&routes(&format!("http://{}", up.addr))).await;
    let c = client();
    for _ in 0..3 {
        let res = c.get(gw.url("/legacy/x")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(
            !res.headers().contains_key("connection"),
            "the upstream's Connection header is hop-by-hop"
        );
        assert_eq!(res.text().await.unwrap(), "once");
    }
    assert_eq!(up.requests(), 3);
    assert_eq!(up.connections(), 3);
}

#[tokio::test]
async fn an_idle_connection_the_upstream_closed_is_not_used() {
    let up = ScriptedUpstream::start(Behaviour::KeepAlive, b"fresh").await;
    let gw = start(&routes(&format!("http://{}", up.addr))).await;
    let c = client();
    let res = c.get(gw.url("/legacy/1")).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "fresh");
    // The upstream's keep-alive timeout closes the pooled connection.
    up.close_connections(1).await;
    let res = c.get(gw.url("/legacy/2")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "fresh");
    assert_eq!(up.connections(), 2);
    assert_eq!(up.requests(), 2, "each request reached the upstream once");
}

#[tokio::test]
async fn a_request_the_upstream_may_have_seen_is_not_retried() {
    let up = ScriptedUpstream::start(Behaviour::DropSecond, b"first").await;
    let gw = start(&routes(&format!("http://{}", up.addr))).await;
    let c = client();
    let res = c
        .post(gw.url("/orders/1"))
        .body("one")
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "first");
    // The second request on the pooled connection is read by the upstream,
    // which then closes without answering: sending it again could repeat a
    // non-idempotent call, so the client gets a 502.
    let res = c
        .post(gw.url("/orders/2"))
        .body("two")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"message":"Internal server error"}"#
    );
    assert_eq!(up.requests(), 2);
    assert_eq!(up.connections(), 1);
}

/// An upstream that answers every request with the next of `answers`, raw
/// bytes written as they are, closing the connection after an answer
/// marked so. Each connection reads one request head (and its
/// `Content-Length` body) per answer. Returns its address and the number
/// of connections it accepted.
async fn raw_upstream(
    answers: Vec<(Vec<u8>, Then)>,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(std::collections::VecDeque::from(answers)));
    let c = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let answers = answers.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    if !read_request(&mut stream, &mut buf, std::future::pending()).await {
                        return;
                    }
                    let answer = answers.lock().unwrap().pop_front();
                    let Some((answer, then)) = answer else {
                        return;
                    };
                    if stream.write_all(&answer).await.is_err() || then == Then::Close {
                        return;
                    }
                }
            });
        }
    });
    (addr, connections)
}

/// What a scripted upstream does after an answer.
#[derive(Clone, Copy, PartialEq)]
enum Then {
    KeepOpen,
    Close,
}

fn raw(s: &str) -> (Vec<u8>, Then) {
    (s.as_bytes().to_vec(), Then::KeepOpen)
}

fn raw_then_close(s: &str) -> (Vec<u8>, Then) {
    (s.as_bytes().to_vec(), Then::Close)
}

#[tokio::test]
async fn chunked_close_delimited_and_bodiless_responses_are_framed_right() {
    use std::sync::atomic::Ordering;
    let (addr, connections) = raw_upstream(vec![
        // Chunked, in odd pieces, with an extension and a trailer.
        raw(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n\
             4;x=y\r\nchun\r\n7\r\nked bod\r\n1\r\ny\r\n0\r\nX-Trailer: t\r\n\r\n",
        ),
        // An interim 100 before the real answer.
        raw("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nmade!"),
        raw("HTTP/1.1 204 No Content\r\nX-Empty: yes\r\n\r\n"),
        // Same connection all along so far; this one ends it.
        raw_then_close("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"),
    ])
    .await;
    let gw = start(&routes(&format!("http://{addr}"))).await;
    let c = client();

    let res = c.get(gw.url("/legacy/chunked")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-up"], "1");
    assert!(!res.headers().contains_key("x-trailer"));
    assert_eq!(res.text().await.unwrap(), "chunked body");

    let res = c.get(gw.url("/legacy/continue")).send().await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.text().await.unwrap(), "made!");

    let res = c.get(gw.url("/legacy/empty")).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["x-empty"], "yes");
    assert_eq!(res.bytes().await.unwrap().len(), 0);

    let res = c.get(gw.url("/legacy/close")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "until the end");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "chunked, 1xx and 204 answers leave the connection reusable"
    );
}

#[tokio::test]
async fn a_head_request_reads_no_body_and_keeps_the_connection() {
    use std::sync::atomic::Ordering;
    let (addr, connections) = raw_upstream(vec![
        raw("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Head: 1\r\n\r\n"),
        raw("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter"),
    ])
    .await;
    let gw = start(&routes(&format!("http://{addr}"))).await;
    let c = client();
    let res = c.head(gw.url("/legacy/h")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], "11");
    assert_eq!(res.headers()["x-head"], "1");
    let res = c.get(gw.url("/legacy/g")).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "after");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_malformed_upstream_response_is_a_502() {
    let too_big = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    for answer in [
        "NOT HTTP AT ALL\r\n\r\n".to_string(),
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc".to_string(),
        "HTTP/1.1 200 OK\r\nContent-Length: banana\r\n\r\n".to_string(),
        too_big,
    ] {
        let (addr, _) = raw_upstream(vec![raw(&answer)]).await;
        let gw = start(&routes(&format!("http://{addr}"))).await;
        let res = client().get(gw.url("/legacy/x")).send().await.unwrap();
        assert_eq!(res.status(), 502, "{}", &answer[..answer.len().min(60)]);
        assert_eq!(
            res.text().await.unwrap(),
            r#"{"message":"Internal server error"}"#
        );
    }
}

#[tokio::test]
async fn a_body_cut_short_by_the_upstream_fails_the_response() {
    let (addr, _) = raw_upstream(vec![raw_then_close(
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
    )])
    .await;
    let gw = start(&routes(&format!("http://{addr}"))).await;
    // The client sees the exchange fail (before or after the head went
    // out), never a short body passed off as whole.
    match client().get(gw.url("/legacy/x")).send().await {
        Err(_) => {}
        Ok(res) => {
            assert_eq!(res.status(), 200);
            assert!(res.bytes().await.is_err());
        }
    }
}

#[tokio::test]
async fn request_bodies_of_any_size_and_framing_reach_the_upstream_whole() {
    let (up, seen) = upstream().await;
    let gw = start(&routes(&format!("http://{}", up.addr))).await;
    let c = client();
    // Larger than what goes out with the head.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let res = c
        .post(gw.url("/legacy/big"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A streamed body of unknown length (chunked from the client).
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(b"stream".to_vec()),
        Ok(b"ed ".to_vec()),
        Ok(b"body".to_vec()),
    ];
    let res = c
        .put(gw.url("/legacy/streamed"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // An empty POST still says its length.
    let res = c.post(gw.url("/legacy/empty")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].body.as_ref(), big.as_slice());
    assert_eq!(seen[0].headers["content-length"], "300000");
    assert_eq!(seen[1].body.as_ref(), b"streamed body");
    assert!(seen[2].body.is_empty());
    assert_eq!(seen[2].headers["content-length"], "0");
}
