//! Value parsing shared by every config check: durations, sizes, counts,
//! addresses, URLs, media types, header names, throttles and file paths.
//! Each kind of value is parsed here once, with one error message, so the
//! same mistake reads the same in every section of routes.toml.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::config::error::Diagnostics;
use crate::config::model::{PayloadVersion, ThrottleConfig};
use crate::config::raw::{RawThrottle, Str};

/// Parses `500ms`, `3s`, `5m`, `1h`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like \"500ms\", \"3s\", \"5m\" or \"1h\""))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        "" => return Err(format!("duration `{s}` needs a unit: ms, s, m, h or d")),
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{s}`; use ms, s, m, h or d"
            ));
        }
    };
    if !secs.is_finite() || secs > 10.0 * 365.0 * 86_400.0 {
        return Err(format!("duration `{s}` is too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A duration value; `None` (reported) when it does not parse.
pub(crate) fn duration(v: &Str, d: &mut Diagnostics<'_>) -> Option<Duration> {
    match parse_duration(v.get_ref()) {
        Ok(x) => Some(x),
        Err(e) => {
            d.at(v.span(), e);
            None
        }
    }
}

/// A timeout, which must be longer than zero.
pub(crate) fn nonzero_duration(v: &Str, d: &mut Diagnostics<'_>) -> Option<Duration> {
    let t = duration(v, d)?;
    if t.is_zero() {
        d.at(v.span(), "this timeout must be longer than 0s");
        return None;
    }
    Some(t)
}

/// Parses a byte size: an integer, or `512KB`, `6MB`, `1GB` (1024-based).
pub fn parse_size(v: &toml::Value) -> Result<usize, String> {
    match v {
        toml::Value::Integer(n) if *n >= 0 => Ok(*n as usize),
        toml::Value::String(s) => {
            let t = s.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let n: usize = num
                .parse()
                .map_err(|_| format!("`{s}` is not a size like \"10MB\", \"512KB\" or 10240"))?;
            let mult = match unit.trim().to_ascii_uppercase().as_str() {
                "" | "B" => 1,
                "KB" | "KIB" | "K" => 1024,
                "MB" | "MIB" | "M" => 1024 * 1024,
                "GB" | "GIB" | "G" => 1024 * 1024 * 1024,
                other => {
                    return Err(format!(
                        "unknown size unit `{other}` in `{s}`; use B, KB, MB or GB"
                    ));
                }
            };
            n.checked_mul(mult)
                .ok_or_else(|| format!("size `{s}` is too large"))
        }
        other => Err(format!(
            "`{other}` is not a size like \"10MB\", \"512KB\" or 10240"
        )),
    }
}

/// A size limit, which must be more than zero.
pub(crate) fn size(v: &Spanned<toml::Value>, d: &mut Diagnostics<'_>) -> Option<usize> {
    match parse_size(v.get_ref()) {
        Ok(n) if n > 0 => Some(n),
        Ok(_) => {
            d.at(v.span(), "a size limit must be more than 0");
            None
        }
        Err(e) => {
            d.at(v.span(), e);
            None
        }
    }
}

/// A count from 0 to 1,000,000; `what` names the key in the message.
pub(crate) fn count(v: &Spanned<i64>, what: &str, d: &mut Diagnostics<'_>) -> Option<usize> {
    let n = *v.get_ref();
    if !(0..=1_000_000).contains(&n) {
        d.at(
            v.span(),
            format!("`{what}` must be from 0 to 1000000, not {n}"),
        );
        return None;
    }
    Some(n as usize)
}

/// A listen address; `localhost:PORT` means `127.0.0.1:PORT`.
pub(crate) fn listen_addr(v: &Str, d: &mut Diagnostics<'_>) -> Option<SocketAddr> {
    let s = v.get_ref();
    let parsed = s.parse::<SocketAddr>().ok().or_else(|| {
        s.strip_prefix("localhost:")
            .and_then(|p| format!("127.0.0.1:{p}").parse().ok())
    });
    if parsed.is_none() {
        d.at(
            v.span(),
            format!("`{s}` is not an address like \"127.0.0.1:8080\" or \"[::1]:8080\""),
        );
    }
    parsed
}

/// An `http(s)://host[:port]...` URL; reported when it is not one.
pub(crate) fn url(v: &Str, d: &mut Diagnostics<'_>) {
    let s = v.get_ref();
    match s.parse::<http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() => {}
        _ => d.at(
            v.span(),
            format!("`{s}` is not an http(s) URL like \"http://127.0.0.1:3000\""),
        ),
    }
}

/// Binary media types: `type/subtype`, wildcards allowed (`image/*`, `*`),
/// lower-cased.
pub(crate) fn media_types(v: &[Str], d: &mut Diagnostics<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for m in v {
        let t = m.get_ref().trim().to_ascii_lowercase();
        let valid = match t.split_once('/') {
            Some((a, b)) => !a.is_empty() && !b.is_empty() && !b.contains('/'),
            None => t == "*",
        };
        if valid {
            out.push(t);
        } else {
            d.at(
                m.span(),
                format!(
                    "`{}` is not a media type like `image/png` or `image/*`",
                    m.get_ref()
                ),
            );
        }
    }
    out
}

/// One concrete media type (`text/html`), lower-cased; no wildcards.
pub(crate) fn media_type(v: &Str, d: &mut Diagnostics<'_>) -> String {
    let t = v.get_ref().trim().to_ascii_lowercase();
    let ok = t.split_once('/').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && !a.contains('*') && !b.contains('*')
    }) && http::HeaderValue::from_str(&t).is_ok();
    if !ok {
        d.at(
            v.span(),
            format!("`{}` is not a media type like \"text/html\"", v.get_ref()),
        );
    }
    t
}

/// A header name (`x-api-key`); reported at `span` when it is not one.
pub(crate) fn header_name(
    name: &str,
    span: Range<usize>,
    d: &mut Diagnostics<'_>,
) -> Option<http::HeaderName> {
    match http::HeaderName::from_bytes(name.as_bytes()) {
        Ok(n) => Some(n),
        Err(_) => {
            d.at(span, format!("`{name}` is not a valid HTTP header name"));
            None
        }
    }
}

/// A `throttle = { rate, burst }`; `burst` defaults to the rate.
pub(crate) fn throttle(
    t: &Spanned<RawThrottle>,
    d: &mut Diagnostics<'_>,
) -> Option<ThrottleConfig> {
    let r = t.get_ref();
    let rate = *r.rate.get_ref();
    if !(rate.is_finite() && rate > 0.0 && rate <= 1_000_000_000.0) {
        d.at(
            r.rate.span(),
            format!("throttle `rate` must be more than 0 and at most 1e9 requests per second, not {rate}"),
        );
        return None;
    }
    let burst = match &r.burst {
        Some(b) => {
            let v = *b.get_ref();
            if !(1..=u32::MAX as i64).contains(&v) {
                d.at(
                    b.span(),
                    format!("throttle `burst` must be from 1 to {}, not {v}", u32::MAX),
                );
                return None;
            }
            v as u32
        }
        None => rate.ceil().clamp(1.0, u32::MAX as f64) as u32,
    };
    Some(ThrottleConfig { rate, burst })
}

pub(crate) fn payload_version(p: &Str, d: &mut Diagnostics<'_>) -> Option<PayloadVersion> {
    match p.get_ref().as_str() {
        "1.0" => Some(PayloadVersion::V1),
        "2.0" => Some(PayloadVersion::V2),
        other => {
            d.at(
                p.span(),
                format!("payload_version `{other}` is not \"1.0\" or \"2.0\""),
            );
            None
        }
    }
}

/// A file path written in routes.toml: relative paths are relative to the
/// routes file's own folder.
pub(crate) fn file_path(base_dir: &Path, p: &str) -> PathBuf {
    base_dir.join(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("3s").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("5").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(&toml::Value::Integer(10240)).unwrap(), 10240);
        assert_eq!(parse_size(&"6MB".into()).unwrap(), 6 * 1024 * 1024);
        assert!(parse_size(&"6 parsecs".into()).is_err());
    }
}
