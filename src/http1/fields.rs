//! Header-field rules both sides of the HTTP/1 codec share: list syntax,
//! `Content-Length` values, `Host` syntax and which headers are hop-by-hop.

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

/// Whether `v` is `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2):
/// what a `Host` field and an absolute-form target's authority must be. The
/// host is a registered name (unreserved bytes, sub-delims and
/// percent-encodings) or an IP literal in brackets; the port, when there is
/// a `:`, is 1 to 5 digits up to 65535. An empty host, userinfo (`@`), a
/// path, spaces, commas and an empty port are refused.
pub(crate) fn is_valid_authority(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(end) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        if !is_ip_literal(&v[1..end]) {
            return false;
        }
        match &v[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&v[..=end], port),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) if is_reg_name(&v[..i]) => (&v[..i], &v[i + 1..]),
            Some(_) => return false,
            None => return is_reg_name(v),
        }
    };
    !host.is_empty() && port.len() <= 5 && parse_length(port).is_some_and(|p| p <= 65535)
}

/// `reg-name`, not empty: unreserved, sub-delims and `%` with two hex digits.
fn is_reg_name(v: &[u8]) -> bool {
    if v.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'%' => {
                if !v
                    .get(i + 1..i + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                {
                    return false;
                }
                i += 3;
                continue;
            }
            // A comma is a sub-delim, but in a `Host` value it is what two
            // values merged into one look like: refused.
            b',' => return false,
            b if is_unreserved_or_sub_delim(b) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

fn is_unreserved_or_sub_delim(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)
}

/// What sits between `[` and `]`: an IPv6 address or `v` HEX "." text.
fn is_ip_literal(v: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = v {
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, text) = (&rest[..dot], &rest[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !text.is_empty()
            && text
                .iter()
                .all(|&b| b == b':' || is_unreserved_or_sub_delim(b));
    }
    std::str::from_utf8(v).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_are_host_and_optional_port() {
        for ok in [
            "example.com",
            "example.com:8080",
            "a",
            "127.0.0.1",
            "127.0.0.1:1",
            "[::1]",
            "[::1]:443",
            "[2001:db8::7]",
            "[v1.fe80::a+en1]",
            "xn--bcher-kva.example",
            "under_score.example",
            "%41bc.example",
            "a:65535",
            "a:00080",
        ] {
            assert!(is_valid_authority(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            ":80",
            "a:",
            "a:x",
            "a:80x",
            "a:65536",
            "a:123456",
            "a:80:80",
            "a,b",
            "a b",
            " a",
            "a/b",
            "a?b",
            "a#b",
            "user@a",
            "a\\b",
            "a%4",
            "a%zz",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[nothex]",
            "[v.x]",
            "[v1.]",
            "a\"b",
            "a\tb",
            "\u{e9}.example",
        ] {
            assert!(!is_valid_authority(bad.as_bytes()), "{bad:?}");
        }
    }
}
