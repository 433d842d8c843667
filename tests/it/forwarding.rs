//! The `http` integration against hostile clients and odd upstreams, over
//! raw sockets on both sides: request bodies the client could not deliver
//! (the client's 400/413, never a 502), upstream answers outside the rules
//! (bad status, HTTP/1.0 with `Transfer-Encoding`, HEAD framing), kept-alive
//! connections the upstream closed as a request went out, forwarding
//! headers from trusted and untrusted peers, HTTP/2 cookie fields, and
//! paths that try to leave a route or make a target start with `//`.
//!
//! The upstream here is a raw `TcpListener` that records every request's
//! bytes as they arrived and answers with crafted bytes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::fake_lambda::{FakeLambda, Reply, gateway_on};
use crate::common::raw::{closed_within, connect, exchange, read_answer};
use crate::common::{spawn_binary, start, start_with, write_config};

// ----------------------------------------------------------------------
// The recording upstream.

/// What an upstream connection does after its first answer.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Policy {
    /// Answers every request, keeping the connection open.
    KeepAlive,
    /// Closes right after its first answer (without saying so), like a
    /// server with a very short keep-alive timeout.
    OneThenClose,
    /// Reads the next request whole, then closes without answering: the
    /// keep-alive timeout fired just as the request arrived.
    OneThenDropNext,
    /// The same, with a reset (RST) instead of a close.
    OneThenResetNext,
}

/// What one request looked like on arrival.
#[derive(Clone, Debug)]
struct Arrived {
    /// Which connection (1-based, in accept order) it came on.
    conn: usize,
    /// The request's bytes: its head, and its body as framed on the wire.
    bytes: Vec<u8>,
    /// Whether the request ended (by its framing) before the connection did.
    complete: bool,
}

impl Arrived {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    fn request_line(&self) -> String {
        self.text().lines().next().unwrap_or_default().to_string()
    }

    /// The values of header `name` (any case), in order.
    fn header(&self, name: &str) -> Vec<String> {
        let text = self.text();
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        head.lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }
}

type Answerer = Arc<dyn Fn(&Arrived) -> Vec<u8> + Send + Sync>;

struct Upstream {
    addr: SocketAddr,
    connections: Arc<Mutex<usize>>,
    arrived: Arc<Mutex<Vec<Arrived>>>,
}

impl Upstream {
    /// Serves on 127.0.0.1:0 until the test's runtime ends; `answer` makes
    /// each answer from the request that arrived.
    async fn start(
        policy: Policy,
        answer: impl Fn(&Arrived) -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(0usize));
        let arrived: Arc<Mutex<Vec<Arrived>>> = Arc::default();
        let answer: Answerer = Arc::new(answer);
        let (c, a) = (connections.clone(), arrived.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let conn = {
                    let mut n = c.lock().unwrap();
                    *n += 1;
                    *n
                };
                tokio::spawn(serve_upstream_conn(
                    stream,
                    conn,
                    policy,
                    a.clone(),
                    answer.clone(),
                ));
            }
        });
        Upstream {
            addr,
            connections,
            arrived,
        }
    }

    /// Answers every request with `answer` as it is.
    async fn fixed(policy: Policy, answer: &str) -> Self {
        let answer = answer.as_bytes().to_vec();
        Self::start(policy, move |_| answer.clone()).await
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }

    fn arrived(&self) -> Vec<Arrived> {
        self.arrived.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` requests arrived, complete or not.
    async fn wait_for(&self, n: usize) -> Vec<Arrived> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let a = self.arrived();
            if a.len() >= n || Instant::now() > deadline {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn serve_upstream_conn(
    mut stream: TcpStream,
    conn: usize,
    policy: Policy,
    arrived: Arc<Mutex<Vec<Arrived>>>,
    answer: Answerer,
) {
    let mut buf = Vec::new();
    let mut answered = 0;
    loop {
        let Some(req) = read_one_request(&mut stream, &mut buf, conn).await else {
            return;
        };
        let complete = req.complete;
        arrived.lock().unwrap().push(req.clone());
        if !complete {
            return;
        }
        if answered == 1 {
            match policy {
                Policy::OneThenDropNext => return,
                Policy::OneThenResetNext => {
                    let _ = stream.set_zero_linger();
                    return;
                }
                _ => {}
            }
        }
        if stream.write_all(&answer(&req)).await.is_err() {
            return;
        }
        answered += 1;
        if policy == Policy::OneThenClose {
            return;
        }
    }
}

/// Reads one request (head and body, by its framing) off `stream`; `None`
/// if the connection ended before a byte of it.
async fn read_one_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    conn: usize,
) -> Option<Arrived> {
    loop {
        if let Some(len) = request_len(buf) {
            let bytes: Vec<u8> = buf.drain(..len).collect();
            return Some(Arrived {
                conn,
                bytes,
                complete: true,
            });
        }
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) if buf.is_empty() => return None,
            Ok(0) | Err(_) => {
                return Some(Arrived {
                    conn,
                    bytes: std::mem::take(buf),
                    complete: false,
                });
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The length of the whole request at the front of `buf`, once it is all
/// there: `Content-Length` or chunked (the terminating zero-size chunk).
fn request_len(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if head.contains("\r\ntransfer-encoding: chunked") {
        let end = buf[head_end..].windows(5).position(|w| w == b"0\r\n\r\n")?;
        return Some(head_end + end + 5);
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    (buf.len() >= head_end + length).then_some(head_end + length)
}

// ----------------------------------------------------------------------
// The client side: raw requests to the gateway (`common::raw`).

/// Whether `s` still serves a request (a mock answers `GET /mock/alive`).
async fn still_open(s: &mut TcpStream) -> bool {
    if s.write_all(b"GET /mock/alive HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    read_answer(s, &mut Vec::new(), false).await.status == 200
}

/// The codec's answer to a chunked body broken in the bytes that arrived
/// with its head.
const MALFORMED_CHUNKS: &str = r#"{"message":"malformed chunked body"}"#;
const BAD_BODY: &str = r#"{"message":"could not read the request body"}"#;
const TOO_LARGE: &str = r#"{"message":"Request Entity Too Large"}"#;
const BAD_GATEWAY: &str = r#"{"message":"Internal server error"}"#;
const BAD_PATH: &str = r#"{"message":"Invalid request path"}"#;

/// `[gateway]` lines, then an `http` backend at `url` on `/legacy/{proxy+}`
/// and a mock on `/mock/{proxy+}`.
fn routes(gateway: &str, url: &str) -> String {
    format!(
        r#"
[gateway]
{gateway}

[backends.legacy]
kind = "http"
url = "{url}"
timeout = "5s"

[[routes]]
method = "ANY"
path = "/legacy/{{proxy+}}"
backend = "legacy"

[[routes]]
method = "ANY"
path = "/mock/{{proxy+}}"
mock = {{ status = 200, body = "mocked" }}
"#
    )
}

const OK5: &str = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfine!";

// ----------------------------------------------------------------------
// Request bodies the client could not deliver.

#[tokio::test]
async fn a_broken_chunked_body_is_the_clients_400_on_an_http_route() {
    let up = Upstream::fixed(Policy::KeepAlive, OK5).await;
    let gw = start(&routes("", &up.url())).await;
    for request in [
        // Not a chunk size at all, in the first bytes.
        &b"POST /legacy/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"[..],
        // A chunk whose data overruns its size.
        b"POST /legacy/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
    ] {
        // Broken in the bytes that came with the head: the codec refuses
        // it before any route runs.
        let (a, mut s) = exchange(gw.addr, request).await;
        assert_eq!(a.status, 400, "{a:?}");
        assert_eq!(a.text(), MALFORMED_CHUNKS);
        assert_eq!(a.header("connection"), Some("close"));
        assert!(closed_within(&mut s, Duration::from_secs(5)).await, "the body's framing is lost: closed");
    }
    // A body that breaks after a good first part, in a later write.
    let mut s = connect(gw.addr).await;
    s.write_all(
        b"PUT /legacy/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await
    .unwrap();
    s.write_all(b"nope\r\n").await.unwrap();
    let a = read_answer(&mut s, &mut Vec::new(), false).await;
    // Refused by the route reading the body, or by the codec when both
    // writes arrived together: 400 either way.
    assert_eq!(a.status, 400, "{a:?}");
    assert!(
        [BAD_BODY, MALFORMED_CHUNKS].contains(&a.text().as_str()),
        "{a:?}"
    );
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    // The gateway gathers the first 64 KiB of a body before it connects:
    // these failed first, and nothing reached the upstream.
    assert_eq!(up.connections(), 0, "{:?}", up.arrived());
}

#[tokio::test]
async fn a_chunked_body_over_max_body_is_413_on_an_http_route() {
    let up = Upstream::fixed(Policy::KeepAlive, OK5).await;
    let gw = start(&routes("[gateway.limits]\nmax_body = 100000", &up.url())).await;
    // Over the limit within the first 64 KiB the gateway gathers: nothing
    // is sent upstream at all.
    let small_limit = start(&routes("[gateway.limits]\nmax_body = 1000", &up.url())).await;
    let mut request =
        b"POST /legacy/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        request.extend_from_slice(b"258\r\n");
        request.extend_from_slice(&[b'a'; 600]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (a, mut s) = exchange(small_limit.addr, &request).await;
    assert_eq!((a.status, a.text().as_str()), (413, TOO_LARGE));
    assert_eq!(up.connections(), 0, "nothing was sent upstream");
    // The whole body came with its head and was read to its end: the
    // framing is intact and the connection serves the next request.
    assert_ne!(a.header("connection"), Some("close"));
    assert!(still_open(&mut s).await);

    // Over the limit after part of the body went upstream: the upstream's
    // connection is cut (its request never completes), the client gets 413.
    // The body stops one byte past the limit, so the gateway has read all
    // that was sent when it answers (no reset for unread bytes).
    let mut s = connect(gw.addr).await;
    s.write_all(b"POST /legacy/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = [b'b'; 10_000];
    for _ in 0..10 {
        let mut piece = b"2710\r\n".to_vec();
        piece.extend_from_slice(&chunk);
        piece.extend_from_slice(b"\r\n");
        s.write_all(&piece).await.unwrap();
    }
    s.write_all(b"1\r\nX").await.unwrap();
    let a = read_answer(&mut s, &mut Vec::new(), false).await;
    assert_eq!((a.status, a.text().as_str()), (413, TOO_LARGE));
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    let arrived = up.wait_for(1).await;
    assert_eq!(arrived.len(), 1, "{arrived:?}");
    assert!(
        !arrived[0].complete,
        "the upstream never got a whole request"
    );
    assert!(arrived[0].request_line().starts_with("POST /big "));
}

#[tokio::test]
async fn client_body_failures_are_not_counted_as_upstream_failures() {
    // An upstream that answers with a status no client understands, for
    // the control: a real upstream failure is counted.
    let up = Upstream::fixed(
        Policy::KeepAlive,
        "HTTP/1.1 999 Nonsense\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let (_dir, path) = write_config(
        &routes(
            "[admin]\nlisten = \"127.0.0.1:0\"\n\n[gateway.limits]\nmax_body = 1000",
            &up.url(),
        ),
        &[],
    );
    let env: HashMap<String, String> =
        [("LAMBDAGATE_ADMIN_TOKEN".to_string(), "t0k".to_string())].into();
    let gw = spawn_binary(&path, &[], &env).await;
    let (a, _) = exchange(
        gw.addr,
        b"POST /legacy/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    )
    .await;
    assert_eq!(a.status, 400);
    let mut big =
        b"POST /legacy/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    big.extend_from_slice(b"7d0\r\n");
    big.extend_from_slice(&[b'z'; 2000]);
    big.extend_from_slice(b"\r\n0\r\n\r\n");
    let (a, _) = exchange(gw.addr, &big).await;
    assert_eq!(a.status, 413);
    let metrics = || async {
        crate::common::client()
            .get(gw.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let text = metrics().await;
    assert!(
        !text.contains(r#"lambdagate_backend_errors_total{backend="legacy""#),
        "client errors counted as backend errors:\n{text}"
    );
    assert!(
        !gw.stderr_lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("upstream request failed")),
        "client errors logged as upstream failures"
    );
    // The control: an upstream failure is a 502 and is counted.
    let (a, _) = exchange(gw.addr, b"GET /legacy/x HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!((a.status, a.text().as_str()), (502, BAD_GATEWAY));
    let text = metrics().await;
    assert!(
        text.contains(r#"lambdagate_backend_errors_total{backend="legacy",kind="failed"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn function_routes_answer_400_and_413_for_bodies_the_client_could_not_deliver() {
    let fake = FakeLambda::start(|_| {
        Reply::json(serde_json::json!({"statusCode": 200, "body": "invoked"}))
    })
    .await;
    let gw = gateway_on(
        &fake,
        "",
        r#"
[gateway.limits]
max_body = 1000

[functions.hello]
name = "hello"

[[routes]]
method = "POST"
path = "/fn"
function = "hello"
"#,
    )
    .await;
    let addr = gw.process.addr;
    let (a, mut s) = exchange(
        addr,
        b"POST /fn HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!((a.status, a.text().as_str()), (400, MALFORMED_CHUNKS));
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    let mut big = b"POST /fn HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    big.extend_from_slice(b"7d0\r\n");
    big.extend_from_slice(&[b'z'; 2000]);
    big.extend_from_slice(b"\r\n0\r\n\r\n");
    let (a, mut s) = exchange(addr, &big).await;
    assert_eq!((a.status, a.text().as_str()), (413, TOO_LARGE));
    // The control, on the same connection (that body was read to its end,
    // so its framing is intact): a good chunked body is invoked.
    s.write_all(
        b"POST /fn HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let a = read_answer(&mut s, &mut Vec::new(), false).await;
    assert_eq!((a.status, a.text().as_str()), (200, "invoked"));
    assert_eq!(fake.calls().len(), 1, "only the good request was invoked");
}

// ----------------------------------------------------------------------
// Upstream answers.

#[tokio::test]
async fn head_answers_carry_content_length_only_when_the_upstream_sent_one() {
    for (upstream_answer, length) in [
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n",
            None,
        ),
        ("HTTP/1.1 200 OK\r\nX-Up: 1\r\n\r\n", None),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-Up: 1\r\n\r\n",
            Some("1234"),
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Up: 1\r\n\r\n",
            Some("0"),
        ),
    ] {
        let up = Upstream::fixed(Policy::KeepAlive, upstream_answer).await;
        let gw = start(&routes("", &up.url())).await;
        let mut s = connect(gw.addr).await;
        let mut buf = Vec::new();
        s.write_all(b"HEAD /legacy/h HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let a = read_answer(&mut s, &mut buf, true).await;
        assert_eq!(a.status, 200, "{upstream_answer:?}");
        assert_eq!(a.header("x-up"), Some("1"));
        assert_eq!(
            a.header("content-length"),
            length,
            "{upstream_answer:?}: {a:?}"
        );
        assert_eq!(a.header("transfer-encoding"), None);
        // No body followed: the next answer on the connection is whole.
        s.write_all(b"GET /mock/next HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let b = read_answer(&mut s, &mut buf, false).await;
        assert_eq!((b.status, b.text().as_str()), (200, "mocked"));
        let arrived = up.arrived();
        assert_eq!(arrived.len(), 1);
        assert!(arrived[0].request_line().starts_with("HEAD /h "));
    }
}

#[tokio::test]
async fn an_upstream_status_outside_100_to_599_is_a_502_and_its_connection_is_dropped() {
    for status in ["999", "600", "099", "000"] {
        let up = Upstream::start(Policy::KeepAlive, move |r| {
            if r.request_line().starts_with("GET /odd ") {
                format!("HTTP/1.1 {status} Odd\r\nContent-Length: 2\r\n\r\nhi").into_bytes()
            } else {
                OK5.as_bytes().to_vec()
            }
        })
        .await;
        let gw = start(&routes("", &up.url())).await;
        let mut s = connect(gw.addr).await;
        let mut buf = Vec::new();
        s.write_all(b"GET /legacy/odd HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let a = read_answer(&mut s, &mut buf, false).await;
        assert_eq!(
            (a.status, a.text().as_str()),
            (502, BAD_GATEWAY),
            "{status}"
        );
        // The client's connection is fine; the upstream's is not reused.
        s.write_all(b"GET /legacy/next HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let b = read_answer(&mut s, &mut buf, false).await;
        assert_eq!((b.status, b.text().as_str()), (200, "fine!"), "{status}");
        let arrived = up.arrived();
        assert_eq!(arrived.len(), 2);
        assert_ne!(arrived[0].conn, arrived[1].conn, "{status}: reused");
    }
}

#[tokio::test]
async fn an_http10_answer_with_transfer_encoding_is_read_and_its_connection_dropped() {
    let up = Upstream::start(Policy::KeepAlive, |r| {
        if r.request_line().starts_with("GET /old ") {
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                .to_vec()
        } else {
            OK5.as_bytes().to_vec()
        }
    })
    .await;
    let gw = start(&routes("", &up.url())).await;
    let mut s = connect(gw.addr).await;
    let mut buf = Vec::new();
    for _ in 0..2 {
        s.write_all(b"GET /legacy/old HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let a = read_answer(&mut s, &mut buf, false).await;
        assert_eq!((a.status, a.text().as_str()), (200, "hello world"));
    }
    s.write_all(b"GET /legacy/after HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let a = read_answer(&mut s, &mut buf, false).await;
    assert_eq!(a.text(), "fine!");
    let conns: Vec<usize> = up.arrived().iter().map(|r| r.conn).collect();
    assert_eq!(
        conns,
        [1, 2, 3],
        "an HTTP/1.0 answer with Transfer-Encoding is never reused"
    );
}

#[tokio::test]
async fn kept_alive_connections_the_upstream_closes_never_give_a_502() {
    const N: usize = 20;
    for policy in [
        Policy::OneThenClose,
        Policy::OneThenDropNext,
        Policy::OneThenResetNext,
    ] {
        let up = Upstream::fixed(policy, OK5).await;
        let gw = start(&routes("", &up.url())).await;
        // One client connection, kept alive all along.
        let mut s = connect(gw.addr).await;
        let mut buf = Vec::new();
        for i in 0..N {
            // Idempotent methods, with and without a body.
            let request = if i % 2 == 0 {
                format!("GET /legacy/{i} HTTP/1.1\r\nHost: x\r\n\r\n")
            } else {
                format!("PUT /legacy/{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
            };
            s.write_all(request.as_bytes()).await.unwrap();
            let a = read_answer(&mut s, &mut buf, false).await;
            assert_eq!(
                (a.status, a.text().as_str()),
                (200, "fine!"),
                "{policy:?} #{i}"
            );
            assert_ne!(a.header("connection"), Some("close"));
        }
        let arrived = up.arrived();
        if policy != Policy::OneThenClose {
            // Every request after the first went out on a pooled connection
            // the upstream then dropped, and again on a new one.
            assert_eq!(up.connections(), N, "{policy:?}");
            assert_eq!(arrived.len(), 2 * N - 1, "{policy:?}");
            for i in 1..N {
                let copies: Vec<&Arrived> = arrived
                    .iter()
                    .filter(|r| r.request_line().contains(&format!(" /{i} ")))
                    .collect();
                assert_eq!(copies.len(), 2, "{policy:?} #{i}");
                assert_eq!(copies[0].bytes, copies[1].bytes, "replayed byte for byte");
                assert_ne!(copies[0].conn, copies[1].conn);
            }
        } else {
            // Each connection served one answer; no request was lost or
            // sent twice.
            assert!(arrived.iter().all(|r| r.complete));
            assert_eq!(arrived.len(), N, "{policy:?}");
            assert_eq!(up.connections(), N, "{policy:?}");
        }
    }
}

#[tokio::test]
async fn a_request_that_cannot_be_replayed_is_a_502_when_its_connection_was_dropped() {
    let up = Upstream::fixed(Policy::OneThenDropNext, OK5).await;
    let gw = start(&routes("", &up.url())).await;
    let mut s = connect(gw.addr).await;
    let mut buf = Vec::new();
    s.write_all(b"GET /legacy/first HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut s, &mut buf, false).await.status, 200);
    // Larger than what goes out in the first write: it cannot be replayed
    // as it was sent, though PUT is idempotent.
    let body = vec![b'p'; 100_000];
    let mut put = format!(
        "PUT /legacy/big HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    put.extend_from_slice(&body);
    s.write_all(&put).await.unwrap();
    let a = read_answer(&mut s, &mut buf, false).await;
    assert_eq!((a.status, a.text().as_str()), (502, BAD_GATEWAY));
    // A POST is not idempotent: never sent twice.
    s.write_all(b"GET /legacy/third HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut s, &mut buf, false).await.status, 200);
    s.write_all(b"POST /legacy/post HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none")
        .await
        .unwrap();
    let a = read_answer(&mut s, &mut buf, false).await;
    assert_eq!((a.status, a.text().as_str()), (502, BAD_GATEWAY));
    let lines: Vec<String> = up.arrived().iter().map(Arrived::request_line).collect();
    assert_eq!(
        lines,
        [
            "GET /first HTTP/1.1",
            "PUT /big HTTP/1.1",
            "GET /third HTTP/1.1",
            "POST /post HTTP/1.1"
        ],
        "nothing was sent twice"
    );
}

// ----------------------------------------------------------------------
// Forwarding headers.

const SPOOFED: &str = "GET /legacy/who HTTP/1.1\r\n\
    Host: api.example\r\n\
    Forwarded: for=6.6.6.6;proto=https\r\n\
    X-Real-IP: 6.6.6.6\r\n\
    X-Original-URL: /admin\r\n\
    X-Rewrite-URL: /admin\r\n\
    X-Forwarded-Port: 443\r\n\
    X-Forwarded-Prefix: /evil\r\n\
    X-Forwarded-Host: evil.example\r\n\
    X-Forwarded-Proto: https\r\n\
    X-Forwarded-For: 6.6.6.6\r\n\
    X-Kept: yes\r\n\r\n";

const FORWARDING: [&str; 6] = [
    "forwarded",
    "x-real-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-port",
    "x-forwarded-prefix",
];

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_dropped() {
    let up = Upstream::fixed(Policy::KeepAlive, OK5).await;
    // Trusts others, not 127.0.0.1.
    let gw = start(&routes("trusted_proxies = [\"10.0.0.0/8\"]", &up.url())).await;
    let (a, _) = exchange(gw.addr, SPOOFED.as_bytes()).await;
    assert_eq!(a.status, 200);
    let r = &up.arrived()[0];
    for name in FORWARDING {
        assert!(r.header(name).is_empty(), "{name} passed: {}", r.text());
    }
    assert_eq!(r.header("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(r.header("x-forwarded-proto"), ["http"]);
    assert_eq!(r.header("x-forwarded-host"), ["api.example"]);
    assert_eq!(r.header("x-kept"), ["yes"]);
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_peer_pass() {
    let up = Upstream::fixed(Policy::KeepAlive, OK5).await;
    let gw = start(&routes(
        "trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1/32\"]",
        &up.url(),
    ))
    .await;
    let (a, _) = exchange(gw.addr, SPOOFED.as_bytes()).await;
    assert_eq!(a.status, 200);
    let r = &up.arrived()[0];
    assert_eq!(r.header("forwarded"), ["for=6.6.6.6;proto=https"]);
    assert_eq!(r.header("x-real-ip"), ["6.6.6.6"]);
    assert_eq!(r.header("x-original-url"), ["/admin"]);
    assert_eq!(r.header("x-rewrite-url"), ["/admin"]);
    assert_eq!(r.header("x-forwarded-port"), ["443"]);
    assert_eq!(r.header("x-forwarded-prefix"), ["/evil"]);
    assert_eq!(r.header("x-forwarded-for"), ["6.6.6.6, 127.0.0.1"]);
    assert_eq!(r.header("x-forwarded-proto"), ["https"]);
    assert_eq!(r.header("x-forwarded-host"), ["evil.example"]);
}

#[tokio::test]
async fn http2_cookie_fields_reach_the_upstream_as_one() {
    use http_body_util::BodyExt;
    let up = Upstream::fixed(Policy::KeepAlive, OK5).await;
    let gw = start(&routes("", &up.url())).await;
    // HTTP/2 with prior knowledge on the plain listener.
    let tcp = connect(gw.addr).await;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://{}/legacy/c", gw.addr))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("x-other", "o")
        .header("cookie", "c=3")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.expect("h2 request");
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"fine!");
    let r = &up.arrived()[0];
    assert_eq!(r.header("cookie"), ["a=1; b=2; c=3"], "{}", r.text());
    assert_eq!(r.header("x-other"), ["o"]);
    assert_eq!(r.header("x-forwarded-proto"), ["http"]);
}

fn self_signed() -> (String, String, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (
        ck.cert.pem(),
        ck.signing_key.serialize_pem(),
        ck.cert.der().to_vec(),
    )
}

#[tokio::test]
async fn behind_tls_the_upstream_is_told_https() {
    use http_body_util::BodyExt;
    let up = Upstream::fixed(Policy::KeepAlive, OK5).await;
    let (cert, key, der) = self_signed();
    let gw = start_with(
        &routes(
            "tls = { cert = \"cert.pem\", key = \"key.pem\" }",
            &up.url(),
        ),
        &[("cert.pem", cert.as_bytes()), ("key.pem", key.as_bytes())],
        Default::default(),
    )
    .await;
    // HTTP/1.1 over TLS, with a spoofed X-Forwarded-Proto that must not win.
    let c = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .resolve("localhost", gw.addr)
        .build()
        .unwrap();
    let res = c
        .get(format!("https://localhost:{}/legacy/tls1", gw.addr.port()))
        .header("x-forwarded-proto", "gopher")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // HTTP/2 chosen by ALPN.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(der))
        .unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .expect("TLS handshake");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let req = http::Request::get(format!("https://localhost:{}/legacy/tls2", gw.addr.port()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.expect("h2 request");
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    let _ = res.into_body().collect().await;
    let arrived = up.arrived();
    assert_eq!(arrived.len(), 2);
    for r in &arrived {
        assert_eq!(r.header("x-forwarded-proto"), ["https"], "{}", r.text());
    }
}

// ----------------------------------------------------------------------
// Paths toward upstreams.

#[tokio::test]
async fn dot_semicolon_segments_are_refused_on_every_route_kind() {
    let up = Upstream::fixed(Policy::KeepAlive, OK5).await;
    let gw = start(&routes("", &up.url())).await;
    for prefix in ["/legacy", "/mock"] {
        for tail in [
            "/a/..;/admin",
            "/a/..;jsessionid=x/admin",
            "/a/.;/b",
            "/a/%2e%2e%3b/admin",
            "/a/%2E%2E%3Bx=1/admin",
            "/a/.%2e;/admin",
            "/a/%2e.;/admin",
        ] {
            let request = format!("GET {prefix}{tail} HTTP/1.1\r\nHost: x\r\n\r\n");
            let (a, mut s) = exchange(gw.addr, request.as_bytes()).await;
            assert_eq!(
                (a.status, a.text().as_str()),
                (400, BAD_PATH),
                "{prefix}{tail}"
            );
            assert!(
                still_open(&mut s).await,
                "a refused path keeps the connection"
            );
        }
    }
    // A `;` elsewhere is an ordinary character.
    let (a, _) = exchange(
        gw.addr,
        b"GET /legacy/a;v=1/..x;y HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(a.status, 200);
    let lines: Vec<String> = up.arrived().iter().map(Arrived::request_line).collect();
    assert_eq!(
        lines,
        ["GET /a;v=1/..x;y HTTP/1.1"],
        "only the good path went upstream"
    );
}

#[tokio::test]
async fn an_upstream_target_never_starts_with_two_slashes() {
    let up = Upstream::fixed(Policy::KeepAlive, OK5).await;
    let gw = start(&routes("", &up.url())).await;
    let based = Upstream::fixed(Policy::KeepAlive, OK5).await;
    let gw_based = start(&routes("", &format!("{}/base", based.url()))).await;
    for path in ["/legacy//evil.example/x", "/legacy///evil.example/x"] {
        let request = format!("GET {path}?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        let (a, _) = exchange(gw.addr, request.as_bytes()).await;
        assert_eq!(a.status, 200, "{path}");
        let (a, _) = exchange(gw_based.addr, request.as_bytes()).await;
        assert_eq!(a.status, 200, "{path}");
    }
    let lines: Vec<String> = up.arrived().iter().map(Arrived::request_line).collect();
    assert_eq!(
        lines,
        [
            "GET /evil.example/x?q=1 HTTP/1.1",
            "GET /evil.example/x?q=1 HTTP/1.1"
        ]
    );
    // Under a base path the slashes are inside the target: kept as sent.
    let lines: Vec<String> = based.arrived().iter().map(Arrived::request_line).collect();
    assert_eq!(
        lines,
        [
            "GET /base//evil.example/x?q=1 HTTP/1.1",
            "GET /base///evil.example/x?q=1 HTTP/1.1"
        ]
    );
}

// ----------------------------------------------------------------------
// Config.

#[test]
fn trusted_proxies_must_be_cidrs() {
    let src = "[gateway]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\", \"nope\", \"10.1.2.3/8\", \"::1/128\"]\n";
    let errors = match lambdagate::config::parse(std::path::Path::new("routes.toml"), src) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.0,
    };
    let found: Vec<(usize, usize, String)> = errors
        .iter()
        .map(|e| (e.line, e.column, e.message.clone()))
        .collect();
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!((found[0].0, found[0].1), (2, 34), "{found:?}");
    assert!(
        found[0].2.contains("`10.0.0.0/33` is not a CIDR"),
        "{found:?}"
    );
    assert_eq!((found[1].0, found[1].1), (2, 49), "{found:?}");
    assert!(found[1].2.contains("`nope` is not a CIDR"), "{found:?}");
    assert_eq!((found[2].0, found[2].1), (2, 57), "{found:?}");
    assert!(
        found[2].2.contains("did you mean `10.0.0.0/8`"),
        "{found:?}"
    );
    assert!(errors[0].to_string().starts_with("routes.toml:2:34: "));
    // And a good list loads.
    let ok = "[gateway]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1/128\", \"192.168.1.7/32\"]\n";
    let config = lambdagate::config::parse(std::path::Path::new("routes.toml"), ok).unwrap();
    assert_eq!(config.gateway.trusted_proxies.len(), 3);
}
