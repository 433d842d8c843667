//! `http` integration: forwards the request to an upstream over pooled
//! HTTP/1.1 keep-alive connections (API Gateway's HTTP proxy integration).
//! Hop-by-hop headers are stripped both ways and `X-Forwarded-*` added;
//! forwarding headers from a peer outside `trusted_proxies` are dropped,
//! not passed on. A connect failure or a bad response is a 502, an upstream
//! that does not answer in time a 504; a request body the client could not
//! deliver (broken chunked framing, over `max_body`, cut short) is the
//! client's 400 or 413, not an upstream failure.
//!
//! The request's own task does the exchange (the wire format is in
//! [`crate::http1::client`]): a connection is taken from the pool, the request head
//! (and a body up to 64 KiB) written in one write, the response head read
//! and parsed in place. A response whose body came with its head is
//! complete at once and its connection back in the pool before the
//! response goes on; a longer one streams from the connection, which goes
//! back when the body has been read to its end. A connection the upstream
//! closed while idle is noticed when it is taken out; a request it refused
//! before any byte was written is sent again on another connection. One
//! that a kept-alive connection may have carried (the upstream closed or
//! reset it before any byte of an answer, as servers with a short
//! keep-alive timeout do) is sent once more on a new connection only if it
//! is idempotent and went out whole in its first write, so the same bytes
//! can be replayed.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Response, Uri, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::net::TcpStream;

use crate::error::GatewayError;
use crate::http1::TlsTerminated;
use crate::http1::client::{self as h1, Conn, Framing, HeadError};
use crate::http1::fields::{is_hop_by_hop, list_tokens};
use crate::telemetry::X_AMZN_REQUESTID;

/// Idle connections kept per upstream; more are closed when they finish.
const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connecting never waits longer than this (nor than the route's timeout).
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Request body bytes gathered before the first write: a body up to this
/// size goes out with its head in one write (and could be sent again on
/// another connection if the first refused it).
const BUFFERED_BODY: usize = 64 * 1024;

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
    /// Peers whose forwarding headers are passed on (`[gateway]
    /// trusted_proxies`).
    trusted_proxies: Arc<[ipnet::IpNet]>,
    pool: Arc<Pool>,
}

/// What the forwarder needs to know about the request beyond its parts.
pub struct ForwardInfo<'a> {
    /// The path the upstream receives (already decided by the route).
    pub path: &'a str,
    pub source_ip: IpAddr,
    pub request_id: &'a str,
}

impl HttpUpstream {
    pub fn new(
        name: &str,
        url: &str,
        timeout: Duration,
        headers: &BTreeMap<String, String>,
        trusted_proxies: Arc<[ipnet::IpNet]>,
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
            trusted_proxies,
            pool: Arc::new(Pool::default()),
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Appends the upstream request target (origin form) for a request
    /// path: the base URL's path joined with it, the base URL's query
    /// before the request's. A target never starts with `//`: many servers
    /// and frameworks read `//host/x` as a URL on another host, so the
    /// leading slashes of a joined target (an empty base path and a
    /// `{proxy+}` remainder such as `//evil.example/x`) collapse to one.
    fn push_target(&self, out: &mut Vec<u8>, path: &str, query: &str) {
        let start = out.len();
        out.extend_from_slice(self.base_path.as_bytes());
        if !path.starts_with('/') {
            out.push(b'/');
        }
        out.extend_from_slice(path.as_bytes());
        let slashes = out[start..].iter().take_while(|b| **b == b'/').count();
        if slashes > 1 {
            out.drain(start..start + slashes - 1);
        }
        if let Some(bq) = &self.base_query {
            out.push(b'?');
            out.extend_from_slice(bq.as_bytes());
            if !query.is_empty() {
                out.push(b'&');
                out.extend_from_slice(query.as_bytes());
            }
        } else if !query.is_empty() {
            out.push(b'?');
            out.extend_from_slice(query.as_bytes());
        }
    }

    /// Whether a peer's forwarding headers are believed.
    fn trusts(&self, peer: IpAddr) -> bool {
        if self.trusted_proxies.is_empty() {
            return false;
        }
        // An IPv4 client on a dual-stack listener arrives as `::ffff:a.b.c.d`.
        let peer = peer.to_canonical();
        self.trusted_proxies.iter().any(|n| n.contains(&peer))
    }

    /// Writes the request head the upstream receives: the client's
    /// end-to-end headers, `Host` set to the upstream's, `X-Forwarded-*`
    /// and the request id added, the backend's own headers last (they
    /// replace the client's of the same name). From a peer outside
    /// `trusted_proxies`, the client's forwarding headers are dropped and
    /// `X-Forwarded-For` starts at the peer; from a trusted one they pass
    /// and the peer is appended. Several `Cookie` fields (HTTP/2 sends one
    /// per cookie) go out as one, joined with `; ` (RFC 9113 §8.2.3).
    /// Returns whether the client sent a `Content-Length`.
    fn write_head(
        &self,
        out: &mut Vec<u8>,
        req: &axum::http::request::Parts,
        info: &ForwardInfo<'_>,
    ) -> Result<bool, GatewayError> {
        out.extend_from_slice(req.method.as_str().as_bytes());
        out.push(b' ');
        let query = req.uri.query().unwrap_or_default();
        let target_at = out.len();
        self.push_target(out, info.path, query);
        // Visible ASCII only: nothing in the target may end the request
        // line early or smuggle a header in.
        if !out[target_at..].iter().all(|b| (0x21..=0x7e).contains(b)) {
            return Err(GatewayError::BadRequest("bad upstream path".into()));
        }
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(self.host.as_bytes());
        out.extend_from_slice(b"\r\n");
        let headers = &req.headers;
        // Headers the client's `Connection` names are hop-by-hop too (found
        // by walking the few headers rather than hashing the name).
        let connection_named = headers.iter().any(|(k, v)| {
            *k == header::CONNECTION
                && list_tokens(v.as_bytes()).any(|t| {
                    !t.eq_ignore_ascii_case(b"close") && !t.eq_ignore_ascii_case(b"keep-alive")
                })
        });
        let trusted = self.trusts(info.source_ip);
        let mut client_length = false;
        let mut xff_seen = false;
        let mut cookie_written = false;
        let mut original_host: Option<&HeaderValue> = None;
        let mut client_proto: Option<&HeaderValue> = None;
        let mut client_forwarded_host: Option<&HeaderValue> = None;
        for (k, v) in headers {
            if *k == header::HOST {
                original_host = Some(v);
                continue;
            }
            if *k == header::CONTENT_LENGTH {
                client_length = true;
                continue;
            }
            // The ones the gateway writes itself below, from what it saw or
            // (trusted peers only) from what the client said.
            if *k == X_FORWARDED_FOR {
                xff_seen = true;
                continue;
            }
            if *k == X_FORWARDED_PROTO {
                client_proto = client_proto.or(Some(v));
                continue;
            }
            if *k == X_FORWARDED_HOST {
                client_forwarded_host = client_forwarded_host.or(Some(v));
                continue;
            }
            if is_hop_by_hop(k)
                || *k == X_AMZN_REQUESTID
                || (!trusted && is_forwarding_header(k))
                || self.headers.iter().any(|(n, _)| n == k)
                || (connection_named && named_by_connection(headers, k))
            {
                continue;
            }
            if *k == header::COOKIE {
                if !cookie_written {
                    cookie_written = true;
                    push_cookies(out, headers);
                }
                continue;
            }
            push_header(out, k.as_str().as_bytes(), v.as_bytes());
        }
        // A trusted peer's X-Forwarded-For (all its lines, in order), then
        // the peer's own address.
        out.extend_from_slice(b"x-forwarded-for: ");
        if xff_seen && trusted {
            for v in headers.get_all(&X_FORWARDED_FOR) {
                out.extend_from_slice(v.as_bytes());
                out.extend_from_slice(b", ");
            }
        }
        push_ip(out, info.source_ip);
        out.extend_from_slice(b"\r\n");
        match client_proto {
            Some(p) if trusted => push_header(out, b"x-forwarded-proto", p.as_bytes()),
            _ if req.extensions.get::<TlsTerminated>().is_some() => {
                out.extend_from_slice(b"x-forwarded-proto: https\r\n");
            }
            _ => out.extend_from_slice(b"x-forwarded-proto: http\r\n"),
        }
        match (client_forwarded_host, original_host) {
            (Some(h), _) if trusted => push_header(out, b"x-forwarded-host", h.as_bytes()),
            (_, Some(h)) => push_header(out, b"x-forwarded-host", h.as_bytes()),
            _ => {}
        }
        // Written only if it is a valid header value (no control bytes).
        if info
            .request_id
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        {
            push_header(
                out,
                X_AMZN_REQUESTID.as_str().as_bytes(),
                info.request_id.as_bytes(),
            );
        }
        for (k, v) in &self.headers {
            push_header(out, k.as_str().as_bytes(), v.as_bytes());
        }
        Ok(client_length)
    }

    /// Forwards a request (its parts and body) and returns the upstream's
    /// response; its body streams from the upstream unless it came whole.
    pub async fn forward(
        &self,
        parts: &axum::http::request::Parts,
        body: Body,
        info: ForwardInfo<'_>,
        timeout: Duration,
    ) -> Result<Response<Body>, GatewayError> {
        let head_request = parts.method == Method::HEAD;
        let idempotent = is_idempotent(&parts.method);
        let mut out = Vec::with_capacity(512);
        let client_length = self.write_head(&mut out, parts, &info)?;
        let mut body = Outgoing::new(body, &parts.method, client_length);
        let exchange = self.exchange(out, &mut body, head_request, idempotent);
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(GatewayError::IntegrationTimeout),
            // The client's answer; the upstream did nothing wrong.
            Ok(Err(ExchangeError::Client(e))) => {
                tracing::debug!(backend = %self.name, error = %e, "request body not delivered");
                Err(e)
            }
            Ok(Err(ExchangeError::Upstream(e))) => {
                tracing::warn!(backend = %self.name, error = %e, "upstream request failed");
                Err(GatewayError::Integration(format!(
                    "upstream `{}` failed: {e}",
                    self.name
                )))
            }
            Ok(Ok(res)) => Ok(res),
        }
    }

    /// Sends the request on a pooled connection (or a new one) and reads
    /// the response head; a body that came with the head is read too.
    async fn exchange(
        &self,
        mut out: Vec<u8>,
        body: &mut Outgoing,
        head_request: bool,
        idempotent: bool,
    ) -> Result<Response<Body>, ExchangeError> {
        body.frame_head(&mut out).await?;
        // The whole request is in `out`: it can be replayed byte for byte.
        let replayable = idempotent && body.done;
        let mut replayed = false;
        let (mut conn, head) = loop {
            // A replay always goes on a new connection: another pooled one
            // may be as stale as the first.
            let pooled = if replayed { None } else { self.pool.checkout() };
            let (mut conn, reused) = match pooled {
                Some(c) => (c, true),
                // Boxed: a new connection is the rare case, and its
                // future would otherwise make every exchange's larger.
                None => (Box::pin(self.connect()).await?, false),
            };
            // A kept-alive connection the upstream closed or reset before
            // answering (its keep-alive timeout raced this request).
            let stale = reused && replayable && !replayed;
            match conn.write_all(&out).await {
                Ok(()) => {}
                // Refused before a byte was written (the upstream closed
                // the idle connection as we took it): safe to send again.
                Err((false, _)) if reused => continue,
                Err(_) if stale => {
                    replayed = true;
                    continue;
                }
                Err((_, e)) => return Err(ExchangeError::Upstream(e.to_string())),
            }
            body.send_rest(&mut conn, &mut out).await?;
            match conn.read_head(head_request).await {
                Ok(Some(head)) => break (conn, head),
                Ok(None) | Err(HeadError::Io(_)) if stale => replayed = true,
                Ok(None) => {
                    return Err(ExchangeError::Upstream(
                        "connection closed before the response".into(),
                    ));
                }
                Err(e) => return Err(ExchangeError::Upstream(e.to_string())),
            }
        };
        let h1::Head {
            status,
            version,
            headers,
            mut framing,
            keep_alive,
        } = head;
        let mut res = Response::new(Body::empty());
        *res.status_mut() = status;
        *res.version_mut() = version;
        *res.headers_mut() = headers;
        if let Some(bytes) = conn.take_complete_body(&mut framing) {
            if keep_alive {
                self.pool.checkin(conn);
            }
            if !bytes.is_empty() {
                *res.body_mut() = Body::from(bytes);
            }
            return Ok(res);
        }
        *res.body_mut() = Body::new(UpstreamBody {
            conn: Some(conn),
            framing,
            keep_alive,
            pool: self.pool.clone(),
        });
        Ok(res)
    }

    async fn connect(&self) -> Result<Box<Conn>, ExchangeError> {
        let connect_timeout = self.timeout.min(MAX_CONNECT_TIMEOUT);
        let failed = |why: String| ExchangeError::Upstream(why);
        let stream =
            match tokio::time::timeout(connect_timeout, TcpStream::connect(&self.address)).await {
                Err(_) => return Err(failed(format!("connect to {} timed out", self.address))),
                Ok(Err(e)) => return Err(failed(format!("connect to {}: {e}", self.address))),
                Ok(Ok(s)) => s,
            };
        let _ = stream.set_nodelay(true);
        Ok(Box::new(Conn::new(stream)))
    }
}

/// Why an exchange failed, by who failed: the answer and whether it counts
/// as an upstream failure follow from it.
enum ExchangeError {
    /// The client's request body could not be read (over `max_body`,
    /// broken framing, cut short): the client's 413 or 400.
    Client(GatewayError),
    /// Connecting, writing or the response failed: a 502.
    Upstream(String),
}

/// RFC 9110 §9.2.2: a request that may be sent twice with the same effect.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that tell an upstream who the client is or what it asked for,
/// besides `X-Forwarded-For`/`-Proto`/`-Host` (written by the gateway):
/// believed by many frameworks, so passed on only from a trusted proxy.
fn is_forwarding_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "forwarded"
            | "x-real-ip"
            | "x-original-url"
            | "x-rewrite-url"
            | "x-forwarded-port"
            | "x-forwarded-prefix"
    )
}

/// Writes every `Cookie` field of the request as one field, in order.
fn push_cookies(out: &mut Vec<u8>, headers: &axum::http::HeaderMap) {
    out.extend_from_slice(b"cookie: ");
    for (i, v) in headers.get_all(header::COOKIE).iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(v.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Whether the request's `Connection` header lists `name`.
fn named_by_connection(headers: &axum::http::HeaderMap, name: &HeaderName) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        list_tokens(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(name.as_str().as_bytes()))
    })
}

/// The request body on its way out: how it is framed, and what of it is
/// still to be read from the client.
struct Outgoing {
    body: Body,
    /// Chunked (length unknown) rather than `Content-Length`.
    chunked: bool,
    /// The `Content-Length` sent, to check the body against.
    length: u64,
    /// Body bytes taken from the client so far.
    taken: u64,
    done: bool,
    /// Whether an empty body still says `Content-Length: 0`.
    empty_says_length: bool,
}

impl Outgoing {
    fn new(body: Body, method: &Method, client_length: bool) -> Self {
        // As HTTP clients do: methods that usually carry a body say so even
        // when it is empty, and so does any request whose client said it.
        let bodiless_method = matches!(
            *method,
            Method::GET
                | Method::HEAD
                | Method::DELETE
                | Method::OPTIONS
                | Method::TRACE
                | Method::CONNECT
        );
        Outgoing {
            body,
            chunked: false,
            length: 0,
            taken: 0,
            done: false,
            empty_says_length: client_length || !bodiless_method,
        }
    }

    /// Ends the head with the body's framing header and gathers as much of
    /// the body as fits the first write.
    async fn frame_head(&mut self, out: &mut Vec<u8>) -> Result<(), ExchangeError> {
        use http_body::Body as _;
        if self.body.is_end_stream() {
            if self.empty_says_length {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
            out.extend_from_slice(b"\r\n");
            self.done = true;
            return Ok(());
        }
        match self.body.size_hint().exact() {
            Some(n) => {
                self.length = n;
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                out.extend_from_slice(b"\r\n\r\n");
            }
            None => {
                self.chunked = true;
                out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            }
        }
        let limit = out.len() + BUFFERED_BODY;
        while !self.done && out.len() < limit {
            self.take_frame(out).await?;
        }
        Ok(())
    }

    /// Writes whatever of the body did not fit the first write.
    async fn send_rest(&mut self, conn: &mut Conn, out: &mut Vec<u8>) -> Result<(), ExchangeError> {
        while !self.done {
            out.clear();
            while !self.done && out.len() < BUFFERED_BODY {
                self.take_frame(out).await?;
            }
            conn.write_all(out)
                .await
                .map_err(|(_, e)| ExchangeError::Upstream(e.to_string()))?;
        }
        Ok(())
    }

    /// Appends the body's next data (framed) to `out`, or its end. A body
    /// that fails or does not match its length is the client's.
    async fn take_frame(&mut self, out: &mut Vec<u8>) -> Result<(), ExchangeError> {
        let short = || {
            ExchangeError::Client(GatewayError::BadRequest(
                "could not read the request body".into(),
            ))
        };
        match self.body.frame().await {
            None => {
                self.done = true;
                if self.chunked {
                    out.extend_from_slice(b"0\r\n\r\n");
                } else if self.taken != self.length {
                    return Err(short());
                }
            }
            Some(Err(e)) => return Err(ExchangeError::Client(crate::limits::body_error(&e))),
            // Request trailers are not forwarded.
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    return Ok(());
                };
                if data.is_empty() {
                    return Ok(());
                }
                self.taken += data.len() as u64;
                if self.chunked {
                    let mut size = [0u8; 16];
                    let size = hex_len(data.len(), &mut size);
                    out.extend_from_slice(size);
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                } else if self.taken > self.length {
                    return Err(short());
                } else {
                    out.extend_from_slice(&data);
                }
            }
        }
        Ok(())
    }
}

/// `n` in lowercase hex, as a chunk size line wants it.
fn hex_len(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Idle connections of one upstream, most recently used last.
#[derive(Default)]
struct Pool {
    idle: Mutex<VecDeque<(Box<Conn>, Instant)>>,
}

impl Pool {
    /// The most recently used idle connection that is still open.
    fn checkout(&self) -> Option<Box<Conn>> {
        loop {
            let (mut conn, since) = self.idle.lock().ok()?.pop_back()?;
            if since.elapsed() < IDLE_TIMEOUT && conn.is_reusable() {
                return Some(conn);
            }
        }
    }

    /// Returns a connection whose response has been read to its end.
    fn checkin(&self, mut conn: Box<Conn>) {
        conn.shrink();
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

/// The rest of an upstream's response body, read from its connection as
/// the client takes it; the connection goes back to the pool once the body
/// ended (if the upstream keeps it open).
struct UpstreamBody {
    conn: Option<Box<Conn>>,
    framing: Framing,
    keep_alive: bool,
    pool: Arc<Pool>,
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        match conn.poll_body(cx, &mut this.framing) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(data))) => {
                if matches!(this.framing, Framing::Length(0)) {
                    // That was the last of it: the connection is free now.
                    this.framing = Framing::Empty;
                    this.finish();
                }
                Poll::Ready(Some(Ok(http_body::Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => {
                this.conn = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || matches!(self.framing, Framing::Empty)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.framing {
            Framing::Length(n) => http_body::SizeHint::with_exact(n),
            Framing::Empty => http_body::SizeHint::with_exact(0),
            _ => http_body::SizeHint::default(),
        }
    }
}

impl UpstreamBody {
    /// The body ended: its connection goes back to the pool if it can.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && matches!(self.framing, Framing::Empty)
        {
            self.pool.checkin(conn);
        }
    }
}

/// Appends `ip` in its usual text form; IPv4 without `fmt` (a proxied
/// request formats one per request).
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

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
            let mut out = Vec::new();
            push_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
        }
    }

    fn head_for(req: Request<()>, path: &str) -> Result<String, GatewayError> {
        head_via("http://10.0.0.9:8080/base/?b=1", &[], req, path)
    }

    /// The head sent to `url` for `req` from 192.0.2.7, with `trusted`
    /// as `trusted_proxies`.
    fn head_via(
        url: &str,
        trusted: &[&str],
        req: Request<()>,
        path: &str,
    ) -> Result<String, GatewayError> {
        let statics = BTreeMap::from([("x-static".to_string(), "from-config".to_string())]);
        let trusted: Vec<ipnet::IpNet> = trusted.iter().map(|n| n.parse().unwrap()).collect();
        let up =
            HttpUpstream::new("up", url, Duration::from_secs(1), &statics, trusted.into()).unwrap();
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        up.write_head(
            &mut out,
            &parts,
            &ForwardInfo {
                path,
                source_ip: "192.0.2.7".parse().unwrap(),
                request_id: "rid-1",
            },
        )?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_request_head_keeps_end_to_end_headers_and_adds_forwarding_ones() {
        let req = Request::builder()
            .method("PATCH")
            .uri("/orig/x?a=1&a=2")
            .header("host", "api.example.com")
            .header("connection", "keep-alive, X-Drop")
            .header("keep-alive", "timeout=5")
            .header("x-drop", "1")
            .header("te", "trailers")
            .header("transfer-encoding", "chunked")
            .header("content-length", "3")
            .header("x-keep", "1")
            .header("x-keep", "2")
            .header("x-forwarded-for", "203.0.113.1")
            .header("x-forwarded-for", "198.51.100.2")
            .header("x-forwarded-proto", "https")
            .header("x-amzn-requestid", "spoofed")
            .header("x-static", "from-client")
            .body(())
            .unwrap();
        let head = head_for(req, "/x").unwrap();
        assert_eq!(
            head,
            "PATCH /base/x?b=1&a=1&a=2 HTTP/1.1\r\n\
             host: 10.0.0.9:8080\r\n\
             x-keep: 1\r\n\
             x-keep: 2\r\n\
             x-forwarded-for: 192.0.2.7\r\n\
             x-forwarded-proto: http\r\n\
             x-forwarded-host: api.example.com\r\n\
             x-amzn-requestid: rid-1\r\n\
             x-static: from-config\r\n"
        );
    }

    fn spoofing_request() -> Request<()> {
        Request::builder()
            .uri("/x")
            .header("host", "api.example.com")
            .header("forwarded", "for=1.2.3.4;proto=https")
            .header("x-real-ip", "1.2.3.4")
            .header("x-original-url", "/admin")
            .header("X-Rewrite-URL", "/admin")
            .header("x-forwarded-port", "443")
            .header("x-forwarded-prefix", "/evil")
            .header("x-forwarded-host", "evil.example")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-for", "203.0.113.1")
            .header("x-keep", "1")
            .body(())
            .unwrap()
    }

    #[test]
    fn forwarding_headers_pass_only_from_trusted_proxies() {
        let url = "http://10.0.0.9:8080";
        let head = head_via(url, &["10.0.0.0/8"], spoofing_request(), "/x").unwrap();
        assert_eq!(
            head,
            "GET /x HTTP/1.1\r\n\
             host: 10.0.0.9:8080\r\n\
             x-keep: 1\r\n\
             x-forwarded-for: 192.0.2.7\r\n\
             x-forwarded-proto: http\r\n\
             x-forwarded-host: api.example.com\r\n\
             x-amzn-requestid: rid-1\r\n\
             x-static: from-config\r\n",
            "192.0.2.7 is not in 10.0.0.0/8"
        );
        for trusted in ["192.0.2.0/24", "192.0.2.7/32"] {
            let head = head_via(url, &[trusted], spoofing_request(), "/x").unwrap();
            assert!(
                head.contains("forwarded: for=1.2.3.4;proto=https\r\n")
                    && head.contains("x-real-ip: 1.2.3.4\r\n")
                    && head.contains("x-original-url: /admin\r\n")
                    && head.contains("x-rewrite-url: /admin\r\n")
                    && head.contains("x-forwarded-port: 443\r\n")
                    && head.contains("x-forwarded-prefix: /evil\r\n")
                    && head.contains("x-forwarded-for: 203.0.113.1, 192.0.2.7\r\n")
                    && head.contains("x-forwarded-proto: https\r\n")
                    && head.contains("x-forwarded-host: evil.example\r\n"),
                "{trusted}: {head}"
            );
        }
    }

    #[test]
    fn an_ipv4_peer_on_a_dual_stack_socket_is_matched_as_ipv4() {
        let nets: Vec<ipnet::IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        let up = HttpUpstream::new(
            "up",
            "http://u",
            Duration::from_secs(1),
            &BTreeMap::new(),
            nets.into(),
        )
        .unwrap();
        assert!(up.trusts("::ffff:127.0.0.1".parse().unwrap()));
        assert!(up.trusts("127.9.9.9".parse().unwrap()));
        assert!(!up.trusts("::1".parse().unwrap()));
        assert!(!up.trusts("128.0.0.1".parse().unwrap()));
    }

    #[test]
    fn tls_says_https_and_cookie_fields_are_joined() {
        let mut req = Request::builder()
            .uri("/x")
            .header("cookie", "a=1")
            .header("x-mid", "m")
            .header("cookie", "b=2")
            .header("cookie", "c=3")
            .body(())
            .unwrap();
        req.extensions_mut().insert(TlsTerminated);
        let head = head_via("http://u", &[], req, "/x").unwrap();
        assert!(
            head.starts_with("GET /x HTTP/1.1\r\nhost: u\r\ncookie: a=1; b=2; c=3\r\nx-mid: m\r\n"),
            "{head}"
        );
        assert!(head.contains("x-forwarded-proto: https\r\n"), "{head}");
        assert_eq!(head.matches("cookie").count(), 1, "{head}");
    }

    #[test]
    fn a_target_never_starts_with_two_slashes() {
        for (url, path, target) in [
            ("http://u", "//evil.example/x", "/evil.example/x"),
            ("http://u/", "///evil.example/x", "/evil.example/x"),
            ("http://u", "/a//b", "/a//b"),
            ("http://u", "/", "/"),
            ("http://u/base", "//x", "/base//x"),
        ] {
            let req = Request::builder().uri("/").body(()).unwrap();
            let head = head_via(url, &[], req, path).unwrap();
            assert!(
                head.starts_with(&format!("GET {target} HTTP/1.1\r\n")),
                "{url} + {path}: {head}"
            );
        }
    }

    #[test]
    fn a_target_that_could_break_the_request_line_is_refused() {
        for path in ["/a b", "/a\r\nx-evil: 1", "/caf\u{e9}"] {
            let req = Request::builder().uri("/").body(()).unwrap();
            assert!(head_for(req, path).is_err(), "{path:?}");
        }
    }

    #[test]
    fn chunk_sizes_are_lowercase_hex() {
        let mut buf = [0u8; 16];
        for (n, hex) in [(0, "0"), (9, "9"), (10, "a"), (255, "ff"), (65536, "10000")] {
            assert_eq!(hex_len(n, &mut buf), hex.as_bytes());
        }
    }
}
