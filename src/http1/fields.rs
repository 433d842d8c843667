//! Header-field rules both sides of the HTTP/1 codec share: list syntax,
//! `Content-Length` values and which headers are hop-by-hop.

use axum::http::HeaderName;

/// A decimal `Content-Length`, without sign or overflow.
pub(crate) fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The elements of a comma-separated header value (RFC 9110 §5.6.1),
/// trimmed, empty ones left out. Shared by both HTTP/1 codecs (this client
/// and the listener's server connection).
pub(crate) fn list_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Folds one `Content-Length` field into `length`: every element must be a
/// decimal length, and all of them (across fields too) the same.
pub(crate) fn merge_content_length(
    value: &[u8],
    length: &mut Option<u64>,
) -> Result<(), &'static str> {
    for v in value.split(|b| *b == b',') {
        let n = parse_length(v.trim_ascii()).ok_or("invalid Content-Length")?;
        if length.is_some_and(|l| l != n) {
            return Err("conflicting Content-Length values");
        }
        *length = Some(n);
    }
    Ok(())
}

/// Hop-by-hop header names (RFC 9110 §7.6.1, plus the common
/// `Keep-Alive` and `Proxy-Connection`): never forwarded either way.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether a header is hop-by-hop.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// The same for a name as received, in any case.
pub(crate) fn is_hop_by_hop_raw(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| h.len() == name.len() && h.as_bytes().eq_ignore_ascii_case(name))
}
