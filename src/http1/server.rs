//! HTTP/1.1 server connections, read and written here rather than by hyper:
//! the request head is parsed in place by httparse (header values sliced
//! from the bytes read, no copy), the pipeline is called directly, and the
//! response head and a small body go out in one write. hyper's server
//! connection (its dispatcher, buffers, a second parse of every head by a
//! request-smuggling guard, and a header-read timer armed and cancelled for
//! every request) cost a large share of a proxied request's CPU.
//!
//! What this module answers for, per RFC 9112:
//! - **The head** ([`super::request`]): version (§2.3), `Host` (§3.2), the
//!   request-target's form (§3.2), and the framing decided in
//!   [`super::head`] (§6): every refusal is answered and the connection
//!   closed ([`HeadError::response`]). Bodies that arrived with their head
//!   are handed over whole (a malformed chunked one refused at once),
//!   others stream as the pipeline reads them, with `100 Continue` sent
//!   when it first asks for them (§9.3 of RFC 9110).
//! - **Persistence** (§9): keep-alive by version and `Connection`, pipelined
//!   requests answered in order, the connection closed after a response
//!   whose request body was not read to its end.
//! - **Responses**: `Content-Length` from the body's exact size, else
//!   chunked (HTTP/1.1) or close-delimited (HTTP/1.0); no body for `HEAD`,
//!   `1xx`, `204`, `304`; `Date` added when missing.
//! - **Timeouts without a timer per request**: one timer per connection,
//!   moved only when a deadline comes earlier than it is set for (a head
//!   that arrives in pieces); on firing it checks the real deadline and
//!   re-arms if the connection was busy meanwhile. A request being served
//!   arms nothing.
//!
//! A connection that opens with HTTP/2's preface is handed back to the
//! caller, with the bytes read so far, for hyper's HTTP/2 server.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{Method, Request, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, watch};

use super::chunked::{ChunkDecoder, Decoded};
use super::fields::{list_tokens, parse_length};
use super::head::{Framing, HeadError};
use super::request::{Head, parse_head};
use crate::error::GatewayError;

/// Response bodies up to this size are sent in the same write as the head.
const COALESCE: usize = 64 * 1024;

/// What a connection hands its requests to: the gateway's pipeline on the
/// public listener, a `Router` on the admin, Invoke and Runtime API ones.
pub(crate) trait Handler: Send + Sync {
    /// Held from a request's arrival until its response has been written
    /// (the public listener's live config, so a reload waits for it).
    type Guard: Send;
    fn call(&self, req: Request<Body>) -> (crate::pipeline::PhaseFuture, Self::Guard);
}

/// What one connection needs from the config it was accepted under.
#[derive(Clone, Copy)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// A request's whole body must have arrived this long after its head.
    pub body_timeout: Duration,
    /// Buffered head bytes past which the head is refused with `431`.
    pub max_buf: usize,
    /// TLS was terminated on this connection: its requests carry
    /// [`super::TlsTerminated`].
    pub tls: bool,
}

/// A request as the codec hands it on: its head, and its body, whole or
/// still to be fed from the connection.
struct Incoming {
    head: Head,
    body: Body,
    feed: Option<Feed>,
}

/// The next request at the front of `buf`, head and body: `Ok(None)` if its
/// head is not complete yet. A chunked body whose bytes arrived with the
/// head and are malformed is refused here, before any route sees it.
fn next_request(buf: &mut BytesMut, max_buf: usize) -> Result<Option<Incoming>, HeadError> {
    let Some(head) = parse_head(buf, max_buf)? else {
        return Ok(None);
    };
    let (body, feed) = request_body(buf, head.framing, head.expect_continue)?;
    Ok(Some(Incoming { head, body, feed }))
}

/// Serves HTTP/1 requests on `io` until the connection ends. Returns the
/// connection and the bytes read so far if it opened with HTTP/2's preface.
pub async fn serve<IO, H: Handler>(
    mut io: IO,
    peer: SocketAddr,
    handler: &H,
    drain: watch::Receiver<bool>,
    limits: ConnLimits,
) -> Option<(IO, BytesMut)>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut buf = BytesMut::with_capacity(8192);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let accepted = Instant::now();
    // One timer for the connection's life; see the module comment.
    let mut timer = Box::pin(tokio::time::sleep_until(
        (accepted + limits.header_read_timeout).into(),
    ));
    let mut watch_drain = drain.clone();
    let draining = async move {
        // An error means the server is gone: drain as well.
        let _ = watch_drain.wait_for(|d| *d).await;
    };
    let mut draining = Box::pin(draining);
    let mut first = true;
    let mut last_end = accepted;
    loop {
        // Read until a whole head is buffered.
        let mut head_started: Option<Instant> = first.then_some(accepted);
        let head = loop {
            match next_request(&mut buf, limits.max_buf) {
                Ok(Some(incoming)) => break incoming,
                Ok(None) => {}
                Err(HeadError::Http2) if first => return Some((io, buf)),
                Err(e) => {
                    let res = e.response();
                    let _ = write_response(
                        &mut io,
                        &mut out,
                        res,
                        false,
                        Version::HTTP_11,
                        false,
                        limits.idle_timeout,
                    )
                    .await;
                    linger(&mut io).await;
                    return None;
                }
            }
            // Idle between requests; a head in pieces gets the header
            // read timeout from its first byte.
            let deadline = if buf.is_empty() && !first {
                last_end + limits.idle_timeout
            } else {
                *head_started.get_or_insert_with(Instant::now) + limits.header_read_timeout
            };
            if timer.deadline().into_std() > deadline {
                timer.as_mut().reset(deadline.into());
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(8192);
            }
            tokio::select! {
                biased;
                read = io.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                },
                () = &mut draining => return None,
                () = &mut timer => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    timer.as_mut().reset(deadline.into());
                }
            }
        };
        first = false;

        let Incoming { head, body, feed } = head;
        let head_request = head.method == Method::HEAD;
        let version = head.version;
        let mut keep_alive = head.keep_alive;
        let mut req = Request::new(body);
        *req.method_mut() = head.method;
        *req.uri_mut() = head.uri;
        *req.version_mut() = version;
        *req.headers_mut() = head.headers;
        req.extensions_mut().insert(ConnectInfo(peer));
        if limits.tls {
            req.extensions_mut().insert(super::TlsTerminated);
        }
        let (pending, guard) = handler.call(req);
        let (mut res, body) = match feed {
            None => (pending.await, BodyRead::Complete),
            Some(feed) => {
                // The body's deadline counts from the end of its head.
                let deadline = Instant::now() + limits.body_timeout;
                run_with_body(&mut io, &mut buf, pending, feed, &limits, deadline).await
            }
        };
        if body == BodyRead::TimedOut {
            // Whatever the pipeline made of a body cut short, the client is
            // told why: `408`, and the connection closes.
            res = GatewayError::RequestTimeout.into_response();
        }
        keep_alive &= body == BodyRead::Complete;
        if *drain.borrow() {
            keep_alive = false;
        }
        let written = write_response(
            &mut io,
            &mut out,
            res,
            head_request,
            version,
            keep_alive,
            limits.idle_timeout,
        )
        .await;
        drop(guard);
        match written {
            Ok(true) => {}
            // The client may still be sending a body nobody read.
            Ok(false) if body != BodyRead::Complete => {
                linger(&mut io).await;
                return None;
            }
            Ok(false) | Err(_) => {
                close(&mut io).await;
                return None;
            }
        }
        // A large answer or upload grew the buffers; an idle connection
        // should not keep them (thousands of kept-alive clients).
        if out.capacity() > 16 * 1024 {
            out = Vec::with_capacity(1024);
        }
        if buf.is_empty() && buf.capacity() > 16 * 1024 {
            buf = BytesMut::with_capacity(8192);
        }
        last_end = Instant::now();
    }
}

/// A body still to be read from the connection, and how.
struct Feed {
    framing: FeedFraming,
    tx: mpsc::Sender<io::Result<Bytes>>,
    wanted: Arc<Notify>,
    expect_continue: bool,
}

enum FeedFraming {
    Length(u64),
    Chunked(ChunkDecoder),
}

/// The request's body: whole if it arrived with its head, else a stream the
/// connection feeds while the pipeline runs. Chunked framing already here
/// that is malformed is an error: the request is refused (`400`).
fn request_body(
    buf: &mut BytesMut,
    framing: Framing,
    expect_continue: bool,
) -> Result<(Body, Option<Feed>), HeadError> {
    let (framing, first) = match framing {
        // A request has no close-delimited body (RFC 9112 §6.3).
        Framing::None | Framing::UntilClose => return Ok((Body::empty(), None)),
        Framing::Length(n) => {
            if buf.len() as u64 >= n {
                return Ok((Body::from(buf.split_to(n as usize).freeze()), None));
            }
            (FeedFraming::Length(n), Vec::new())
        }
        Framing::Chunked => {
            let mut decoder = ChunkDecoder::default();
            let mut parts: Vec<Bytes> = Vec::new();
            loop {
                match decoder.decode(buf) {
                    Ok(Decoded::Data(b)) => parts.push(b),
                    Ok(Decoded::End) => {
                        let whole = match parts.len() {
                            0 => Bytes::new(),
                            1 => parts.pop().unwrap_or_default(),
                            _ => Bytes::from(parts.concat()),
                        };
                        return Ok((Body::from(whole), None));
                    }
                    Ok(Decoded::NeedMore) => break,
                    Err(_) => return Err(HeadError::Bad("malformed chunked body")),
                }
            }
            (FeedFraming::Chunked(decoder), parts)
        }
    };
    let size = match framing {
        FeedFraming::Length(n) => Some(n),
        FeedFraming::Chunked(_) => None,
    };
    // Room for what was decoded already plus one chunk in flight.
    let (tx, rx) = mpsc::channel(first.len() + 1);
    for part in first {
        let _ = tx.try_send(Ok(part));
    }
    let wanted = Arc::new(Notify::new());
    let body = Body::new(StreamBody::new(rx, wanted.clone(), size));
    Ok((
        body,
        Some(Feed {
            framing,
            tx,
            wanted,
            // Bytes of the body already here: the client did not wait.
            expect_continue: expect_continue && buf.is_empty(),
        }),
    ))
}

/// How reading a request body off the connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyRead {
    /// Read to its end: the connection may carry another request.
    Complete,
    /// Not read to its end (unread, broken, or the client went away).
    Incomplete,
    /// The client took longer than `body_timeout` for all of it, or sent
    /// nothing for `idle_timeout`.
    TimedOut,
}

/// Runs the pipeline while feeding it the request body from the connection.
/// Returns the response and how the body's reading ended (a body not read
/// to its end leaves the connection unable to carry another request).
async fn run_with_body<IO>(
    io: &mut IO,
    buf: &mut BytesMut,
    pending: crate::pipeline::PhaseFuture,
    feed: Feed,
    limits: &ConnLimits,
    deadline: Instant,
) -> (Response, BodyRead)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut pending = pending;
    let feeding = feed_body(io, buf, feed, limits, deadline);
    tokio::pin!(feeding);
    // The feed ends (and says why) before the pipeline can see the error it
    // hands over: both run in this task, and the feed returns in the same
    // poll that passes the error on.
    let mut fed: Option<BodyRead> = None;
    loop {
        tokio::select! {
            biased;
            res = &mut pending => return (res, fed.unwrap_or(BodyRead::Incomplete)),
            done = &mut feeding, if fed.is_none() => fed = Some(done),
        }
    }
}

/// Reads the body off the connection into the request's body stream, once
/// the pipeline first asks for it, until `deadline` (moved to
/// `body_timeout` after a `100 Continue`, since the client waited for it).
async fn feed_body<IO>(
    io: &mut IO,
    buf: &mut BytesMut,
    feed: Feed,
    limits: &ConnLimits,
    mut deadline: Instant,
) -> BodyRead
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let Feed {
        mut framing,
        tx,
        wanted,
        expect_continue,
    } = feed;
    // Nothing is read (and no `100 Continue` sent) until the pipeline asks
    // for the body; if it drops the body unread, the connection closes
    // after the answer.
    let wait = wanted.notified();
    tokio::select! {
        biased;
        () = wait => {}
        () = tx.closed() => return BodyRead::Incomplete,
    }
    if expect_continue {
        let stall = limits.idle_timeout;
        if send(io, b"HTTP/1.1 100 Continue\r\n\r\n", stall)
            .await
            .is_err()
            || flush(io, stall).await.is_err()
        {
            return BodyRead::Incomplete;
        }
        deadline = Instant::now() + limits.body_timeout;
    }
    loop {
        let chunk = match &mut framing {
            FeedFraming::Length(0) => return BodyRead::Complete,
            FeedFraming::Length(left) => {
                if buf.is_empty()
                    && let Err(e) = fill(io, buf, limits.idle_timeout, deadline).await
                {
                    return read_failed(&tx, e).await;
                }
                let n = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                buf.split_to(n).freeze()
            }
            FeedFraming::Chunked(decoder) => match decoder.decode(buf) {
                Ok(Decoded::Data(b)) => b,
                Ok(Decoded::End) => return BodyRead::Complete,
                Ok(Decoded::NeedMore) => {
                    if let Err(e) = fill(io, buf, limits.idle_timeout, deadline).await {
                        return read_failed(&tx, e).await;
                    }
                    continue;
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return BodyRead::Incomplete;
                }
            },
        };
        if tx.send(Ok(chunk)).await.is_err() {
            return BodyRead::Incomplete;
        }
    }
}

/// Hands a failed read to the pipeline as the body's error; says how the
/// body's reading ended.
async fn read_failed(tx: &mpsc::Sender<io::Result<Bytes>>, e: io::Error) -> BodyRead {
    let timed_out = e.kind() == io::ErrorKind::TimedOut;
    let _ = tx.send(Err(e)).await;
    if timed_out {
        BodyRead::TimedOut
    } else {
        BodyRead::Incomplete
    }
}

/// Reads more bytes into `buf`. A client that sends nothing for `stall`
/// while its body is being read is cut off, as one that stops reading its
/// answer is in [`send`], and so is one whose body is not all there by
/// `deadline` (one byte per `stall` would otherwise hold the connection
/// for ever): a request being served arms no timer otherwise. Both are
/// `TimedOut` errors, which the connection answers with `408`.
async fn fill<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buf: &mut BytesMut,
    stall: Duration,
    deadline: Instant,
) -> io::Result<()> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(64 * 1024);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let (limit, why) = if left < stall {
        (left, "the request body took longer than body_timeout")
    } else {
        (stall, "the client stopped sending its request body")
    };
    // A zero limit still takes bytes that are already there.
    match tokio::time::timeout(limit, io.read_buf(buf)).await {
        Ok(Ok(0)) => Err(unexpected_eof()),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(stalled(why)),
    }
}

/// Writes all of `buf`. Only a write that cannot complete at once gets a
/// timer: a client that takes nothing for `stall` is cut off.
async fn send<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    mut buf: &[u8],
    stall: Duration,
) -> io::Result<()> {
    while !buf.is_empty() {
        let n = match io.write(buf).now_or_never() {
            Some(r) => r?,
            None => tokio::time::timeout(stall, io.write(buf))
                .await
                .map_err(|_| stalled("the client stopped reading the response"))??,
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// Flushes `io` (TLS), under the same rule as [`send`].
async fn flush<IO: AsyncWrite + Unpin>(io: &mut IO, stall: Duration) -> io::Result<()> {
    match io.flush().now_or_never() {
        Some(r) => r,
        None => tokio::time::timeout(stall, io.flush())
            .await
            .map_err(|_| stalled("the client stopped reading the response"))?,
    }
}

/// Ends the connection: FIN on TCP, `close_notify` on TLS, bounded so a
/// client that reads nothing cannot hold it open.
async fn close<IO: AsyncWrite + Unpin>(io: &mut IO) {
    let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
}

/// The longest a lingering close reads what the client still sends.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// A lingering close ends sooner once the client has sent nothing for this
/// long (it finished its body and is reading the answer).
const LINGER_QUIET: Duration = Duration::from_millis(500);

/// Ends a connection whose client may still be sending (a body refused or
/// left unread, a broken head), as nginx's lingering close does. The answer
/// is out and the write side shut (the client sees the end of the answer),
/// but closing the socket now would make the kernel answer the client's
/// next bytes with a reset, and a client still uploading fails on it
/// before it ever reads the answer. So what still arrives is read and
/// thrown away until the client closes its side, sends nothing for
/// [`LINGER_QUIET`], or [`LINGER_TIME`] has passed; only then is the
/// socket closed. The time bounds the cost: a refused upload holds its
/// connection at most that long.
async fn linger<IO: AsyncRead + AsyncWrite + Unpin>(io: &mut IO) {
    let until = tokio::time::Instant::now() + LINGER_TIME;
    close(io).await;
    let mut scratch = vec![0u8; 16 * 1024];
    loop {
        let quiet = (tokio::time::Instant::now() + LINGER_QUIET).min(until);
        match tokio::time::timeout_at(quiet, io.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => {}
            // The client finished (or reset), went quiet, or time is up.
            _ => return,
        }
    }
}

fn stalled(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

fn unexpected_eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed before the request body ended",
    )
}

/// A request body streamed from the connection.
struct StreamBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    wanted: Arc<Notify>,
    asked: bool,
    /// Bytes still to come, when the length is declared.
    left: Option<u64>,
}

impl StreamBody {
    fn new(rx: mpsc::Receiver<io::Result<Bytes>>, wanted: Arc<Notify>, left: Option<u64>) -> Self {
        Self {
            rx,
            wanted,
            asked: false,
            left,
        }
    }
}

impl http_body::Body for StreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        if !self.asked {
            self.asked = true;
            self.wanted.notify_one();
        }
        if self.left == Some(0) {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                if let Some(left) = &mut self.left {
                    *left = left.saturating_sub(b.len() as u64);
                }
                Poll::Ready(Some(Ok(http_body::Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            // The connection stopped feeding before the end.
            Poll::Ready(None) if self.left.is_some() => {
                self.left = Some(0);
                Poll::Ready(Some(Err(unexpected_eof())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == Some(0)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.left {
            Some(n) => http_body::SizeHint::with_exact(n),
            None => http_body::SizeHint::default(),
        }
    }
}

/// Writes `res`. Returns whether the connection may carry another request.
async fn write_response<IO>(
    io: &mut IO,
    out: &mut Vec<u8>,
    res: Response,
    head_request: bool,
    version: Version,
    mut keep_alive: bool,
    stall: Duration,
) -> io::Result<bool>
where
    IO: AsyncWrite + Unpin,
{
    let (parts, mut body) = res.into_parts();
    let status = parts.status;
    let bodiless = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // One pass over the headers: framing and connection headers are the
    // codec's to write, so they are read here and left out.
    let mut has_date = false;
    let mut declared: Option<u64> = None;
    for (name, value) in &parts.headers {
        use axum::http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
        if name == CONTENT_LENGTH {
            declared = declared.or_else(|| parse_length(value.as_bytes()));
            continue;
        }
        if name == CONNECTION {
            if list_tokens(value.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"close")) {
                keep_alive = false;
            }
            continue;
        }
        if name == TRANSFER_ENCODING {
            continue;
        }
        has_date |= name == DATE;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let exact = http_body::Body::size_hint(&body).exact();
    // The body's framing: its exact size, else the length it was given,
    // else chunked (HTTP/1.1) or until the connection closes (HTTP/1.0).
    let length = if bodiless { None } else { exact.or(declared) };
    let chunked = !bodiless && length.is_none() && version == Version::HTTP_11;
    if !bodiless && length.is_none() && !chunked {
        keep_alive = false;
    }
    // What `Content-Length` says: never on 1xx/204; on a 304 only as given;
    // on a HEAD answer as given or as the body would have been.
    let length_header = if status.is_informational() || status == StatusCode::NO_CONTENT {
        None
    } else if status == StatusCode::NOT_MODIFIED {
        declared
    } else if head_request {
        // As given, else the size of a body the answer carries anyway (a
        // function's answer to HEAD). An empty body (an upstream's answer
        // to HEAD) says nothing about the size of the GET's body: no length
        // is invented for it.
        declared.or(exact.filter(|_| !http_body::Body::is_end_stream(&body)))
    } else {
        length
    };
    if let Some(n) = length_header {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
    } else if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    if !has_date {
        out.extend_from_slice(b"date: ");
        http_date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");

    if bodiless {
        send(io, out, stall).await?;
        flush(io, stall).await?;
        return Ok(keep_alive);
    }

    // The body: as much as is ready goes out with the head.
    let mut sent: u64 = 0;
    let mut head_pending = true;
    loop {
        let frame = match body.frame().now_or_never() {
            Some(f) => f,
            None => {
                if head_pending {
                    send(io, out, stall).await?;
                    flush(io, stall).await?;
                    out.clear();
                    head_pending = false;
                }
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed; closing the connection");
                if head_pending {
                    send(io, out, stall).await?;
                }
                flush(io, stall).await?;
                return Ok(false);
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => d,
                // Trailers are not sent over HTTP/1.
                Err(_) => continue,
            },
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if length.is_some_and(|n| sent > n) {
            // More than announced: the framing is broken, stop here.
            tracing::warn!("response body longer than its Content-Length; closing the connection");
            flush(io, stall).await?;
            return Ok(false);
        }
        if chunked {
            out.extend_from_slice(format_hex(data.len()).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if out.len() + data.len() <= COALESCE {
            out.extend_from_slice(&data);
        } else {
            send(io, out, stall).await?;
            out.clear();
            send(io, &data, stall).await?;
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        if out.len() >= COALESCE {
            send(io, out, stall).await?;
            out.clear();
        }
        head_pending = false;
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    if !out.is_empty() {
        send(io, out, stall).await?;
    }
    flush(io, stall).await?;
    out.clear();
    if length.is_some_and(|n| sent != n) {
        tracing::warn!("response body shorter than its Content-Length; closing the connection");
        return Ok(false);
    }
    Ok(keep_alive)
}

fn format_hex(n: usize) -> String {
    format!("{n:X}")
}

/// Appends the current time as an HTTP date, formatted once per second
/// per thread.
fn http_date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
}

/// What `fuzzing::client_request` drives: request heads and bodies parsed
/// the way a connection parses them.
pub fn fuzz_request(data: &[u8]) {
    for max_buf in [64, 16 * 1024] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(incoming)) = next_request(&mut buf, max_buf) {
            if incoming.feed.is_some() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_that_arrived_with_their_head_are_whole() {
        let mut buf = BytesMut::from(&b"abcdeNEXT"[..]);
        let (body, feed) = request_body(&mut buf, Framing::Length(5), false).unwrap();
        assert!(feed.is_none());
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(5));
        assert_eq!(&buf[..], b"NEXT");
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\nNEXT"[..]);
        let (body, feed) = request_body(&mut buf, Framing::Chunked, false).unwrap();
        assert!(feed.is_none());
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(5));
        assert_eq!(&buf[..], b"NEXT");
        let mut buf = BytesMut::from(&b"ab"[..]);
        let (_body, feed) = request_body(&mut buf, Framing::Length(5), true).unwrap();
        let feed = feed.expect("the rest streams");
        assert!(!feed.expect_continue, "the client sent body bytes already");
    }

    #[test]
    fn malformed_chunks_that_came_with_the_head_refuse_the_request() {
        for body in [
            &b"3\nabc\r\n0\r\n\r\n"[..],
            b"3\r\nabc\r\n0\r\n\n",
            b"3 x\r\n",
            b"zz\r\n",
        ] {
            let raw = [
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
                body,
            ]
            .concat();
            let mut buf = BytesMut::from(raw.as_slice());
            match next_request(&mut buf, 16 * 1024) {
                Err(e) => assert_eq!(e.response().status(), 400, "{body:?}"),
                Ok(_) => panic!("accepted {body:?}"),
            }
        }
        // Valid so far but unfinished: streamed, not refused.
        let mut buf = BytesMut::from(
            &b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab"[..],
        );
        let incoming = next_request(&mut buf, 16 * 1024).unwrap().unwrap();
        assert!(incoming.feed.is_some());
    }
}
