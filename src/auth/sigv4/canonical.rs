//! The SigV4 fast path's arithmetic: the canonical request of a header-form
//! signature, written the way `aws-sigv4` 1.x writes it with the settings
//! the authorizer signs with (`SigningSettings::default()`, no excluded
//! headers, signature in headers), hashed, and turned into a signature with
//! the crate's own `calculate_signature`.
//!
//! `aws-sigv4` keeps its canonical request private, and calling
//! `http_request::sign` for it spends more per request than the rest of
//! the gateway, mostly on allocation and formatting. What is mirrored
//! here, from the crate's `canonical_request.rs`,
//! `uri_path_normalization.rs` and `url_escape.rs`:
//!
//! - the path: dot segments and empty segments removed (RFC 3986
//!   remove_dot_segments plus `//` → `/`, a trailing `/` kept) when it
//!   holds a `.` or `//`, then every byte but `A-Z a-z 0-9 - . _ ~ /`
//!   percent-encoded again (so `%2F` signs as `%252F`);
//! - the query: split on `&`, empty pieces dropped, each name and value
//!   form-decoded (`+` is a space, `%XX` a byte, a stray `%` itself) and
//!   encoded again (everything but `A-Z a-z 0-9 - . _ ~`), a missing `=`
//!   giving an empty value, pairs sorted by encoded name then value;
//! - the headers: each signed name with its values in order, joined by
//!   `,`, spaces trimmed at both ends and runs of spaces made one; the
//!   `x-amz-date` line is the signing time and the `x-amz-security-token`
//!   line the key's own token, as the crate inserts them.
//!
//! Anything this is not sure of answers `None` and the caller falls back
//! to `sign()`: a path not starting with `/`, a query escape that decodes
//! to invalid UTF-8 (the crate would substitute U+FFFD), a signed-header
//! list that is not lower case, strictly sorted and free of repeats, a
//! header value that is not visible ASCII.

use std::cell::RefCell;

use aws_sigv4::sign::v4;
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use sha2::{Digest, Sha256};

use super::X_AMZ_CONTENT_SHA256;

/// What the header form's canonical request is made of, as the request
/// and the authorizer's checks give it.
pub(super) struct HeaderForm<'a> {
    pub method: &'a str,
    /// The path and query as received (`/a/b?x=1`).
    pub path_and_query: &'a str,
    /// The client's `SignedHeaders=` list, `;`-separated.
    pub signed_headers: &'a str,
    /// `X-Amz-Date`; any spelling but `yyyyMMddTHHmmssZ` is declined.
    pub amz_date: &'a str,
    /// The key's session token, which the crate signs in place of the
    /// header's values when the client signed `x-amz-security-token`.
    pub session_token: Option<&'a str>,
    /// Hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    pub payload_hash: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// Buffers every fast-path verification on a thread reuses.
struct Scratch {
    /// The canonical request, then the string to sign.
    text: Vec<u8>,
    /// One query name or value, decoded.
    decoded: Vec<u8>,
    /// The query's names and values, encoded again.
    params: Vec<u8>,
    /// Per parameter: where its name starts, where its value starts and
    /// where it ends in `params`.
    spans: Vec<(usize, usize, usize)>,
    /// The path segments dot-segment removal keeps, as ranges of the path.
    segments: Vec<(usize, usize)>,
}

impl Scratch {
    const fn new() -> Self {
        Self {
            text: Vec::new(),
            decoded: Vec::new(),
            params: Vec::new(),
            spans: Vec::new(),
            segments: Vec::new(),
        }
    }

    /// Bytes held; buffers grown past [`KEEP_BYTES`] by an unusual request
    /// are given back.
    fn held(&self) -> usize {
        self.text.capacity()
            + self.decoded.capacity()
            + self.params.capacity()
            + self.spans.capacity() * size_of::<(usize, usize, usize)>()
            + self.segments.capacity() * size_of::<(usize, usize)>()
    }
}

const KEEP_BYTES: usize = 32 * 1024;

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::new()) };
}

/// The header form's signature, hex, computed with `signing_key` (the
/// crate's `generate_signing_key` for the request's day, region and
/// service), or `None` when this request is one to leave to `sign()`.
/// Allocates only the returned string (`calculate_signature`'s); the
/// canonical request is written into this thread's reused buffers.
pub(super) fn signature(
    req: &HeaderForm<'_>,
    headers: &HeaderMap,
    signing_key: &[u8],
) -> Option<String> {
    SCRATCH
        .try_with(|scratch| {
            let mut s = scratch.try_borrow_mut().ok()?;
            let signature = signature_with(req, headers, signing_key, &mut s);
            if s.held() > KEEP_BYTES {
                *s = Scratch::new();
            }
            signature
        })
        .ok()
        .flatten()
}

fn signature_with(
    req: &HeaderForm<'_>,
    headers: &HeaderMap,
    signing_key: &[u8],
    s: &mut Scratch,
) -> Option<String> {
    if !is_amz_date(req.amz_date) {
        return None;
    }
    let amz_date = req.amz_date.as_bytes();
    let pq = req.path_and_query.as_bytes();
    let (path, query) = match pq.iter().position(|&b| b == b'?') {
        Some(i) => (&pq[..i], &pq[i + 1..]),
        None => (pq, &[][..]),
    };
    if path.first() != Some(&b'/') {
        return None;
    }

    let Scratch {
        text,
        decoded,
        params,
        spans,
        segments,
    } = s;
    text.clear();
    text.extend_from_slice(req.method.as_bytes());
    text.push(b'\n');
    write_path(path, segments, text);
    text.push(b'\n');
    write_query(query, decoded, params, spans, text)?;
    text.push(b'\n');
    write_headers(req, headers, text)?;
    text.push(b'\n');
    text.extend_from_slice(req.signed_headers.as_bytes());
    text.push(b'\n');
    text.extend_from_slice(req.payload_hash.as_bytes());
    let digest = Sha256::digest(&text[..]);

    text.clear();
    text.extend_from_slice(b"AWS4-HMAC-SHA256\n");
    text.extend_from_slice(amz_date);
    text.push(b'\n');
    text.extend_from_slice(&amz_date[..8]);
    text.push(b'/');
    text.extend_from_slice(req.region.as_bytes());
    text.push(b'/');
    text.extend_from_slice(req.service.as_bytes());
    text.extend_from_slice(b"/aws4_request\n");
    let mut hex = [0u8; 64];
    hex::encode_to_slice(digest, &mut hex).ok()?;
    text.extend_from_slice(&hex);
    Some(v4::calculate_signature(signing_key, text))
}

/// `yyyyMMddTHHmmssZ`: the only spelling for which the crate's reformatted
/// signing time equals the header's text.
pub(super) fn is_amz_date(d: &str) -> bool {
    let d = d.as_bytes();
    d.len() == 16
        && d[..8].iter().all(u8::is_ascii_digit)
        && d[8] == b'T'
        && d[9..15].iter().all(u8::is_ascii_digit)
        && d[15] == b'Z'
}

/// The canonical URI: `normalize_uri_path` (only when the path holds a `.`
/// or `//`), then the path encoded again with `/` kept.
fn write_path(path: &[u8], segments: &mut Vec<(usize, usize)>, out: &mut Vec<u8>) {
    if !(path.contains(&b'.') || path.windows(2).any(|w| w == b"//")) {
        push_encoded(path, true, out);
        return;
    }
    segments.clear();
    let mut at = 0;
    for segment in path.split(|&b| b == b'/') {
        let start = at;
        at += segment.len() + 1;
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            _ => segments.push((start, start + segment.len())),
        }
    }
    out.push(b'/');
    for (i, &(start, end)) in segments.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        push_encoded(&path[start..end], true, out);
    }
    // "/a/b/", "/a/b/.", "/a/b/.." keep their trailing slash; "/" already
    // ends in one.
    let trailing = [&b"/"[..], b"/.", b"/./", b"/..", b"/../"]
        .iter()
        .any(|end| path.ends_with(end));
    if trailing && !segments.is_empty() {
        out.push(b'/');
    }
}

/// The canonical query string: the crate's `form_urlencoded::parse`, each
/// name and value encoded again, sorted, joined.
fn write_query(
    query: &[u8],
    decoded: &mut Vec<u8>,
    params: &mut Vec<u8>,
    spans: &mut Vec<(usize, usize, usize)>,
    out: &mut Vec<u8>,
) -> Option<()> {
    if query.is_empty() {
        return Some(());
    }
    params.clear();
    spans.clear();
    for pair in query.split(|&b| b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        let start = params.len();
        push_form_component(name, decoded, params)?;
        let value_start = params.len();
        push_form_component(value, decoded, params)?;
        spans.push((start, value_start, params.len()));
    }
    let name = |&(start, value_start, _): &(usize, usize, usize)| &params[start..value_start];
    let value = |&(_, value_start, end): &(usize, usize, usize)| &params[value_start..end];
    spans.sort_unstable_by(|a, b| name(a).cmp(name(b)).then_with(|| value(a).cmp(value(b))));
    for (i, span) in spans.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(name(span));
        out.push(b'=');
        out.extend_from_slice(value(span));
    }
    Some(())
}

/// One form-encoded name or value, decoded and encoded again; `None` when
/// its escapes decode to invalid UTF-8.
fn push_form_component(raw: &[u8], decoded: &mut Vec<u8>, out: &mut Vec<u8>) -> Option<()> {
    decoded.clear();
    // A hex digit's value (at most 15).
    let hex_digit = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        let hex_pair = raw
            .get(i + 1..i + 3)
            .and_then(|h| Some((hex_digit(h[0])?, hex_digit(h[1])?)));
        match (b, hex_pair) {
            (b'%', Some((hi, lo))) => {
                decoded.push(hi << 4 | lo);
                i += 3;
            }
            (b'+', _) => {
                decoded.push(b' ');
                i += 1;
            }
            _ => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    std::str::from_utf8(decoded).ok()?;
    push_encoded(decoded, false, out);
    Some(())
}

/// SigV4's URI encoding: unreserved bytes (and `/` in a path) as they are,
/// every other byte as `%XX` in upper case.
fn push_encoded(mut bytes: &[u8], keep_slash: bool, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let unreserved = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
    };
    while !bytes.is_empty() {
        // Runs of unreserved bytes are copied whole.
        let run = bytes
            .iter()
            .position(|&b| !unreserved(b))
            .unwrap_or(bytes.len());
        out.extend_from_slice(&bytes[..run]);
        if let Some(&b) = bytes.get(run) {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            bytes = &bytes[run + 1..];
        } else {
            bytes = &[];
        }
    }
}

/// The canonical header lines, one per signed name.
fn write_headers(req: &HeaderForm<'_>, headers: &HeaderMap, out: &mut Vec<u8>) -> Option<()> {
    let mut previous = &b""[..];
    for name in req.signed_headers.as_bytes().split(|&b| b == b';') {
        // Sorted, no repeats, no empty names (`"" <= previous` always).
        if name <= previous || !name.iter().copied().all(is_lower_tchar) {
            return None;
        }
        previous = name;
        out.extend_from_slice(name);
        out.push(b':');
        match (name, req.session_token) {
            (b"x-amz-date", _) => out.extend_from_slice(req.amz_date.as_bytes()),
            (b"x-amz-security-token", Some(token)) => out.extend_from_slice(token.as_bytes()),
            _ => {
                let mut values = match name {
                    // The usual ones without parsing the name again.
                    b"host" => headers.get_all(HOST),
                    b"x-amz-content-sha256" => headers.get_all(&X_AMZ_CONTENT_SHA256),
                    b"content-type" => headers.get_all(CONTENT_TYPE),
                    b"content-length" => headers.get_all(CONTENT_LENGTH),
                    // Token characters only, so text.
                    _ => headers.get_all(std::str::from_utf8(name).ok()?),
                }
                .iter();
                let first = values.next()?;
                push_trimmed(first.to_str().ok()?, out);
                for v in values {
                    out.push(b',');
                    push_trimmed(v.to_str().ok()?, out);
                }
            }
        }
        out.push(b'\n');
    }
    Some(())
}

/// A header name as the crate writes it: lower case, token characters.
fn is_lower_tchar(b: u8) -> bool {
    b.is_ascii_lowercase()
        || b.is_ascii_digit()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// A header value with spaces (only spaces) trimmed at both ends and runs
/// of them made one.
fn push_trimmed(value: &str, out: &mut Vec<u8>) {
    let value = value.trim_matches(' ').as_bytes();
    if !value.contains(&b' ') || !value.windows(2).any(|w| w == b"  ") {
        out.extend_from_slice(value);
        return;
    }
    let mut after_space = false;
    for &b in value {
        if b == b' ' {
            if !after_space {
                out.push(b);
            }
            after_space = true;
        } else {
            out.push(b);
            after_space = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> String {
        let mut out = Vec::new();
        write_path(p.as_bytes(), &mut Vec::new(), &mut out);
        String::from_utf8(out).unwrap()
    }

    fn query(q: &str) -> Option<String> {
        let mut out = Vec::new();
        write_query(
            q.as_bytes(),
            &mut Vec::new(),
            &mut Vec::new(),
            &mut Vec::new(),
            &mut out,
        )?;
        Some(String::from_utf8(out).unwrap())
    }

    #[test]
    fn paths_are_normalised_then_encoded_again() {
        assert_eq!(path("/"), "/");
        assert_eq!(path("/a/b"), "/a/b");
        assert_eq!(path("//a//b//"), "/a/b/");
        assert_eq!(path("/a/./b/../c/."), "/a/c/");
        assert_eq!(path("/.."), "/");
        assert_eq!(path("/a%2Fb%20c"), "/a%252Fb%2520c");
        assert_eq!(path("/a+b~c"), "/a%2Bb~c");
        assert_eq!(path("/é"), "/%C3%A9");
    }

    #[test]
    fn queries_are_decoded_encoded_and_sorted() {
        assert_eq!(query("b=2&a=1&a=0").unwrap(), "a=0&a=1&b=2");
        assert_eq!(query("x&&y=").unwrap(), "x=&y=");
        assert_eq!(query("a=b+c%20d%2B").unwrap(), "a=b%20c%20d%2B");
        assert_eq!(query("a=%zz%2").unwrap(), "a=%25zz%252");
        assert_eq!(query("k=%c3%a9").unwrap(), "k=%C3%A9");
        assert_eq!(query("k=a=b").unwrap(), "k=a%3Db");
        assert_eq!(query("k=%FF"), None);
    }

    #[test]
    fn header_values_lose_outer_and_repeated_spaces_only() {
        let mut out = Vec::new();
        push_trimmed("  a   b\t c  ", &mut out);
        assert_eq!(out, b"a b\t c");
    }
}
