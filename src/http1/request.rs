//! The request head as the listener reads it (RFC 9112): parsed in place by
//! httparse, header values sliced from the bytes read (no copy), then held
//! to the rules httparse leaves to its caller: the version (§2.3), `Host`
//! (§3.2), the request-target's form (§3.2) and the body's framing
//! ([`super::head`], §6). What a client gets for each refusal is
//! [`HeadError::response`].

use std::mem::MaybeUninit;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version, header};
use bytes::{Bytes, BytesMut};
use smallvec::SmallVec;

use super::fields::{is_valid_authority, list_tokens};
use super::head::{Framing, FramingFields, HeadError};

/// Header slots per request head: hyper's default limit.
const MAX_HEADERS: usize = 100;
/// The HTTP/2 connection preface's first line.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// A parsed request head.
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
}

/// Parses one request head from the front of `buf`: `Ok(None)` if it is
/// not complete yet. On success the head's bytes are split off `buf` and the
/// header values point into them.
///
/// Besides httparse's syntax, RFC 9112's request rules: `HTTP/1.2`–`1.9`
/// are read as HTTP/1.1 and other versions refused (§2.3); `Host` present
/// once on HTTP/1.1 and well-formed (§3.2); an absolute-form target's
/// authority replaces `Host` and its path and query become the target
/// (§3.2.2); the framing decided from every `Transfer-Encoding` coding and
/// `Content-Length` value (§6), a listed length written back as one number.
pub(crate) fn parse_head(buf: &mut BytesMut, max_buf: usize) -> Result<Option<Head>, HeadError> {
    // Between kept-alive requests: nothing to parse yet.
    if buf.is_empty() {
        return Ok(None);
    }
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return incomplete(buf, max_buf),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) if buf.starts_with(H2_PREFACE) => {
            return Err(HeadError::Http2);
        }
        Err(httparse::Error::Version) => {
            return if read_higher_minor_as_11(buf)? {
                parse_head(buf, max_buf)
            } else {
                incomplete(buf, max_buf)
            };
        }
        Err(_) => return Err(HeadError::Bad("malformed request head")),
    };
    if len > max_buf {
        return Err(over_budget(&buf[..len], max_buf));
    }
    let version = if req.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| HeadError::Bad("invalid method"))?;
    let base = buf.as_ptr() as usize;
    // Where the target, each name and each value sit in the head, so the
    // head can be frozen and sliced.
    let at = |s: &[u8]| s.as_ptr() as usize - base;
    let path = req.path.unwrap_or("").as_bytes();
    let target = (at(path), at(path) + path.len());
    // On the stack for the usual few headers, without zeroing room for
    // `MAX_HEADERS`.
    let mut spans: SmallVec<[(u32, u32, u32, u32); 16]> = SmallVec::new();
    let mut framing = FramingFields::default();
    let mut hosts = 0u8;
    let mut host_valid = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        // Offsets fit: a head is at most `max_buf` bytes.
        spans.push((
            at(name) as u32,
            (at(name) + name.len()) as u32,
            at(value) as u32,
            (at(value) + value.len()) as u32,
        ));
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                hosts = hosts.saturating_add(1);
                host_valid = is_valid_authority(value);
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in list_tokens(value) {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                expect_continue = value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            _ => {
                framing.fold(name, value)?;
            }
        }
    }
    match hosts {
        0 if version == Version::HTTP_11 => return Err(HeadError::Bad("missing Host header")),
        0 => {}
        1 if host_valid => {}
        1 => return Err(HeadError::Bad("invalid Host header")),
        _ => return Err(HeadError::Bad("more than one Host header")),
    }
    let body_framing = framing.request(version)?;
    let head = buf.split_to(len).freeze();
    let (uri, authority) = request_target(&head, target, &method)?;
    let mut headers = HeaderMap::with_capacity(spans.len());
    for &(ns, ne, vs, ve) in &spans {
        let name = HeaderName::from_bytes(&head[ns as usize..ne as usize])
            .map_err(|_| HeadError::Bad("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs as usize..ve as usize))
            .map_err(|_| HeadError::Bad("invalid header value"))?;
        headers.append(name, value);
    }
    if let Some((start, end)) = authority {
        // One host for every reader (events, forwarded headers, authorizers).
        let host = HeaderValue::from_maybe_shared(head.slice(start..end))
            .map_err(|_| HeadError::Bad("invalid request target"))?;
        headers.insert(header::HOST, host);
    }
    if let Some(n) = framing.length_to_normalise() {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    let keep_alive = match version {
        Version::HTTP_10 => keep_alive_token && !close,
        _ => !close,
    };
    Ok(Some(Head {
        method,
        uri,
        version,
        headers,
        framing: body_framing,
        keep_alive,
        expect_continue: expect_continue && version == Version::HTTP_11,
    }))
}

/// A head not complete yet: wait for more, unless it already fills the
/// buffer it may use.
fn incomplete(buf: &[u8], max_buf: usize) -> Result<Option<Head>, HeadError> {
    if buf.len() < max_buf {
        return Ok(None);
    }
    Err(over_budget(buf, max_buf))
}

/// Why a head over its byte budget is refused: `414` when the request line
/// alone does not fit, else `431`.
fn over_budget(head: &[u8], max_buf: usize) -> HeadError {
    if memchr::memchr(b'\n', &head[..head.len().min(max_buf)]).is_some() {
        HeadError::TooLarge
    } else {
        HeadError::UriTooLong
    }
}

/// The request line's version, once httparse refused it (it knows only
/// `HTTP/1.0` and `HTTP/1.1`). `HTTP/1.2` to `HTTP/1.9` are rewritten in
/// place to `HTTP/1.1` and `Ok(true)` says to parse again: a recipient
/// answers a higher minor version as the highest it supports (RFC 9112
/// §2.3). `Ok(false)`: the line has not ended and may still be a version.
/// Another version is `505`; a line without one, `400`.
fn read_higher_minor_as_11(buf: &mut BytesMut) -> Result<bool, HeadError> {
    let line_end = memchr::memchr(b'\n', buf);
    let line = &buf[..line_end.unwrap_or(buf.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // method SP target SP version (httparse checked the first two).
    let mut parts = line.splitn(3, |b| *b == b' ');
    let (Some(_), Some(_), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(HeadError::Bad("malformed request line"));
    };
    let at = line.len() - version.len();
    let Some(number) = version.strip_prefix(b"HTTP/") else {
        return match line_end {
            None if b"HTTP/".starts_with(version) => Ok(false),
            _ => Err(HeadError::Bad("malformed request line")),
        };
    };
    // `DIGIT+ ["." DIGIT+]`, read loosely enough to answer 505 to any
    // version-looking token.
    let looks_numeric = number.first().is_some_and(u8::is_ascii_digit)
        && number.iter().all(|b| b.is_ascii_digit() || *b == b'.')
        && number.iter().filter(|b| **b == b'.').count() <= 1;
    match (line_end, number) {
        (None, _) if number.is_empty() || looks_numeric => Ok(false),
        (Some(_), [b'1', b'.', b'2'..=b'9']) => {
            buf[at + 7] = b'1';
            Ok(true)
        }
        (Some(_), _) if looks_numeric && !number.ends_with(b".") => Err(HeadError::Version),
        _ => Err(HeadError::Bad("malformed request line")),
    }
}

/// The request's URI and, for an absolute-form target, where its authority
/// sits in the head. Origin-form (`/path?query`) is the usual target, and
/// `*` with `OPTIONS`; an absolute-form target (`http://host/path?query`,
/// RFC 9112 §3.2.2) becomes its path and query, so every reader of the
/// request sees the same path whichever form was sent. Authority-form
/// (CONNECT's) is kept as sent; other targets are `400`.
fn request_target(
    head: &Bytes,
    (start, end): (usize, usize),
    method: &Method,
) -> Result<(Uri, Option<(usize, usize)>), HeadError> {
    let invalid = HeadError::Bad("invalid request target");
    let target = &head[start..end];
    let origin = target.first() == Some(&b'/');
    let asterisk = target == b"*" && method == Method::OPTIONS;
    // CONNECT's authority-form is parsed only to be refused later as a
    // method API Gateway does not serve.
    if origin || asterisk || method == Method::CONNECT {
        let uri = Uri::from_maybe_shared(head.slice(start..end)).map_err(|_| invalid)?;
        return Ok((uri, None));
    }
    let scheme_end =
        memchr::memmem::find(target, b"://").ok_or(HeadError::Bad("invalid request target"))?;
    let scheme = &target[..scheme_end];
    if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
        return Err(invalid);
    }
    let auth_start = start + scheme_end + 3;
    let auth_end = head[auth_start..end]
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .map_or(end, |i| auth_start + i);
    if !is_valid_authority(&head[auth_start..auth_end]) {
        return Err(HeadError::Bad("invalid authority in request target"));
    }
    let uri = match head.get(auth_end) {
        _ if auth_end == end => Uri::from_static("/"),
        Some(b'/') => Uri::from_maybe_shared(head.slice(auth_end..end)).map_err(|_| invalid)?,
        Some(b'?') => {
            let mut origin = Vec::with_capacity(end - auth_end + 1);
            origin.push(b'/');
            origin.extend_from_slice(&head[auth_end..end]);
            Uri::from_maybe_shared(origin).map_err(|_| invalid)?
        }
        _ => return Err(invalid),
    };
    Ok((uri, Some((auth_start, auth_end))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<Head>, HeadError> {
        let mut buf = BytesMut::from(raw);
        parse_head(&mut buf, 16 * 1024)
    }

    fn head(raw: &[u8]) -> Head {
        match parse(raw) {
            Ok(Some(h)) => h,
            Ok(None) => panic!("incomplete: {:?}", String::from_utf8_lossy(raw)),
            Err(e) => panic!("{e}: {:?}", String::from_utf8_lossy(raw)),
        }
    }

    /// The refusal's status, or 0 if the head parses (or is incomplete).
    fn refused(raw: &[u8]) -> u16 {
        match parse(raw) {
            Err(e) => e.response().status().as_u16(),
            Ok(_) => 0,
        }
    }

    #[test]
    fn parses_a_head_and_slices_its_values() {
        let mut buf = BytesMut::from(
            &b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\nrest"
                [..],
        );
        let head = parse_head(&mut buf, 16 * 1024).unwrap().unwrap();
        assert_eq!(head.method, Method::GET);
        assert_eq!(head.uri.path(), "/a/b");
        assert_eq!(head.uri.query(), Some("x=1"));
        assert_eq!(head.version, Version::HTTP_11);
        assert_eq!(head.headers["host"], "example.com");
        let multi: Vec<_> = head.headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["1", "2"]);
        assert_eq!(head.framing, Framing::None);
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"rest");
    }

    #[test]
    fn framing_rules() {
        let h = head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(5));
        // One number for the limits phase and everyone after it.
        let lengths: Vec<_> = h.headers.get_all("content-length").iter().collect();
        assert_eq!(lengths, ["5"]);
        let h =
            head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n");
        let lengths: Vec<_> = h.headers.get_all("content-length").iter().collect();
        assert_eq!(h.framing, Framing::Length(7));
        assert_eq!(lengths, ["7"]);
        let h = head(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        for (raw, status) in [
            (&b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..], 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n", 501),
        ] {
            assert_eq!(refused(raw), status, "{:?}", String::from_utf8_lossy(raw));
        }
        // The smuggling refusal says why, and closes.
        let res = parse(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
            .err()
            .unwrap()
            .response();
        assert_eq!(res.headers()["connection"], "close");
    }

    #[test]
    fn host_rules() {
        assert_eq!(
            head(b"GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n").headers["host"],
            "a.example:8080"
        );
        assert_eq!(
            head(b"GET / HTTP/1.1\r\nHOST: [::1]\r\n\r\n").headers["host"],
            "[::1]"
        );
        // HTTP/1.0 may leave it out.
        assert!(
            head(b"GET / HTTP/1.0\r\n\r\n")
                .headers
                .get("host")
                .is_none()
        );
        for raw in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a:\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: a,b\r\n\r\n",
        ] {
            assert_eq!(refused(raw), 400, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn absolute_form_targets_become_origin_form_with_their_authority() {
        let h = head(b"GET http://a.example:81/x/y?q=1 HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(h.uri.path(), "/x/y");
        assert_eq!(h.uri.query(), Some("q=1"));
        assert!(h.uri.authority().is_none() && h.uri.scheme().is_none());
        let hosts: Vec<_> = h.headers.get_all("host").iter().collect();
        assert_eq!(hosts, ["a.example:81"]);
        let h = head(b"GET HTTPS://b.example HTTP/1.1\r\nHost: b.example\r\n\r\n");
        assert_eq!(
            (h.uri.path(), h.headers["host"].as_bytes()),
            ("/", &b"b.example"[..])
        );
        let h = head(b"GET http://b.example?x=2 HTTP/1.0\r\n\r\n");
        assert_eq!(h.uri.to_string(), "/?x=2");
        assert_eq!(h.headers["host"], "b.example");
        let h = head(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(h.uri.path(), "*");
        for raw in [
            &b"GET http://u@a.example/ HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET http:///x HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET ftp://a/x HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET a.example:443 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET x HTTP/1.1\r\nHost: x\r\n\r\n",
            // Host is still required, and still checked.
            b"GET http://a.example/ HTTP/1.1\r\n\r\n",
            b"GET http://a.example/ HTTP/1.1\r\nHost: a b\r\n\r\n",
        ] {
            assert_eq!(refused(raw), 400, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn versions() {
        for minor in b'2'..=b'9' {
            let raw = [
                b"GET / HTTP/1.".as_slice(),
                &[minor],
                b"\r\nHost: x\r\n\r\n",
            ]
            .concat();
            let h = head(&raw);
            assert_eq!(h.version, Version::HTTP_11);
            assert!(h.keep_alive);
        }
        // A higher minor version arriving in pieces is waited for.
        let mut buf = BytesMut::from(&b"GET / HTTP/1.5"[..]);
        assert!(matches!(parse_head(&mut buf, 16 * 1024), Ok(None)));
        buf.extend_from_slice(b"\r\nHost: x\r\n");
        assert!(matches!(parse_head(&mut buf, 16 * 1024), Ok(None)));
        buf.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_head(&mut buf, 16 * 1024).unwrap().unwrap().version,
            Version::HTTP_11
        );
        for partial in [
            &b"GET / HTTP/2"[..],
            b"GET / H",
            b"GET / HTTP/",
            b"PRI * HTTP/2.0",
        ] {
            assert!(matches!(parse(partial), Ok(None)), "{partial:?}");
        }
        for (raw, status) in [
            (&b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"[..], 505),
            (b"GET / HTTP/0.9\r\n\r\n", 505),
            (b"GET / HTTP/3\r\n\r\n", 505),
            (b"GET / HTTP/12.0\r\n\r\n", 505),
            // Not a version at all (two digits after the dot).
            (b"GET / HTTP/1.10\r\n\r\n", 400),
            (b"GET / HTTP/1.\r\n\r\n", 400),
            (b"GET / HTTPS/1.1\r\n\r\n", 400),
            (b"GET / http/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1x\r\n\r\n", 400),
            (b"GET /\r\n\r\n", 400),
            (b"GET / HTTP/1.2 \r\n\r\n", 400),
        ] {
            assert_eq!(refused(raw), status, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn persistence_by_version_and_connection() {
        let h = |raw: &[u8]| head(raw).keep_alive;
        assert!(h(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!h(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ));
        assert!(!h(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(h(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        let h =
            head(b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n");
        assert!(h.expect_continue);
    }

    #[test]
    fn partial_oversized_and_http2_heads() {
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None)));
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaa\r\n"[..]);
        assert!(matches!(parse_head(&mut buf, 16), Err(HeadError::TooLarge)));
        // A request line that does not end within the budget is 414.
        let mut buf = BytesMut::from(&b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaa"[..]);
        assert!(matches!(
            parse_head(&mut buf, 16),
            Err(HeadError::UriTooLong)
        ));
        let mut buf = BytesMut::from(&b"GET /aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
        assert!(matches!(
            parse_head(&mut buf, 16),
            Err(HeadError::UriTooLong)
        ));
        let mut buf = BytesMut::from(&b"GET /aaaaaaaaaaaaaaaaaaaaaaa HTTP/1.7"[..]);
        assert!(matches!(
            parse_head(&mut buf, 16),
            Err(HeadError::UriTooLong)
        ));
        assert!(matches!(
            parse(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Err(HeadError::Http2)
        ));
        assert_eq!(refused(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"), 400);
        let many: String = (0..101).map(|i| format!("X-{i}: y\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
        assert!(matches!(parse(raw.as_bytes()), Err(HeadError::TooLarge)));
    }
}
