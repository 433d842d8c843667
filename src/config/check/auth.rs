//! `[auth.*]`: authorizers of each kind (jwt, api_key, sigv4, lambda) and
//! the settings each kind needs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::{check_name, unknown_function};
use crate::config::error::Diagnostics;
use crate::config::model::{AuthConfig, AuthKind};
use crate::config::raw::{Map, RawAuth, RawFunction, Str};
use crate::config::values::{duration, file_path, payload_version};

/// Every authorizer, with the settings its kind needs.
pub(super) fn check_auth(
    raw: &Map<RawAuth>,
    functions: &Map<RawFunction>,
    base_dir: &Path,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, AuthConfig> {
    let mut out = BTreeMap::new();
    for (name, a) in raw {
        check_name(name, "authorizer", d);
        let Some(kind) = auth_kind(a, d) else {
            continue;
        };
        if kind == AuthKind::Jwt {
            check_jwt_keys(name, a, d);
        }
        check_identity_sources(a, d);
        check_algorithms(a, d);
        if kind == AuthKind::Lambda {
            check_lambda_authorizer(name, a, functions, d);
        }
        let ttl = auth_ttl(a, d);
        out.insert(
            name.get_ref().clone(),
            AuthConfig {
                name: name.get_ref().clone(),
                kind,
                issuer: a.issuer.as_ref().map(|s| s.get_ref().clone()),
                audience: a
                    .audience
                    .iter()
                    .flatten()
                    .map(|s| s.get_ref().clone())
                    .collect(),
                jwks_url: a.jwks_url.as_ref().map(|s| s.get_ref().clone()),
                algorithms: a
                    .algorithms
                    .iter()
                    .flatten()
                    .map(|s| s.get_ref().clone())
                    .collect(),
                secret_env: a.secret_env.as_ref().map(|s| s.get_ref().clone()),
                secret_file: a
                    .secret_file
                    .as_ref()
                    .map(|s| file_path(base_dir, s.get_ref())),
                leeway: a
                    .leeway
                    .as_ref()
                    .and_then(|l| duration(l, d))
                    .unwrap_or_default(),
                token_cache: a.token_cache.unwrap_or(true),
                function: a.function.as_ref().map(|s| s.get_ref().clone()),
                authorizer_type: a.authorizer_type.as_ref().map(|s| s.get_ref().clone()),
                identity_sources: a
                    .identity_sources
                    .iter()
                    .flatten()
                    .map(|s| s.get_ref().clone())
                    .collect(),
                response: a.response.as_ref().map(|s| s.get_ref().clone()),
                payload_version: a
                    .payload_version
                    .as_ref()
                    .and_then(|p| payload_version(p, d)),
                ttl,
                header: a.header.as_ref().map(|s| s.get_ref().clone()),
                service: a.service.as_ref().map(|s| s.get_ref().clone()),
                credentials_file: a
                    .credentials_file
                    .as_ref()
                    .map(|s| file_path(base_dir, s.get_ref())),
            },
        );
    }
    out
}

fn auth_kind(a: &RawAuth, d: &mut Diagnostics<'_>) -> Option<AuthKind> {
    match a.kind.get_ref().as_str() {
        "jwt" => Some(AuthKind::Jwt),
        "api_key" => Some(AuthKind::ApiKey),
        "sigv4" => Some(AuthKind::Sigv4),
        "lambda" => Some(AuthKind::Lambda),
        other => {
            d.at(
                a.kind.span(),
                format!(
                    "authorizer kind `{other}` is not one of \"jwt\", \"api_key\", \"sigv4\" or \"lambda\""
                ),
            );
            None
        }
    }
}

/// A jwt authorizer needs somewhere to find its keys.
fn check_jwt_keys(name: &Str, a: &RawAuth, d: &mut Diagnostics<'_>) {
    if a.issuer.is_none()
        && a.jwks_url.is_none()
        && a.secret_env.is_none()
        && a.secret_file.is_none()
    {
        d.at(
            a.kind.span(),
            format!(
                "jwt authorizer `{}` needs `issuer`, `jwks_url`, `secret_env` or `secret_file`",
                name.get_ref()
            ),
        );
    }
}

fn check_identity_sources(a: &RawAuth, d: &mut Diagnostics<'_>) {
    for src in a.identity_sources.iter().flatten() {
        if let Err(e) = crate::auth::IdentitySource::parse(src.get_ref()) {
            d.at(src.span(), e);
        }
    }
}

fn check_algorithms(a: &RawAuth, d: &mut Diagnostics<'_>) {
    const KNOWN: &[&str] = &[
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
        "HS384", "HS512",
    ];
    for alg in a.algorithms.iter().flatten() {
        if !KNOWN.contains(&alg.get_ref().as_str()) {
            d.at(
                alg.span(),
                format!(
                    "unknown algorithm `{}`; one of {}",
                    alg.get_ref(),
                    KNOWN.join(", ")
                ),
            );
        }
    }
}

/// A lambda authorizer names a defined function, a known `type` and
/// `response`, and a simple response only with payload 2.0.
fn check_lambda_authorizer(
    name: &Str,
    a: &RawAuth,
    functions: &Map<RawFunction>,
    d: &mut Diagnostics<'_>,
) {
    if let Some(r) = &a.response
        && r.get_ref() == "simple"
        && a.payload_version
            .as_ref()
            .is_some_and(|p| p.get_ref() != "2.0")
    {
        d.at(r.span(), "simple responses need payload_version = \"2.0\"");
    }
    match &a.function {
        None => d.at(
            a.kind.span(),
            format!("lambda authorizer `{}` needs a `function`", name.get_ref()),
        ),
        Some(f) if !functions.contains_key(f) => d.at(f.span(), unknown_function(f.get_ref())),
        _ => {}
    }
    if let Some(t) = &a.authorizer_type
        && !matches!(t.get_ref().as_str(), "token" | "request")
    {
        d.at(t.span(), "`type` is \"token\" or \"request\"");
    }
    if let Some(r) = &a.response
        && !matches!(r.get_ref().as_str(), "iam" | "simple")
    {
        d.at(r.span(), "`response` is \"iam\" or \"simple\"");
    }
}

/// How long a decision is cached: 300 s by default, at most 3600 s.
fn auth_ttl(a: &RawAuth, d: &mut Diagnostics<'_>) -> Duration {
    match &a.ttl {
        Some(t) => {
            let v = duration(t, d).unwrap_or_default();
            if v > Duration::from_secs(3600) {
                d.at(t.span(), "`ttl` is at most 3600s, as in API Gateway");
            }
            v
        }
        None => Duration::from_secs(300),
    }
}
