//! The HTTP/1.1 client side of the `http` integration: one upstream
//! connection, the request head written straight from the request's parts
//! into one buffer, the response head parsed in place (httparse) with its
//! header values sliced from the bytes read, and the response body framed
//! as RFC 9112 §6.3 says (`Content-Length`, chunked, or to the end of the
//! connection).
//!
//! Why not hyper's client: the gateway serves the request from one task and
//! forwards it from the same task, and a small proxied exchange is one
//! write and one read. hyper's connection state machine, its request
//! channel and its body channel cost about as much as the rest of the
//! gateway together for such an exchange. A response whose body arrived
//! with its head (the usual case) is complete before the response is handed
//! on, and its connection is back in the pool at once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version, header};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub(crate) use super::chunked::{ChunkDecoder, Decoded};
use super::fields::{is_hop_by_hop_raw, list_tokens};
pub(crate) use super::head::HeadError;
use super::head::{self, FramingFields};

/// Headers a response head may carry; more is a bad response.
const MAX_HEADERS: usize = 100;
/// Headers a head is first parsed for (the header slots are initialised
/// on every parse, so the usual head does not pay for `MAX_HEADERS`).
const USUAL_HEADERS: usize = 24;
/// A response head larger than this is a bad response.
pub const MAX_HEAD: usize = 64 * 1024;
/// What one read asks the socket for (at least).
const READ_CHUNK: usize = 16 * 1024;

/// One open connection to an upstream.
pub struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet consumed.
    read: BytesMut,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Self {
        Conn {
            stream,
            read: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// Whether an idle connection can take a request: not closed by the
    /// upstream and holding no bytes nobody asked for. Checks the
    /// runtime's readiness flag first, so an idle connection costs no
    /// system call unless something arrived on it.
    pub fn is_reusable(&mut self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readable while idle: the end of the connection, an error, or
            // bytes no request asked for. Only "nothing after all" is fine.
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Writes all of `buf`; `Err((written_any, e))` on failure.
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<(), (bool, io::Error)> {
        let mut at = 0;
        while at < buf.len() {
            match self.stream.write(&buf[at..]).await {
                Ok(0) => {
                    return Err((at > 0, io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => at += n,
                Err(e) => return Err((at > 0, e)),
            }
        }
        Ok(())
    }

    /// Reads more bytes into the buffer; `Ok(0)` at the end of the
    /// connection.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < READ_CHUNK / 4 {
            self.read.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.read)
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Reads the response head of a request (skipping interim 1xx
    /// answers). `Ok(None)`: the connection ended before a byte of the
    /// response arrived.
    pub async fn read_head(&mut self, head_request: bool) -> Result<Option<Head>, HeadError> {
        let mut received_any = false;
        loop {
            if !self.read.is_empty() {
                received_any = true;
                match parse_head(&mut self.read, head_request)? {
                    Parsed::Head(h) => return Ok(Some(h)),
                    Parsed::Interim => continue,
                    Parsed::Partial => {}
                }
                if self.read.len() > MAX_HEAD {
                    return Err(HeadError::TooLarge);
                }
            }
            match self.fill().await {
                Ok(0) if !received_any => return Ok(None),
                Ok(0) => return Err(bad("connection closed mid-head")),
                Ok(_) => {}
                Err(e) if !received_any => return Err(HeadError::Io(e)),
                Err(e) => return Err(HeadError::Cut(e)),
            }
        }
    }

    /// The next piece of a body framed by `framing`; `None` once it ended.
    pub fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
        framing: &mut Framing,
    ) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            match framing {
                Framing::Empty => return Poll::Ready(None),
                Framing::Length(0) => {
                    *framing = Framing::Empty;
                    return Poll::Ready(None);
                }
                Framing::Length(left) => {
                    if !self.read.is_empty() {
                        let n = self
                            .read
                            .len()
                            .min(usize::try_from(*left).unwrap_or(usize::MAX));
                        *left -= n as u64;
                        return Poll::Ready(Some(Ok(self.read.split_to(n).freeze())));
                    }
                }
                Framing::Chunked(dec) => match dec.decode(&mut self.read) {
                    Err(e) => return Poll::Ready(Some(Err(e))),
                    Ok(Decoded::Data(b)) => return Poll::Ready(Some(Ok(b))),
                    Ok(Decoded::End) => {
                        *framing = Framing::Empty;
                        return Poll::Ready(None);
                    }
                    Ok(Decoded::NeedMore) => {}
                },
                Framing::Close => {
                    if !self.read.is_empty() {
                        return Poll::Ready(Some(Ok(self.read.split().freeze())));
                    }
                }
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) if matches!(framing, Framing::Close) => {
                    *framing = Framing::Empty;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "upstream closed the connection mid-body",
                    ))));
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }

    /// The whole body if it is already here (a `Content-Length` body that
    /// arrived with its head, or none at all).
    pub fn take_complete_body(&mut self, framing: &mut Framing) -> Option<Bytes> {
        match *framing {
            Framing::Empty => Some(Bytes::new()),
            Framing::Length(n) if n as usize <= self.read.len() => {
                *framing = Framing::Empty;
                Some(self.read.split_to(n as usize).freeze())
            }
            _ => None,
        }
    }

    /// Drops a grown read buffer back to its usual size before idling.
    pub fn shrink(&mut self) {
        if self.read.is_empty() && self.read.capacity() > 4 * READ_CHUNK {
            self.read = BytesMut::with_capacity(READ_CHUNK);
        }
    }
}

/// How much of a response body is left, as its framing
/// ([`head::Framing`]) said it is delimited.
#[derive(Debug)]
pub enum Framing {
    /// No body (or all of it read).
    Empty,
    /// `Content-Length`: bytes still to read.
    Length(u64),
    Chunked(ChunkDecoder),
    /// Until the upstream closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub version: Version,
    /// End-to-end headers only: hop-by-hop ones are left out.
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection can carry another request after this body.
    pub keep_alive: bool,
}

enum Parsed {
    Head(Head),
    /// A complete 1xx head, consumed; the real one follows.
    Interim,
    Partial,
}

fn bad(m: &'static str) -> HeadError {
    HeadError::Bad(m)
}

/// Parses a response head at the start of `buf`, consuming it when
/// complete. Header values are sliced from the head's bytes (no copy).
fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Parsed, HeadError> {
    match parse_head_with::<USUAL_HEADERS>(buf, head_request) {
        Err(HeadError::TooLarge) => parse_head_with::<MAX_HEADERS>(buf, head_request),
        other => other,
    }
}

fn parse_head_with<const N: usize>(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Parsed, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; N];
    let mut res = httparse::Response::new(&mut slots);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => return Err(HeadError::Version),
        Err(_) => return Err(bad("not an HTTP/1.1 response head")),
    };
    if len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    // Three digits from 100 to 599 (RFC 9110 §15): `http` would take up to
    // 999, but no client knows what a 600 or 999 means.
    let code = res.code.unwrap_or(0);
    if !(100..=599).contains(&code) {
        return Err(bad("status code outside 100-599"));
    }
    let status = StatusCode::from_u16(code).map_err(|_| bad("bad status code"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(bad("unexpected 101 Switching Protocols"));
    }
    if status.is_informational() {
        buf.advance(len);
        return Ok(Parsed::Interim);
    }
    let version = if res.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Where each kept header's name and value sit in the head, so the head
    // can be split off as `Bytes` and the values sliced from it.
    let base = buf.as_ptr() as usize;
    let mut spans = [(0u32, 0u32, 0u32, 0u32); N];
    let mut n = 0;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut connection_names = false;
    let mut fields = FramingFields::default();
    for h in res.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            for token in list_tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    connection_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    connection_keep_alive = true;
                } else {
                    connection_names = true;
                }
            }
            continue;
        }
        // Both framing fields are read; `Content-Length` is kept,
        // `Transfer-Encoding` is hop-by-hop and left out.
        fields.fold(name, h.value)?;
        if is_hop_by_hop_raw(name) {
            continue;
        }
        // Offsets fit: a head is at most `MAX_HEAD` bytes past what was read.
        let at = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
        spans[n] = (
            at(name),
            at(name) + name.len() as u32,
            at(h.value),
            at(h.value) + h.value.len() as u32,
        );
        n += 1;
    }
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(n);
    for &(ns, ne, vs, ve) in &spans[..n] {
        let name = HeaderName::from_bytes(&head[ns as usize..ne as usize])
            .map_err(|_| bad("bad header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs as usize..ve as usize))
            .map_err(|_| bad("bad header value"))?;
        headers.append(name, value);
    }
    if connection_names {
        // Headers named by `Connection` are hop-by-hop too (RFC 9110 §7.6.1).
        strip_connection_named(&head, &mut headers);
    }
    let mut keep_alive = match version {
        Version::HTTP_10 => connection_keep_alive && !connection_close,
        _ => !connection_close,
    };
    let decided = fields.response(status, head_request);
    if decided.drop_length {
        headers.remove(header::CONTENT_LENGTH);
    }
    keep_alive &= decided.reusable;
    // An HTTP/1.0 message has no Transfer-Encoding: one that carries it is
    // faulty framing (RFC 9112 §6.1). Its body is read as the coding says
    // (chunked, else to the end), and the connection closed after it.
    if version == Version::HTTP_10 && fields.transfer_coded() {
        keep_alive = false;
    }
    let framing = match decided.framing {
        head::Framing::None => Framing::Empty,
        head::Framing::Length(n) => Framing::Length(n),
        head::Framing::Chunked => Framing::Chunked(ChunkDecoder::default()),
        head::Framing::UntilClose => Framing::Close,
    };
    Ok(Parsed::Head(Head {
        status,
        version,
        headers,
        framing,
        keep_alive,
    }))
}

/// Removes the headers a response's `Connection` header names.
fn strip_connection_named(head: &Bytes, headers: &mut HeaderMap) {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut slots);
    if res.parse(head).is_err() {
        return;
    }
    for h in res.headers.iter() {
        if !h.name.eq_ignore_ascii_case("connection") {
            continue;
        }
        for token in list_tokens(h.value) {
            if let Ok(name) = HeaderName::from_bytes(token) {
                headers.remove(name);
            }
        }
    }
}

/// What `fuzzing::upstream_response` drives: a head, then a body.
pub fn fuzz_response(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    for head_request in [false, true] {
        let mut b = buf.clone();
        while let Ok(Parsed::Interim) = parse_head(&mut b, head_request) {}
    }
    let mut dec = ChunkDecoder::default();
    while let Ok(Decoded::Data(_)) = dec.decode(&mut buf) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, head_request: bool) -> Result<Parsed, HeadError> {
        parse_head(&mut BytesMut::from(raw), head_request)
    }

    fn parsed(raw: &str) -> Head {
        match head(raw, false) {
            Ok(Parsed::Head(h)) => h,
            Ok(_) => panic!("not a complete head: {raw:?}"),
            Err(e) => panic!("{e}: {raw:?}"),
        }
    }

    #[test]
    fn response_heads_decide_framing_and_reuse() {
        let h = parsed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n");
        assert!(matches!(h.framing, Framing::Length(5)) && h.keep_alive);
        assert_eq!(h.headers["x-a"], "1");
        assert_eq!(h.headers["content-length"], "5");

        let h =
            parsed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        assert!(matches!(h.framing, Framing::Chunked(_)) && !h.keep_alive);
        assert!(
            h.headers.is_empty(),
            "hop-by-hop headers dropped: {:?}",
            h.headers
        );

        // Both: chunked wins, Content-Length goes, the connection is not reused.
        let h =
            parsed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(h.framing, Framing::Chunked(_)) && !h.keep_alive);
        assert!(!h.headers.contains_key("content-length"));

        let h = parsed("HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n");
        assert!(matches!(h.framing, Framing::Close) && !h.keep_alive);

        let h = parsed("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.keep_alive && h.version == Version::HTTP_10);
        let h = parsed("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(h.keep_alive);
        // Transfer-Encoding in HTTP/1.0 is faulty framing: read as the
        // coding says, never reused, whatever `Connection` says.
        let h = parsed(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert!(matches!(h.framing, Framing::Chunked(_)) && !h.keep_alive);
        let h = parsed(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: gzip\r\nContent-Length: 4\r\n\r\n",
        );
        assert!(matches!(h.framing, Framing::Close) && !h.keep_alive);
        assert!(!h.headers.contains_key("content-length"));

        let h = parsed("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n");
        assert!(matches!(h.framing, Framing::Empty) && h.keep_alive);
        match head("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true) {
            Ok(Parsed::Head(h)) => assert!(matches!(h.framing, Framing::Empty)),
            _ => panic!("HEAD response"),
        }

        // Headers `Connection` names are hop-by-hop too.
        let h = parsed(
            "HTTP/1.1 200 OK\r\nConnection: X-Private\r\nX-Private: 1\r\nX-Kept: 2\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(!h.headers.contains_key("x-private"));
        assert_eq!(h.headers["x-kept"], "2");

        // Repeated headers stay, in order.
        let h = parsed(
            "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
        );
        let cookies: Vec<_> = h.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
    }

    #[test]
    fn interim_and_partial_and_bad_heads() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(matches!(parse_head(&mut buf, false), Ok(Parsed::Interim)));
        match parse_head(&mut buf, false) {
            Ok(Parsed::Head(h)) => assert_eq!(h.status, StatusCode::CREATED),
            _ => panic!("final head"),
        }
        assert!(buf.is_empty());
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\nContent-Le", false),
            Ok(Parsed::Partial)
        ));
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTP/1.1 999 Whatever\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 600 Beyond\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 099 Early\r\nContent-Length: 0\r\n\r\n",
            "SMTP ready\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n",
        ] {
            assert!(head(bad, false).is_err(), "{bad:?}");
        }
        // More than the usual number of headers is fine, up to the limit.
        let some: String = (0..USUAL_HEADERS + 6)
            .map(|i| format!("X-{i}: {i}\r\n"))
            .collect();
        let h = parsed(&format!(
            "HTTP/1.1 200 OK\r\n{some}Content-Length: 0\r\n\r\n"
        ));
        assert_eq!(h.headers.len(), USUAL_HEADERS + 7);
        assert_eq!(h.headers["x-29"], "29");
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        assert!(head(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"), false).is_err());
        // The same Content-Length twice (one header or two) is fine.
        assert!(matches!(
            parsed("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n").framing,
            Framing::Length(2)
        ));
    }
}
