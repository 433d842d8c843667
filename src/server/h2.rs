//! HTTP/2 connections, served by hyper with the listener's policy on top of
//! what hyper's builder offers. hyper has no header read timer and does not
//! notice a client that stops taking what it is sent, so this module adds:
//!
//! - **First request**: a new connection that has not opened a complete
//!   request (a stream whose headers arrived) within `header_read_timeout`
//!   of being opened is closed.
//! - **Idle**: a connection with no request in flight (response bodies
//!   included) for `idle_timeout` is shut down gracefully (`GOAWAY`), and
//!   closed if what is left has not gone out `idle_timeout` later.
//! - **Stalled writes**: a socket write left pending (the client stopped
//!   reading, its TCP window is shut) for `idle_timeout` fails the
//!   connection ([`H2Io`]); so does a response body that handed hyper data
//!   and was not asked for more for `idle_timeout` while nothing else on
//!   the connection moved (the client never reopened its flow-control
//!   window, [`Tracked`]).
//! - **Request bodies**: each stream's body must have arrived within
//!   `body_timeout` of its headers ([`Deadline`]); past it the body fails
//!   with a `TimedOut` error and the stream is answered `408`, so a
//!   `HEADERS` frame without `END_STREAM` cannot hold a stream for ever.
//! - **Bounds**: at most [`MAX_STREAMS`] requests in flight per connection
//!   (so at most that many bodies of `max_body` are buffered), at most
//!   [`MAX_PENDING_RESETS`] streams reset by the client before being served
//!   (rapid reset), [`MAX_SEND_BUF`] of response data buffered per stream,
//!   and a peer that does not answer a keep-alive `PING` within
//!   `idle_timeout` is gone.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::response::IntoResponse;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Sleep;

use crate::config::Limits;
use crate::error::GatewayError;
use crate::http1::server::Handler;

/// Requests in flight at once on one connection (`SETTINGS_MAX_CONCURRENT_STREAMS`);
/// clients queue the rest.
pub(crate) const MAX_STREAMS: u32 = 32;
/// Streams a client may open and reset before they are served; more is a
/// `GOAWAY` (the "rapid reset" attack).
pub(crate) const MAX_PENDING_RESETS: usize = 20;
/// Response bytes buffered per stream while they wait for the client's
/// flow-control window.
pub(crate) const MAX_SEND_BUF: usize = 128 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves HTTP/2 on `io` (after `read`, bytes already read from it) until
/// the connection ends. `opened` is when the connection became ready for
/// its first request.
pub(super) async fn serve<IO, H>(
    io: IO,
    read: Bytes,
    (peer, tls): (SocketAddr, bool),
    handler: Arc<H>,
    drain: watch::Receiver<bool>,
    limits: &Limits,
    opened: Instant,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler + 'static,
    H::Guard: 'static,
{
    let activity = Arc::new(Activity::new());
    let service = Streams {
        handler,
        activity: activity.clone(),
        peer,
        tls,
        body_timeout: limits.body_timeout,
    };
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes + 4096).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_STREAMS)
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .max_send_buf_size(MAX_SEND_BUF)
        .keep_alive_interval(limits.idle_timeout)
        .keep_alive_timeout(limits.idle_timeout);
    let io = H2Io::new(read, io, limits.idle_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    drive(conn, drain, &activity, limits, opened).await;
}

/// The service each stream of a connection is handed to.
struct Streams<H> {
    handler: Arc<H>,
    activity: Arc<Activity>,
    peer: SocketAddr,
    /// The connection is a TLS one (the request says so to upstreams).
    tls: bool,
    body_timeout: Duration,
}

type StreamFuture =
    Pin<Box<dyn Future<Output = Result<hyper::Response<Tracked>, Infallible>> + Send>>;

impl<H> hyper::service::Service<hyper::Request<Incoming>> for Streams<H>
where
    H: Handler + 'static,
    H::Guard: 'static,
{
    type Response = hyper::Response<Tracked>;
    type Error = Infallible;
    type Future = StreamFuture;

    fn call(&self, req: hyper::Request<Incoming>) -> StreamFuture {
        let flight = InFlight::begin(self.activity.clone());
        let (parts, body) = req.into_parts();
        // A body still to come gets its deadline from now, the end of its
        // headers; the flag says whether it passed.
        let (body, timed_out) = if http_body::Body::is_end_stream(&body) {
            (Body::new(body), None)
        } else {
            let flag = Arc::new(AtomicBool::new(false));
            let deadline = Deadline::new(body, Instant::now() + self.body_timeout, flag.clone());
            (Body::new(deadline), Some(flag))
        };
        let mut req = hyper::Request::from_parts(parts, body);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        if self.tls {
            req.extensions_mut().insert(crate::http1::TlsTerminated);
        }
        let (pending, guard) = self.handler.call(req);
        Box::pin(async move {
            let res = pending.await;
            drop(guard);
            let res = match timed_out {
                Some(flag) if flag.load(Ordering::Acquire) => {
                    GatewayError::RequestTimeout.into_response()
                }
                _ => res,
            };
            Ok(res.map(|body| Tracked::new(body, flight)))
        })
    }
}

/// Runs one connection until it ends, under the timers in the module
/// comment; shut down gracefully (finish the requests in progress, accept
/// no more) on drain or when idle.
async fn drive<C: GracefulConnection>(
    conn: C,
    mut drain: watch::Receiver<bool>,
    activity: &Activity,
    limits: &Limits,
    opened: Instant,
) where
    C::Error: std::fmt::Display,
{
    tokio::pin!(conn);
    let idle = activity.idle_for(limits.idle_timeout);
    tokio::pin!(idle);
    let stalled = activity.stalled_for(limits.idle_timeout);
    tokio::pin!(stalled);
    let first_request = tokio::time::sleep_until((opened + limits.header_read_timeout).into());
    tokio::pin!(first_request);
    let mut awaiting_first = true;
    // Armed when an idle connection starts closing: what is left (response
    // bytes hyper still holds for a client that takes nothing) gets this long.
    let grace = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(grace);
    let mut grace_armed = false;
    let mut closing = false;
    if *drain.borrow() {
        closing = true;
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            // Draining is bounded by the listener's drain timeout.
            _ = drain.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = &mut idle, if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
                grace.as_mut().reset((Instant::now() + limits.idle_timeout).into());
                grace_armed = true;
            }
            () = &mut grace, if grace_armed => {
                tracing::debug!("idle connection did not finish closing; dropping it");
                return;
            }
            () = &mut first_request, if awaiting_first => {
                awaiting_first = false;
                if !activity.served_any() {
                    tracing::debug!("no HTTP/2 request within header_read_timeout; closing");
                    return;
                }
            }
            () = &mut stalled => {
                tracing::debug!("the client stopped taking its response; closing");
                return;
            }
        }
    }
}

/// What is going on on one connection, for its timers. A request costs a
/// few atomic updates and a clock read; nothing is woken per request. Each
/// timer fires at most once per period and, if the connection was busy
/// meanwhile, re-arms itself for the moment its condition could hold.
struct Activity {
    in_flight: AtomicUsize,
    /// When the last request ended, in milliseconds since `epoch`.
    last_end_ms: AtomicU64,
    /// Response bodies that handed hyper data and wait to be asked for
    /// more (which hyper does once the client's window has room).
    waiting: AtomicUsize,
    /// When a response body last handed hyper data, in ms since `epoch`.
    last_sent_ms: AtomicU64,
    /// Whether any request arrived yet.
    served: AtomicBool,
    epoch: Instant,
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            last_sent_ms: AtomicU64::new(0),
            served: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: &AtomicU64) -> Instant {
        self.epoch + Duration::from_millis(ms.load(Ordering::SeqCst))
    }

    fn served_any(&self) -> bool {
        self.served.load(Ordering::SeqCst)
    }

    /// Completes once no request has been in flight for `idle`.
    async fn idle_for(&self, idle: Duration) {
        let mut deadline = self.epoch + idle;
        loop {
            tokio::time::sleep_until(deadline.into()).await;
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                // Busy: look again one `idle` from now at the earliest.
                deadline = Instant::now() + idle;
                continue;
            }
            let idle_until = self.at(&self.last_end_ms) + idle;
            if Instant::now() >= idle_until {
                return;
            }
            deadline = idle_until;
        }
    }

    /// Completes once a response body has been waiting for the client for
    /// `stall` with no response data sent on the connection meanwhile.
    async fn stalled_for(&self, stall: Duration) {
        let mut deadline = Instant::now() + stall;
        loop {
            tokio::time::sleep_until(deadline.into()).await;
            if self.waiting.load(Ordering::SeqCst) == 0 {
                deadline = Instant::now() + stall;
                continue;
            }
            let stalled_at = self.at(&self.last_sent_ms) + stall;
            if Instant::now() >= stalled_at {
                return;
            }
            deadline = stalled_at;
        }
    }
}

/// One request in flight, from its arrival until its response body is done
/// or dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.served.store(true, Ordering::SeqCst);
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.last_end_ms.fetch_max(a.now_ms(), Ordering::SeqCst);
        a.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that tells its connection's [`Activity`] when it is
/// waiting for the client (it handed hyper data and was not asked for the
/// next part yet) and, when dropped, that its request is over.
struct Tracked {
    inner: Body,
    flight: InFlight,
    waiting: bool,
}

impl Tracked {
    fn new(inner: Body, flight: InFlight) -> Self {
        Tracked {
            inner,
            flight,
            waiting: false,
        }
    }

    fn set_waiting(&mut self, waiting: bool) {
        if self.waiting == waiting {
            return;
        }
        self.waiting = waiting;
        let a = &self.flight.0;
        if waiting {
            a.last_sent_ms.store(a.now_ms(), Ordering::SeqCst);
            a.waiting.fetch_add(1, Ordering::SeqCst);
        } else {
            a.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        self.set_waiting(false);
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if matches!(&frame, Some(Ok(f)) if f.is_data()) && !self.inner.is_end_stream() {
            self.set_waiting(true);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.set_waiting(false);
    }
}

/// A request body that must have arrived by a deadline: past it, one
/// `TimedOut` error, then the end.
struct Deadline {
    inner: Incoming,
    deadline: Instant,
    /// Created when the body first has to wait.
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl Deadline {
    fn new(inner: Incoming, deadline: Instant, timed_out: Arc<AtomicBool>) -> Self {
        Deadline {
            inner,
            deadline,
            timer: None,
            timed_out,
        }
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        if self.timed_out.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BoxError::from)));
        }
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
        ready!(timer.as_mut().poll(cx));
        self.timed_out.store(true, Ordering::Release);
        let e = io::Error::new(
            io::ErrorKind::TimedOut,
            "the request body took longer than body_timeout",
        );
        Poll::Ready(Some(Err(e.into())))
    }

    fn is_end_stream(&self) -> bool {
        self.timed_out.load(Ordering::Acquire) || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The connection as hyper sees it: bytes already read from it (the h2c
/// preface) in front of what is still to come, and writes that fail with
/// `TimedOut` once one has been left pending (the client is not reading)
/// for `stall`.
struct H2Io<IO> {
    read: Bytes,
    io: IO,
    stall: Duration,
    /// Created at the first write that has to wait.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether a write is waiting now (the timer runs).
    waiting: bool,
}

impl<IO> H2Io<IO> {
    fn new(read: Bytes, io: IO, stall: Duration) -> Self {
        H2Io {
            read,
            io,
            stall,
            timer: None,
            waiting: false,
        }
    }

    /// Passes a write's outcome on, timing how long it has been pending.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.waiting = false;
            return polled;
        }
        let until = tokio::time::Instant::now() + self.stall;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        if !self.waiting {
            self.waiting = true;
            timer.as_mut().reset(until);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for H2Io<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            let taken = self.read.split_to(n);
            buf.put_slice(&taken);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for H2Io<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.guard(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.guard(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.guard(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_shutdown(cx);
        self.guard(cx, polled)
    }
}
