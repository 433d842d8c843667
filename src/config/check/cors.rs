//! `[cors]`: origins, methods and headers checked so tower-http's
//! `CorsLayer` can never refuse them, and no `*` with credentials.

use toml::Spanned;

use crate::config::error::Diagnostics;
use crate::config::raw::{RawCors, Str};
use crate::config::shaping::CorsConfig;
use crate::config::values::{duration, header_name};

pub(super) fn check_cors(raw: &Spanned<RawCors>, d: &mut Diagnostics<'_>) -> CorsConfig {
    let c = raw.get_ref();
    let list = |v: &[Str]| {
        v.iter()
            .map(|s| s.get_ref().trim().to_string())
            .collect::<Vec<_>>()
    };
    let out = CorsConfig {
        allow_origins: list(&c.allow_origins),
        allow_methods: list(&c.allow_methods)
            .into_iter()
            .map(|m| m.to_ascii_uppercase())
            .collect(),
        allow_headers: list(&c.allow_headers),
        expose_headers: list(&c.expose_headers),
        allow_credentials: c.allow_credentials.as_ref().is_some_and(|b| *b.get_ref()),
        max_age: c.max_age.as_ref().and_then(|m| duration(m, d)),
    };
    for o in &c.allow_origins {
        let s = o.get_ref().trim();
        if s == "*" {
            if c.allow_origins.len() > 1 {
                d.at(o.span(), "`*` in `allow_origins` must stand alone");
            }
            continue;
        }
        let ok = s
            .parse::<http::Uri>()
            .ok()
            .filter(|u| u.scheme().is_some() && u.authority().is_some() && u.path() == "/")
            .is_some()
            && !s.ends_with('/');
        if !ok || http::HeaderValue::from_str(s).is_err() {
            d.at(
                o.span(),
                format!("`{s}` is not an origin like \"https://app.example.com\" (scheme://host[:port], no path)"),
            );
        }
    }
    for m in &c.allow_methods {
        let s = m.get_ref().trim();
        if s != "*" && http::Method::from_bytes(s.to_ascii_uppercase().as_bytes()).is_err() {
            d.at(m.span(), format!("`{s}` is not an HTTP method"));
        }
    }
    for h in c.allow_headers.iter().chain(&c.expose_headers) {
        let s = h.get_ref().trim();
        if s != "*" {
            header_name(s, h.span(), d);
        }
    }
    if out.allow_credentials {
        for (what, v) in [
            ("allow_origins", &c.allow_origins),
            ("allow_methods", &c.allow_methods),
            ("allow_headers", &c.allow_headers),
            ("expose_headers", &c.expose_headers),
        ] {
            if let Some(star) = v.iter().find(|s| s.get_ref().trim() == "*") {
                d.at(
                    star.span(),
                    format!("`*` in `{what}` cannot be combined with `allow_credentials = true` (browsers refuse it); list the values"),
                );
            }
        }
    }
    out
}
