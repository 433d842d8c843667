//! The listener: accepts connections, terminates TLS, speaks HTTP/1.1 and
//! HTTP/2 (ALPN on TLS, prior-knowledge h2c on plain sockets) and hands each
//! request to the pipeline of the config that is live when it arrives. Not a
//! pipeline phase: everything here happens before a request exists or after
//! the last one finished.
//!
//! - **Hot reload**: the live gateway sits in an `ArcSwap`; [`Server::reload`]
//!   swaps in a fully built new one. Each request holds the gateway it
//!   started on until its response head is out, and a retired gateway's
//!   backends are stopped only once its last request finished.
//! - **HTTP/1.1** is served by [`h1`] (parsing, framing, persistence,
//!   timeouts); HTTP/2 by hyper, chosen by ALPN on TLS or by the client's
//!   connection preface on plain sockets.
//! - **Hardening**: a header read timeout (slowloris), an idle timeout, a cap
//!   on open connections, a cap on buffered header bytes, and rejection of
//!   requests framed with both `Content-Length` and `Transfer-Encoding`.
//! - **Graceful shutdown**: stop accepting, let in-flight requests finish up
//!   to `[gateway] drain_timeout`, cut the rest, stop every backend.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinSet;

use crate::app::Gateway;
use crate::config::Limits;

use crate::http1::server as h1;

/// One loaded config, ready to serve.
struct Live {
    gateway: Gateway,
    /// The pipeline itself, called without the `Router` around it.
    pipeline: crate::pipeline::Pipeline,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    /// Dropped with the last reference to this `Live`: tells the reloader
    /// that every request on it finished, so its backends may stop.
    _retired: oneshot::Sender<()>,
}

impl Live {
    fn new(gateway: Gateway) -> (Arc<Self>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let g = &gateway.state().config.gateway;
        let live = Live {
            pipeline: crate::pipeline::Pipeline::new(gateway.state().clone()),
            tls: g
                .tls
                .as_ref()
                .map(|t| tokio_rustls::TlsAcceptor::from(t.server_config.clone())),
            limits: g.limits,
            gateway,
            _retired: tx,
        };
        (Arc::new(live), rx)
    }
}

impl h1::Handler for ArcSwap<Live> {
    type Guard = Arc<Live>;

    fn call(&self, req: axum::http::Request<Body>) -> (crate::pipeline::PhaseFuture, Arc<Live>) {
        let live = self.load_full();
        (live.pipeline.run(req), live)
    }
}

/// A gateway behind a listener, swappable while serving.
#[derive(Clone)]
pub struct Server {
    live: Arc<ArcSwap<Live>>,
    /// Fires when the live gateway has no more requests (after a swap).
    live_retired: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
    /// Retired gateways whose backends are being stopped.
    retiring: Arc<Mutex<JoinSet<()>>>,
}

impl Server {
    pub fn new(gateway: Gateway) -> Self {
        let (live, rx) = Live::new(gateway);
        Self {
            live: Arc::new(ArcSwap::new(live)),
            live_retired: Arc::new(Mutex::new(Some(rx))),
            retiring: Arc::new(Mutex::new(JoinSet::new())),
        }
    }

    /// The gateway new requests go to.
    pub fn current(&self) -> Gateway {
        self.live.load().gateway.clone()
    }

    /// Atomically makes `gateway` the one new requests go to. Requests in
    /// flight finish on the old one; its backends stop after the last.
    pub fn reload(&self, gateway: Gateway) {
        let (live, rx) = Live::new(gateway);
        let old = self.live.swap(live);
        let old_gateway = old.gateway.clone();
        drop(old);
        let old_retired = self
            .live_retired
            .lock()
            .ok()
            .and_then(|mut g| g.replace(rx));
        if let Ok(mut set) = self.retiring.lock() {
            set.spawn(async move {
                if let Some(rx) = old_retired {
                    // Resolves (with an error) when the old `Live` is dropped.
                    let _ = rx.await;
                }
                old_gateway.shutdown().await;
            });
        }
    }

    /// Serves `listener` until `shutdown` completes, then drains: stops
    /// accepting, waits up to the drain timeout for open connections to
    /// finish their requests, cuts the rest and stops every backend.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let max = self.live.load().limits.max_connections;
        let slots = Arc::new(Semaphore::new(max));
        let (drain_tx, drain_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Per-connection failures (reset before accept) and
                        // fd exhaustion: log, back off briefly, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                crate::metrics::connection_refused();
                tracing::warn!(%peer, max, "max_connections reached; closing new connection");
                drop(stream);
                continue;
            };
            let live = self.live.clone();
            let drain = drain_rx.clone();
            connections.spawn(async move {
                serve_connection(stream, peer, live, drain).await;
                drop(slot);
            });
        }
        drop(listener);
        let _ = drain_tx.send(true);
        let drain_timeout = self
            .live
            .load()
            .gateway
            .state()
            .config
            .gateway
            .drain_timeout;
        let open = connections.len();
        tracing::info!(
            open,
            ?drain_timeout,
            "stopped accepting; draining connections"
        );
        let drained = tokio::time::timeout(drain_timeout, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                cut = connections.len(),
                "drain timeout reached; closing the remaining connections"
            );
            connections.shutdown().await;
        }
        self.stop_backends().await;
        Ok(())
    }

    /// Stops the live gateway's backends and waits for retired ones.
    async fn stop_backends(&self) {
        self.live.load().gateway.shutdown().await;
        let retiring = self
            .retiring
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        // Requests were drained or cut, so retired gateways are free now.
        let _ = tokio::time::timeout(Duration::from_secs(10), retiring.join_all()).await;
    }
}

/// Requests in flight on one HTTP/2 connection, for the idle timeout. A
/// request costs two atomic updates and a clock read; nothing is woken per
/// request. The idle timer fires at most once per `idle` and, if the
/// connection was busy meanwhile, re-arms itself for the moment it will have
/// been idle long enough.
struct Activity {
    in_flight: AtomicUsize,
    /// When the last request ended, in milliseconds since `epoch`.
    last_end_ms: AtomicU64,
    epoch: Instant,
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    fn end(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_end_ms.fetch_max(now, Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
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
            let last_end =
                self.epoch + Duration::from_millis(self.last_end_ms.load(Ordering::SeqCst));
            let idle_until = last_end + idle;
            if Instant::now() >= idle_until {
                return;
            }
            deadline = idle_until;
        }
    }
}

struct OpenConnection;

impl OpenConnection {
    fn new() -> Self {
        crate::metrics::connections(1.0);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        crate::metrics::connections(-1.0);
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    live: Arc<ArcSwap<Live>>,
    drain: watch::Receiver<bool>,
) {
    let _open = OpenConnection::new();
    let _ = stream.set_nodelay(true);
    let at_accept = live.load_full();
    let limits = at_accept.limits;
    let tls = at_accept.tls.clone();
    drop(at_accept);

    match tls {
        None => serve_io(stream, false, false, peer, live, drain, limits).await,
        Some(acceptor) => {
            // The handshake counts against the header read timeout.
            let tls_stream =
                match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            serve_io(tls_stream, true, h2, peer, live, drain, limits).await;
        }
    }
}

/// Serves one connection: HTTP/1.1 unless ALPN chose HTTP/2 or the client
/// opens with HTTP/2's preface. `tls`: the connection is a TLS one.
async fn serve_io<IO>(
    io: IO,
    tls: bool,
    h2: bool,
    peer: SocketAddr,
    live: Arc<ArcSwap<Live>>,
    drain: watch::Receiver<bool>,
    limits: Limits,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (io, read) = if h2 {
        (io, bytes::BytesMut::new())
    } else {
        let conn_limits = h1::ConnLimits {
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            max_buf: (limits.max_header_bytes + 4096).max(8192),
            tls,
        };
        match h1::serve(io, peer, &*live, drain.clone(), conn_limits).await {
            Some(switch) => switch,
            None => return,
        }
    };
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            // The config live when the request arrives serves all of it.
            let live = live.load_full();
            let activity = activity.clone();
            activity.begin();
            async move {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                if tls {
                    req.extensions_mut().insert(crate::http1::TlsTerminated);
                }
                let res = live.pipeline.run(req).await;
                drop(live);
                activity.end();
                Ok::<_, std::convert::Infallible>(res)
            }
        })
    };
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes + 4096).unwrap_or(u32::MAX));
    let io = Prefixed {
        read: read.freeze(),
        io,
    };
    let conn = builder.serve_connection(TokioIo::new(io), service);
    drive(conn, drain, &activity, limits.idle_timeout).await;
}

/// A connection with bytes already read from it in front of what is still
/// to come.
struct Prefixed<IO> {
    read: bytes::Bytes,
    io: IO,
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            let taken = self.read.split_to(n);
            buf.put_slice(&taken);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Runs one connection until it ends, shutting it down gracefully (finish
/// the request in progress, accept no more) on drain or when idle.
async fn drive<C: GracefulConnection>(
    conn: C,
    mut drain: watch::Receiver<bool>,
    activity: &Activity,
    idle_timeout: Duration,
) where
    C::Error: std::fmt::Display,
{
    tokio::pin!(conn);
    let idle = activity.idle_for(idle_timeout);
    tokio::pin!(idle);
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
            _ = drain.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = &mut idle, if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
