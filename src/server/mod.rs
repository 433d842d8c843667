//! The listeners: accept connections, terminate TLS, speak HTTP/1.1 and
//! HTTP/2 (ALPN on TLS, prior-knowledge h2c on plain sockets) and hand each
//! request to what the listener serves — the pipeline of the config that is
//! live when it arrives on the public listener, an axum `Router` on the
//! admin, Invoke and Runtime API listeners ([`serve_router`]). Not a
//! pipeline phase: everything here happens before a request exists or after
//! the last one finished.
//!
//! - **One policy for every listener**: the same accept loop (a cap on open
//!   connections), the same HTTP/1.1 codec ([`h1`]: header read, idle and
//!   body timeouts, framing rules, lingering close) and the same HTTP/2
//!   settings and timers ([`h2`]) serve them all, from `[gateway.limits]`.
//! - **Hot reload**: the live gateway sits in an `ArcSwap`; [`Server::reload`]
//!   swaps in a fully built new one. Each request holds the gateway it
//!   started on until its response head is out, and a retired gateway's
//!   backends are stopped only once its last request finished.
//! - **Graceful shutdown**: stop accepting, let in-flight requests finish up
//!   to `[gateway] drain_timeout`, cut the rest (and, on the public
//!   listener, stop every backend).

mod h2;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::response::IntoResponse;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::app::Gateway;
use crate::config::{GatewaySettings, Limits};
use crate::error::GatewayError;
use crate::http1::server as h1;
use crate::pipeline::PhaseFuture;

/// What a listener enforces on its connections, whoever it serves: the
/// gateway's `[gateway.limits]` (with `limits.max_body` as this listener's
/// body cap) and how long a shutdown waits for requests in flight.
#[derive(Debug, Clone, Copy)]
pub struct ListenerPolicy {
    pub limits: Limits,
    pub drain_timeout: Duration,
}

impl ListenerPolicy {
    /// `[gateway.limits]` and `[gateway] drain_timeout`.
    pub fn of(gateway: &GatewaySettings) -> Self {
        Self {
            limits: gateway.limits,
            drain_timeout: gateway.drain_timeout,
        }
    }

    /// The same policy with `max` bytes as the cap on a request body.
    pub fn with_max_body(mut self, max: usize) -> Self {
        self.limits.max_body = max;
        self
    }
}

impl Default for ListenerPolicy {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

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
            pipeline: gateway.pipeline().clone(),
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

    fn call(&self, req: Request<Body>) -> (PhaseFuture, Arc<Live>) {
        let live = self.load_full();
        (live.pipeline.run(req), live)
    }
}

/// An axum `Router` behind a listener, with the part of the public
/// pipeline's limits phase that any API needs: the header-byte cap (`431`)
/// and a cap on the body stream (the router's handlers refuse more in their
/// own API's words; the cap stops one that would read without a bound).
struct RouterHandler {
    router: Router,
    max_header_bytes: usize,
    max_body: usize,
}

impl h1::Handler for RouterHandler {
    type Guard = ();

    fn call(&self, req: Request<Body>) -> (PhaseFuture, ()) {
        if crate::limits::header_bytes(&req) > self.max_header_bytes {
            let refusal = GatewayError::HeadersTooLarge.into_response();
            return (Box::pin(std::future::ready(refusal)), ());
        }
        let req = if http_body::Body::is_end_stream(req.body()) {
            req
        } else {
            let max = self.max_body;
            req.map(|b| Body::new(http_body_util::Limited::new(b, max)))
        };
        let router = self.router.clone();
        let answer = async move {
            match router.oneshot(req).await {
                Ok(res) => res,
                Err(never) => match never {},
            }
        };
        (Box::pin(answer), ())
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
        let accepting = Accepting {
            max_connections: self.live.load().limits.max_connections,
            metered: true,
        };
        let live = self.live.clone();
        // The config live at the end decides how long the drain may take.
        let drain_timeout = || {
            self.live
                .load()
                .gateway
                .state()
                .config
                .gateway
                .drain_timeout
        };
        accept_loop(
            listener,
            accepting,
            shutdown,
            drain_timeout,
            move |stream, peer, drain| {
                // The config live at accept sets the connection's limits.
                let at_accept = live.load_full();
                let limits = at_accept.limits;
                let tls = at_accept.tls.clone();
                drop(at_accept);
                Box::pin(serve_connection(
                    stream,
                    peer,
                    live.clone(),
                    limits,
                    tls,
                    drain,
                ))
            },
        )
        .await;
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

/// Serves `router` on `listener` (plain HTTP/1.1 and prior-knowledge h2c)
/// under `policy`, exactly as the public listener serves the pipeline: the
/// same codec, timeouts and caps. Until `shutdown` completes; then stops
/// accepting and lets requests in flight finish for up to the drain timeout.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    policy: ListenerPolicy,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let limits = policy.limits;
    let handler = Arc::new(RouterHandler {
        router,
        max_header_bytes: limits.max_header_bytes,
        max_body: limits.max_body,
    });
    let accepting = Accepting {
        max_connections: limits.max_connections,
        metered: false,
    };
    accept_loop(
        listener,
        accepting,
        shutdown,
        || policy.drain_timeout,
        move |stream, peer, drain| {
            Box::pin(serve_connection(
                stream,
                peer,
                handler.clone(),
                limits,
                None,
                drain,
            ))
        },
    )
    .await;
    Ok(())
}

/// How a listener takes connections.
struct Accepting {
    /// Connections open at once; one more is closed as soon as it is accepted.
    max_connections: usize,
    /// Counted in the connection metrics (the public listener only).
    metered: bool,
}

/// One connection's whole life, boxed where it is made: its type holds
/// borrows that a generic `Send` bound cannot see through.
type ConnectionFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Accepts connections until `shutdown` completes, each served by
/// `serve(stream, peer, drain)` in its own task; then stops accepting,
/// signals `drain` and waits up to `drain_timeout()` for the open
/// connections, cutting the rest.
async fn accept_loop<F>(
    listener: TcpListener,
    accepting: Accepting,
    shutdown: impl Future<Output = ()> + Send,
    drain_timeout: impl FnOnce() -> Duration,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, watch::Receiver<bool>) -> ConnectionFuture,
{
    let max = accepting.max_connections;
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
            if accepting.metered {
                crate::metrics::connection_refused();
            }
            tracing::warn!(%peer, max, "max_connections reached; closing new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let open = accepting.metered.then(OpenConnection::new);
        let connection = serve(stream, peer, drain_rx.clone());
        connections.spawn(async move {
            connection.await;
            drop(open);
            drop(slot);
        });
    }
    drop(listener);
    let _ = drain_tx.send(true);
    let drain_timeout = drain_timeout();
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
}

/// Counts an open connection in `lambdagate_connections` while it lives.
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

/// Serves one accepted connection: the TLS handshake if the listener has
/// TLS, then HTTP/1.1 or HTTP/2.
async fn serve_connection<H>(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<H>,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    drain: watch::Receiver<bool>,
) where
    H: h1::Handler + 'static,
    H::Guard: 'static,
{
    match tls {
        None => serve_io(stream, false, false, peer, handler, drain, limits).await,
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
            serve_io(tls_stream, true, h2, peer, handler, drain, limits).await;
        }
    }
}

/// Serves one connection: HTTP/1.1 unless ALPN chose HTTP/2 or the client
/// opens with HTTP/2's preface. `tls`: the connection is a TLS one.
async fn serve_io<IO, H>(
    io: IO,
    tls: bool,
    h2: bool,
    peer: SocketAddr,
    handler: Arc<H>,
    drain: watch::Receiver<bool>,
    limits: Limits,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: h1::Handler + 'static,
    H::Guard: 'static,
{
    let opened = Instant::now();
    let (io, read) = if h2 {
        (io, bytes::BytesMut::new())
    } else {
        let conn_limits = h1::ConnLimits {
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            body_timeout: limits.body_timeout,
            max_buf: (limits.max_header_bytes + 4096).max(8192),
            tls,
        };
        match h1::serve(io, peer, &*handler, drain.clone(), conn_limits).await {
            Some(switch) => switch,
            None => return,
        }
    };
    h2::serve(
        io,
        read.freeze(),
        (peer, tls),
        handler,
        drain,
        &limits,
        opened,
    )
    .await;
}
