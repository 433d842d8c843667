//! Integration phase, Lambda proxy side: HTTP request → payload 1.0/2.0
//! event, and the function's proxy response → HTTP response. One function
//! per payload version each way (`v1::to_event`, `v2::from_response`, ...);
//! the text-vs-base64 decision lives in one table here.

pub mod v1;
pub mod v2;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::SystemTime;

use axum::http::{HeaderMap, Method, header};
use base64::Engine;
use bytes::Bytes;

use percent_encoding::percent_decode_str;

use crate::auth::AuthContext;
use crate::config::PayloadVersion;

/// Everything an event is built from, gathered by the integration phase.
pub struct EventInput<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// The full path as received, with any `/{stage}` prefix, still encoded.
    pub raw_path: &'a str,
    /// The path the route matched (no stage prefix), still encoded.
    pub path: &'a str,
    pub raw_query: &'a str,
    pub body: &'a Bytes,
    /// `GET /items/{id}` or `$default`.
    pub route_key: &'a str,
    /// `/items/{id}` (the resource template).
    pub resource: &'a str,
    pub path_params: &'a [(String, String)],
    pub stage: &'a str,
    pub stage_variables: &'a BTreeMap<String, String>,
    pub request_id: &'a str,
    pub received_at: SystemTime,
    pub source_ip: IpAddr,
    pub protocol: &'a str,
    pub api_id: &'a str,
    pub account_id: &'a str,
    pub binary_media_types: &'a [String],
    pub auth: Option<&'a AuthContext>,
    /// HTTP APIs hand the function a percent-decoded path (`rawPath`,
    /// `requestContext.http.path`, payload 1.0 `path`); REST APIs keep the
    /// encoding. Live captures of both agree; see docs/routes.md.
    pub decode_path: bool,
}

impl EventInput<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn domain_name(&self) -> String {
        self.header("host").unwrap_or("localhost").to_string()
    }

    pub fn domain_prefix(&self) -> String {
        let host = self.domain_name();
        let host = host.split(':').next().unwrap_or_default();
        host.split('.').next().unwrap_or_default().to_string()
    }

    /// A path as this flavor shows it to the function: decoded for HTTP APIs
    /// (lossy UTF-8, as AWS does), untouched for REST APIs.
    pub fn shown_path<'p>(&self, path: &'p str) -> Cow<'p, str> {
        if self.decode_path {
            percent_decode_str(path).decode_utf8_lossy()
        } else {
            Cow::Borrowed(path)
        }
    }

    pub fn user_agent(&self) -> Option<String> {
        self.header("user-agent").map(str::to_string)
    }

    pub fn epoch_millis(&self) -> i64 {
        self.received_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    }

    /// `15/May/2020:06:01:09 +0000`, API Gateway's `requestTime`.
    pub fn request_time(&self) -> String {
        let t = time::OffsetDateTime::from(self.received_at);
        let fmt = time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        );
        t.format(&fmt).unwrap_or_default()
    }

    /// Header values by lower-case name, in arrival order.
    pub fn header_values(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (name, value) in self.headers {
            let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match out.iter_mut().find(|(n, _)| n == name.as_str()) {
                Some((_, vs)) => vs.push(v),
                None => out.push((name.as_str().to_string(), vec![v])),
            }
        }
        out
    }

    /// Decoded query parameters, each with all its values in order.
    pub fn query_values(&self) -> Vec<(String, Vec<String>)> {
        parse_query(self.raw_query)
    }

    /// The body as the event carries it: `(text, is_base64)`, or `None` when empty.
    pub fn body(&self, version: PayloadVersion) -> Option<(String, bool)> {
        if self.body.is_empty() {
            return None;
        }
        let content_type = self.header(header::CONTENT_TYPE.as_str());
        Some(encode_body(
            self.body,
            content_type,
            self.binary_media_types,
            version,
        ))
    }
}

/// Splits `a=1&b=2&a=3` into decoded names with all their values.
pub fn parse_query(raw: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode_str(k).decode_utf8_lossy().into_owned();
        let v = percent_decode_str(v).decode_utf8_lossy().into_owned();
        match out.iter_mut().find(|(n, _)| *n == k) {
            Some((_, vs)) => vs.push(v),
            None => out.push((k, vec![v])),
        }
    }
    out
}

/// Does `content_type` match one of the configured binary media types
/// (`image/*`, `*/*`, `application/octet-stream`)?
pub fn is_binary_media_type(content_type: Option<&str>, binary_media_types: &[String]) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let ct = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let (ty, sub) = ct.split_once('/').unwrap_or((ct.as_str(), ""));
    binary_media_types.iter().any(|m| {
        if m == "*/*" || m == "*" {
            return true;
        }
        match m.split_once('/') {
            Some((mt, "*")) => mt == ty,
            Some((mt, ms)) => mt == ty && ms == sub,
            None => false,
        }
    })
}

/// Media types HTTP APIs and Function URLs pass to functions as text.
pub fn is_text_media_type(content_type: &str) -> bool {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.ends_with("+json")
        || ct.ends_with("+xml")
        || matches!(
            ct.as_str(),
            "application/json"
                | "application/javascript"
                | "application/xml"
                | "application/yaml"
                | "application/x-yaml"
                | "application/x-www-form-urlencoded"
                | "application/graphql"
                | "application/ecmascript"
        )
}

/// The one table that decides text vs base64 for a request body:
///
/// | payload | content type                         | body      |
/// |---------|--------------------------------------|-----------|
/// | any     | matches `binary_media_types`         | base64    |
/// | any     | not valid UTF-8                      | base64    |
/// | 1.0     | anything else                        | text      |
/// | 2.0     | text-like (`text/*`, json, xml, ...) | text      |
/// | 2.0     | absent                               | text      |
/// | 2.0     | anything else                        | base64    |
pub fn encode_body(
    body: &[u8],
    content_type: Option<&str>,
    binary_media_types: &[String],
    version: PayloadVersion,
) -> (String, bool) {
    let binary = is_binary_media_type(content_type, binary_media_types)
        || match version {
            PayloadVersion::V1 => false,
            PayloadVersion::V2 => content_type.is_some_and(|ct| !is_text_media_type(ct)),
        };
    if !binary && let Ok(text) = std::str::from_utf8(body) {
        return (text.to_string(), false);
    }
    (base64::engine::general_purpose::STANDARD.encode(body), true)
}

/// Decodes a response body that a function marked `isBase64Encoded`.
pub fn decode_base64_body(body: &str) -> Option<Vec<u8>> {
    let trimmed: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(trimmed.as_bytes())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_media_type_wildcards() {
        let types = vec![
            "image/*".to_string(),
            "application/octet-stream".to_string(),
        ];
        assert!(is_binary_media_type(Some("image/png"), &types));
        assert!(is_binary_media_type(
            Some("application/octet-stream; x=1"),
            &types
        ));
        assert!(!is_binary_media_type(Some("application/json"), &types));
        assert!(!is_binary_media_type(None, &types));
    }

    #[test]
    fn body_table() {
        let none: Vec<String> = vec![];
        assert_eq!(
            encode_body(b"{}", Some("application/json"), &none, PayloadVersion::V2),
            ("{}".into(), false)
        );
        assert_eq!(
            encode_body(b"hi", Some("idk"), &none, PayloadVersion::V2),
            ("aGk=".into(), true)
        );
        assert_eq!(
            encode_body(b"hi", Some("idk"), &none, PayloadVersion::V1),
            ("hi".into(), false)
        );
        assert_eq!(
            encode_body(&[0xff, 0x00], None, &none, PayloadVersion::V1),
            ("/wA=".into(), true)
        );
    }

    #[test]
    fn query_parsing_keeps_order_and_decodes() {
        let q = parse_query("a=1&b=x%20y&a=2&flag");
        assert_eq!(
            q,
            vec![
                ("a".to_string(), vec!["1".to_string(), "2".to_string()]),
                ("b".to_string(), vec!["x y".to_string()]),
                ("flag".to_string(), vec!["".to_string()]),
            ]
        );
    }
}
