//! `http` integration: forwards the request to an upstream over pooled
//! HTTP/1.1 keep-alive connections (API Gateway's HTTP proxy integration).
//! Hop-by-hop headers are stripped both ways and `X-Forwarded-*` added. A
//! connect failure is a 502, an upstream that does not answer in time a 504.
//!
//! The request's own task drives its upstream connection: a connection is
//! taken from the pool, the request written, the response head and body
//! read, all polled from the task serving the client, and the connection
//! goes back to the pool when the body has been read to its end. (A shared
//! client would hand every request to a separate connection task and back.)
//! A connection the upstream closed while idle is noticed when it is taken
//! out; a request it refused before any byte was written is retried on
//! another connection, never one that may have reached the upstream.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri, header};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::GatewayError;
use crate::telemetry::X_AMZN_REQUESTID;

static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Idle connections kept per upstream; more are closed when they finish.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connecting never waits longer than this (nor than the route's timeout).
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One upstream, resolved for the serving stage.
pub struct HttpUpstream {
    name: String,
    /// `host:port` to connect to.
    address: String,
    /// The `Host` header the upstream receives.
    host: HeaderValue,
    /// The base URL's path without its trailing `/`.
    base_path: String,
    base_query: Option<String>,
    timeout: Duration,
    headers: Vec<(HeaderName, HeaderValue)>,
    pool: Arc<Pool>,
}

/// What the forwarder needs to know about the request beyond its parts.
pub struct ForwardInfo<'a> {
    /// The path the upstream receives (already decided by the route).
    pub path: &'a str,
    pub query: &'a str,
    pub source_ip: IpAddr,
    pub request_id: &'a str,
}

impl HttpUpstream {
    pub fn new(
        name: &str,
        url: &str,
        timeout: Duration,
        headers: &BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let base: Uri = url
            .parse()
            .map_err(|_| format!("backend `{name}`: `{url}` is not a URL"))?;
        if base.scheme_str() != Some("http") {
            return Err(format!(
                "backend `{name}`: only http:// upstreams are supported (got `{url}`)"
            ));
        }
        let authority = base
            .authority()
            .ok_or_else(|| format!("backend `{name}`: `{url}` has no host"))?;
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| format!("backend `{name}`: `{url}` has a bad host"))?;
        let address = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let mut hs = Vec::new();
        for (k, v) in headers {
            hs.push((
                HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| format!("backend `{name}`: bad header name `{k}`"))?,
                HeaderValue::from_str(v)
                    .map_err(|_| format!("backend `{name}`: bad value for header `{k}`"))?,
            ));
        }
        Ok(Self {
            name: name.to_string(),
            address,
            host,
            base_path: base.path().trim_end_matches('/').to_string(),
            base_query: base.query().map(str::to_string),
            timeout,
            headers: hs,
            pool: Arc::new(Pool::default()),
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The upstream request target (origin form) for a request path: the
    /// base URL's path joined with it, the base URL's query before the
    /// request's.
    pub fn target(&self, path: &str, query: &str) -> Result<Uri, GatewayError> {
        let mut pq = String::with_capacity(
            self.base_path.len()
                + path.len()
                + query.len()
                + self.base_query.as_ref().map_or(0, String::len)
                + 3,
        );
        pq.push_str(&self.base_path);
        if !path.starts_with('/') {
            pq.push('/');
        }
        pq.push_str(path);
        if let Some(bq) = &self.base_query {
            pq.push('?');
            pq.push_str(bq);
            if !query.is_empty() {
                pq.push('&');
                pq.push_str(query);
            }
        } else if !query.is_empty() {
            pq.push('?');
            pq.push_str(query);
        }
        PathAndQuery::from_maybe_shared(Bytes::from(pq))
            .map(Uri::from)
            .map_err(|e| GatewayError::BadRequest(format!("bad upstream path: {e}")))
    }

    pub async fn forward(
        &self,
        req: Request<Body>,
        info: ForwardInfo<'_>,
        timeout: Duration,
    ) -> Result<Response<Body>, GatewayError> {
        let (mut parts, body) = req.into_parts();
        parts.uri = self.target(info.path, info.query)?;
        parts.version = http::Version::HTTP_11;
        let original_host = parts.headers.remove(header::HOST);
        strip_hop_by_hop(&mut parts.headers);
        add_forwarded(&mut parts.headers, &info, original_host);
        parts.headers.insert(header::HOST, self.host.clone());
        for (k, v) in &self.headers {
            parts.headers.insert(k.clone(), v.clone());
        }
        let upstream = Request::from_parts(parts, body);
        let (res, conn) = match tokio::time::timeout(timeout, self.send(upstream)).await {
            Err(_) => return Err(GatewayError::IntegrationTimeout),
            Ok(Err(e)) => {
                tracing::warn!(backend = %self.name, error = %e, "upstream request failed");
                return Err(GatewayError::Integration(format!(
                    "upstream `{}` failed: {e}",
                    self.name
                )));
            }
            Ok(Ok(r)) => r,
        };
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let body = UpstreamBody {
            inner: body,
            conn: Some(conn),
            pool: self.pool.clone(),
        };
        Ok(Response::from_parts(parts, Body::new(body)))
    }

    /// Sends the request on a pooled connection (or a new one) and reads
    /// the response head; the connection comes back with the response,
    /// which still has to be driven through the body.
    async fn send(
        &self,
        mut req: Request<Body>,
    ) -> Result<(Response<Incoming>, Connection), String> {
        loop {
            let (mut conn, reused) = match self.pool.checkout() {
                Some(c) => (c, true),
                None => (self.connect().await?, false),
            };
            match conn.send(req).await {
                Ok(res) => return Ok((res, conn)),
                // Refused before a byte was written (the upstream closed
                // the idle connection as we took it): safe to send again.
                Err(SendError::Unsent(r, _)) if reused => req = *r,
                Err(SendError::Unsent(_, e) | SendError::Failed(e)) => return Err(e.to_string()),
                Err(SendError::Closed) => {
                    return Err("connection closed before the response".into());
                }
            }
        }
    }

    async fn connect(&self) -> Result<Connection, String> {
        let connect_timeout = self.timeout.min(MAX_CONNECT_TIMEOUT);
        let stream =
            match tokio::time::timeout(connect_timeout, TcpStream::connect(&self.address)).await {
                Err(_) => return Err(format!("connect to {} timed out", self.address)),
                Ok(Err(e)) => return Err(format!("connect to {}: {e}", self.address)),
                Ok(Ok(s)) => s,
            };
        let _ = stream.set_nodelay(true);
        let (sender, driver) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Connection {
            sender,
            driver: Box::new(driver),
        })
    }
}

/// One HTTP/1.1 connection to the upstream: the handle requests are sent
/// on and the state machine that reads and writes the socket, which
/// whoever holds the connection polls.
struct Connection {
    sender: http1::SendRequest<Body>,
    /// Boxed: the connection moves in and out of the pool on every request.
    driver: Box<http1::Connection<TokioIo<TcpStream>, Body>>,
}

enum SendError {
    /// The connection refused the request before writing any of it.
    Unsent(Box<Request<Body>>, hyper::Error),
    Failed(hyper::Error),
    /// The connection ended without answering.
    Closed,
}

impl Connection {
    /// Writes `req` and reads the response head, driving the connection
    /// from the calling task.
    async fn send(&mut self, req: Request<Body>) -> Result<Response<Incoming>, SendError> {
        let Connection { sender, driver } = self;
        let mut response = std::pin::pin!(sender.try_send_request(req));
        let mut ended = false;
        std::future::poll_fn(|cx| {
            if !ended && Pin::new(&mut *driver).poll(cx).is_ready() {
                ended = true;
            }
            match response.as_mut().poll(cx) {
                Poll::Pending if ended => Poll::Ready(Err(SendError::Closed)),
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(res)) => Poll::Ready(Ok(res)),
                Poll::Ready(Err(mut e)) => Poll::Ready(Err(match e.take_message() {
                    Some(req) => SendError::Unsent(Box::new(req), e.into_error()),
                    None => SendError::Failed(e.into_error()),
                })),
            }
        })
        .await
    }

    /// Polls the connection without a task to wake; `false` once it has
    /// ended (closed by the upstream, or finished after `Connection: close`).
    fn poll_alive(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(&mut self.driver).poll(&mut cx).is_pending()
    }
}

/// Idle connections of one upstream, most recently used last.
#[derive(Default)]
struct Pool {
    idle: Mutex<VecDeque<(Connection, Instant)>>,
}

impl Pool {
    /// The most recently used idle connection that is still open.
    fn checkout(&self) -> Option<Connection> {
        loop {
            let (mut conn, since) = self.idle.lock().ok()?.pop_back()?;
            if since.elapsed() < IDLE_TIMEOUT && conn.poll_alive() && conn.sender.is_ready() {
                return Some(conn);
            }
        }
    }

    /// Returns a connection whose response has been read to its end; it is
    /// kept if it can take another request.
    fn checkin(&self, mut conn: Connection) {
        // One more poll lets the connection finish the exchange and ask for
        // the next request; without a waker, so no finished task is kept.
        if !conn.poll_alive() || !conn.sender.is_ready() {
            return;
        }
        let now = Instant::now();
        let stale = {
            let Ok(mut idle) = self.idle.lock() else {
                return;
            };
            let stale = match idle.front() {
                Some((_, since)) if idle.len() >= MAX_IDLE || since.elapsed() >= IDLE_TIMEOUT => {
                    idle.pop_front()
                }
                _ => None,
            };
            idle.push_back((conn, now));
            stale
        };
        // Closed outside the lock.
        drop(stale);
    }
}

/// The upstream's response body; reading it drives the connection, which
/// goes back to the pool once the body ended.
struct UpstreamBody {
    inner: Incoming,
    conn: Option<Connection>,
    pool: Arc<Pool>,
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(conn) = &mut this.conn
            && Pin::new(&mut conn.driver).poll(cx).is_ready()
        {
            // Ended: what it read is in `inner`; it cannot be reused.
            this.conn = None;
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some(conn) = this.conn.take() {
                    this.pool.checkin(conn);
                }
            }
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body nobody read (HEAD, 204, an empty body the server skipped)
        // still leaves a reusable connection; a body dropped halfway does not.
        if let Some(conn) = self.conn.take()
            && http_body::Body::is_end_stream(&self.inner)
        {
            self.pool.checkin(conn);
        }
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names (no hashing, no allocation) finds them; most
    // messages carry none, or only `Connection: keep-alive`.
    let mut present = [false; HOP_BY_HOP.len()];
    for k in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == k) {
            present[i] = true;
        }
    }
    if !present.contains(&true) {
        return;
    }
    // Headers named in `Connection` are hop-by-hop too; the usual ones are
    // in the list already.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| {
            !HOP_BY_HOP
                .iter()
                .any(|h| h.as_str().eq_ignore_ascii_case(n))
        })
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for (h, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(h);
    }
}

fn add_forwarded(headers: &mut HeaderMap, info: &ForwardInfo<'_>, host: Option<HeaderValue>) {
    let mut xff = String::with_capacity(48);
    if let Some(prev) = headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        xff.push_str(prev);
        xff.push_str(", ");
    }
    push_ip(&mut xff, info.source_ip);
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    if let Some(h) = host {
        headers.insert(X_FORWARDED_HOST.clone(), h);
    }
    if let Ok(v) = HeaderValue::from_str(info.request_id) {
        headers.insert(X_AMZN_REQUESTID.clone(), v);
    }
}

/// Appends `ip` in its usual text form; IPv4 without `fmt` (a proxied
/// request formats one per request).
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "10.0.0.1",
            "127.0.0.1",
            "192.168.100.9",
            "255.255.255.255",
            "1.20.199.250",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:10.1.2.3",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string());
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive, X-Drop"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-drop", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-keep"));
    }
}
