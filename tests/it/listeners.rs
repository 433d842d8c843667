//! One policy for every listener: a whole-body deadline (HTTP/1.1 and
//! HTTP/2), HTTP/2's header-read and write-stall timeouts, lingering close
//! after an early refusal, and the admin, Invoke and Runtime API listeners
//! answering hostile clients exactly as the public one does. Hostile input
//! is sent as raw bytes over TCP.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::any;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::raw::{exchange_until_closed, read_until_closed};
use crate::common::{TestGateway, TestServer, client, serve_router, start, start_with};

const ADMIN_TOKEN: &str = "listeners-admin-token-51";

/// An upstream that records every request body it received whole, and
/// answers `/big` with 32 MB.
async fn recording_upstream() -> (TestServer, Arc<Mutex<Vec<Bytes>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let router = Router::new()
        .route("/big", any(|| async { vec![b'x'; 32 * 1024 * 1024] }))
        .fallback(move |body: Bytes| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(body);
                "got it"
            }
        });
    (serve_router(router).await, seen)
}

/// A gateway with `limits` forwarding `/up/{proxy+}` to `upstream`.
async fn gateway_to(upstream: &TestServer, limits: &str) -> TestGateway {
    start(&format!(
        r#"
[gateway.limits]
{limits}

[backends.up]
kind = "http"
url = "http://{}"

[[routes]]
method = "ANY"
path = "/up/{{proxy+}}"
backend = "up"
"#,
        upstream.addr
    ))
    .await
}

#[tokio::test]
async fn a_body_dripped_past_body_timeout_is_a_408_and_closes() {
    let (up, seen) = recording_upstream().await;
    // Each byte comes well within the idle timeout; only the body's
    // deadline can end this.
    let gw = gateway_to(&up, "body_timeout = \"1s\"\nidle_timeout = \"30s\"").await;
    let heads: [&[u8]; 2] = [
        b"POST /up/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
        b"POST /up/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    ];
    for head in heads {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(head).await.unwrap();
        let started = Instant::now();
        let (mut rd, mut wr) = s.into_split();
        // A body byte (or an endless chunk-size digit) every 100 ms.
        let drip = tokio::spawn(async move {
            while started.elapsed() < Duration::from_secs(15) {
                if wr.write_all(b"0").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut out))
            .await
            .expect("the connection closes once the body's deadline passed")
            .unwrap();
        let took = started.elapsed();
        drip.abort();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains(r#"{"message":"Request Timeout"}"#), "{text}");
        assert!(text.contains("connection: close"), "{text}");
        assert!(
            took >= Duration::from_millis(900),
            "cut before the deadline: {took:?}"
        );
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "an unfinished body reached the upstream whole"
    );
}

/// An HTTP/2 connection over `tcp` with `stream_window` as the client's
/// receive window; the connection task's handle says when it ended.
async fn h2_connect(
    addr: SocketAddr,
    stream_window: u32,
) -> (
    hyper::client::conn::http2::SendRequest<Body>,
    tokio::task::JoinHandle<()>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(stream_window)
            .initial_connection_window_size(stream_window)
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, task)
}

#[tokio::test]
async fn an_http2_stream_whose_body_never_ends_is_a_408() {
    let (up, seen) = recording_upstream().await;
    let gw = gateway_to(&up, "body_timeout = \"1s\"\nidle_timeout = \"30s\"").await;
    let (mut sender, _conn) = h2_connect(gw.addr, 1024 * 1024).await;
    // HEADERS without END_STREAM, a few bytes of body, then nothing.
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tx.try_send(Ok(Bytes::from_static(b"part"))).unwrap();
    let body = Body::from_stream(rx);
    let req = http::Request::post(format!("http://{}/up/x", gw.addr))
        .body(body)
        .unwrap();
    let started = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("the stream is answered once its body's deadline passed")
        .expect("an answer, not a reset");
    let took = started.elapsed();
    assert_eq!(res.status(), 408);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"message":"Request Timeout"}"#);
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(seen.lock().unwrap().is_empty());
    drop(tx);
    // The connection itself still serves.
    let req = http::Request::post(format!("http://{}/up/y", gw.addr))
        .body(Body::from("whole"))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [Bytes::from_static(b"whole")]
    );
}

#[tokio::test]
async fn an_http2_connection_without_a_request_is_closed_after_header_read_timeout() {
    let gw = start(
        "[gateway.limits]\nheader_read_timeout = \"500ms\"\nidle_timeout = \"30s\"\n\
         [[routes]]\nmethod = \"GET\"\npath = \"/ping\"\nmock = { status = 200, body = \"pong\" }\n",
    )
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let started = Instant::now();
    // The preface and an empty SETTINGS frame, then no request.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let out = read_until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("an HTTP/2 connection with no request stays open");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "closed after {took:?}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    // What came back is the server's side of the handshake only.
    assert!(out.len() < 1024, "{out:?}");
}

/// HTTP/2 frame: 24-bit length, type, flags, stream id.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test]
async fn an_http2_client_that_stops_taking_its_response_is_cut_off() {
    let (up, _seen) = recording_upstream().await;
    let gw = gateway_to(&up, "idle_timeout = \"500ms\"").await;

    // Flow control: the client reads its socket (and answers PINGs) but
    // never reopens its window for the 32 MB answer.
    let (mut sender, conn) = h2_connect(gw.addr, 65_535).await;
    let req = http::Request::get(format!("http://{}/up/big", gw.addr))
        .body(Body::empty())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the gateway closes a connection whose client takes nothing")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    drop(res);

    // The socket: huge windows, but the client reads nothing at all.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS_INITIAL_WINDOW_SIZE = 2^31 - 1, and as much for the connection.
    hello.extend(frame(0x4, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]));
    hello.extend(frame(0x8, 0, 0, &(0x7fff_ffffu32 - 65_535).to_be_bytes()));
    // HEADERS, END_STREAM | END_HEADERS: GET http /up/big, authority x.
    let mut block = vec![0x82, 0x86, 0x44, 7];
    block.extend_from_slice(b"/up/big");
    block.extend_from_slice(&[0x41, 1, b'x']);
    hello.extend(frame(0x1, 0x5, 1, &block));
    s.write_all(&hello).await.unwrap();
    // Not reading is the client's whole part here.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = read_until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("the connection was closed, so reading what was sent ends");
    assert!(
        out.len() < 32 * 1024 * 1024,
        "the whole answer went out: {}",
        out.len()
    );
}

/// Sends `head` and then `body_len` bytes of body from another task while
/// reading the answer, as a client that uploads and reads at once does.
/// Returns what was read before the connection ended; panics if the answer
/// or the upload was cut by a reset.
async fn answer_while_uploading(addr: SocketAddr, head: String, body_len: usize) -> String {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(head.as_bytes()).await.unwrap();
    let upload = tokio::spawn(async move {
        let chunk = vec![b'u'; 64 * 1024];
        let mut sent = 0;
        while sent < body_len {
            wr.write_all(&chunk).await?;
            sent += chunk.len();
        }
        Ok::<_, std::io::Error>(wr)
    });
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) => return Ok(()),
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("the connection ends");
    let text = String::from_utf8_lossy(&out).into_owned();
    if let Err(e) = read {
        panic!("the answer was cut by {e} after {text:?}");
    }
    // Without a lingering close the gateway's kernel resets the upload as
    // soon as the socket is closed with body bytes unread.
    let uploaded = tokio::time::timeout(Duration::from_secs(10), upload)
        .await
        .expect("the upload ends")
        .unwrap();
    if let Err(e) = uploaded {
        panic!("the upload was cut by {e}; the answer was {text:?}");
    }
    text
}

#[tokio::test]
async fn a_refused_upload_still_gets_its_whole_answer() {
    let gw = start_with(
        r#"
[gateway.limits]
max_body = "1KB"

[admin]
listen = "127.0.0.1:0"
token_file = "admin.token"

[[routes]]
method = "POST"
path = "/up"
mock = { status = 200, body = "taken" }
"#,
        &[("admin.token", ADMIN_TOKEN.as_bytes())],
        Default::default(),
    )
    .await;
    let len = 16 * 1024 * 1024;
    // Over `max_body`: 413 before a byte of the body is read.
    let text = answer_while_uploading(
        gw.addr,
        format!("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n"),
        len,
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.ends_with(r#"{"message":"Request Entity Too Large"}"#),
        "{text}"
    );
    // The admin API refuses a wrong token without reading the body.
    let admin = gw.admin_addr.unwrap();
    let text = answer_while_uploading(
        admin,
        format!(
            "POST /keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        ),
        len,
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(text.ends_with(r#"{"message":"Unauthorized"}"#), "{text}");
}

/// The answers of one listener to four hostile clients: a slowloris head,
/// oversized headers, two `Content-Length`s, and `Content-Length` with
/// `Transfer-Encoding`. Each entry is the status (or `closed`) and whether
/// the connection was closed after it.
async fn hostile_answers(addr: SocketAddr) -> Vec<String> {
    let mut answers = Vec::new();
    // One header line every 100 ms, never finishing the head.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (mut rd, mut wr) = s.into_split();
    let trickle = tokio::spawn(async move {
        for i in 0..100 {
            if wr
                .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut out))
        .await
        .expect("a slowloris head is cut off");
    trickle.abort();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "cut after {took:?}");
    answers.push(format!("slowloris: {}", String::from_utf8_lossy(&out)));

    let status = |text: &str| text.get(..12).unwrap_or(text).to_string();
    let big = format!(
        "GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(12 * 1024)
    );
    let text = exchange_until_closed(addr, big.as_bytes()).await;
    assert!(text.contains("Request Header Fields Too Large"), "{text}");
    answers.push(format!("big headers: {}", status(&text)));
    let text = exchange_until_closed(
        addr,
        b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    )
    .await;
    answers.push(format!("two lengths: {}", status(&text)));
    let text = exchange_until_closed(
        addr,
        b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    answers.push(format!("length and chunked: {}", status(&text)));
    answers
}

#[tokio::test]
async fn admin_and_invoke_listeners_answer_hostile_clients_as_the_api_does() {
    let gw = start_with(
        r#"
[gateway.limits]
header_read_timeout = "500ms"

[admin]
listen = "127.0.0.1:0"
token_file = "admin.token"

[[routes]]
method = "GET"
path = "/ping"
mock = { status = 200, body = "pong" }
"#,
        &[("admin.token", ADMIN_TOKEN.as_bytes())],
        Default::default(),
    )
    .await;
    let invoke = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let invoke_addr = invoke.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let g = gw.gateway.clone();
    let invoke_task = tokio::spawn(lambdagate::invoke_api::serve(
        invoke,
        Arc::new(move || g.clone()),
        async {
            let _ = stopped.await;
        },
    ));
    let expected = vec![
        "slowloris: ".to_string(),
        "big headers: HTTP/1.1 431".to_string(),
        "two lengths: HTTP/1.1 400".to_string(),
        "length and chunked: HTTP/1.1 400".to_string(),
    ];
    for (name, addr) in [
        ("API", gw.addr),
        ("admin", gw.admin_addr.unwrap()),
        ("Invoke API", invoke_addr),
    ] {
        assert_eq!(hostile_answers(addr).await, expected, "{name} listener");
    }
    // A shutdown still ends the Invoke API listener.
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), invoke_task)
        .await
        .expect("the Invoke API listener stops on shutdown")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_invoke_api_takes_a_six_mib_payload_and_refuses_more_in_lambdas_words() {
    let gw = start(
        r#"
[invoke_api]
listen = "127.0.0.1:0"

[backends.local]
kind = "local"

[functions.f]
command = ["/bin/true"]
"#,
    )
    .await;
    let invoke = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = invoke.local_addr().unwrap();
    let g = gw.gateway.clone();
    tokio::spawn(lambdagate::invoke_api::serve(
        invoke,
        Arc::new(move || g.clone()),
        std::future::pending(),
    ));
    let url = format!("http://{addr}/2015-03-31/functions/f/invocations");
    let six_mib = 6 * 1024 * 1024;
    // A dry run reads the payload and invokes nothing.
    let res = client()
        .post(&url)
        .header("x-amz-invocation-type", "DryRun")
        .body(vec![b' '; six_mib])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = client()
        .post(&url)
        .header("x-amz-invocation-type", "DryRun")
        .body(vec![b' '; six_mib + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(
        res.headers()["x-amzn-errortype"],
        "RequestTooLargeException"
    );
}

#[tokio::test]
async fn a_runtime_api_long_poll_outlives_the_timeouts_and_a_full_size_response_is_taken() {
    use lambdagate::runtime_api::queue::{Invocation, Outcome};
    use lambdagate::runtime_api::{EnvironmentState, RuntimeApiServer};

    let limits = lambdagate::config::Limits {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let env = Arc::new(EnvironmentState::new("f"));
    let server = RuntimeApiServer::start(env.clone(), limits).await.unwrap();
    let base = format!("http://{}/2018-06-01/runtime", server.addr());
    let next = tokio::spawn({
        let url = format!("{base}/invocation/next");
        async move { client().get(url).send().await }
    });
    // The function waits in `/next` far longer than either timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!next.is_finished(), "the long poll was answered early");
    let outcome = env
        .queue
        .submit(Invocation {
            request_id: "r1".into(),
            payload: Bytes::from_static(b"{\"n\":1}"),
            deadline_ms: 0,
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            trace_id: "Root=1-x".into(),
            client_context: None,
        })
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("the invocation reaches the waiting /next")
        .unwrap()
        .expect("the long poll was not cut");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["lambda-runtime-aws-request-id"], "r1");
    assert_eq!(res.text().await.unwrap(), "{\"n\":1}");
    // A response of the whole payload limit is taken.
    let size = lambdagate::runtime_api::handlers::MAX_RESPONSE_BYTES;
    let res = client()
        .post(format!("{base}/invocation/r1/response"))
        .body(vec![b'r'; size])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    match outcome.await.unwrap() {
        Outcome::Response(body) => assert_eq!(body.len(), size),
        other => panic!("{other:?}"),
    }
    // Hostile framing gets the public listener's answer here too.
    let text = exchange_until_closed(
        server.addr(),
        b"POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
}
