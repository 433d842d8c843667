//! `[gateway]`, its `limits` and `tls`, and the two extra listeners,
//! `[admin]` and `[invoke_api]`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::{string_or, unknown_authorizer};
use crate::config::error::Diagnostics;
use crate::config::model::{AdminConfig, Flavor, GatewaySettings, InvokeApiConfig, Limits};
use crate::config::raw::{
    Map, RawAdmin, RawAuth, RawGateway, RawInvokeApi, RawLimits, RawTls, Str,
};
use crate::config::values::{
    self, count, duration, listen_addr, media_types, nonzero_duration, size, throttle,
};

/// `[gateway]`: listener, flavor, default stage, limits and timeouts.
pub(super) fn check_gateway(g: &RawGateway, d: &mut Diagnostics<'_>) -> GatewaySettings {
    let listen = g
        .listen
        .as_ref()
        .and_then(|l| listen_addr(l, d))
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let flavor = match g.flavor.as_ref() {
        None => Flavor::Http,
        Some(f) => match f.get_ref().as_str() {
            "http" => Flavor::Http,
            "rest" => Flavor::Rest,
            other => {
                d.at(
                    f.span(),
                    format!("flavor `{other}` is not one of \"http\" or \"rest\""),
                );
                Flavor::Http
            }
        },
    };
    let binary_media_types = g
        .binary_media_types
        .as_ref()
        .map(|v| media_types(v, d))
        .unwrap_or_default();
    let timeout = g
        .timeout
        .as_ref()
        .and_then(|t| duration(t, d))
        .unwrap_or(match flavor {
            Flavor::Rest => Duration::from_secs(29),
            Flavor::Http => Duration::from_secs(30),
        });
    let limits = g
        .limits
        .as_ref()
        .map(|l| check_limits(l, d))
        .unwrap_or_default();
    GatewaySettings {
        listen,
        flavor,
        stage: g
            .stage
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| "dev".to_string()),
        binary_media_types,
        api_id: string_or(&g.api_id, "local"),
        account_id: string_or(&g.account_id, "123456789012"),
        region: string_or(&g.region, "us-east-1"),
        stage_prefix: g.stage_prefix.unwrap_or(true),
        timeout,
        throttle: g.throttle.as_ref().and_then(|t| throttle(t, d)),
        limits,
        tls: None, // needs the base folder: see `check_tls`
        drain_timeout: g
            .drain_timeout
            .as_ref()
            .and_then(|t| duration(t, d))
            .unwrap_or(Duration::from_secs(30)),
        trusted_proxies: g
            .trusted_proxies
            .as_ref()
            .map(|v| trusted_proxies(v, d))
            .unwrap_or_default(),
    }
}

/// `[gateway.limits]`: sizes more than zero, timeouts longer than zero.
fn check_limits(l: &RawLimits, d: &mut Diagnostics<'_>) -> Limits {
    let mut limits = Limits::default();
    if let Some(v) = &l.max_header_bytes
        && let Some(n) = size(v, d)
    {
        limits.max_header_bytes = n;
    }
    if let Some(v) = &l.max_body
        && let Some(n) = size(v, d)
    {
        limits.max_body = n;
    }
    if let Some(v) = &l.max_function_payload
        && let Some(n) = size(v, d)
    {
        limits.max_function_payload = n;
    }
    if let Some(v) = &l.header_read_timeout
        && let Some(t) = nonzero_duration(v, d)
    {
        limits.header_read_timeout = t;
    }
    if let Some(v) = &l.idle_timeout
        && let Some(t) = nonzero_duration(v, d)
    {
        limits.idle_timeout = t;
    }
    if let Some(v) = &l.body_timeout
        && let Some(t) = nonzero_duration(v, d)
    {
        limits.body_timeout = t;
    }
    if let Some(v) = &l.max_connections {
        match count(v, "max_connections", d) {
            Some(0) => d.at(v.span(), "`max_connections` must be at least 1"),
            Some(n) => limits.max_connections = n,
            None => {}
        }
    }
    limits
}

/// `[gateway] trusted_proxies`: CIDRs (`10.0.0.0/8`, `::1/128`), each
/// with its prefix length and no host bits set, so a typo cannot trust
/// more than was meant.
fn trusted_proxies(v: &[Str], d: &mut Diagnostics<'_>) -> Vec<ipnet::IpNet> {
    let mut nets = Vec::with_capacity(v.len());
    for s in v {
        match s.get_ref().parse::<ipnet::IpNet>() {
            Ok(net) if net.trunc() == net => nets.push(net),
            Ok(net) => d.at(
                s.span(),
                format!(
                    "`{}` has host bits set past its prefix (did you mean `{}`?)",
                    s.get_ref(),
                    net.trunc()
                ),
            ),
            Err(_) => d.at(
                s.span(),
                format!(
                    "`{}` is not a CIDR such as \"10.0.0.0/8\" or \"::1/128\"",
                    s.get_ref()
                ),
            ),
        }
    }
    nets
}

/// `[gateway] tls`: both files must exist and form a usable certificate and
/// key, so a reload with a broken certificate keeps the old config.
pub(super) fn check_tls(
    raw: Option<&Spanned<RawTls>>,
    base_dir: &Path,
    d: &mut Diagnostics<'_>,
) -> Option<crate::tls::TlsSettings> {
    let t = raw?;
    let tls = t.get_ref();
    match crate::tls::load(
        &values::file_path(base_dir, tls.cert.get_ref()),
        &values::file_path(base_dir, tls.key.get_ref()),
    ) {
        Ok(s) => Some(s),
        Err(e) => {
            d.at(t.span(), e);
            None
        }
    }
}

/// `[admin]`: the admin API's listener and where its token comes from.
pub(super) fn check_admin(a: &RawAdmin, base_dir: &Path, d: &mut Diagnostics<'_>) -> AdminConfig {
    AdminConfig {
        listen: a
            .listen
            .as_ref()
            .and_then(|l| listen_addr(l, d))
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9081))),
        token_env: a.token_env.as_ref().map(|s| s.get_ref().clone()),
        token_file: a
            .token_file
            .as_ref()
            .map(|s| values::file_path(base_dir, s.get_ref())),
    }
}

/// `[invoke_api]`: its listener, and an `auth` that names a SigV4
/// authorizer, since Lambda clients sign their calls.
pub(super) fn check_invoke_api(
    a: &RawInvokeApi,
    auth: &Map<RawAuth>,
    d: &mut Diagnostics<'_>,
) -> InvokeApiConfig {
    if let Some(auth_name) = &a.auth {
        match auth.get(auth_name) {
            None => d.at(auth_name.span(), unknown_authorizer(auth_name.get_ref())),
            Some(def) if def.kind.get_ref() != "sigv4" => d.at(
                auth_name.span(),
                format!(
                    "[invoke_api] auth must name a `kind = \"sigv4\"` authorizer; [auth.{}] is `{}`",
                    auth_name.get_ref(),
                    def.kind.get_ref()
                ),
            ),
            Some(_) => {}
        }
    }
    InvokeApiConfig {
        listen: a
            .listen
            .as_ref()
            .and_then(|l| listen_addr(l, d))
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9001))),
        auth: a.auth.as_ref().map(|s| s.get_ref().clone()),
    }
}
