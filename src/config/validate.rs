//! Raw → validated. Independent `check_*` passes walk the raw shapes and
//! record every problem with its position; the model is only returned when
//! there are none, so the server never starts on a config it cannot honour.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::config::error::Diagnostics;
use crate::config::model::*;
use crate::config::raw::*;
use crate::config::shaping;
use crate::routing::{RouteTable, RouteTemplate, TableConflict};
use crate::transform::template::TemplateSetBuilder;

pub const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY",
];

/// Builds the model from raw shapes, reporting every error found.
pub fn validate(raw: RawConfig, source: &Path, d: &mut Diagnostics<'_>) -> Option<Config> {
    let base_dir = source
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let mut gateway = check_gateway(&raw.gateway, d);
    gateway.tls = check_tls(raw.gateway.tls.as_ref(), &base_dir, d);
    let stages = check_stages(&raw, &gateway, d);
    let backends = check_backends(&raw.backends, d);
    let functions = check_functions(&raw.functions, &base_dir, &backends, d);
    check_stage_backends(&raw, &backends, d);
    check_stage_variables(&raw, &stages, d);
    let auth = check_auth(&raw.auth, &raw.functions, &base_dir, d);
    let plans = check_plans(&raw.plans, d);
    let store = check_store(raw.store.as_ref(), &base_dir, d);
    let api_keys = check_api_keys(raw.api_keys.as_ref(), d);
    let cluster = raw.cluster.as_ref().and_then(|c| check_cluster(c, d));
    let admin = raw.admin.as_ref().map(|a| AdminConfig {
        listen: a
            .listen
            .as_ref()
            .and_then(|l| listen_addr(l, d))
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9081))),
        token_env: a.token_env.as_ref().map(|s| s.get_ref().clone()),
        token_file: a.token_file.as_ref().map(|s| base_dir.join(s.get_ref())),
    });
    let invoke_api = raw.invoke_api.as_ref().map(|a| {
        if let Some(auth_name) = &a.auth {
            match raw.auth.get(auth_name) {
                None => d.at(
                    auth_name.span(),
                    format!(
                        "unknown authorizer `{}`; define it as [auth.{}]",
                        auth_name.get_ref(),
                        auth_name.get_ref()
                    ),
                ),
                // Lambda clients sign their calls: only SigV4 fits here.
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
    });
    let cors = raw.cors.as_ref().map(|c| shaping::check_cors(c, d));
    let cache = shaping::check_cache_settings(
        raw.cache.as_ref(),
        raw.cluster.as_ref().is_some_and(|c| c.redis_url.is_some()),
        d,
    );
    let openapi = crate::openapi::check_settings(raw.openapi.as_ref(), &raw.routes, d);
    let mut templates = TemplateSetBuilder::new(&base_dir);
    let mut routes = check_routes(&raw, &gateway, &backends, &functions, &mut templates, d);
    let templates = shaping::finish_templates(templates, d);
    crate::openapi::check_response_schemas(&raw.routes, &mut routes, &base_dir, d);
    check_plan_route_keys(&raw.plans, &routes, d);

    if d.has_errors() {
        return None;
    }
    Some(Config {
        source: source.to_path_buf(),
        base_dir,
        gateway,
        stages,
        backends,
        functions,
        auth,
        plans,
        store,
        api_keys,
        cluster,
        admin,
        invoke_api,
        cors,
        cache,
        templates,
        openapi,
        routes,
    })
}

fn check_gateway(g: &RawGateway, d: &mut Diagnostics<'_>) -> GatewaySettings {
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
    let mut limits = Limits::default();
    if let Some(l) = &g.limits {
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
    }
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

fn nonzero_duration(v: &Str, d: &mut Diagnostics<'_>) -> Option<Duration> {
    let t = duration(v, d)?;
    if t.is_zero() {
        d.at(v.span(), "this timeout must be longer than 0s");
        return None;
    }
    Some(t)
}

/// `[gateway] tls`: both files must exist and form a usable certificate and
/// key, so a reload with a broken certificate keeps the old config.
fn check_tls(
    raw: Option<&Spanned<RawTls>>,
    base_dir: &Path,
    d: &mut Diagnostics<'_>,
) -> Option<crate::tls::TlsSettings> {
    let t = raw?;
    let tls = t.get_ref();
    match crate::tls::load(
        &base_dir.join(tls.cert.get_ref()),
        &base_dir.join(tls.key.get_ref()),
    ) {
        Ok(s) => Some(s),
        Err(e) => {
            d.at(t.span(), e);
            None
        }
    }
}

fn string_or(v: &Option<Str>, default: &str) -> String {
    v.as_ref()
        .map(|s| s.get_ref().clone())
        .unwrap_or_else(|| default.to_string())
}

fn check_stages(
    raw: &RawConfig,
    gateway: &GatewaySettings,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, StageConfig> {
    let mut stages = BTreeMap::new();
    for (name, s) in &raw.stages {
        // `$default` is API Gateway's stage served without a path prefix.
        if name.get_ref() != "$default" {
            check_name(name, "stage", d);
        }
        stages.insert(
            name.get_ref().clone(),
            StageConfig {
                name: name.get_ref().clone(),
                backend: s.backend.as_ref().map(|b| b.get_ref().clone()),
                variables: s
                    .variables
                    .iter()
                    .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                    .collect(),
                throttle: s.throttle.as_ref().and_then(|t| throttle(t, d)),
            },
        );
    }
    if stages.is_empty() {
        stages.insert(
            gateway.stage.clone(),
            StageConfig {
                name: gateway.stage.clone(),
                backend: None,
                variables: BTreeMap::new(),
                throttle: None,
            },
        );
    } else if !stages.contains_key(&gateway.stage) {
        let known = stages.keys().cloned().collect::<Vec<_>>().join(", ");
        match &raw.gateway.stage {
            Some(s) => d.at(
                s.span(),
                format!("stage `{}` is not defined; known stages: {known}", s.get_ref()),
            ),
            None => d.whole_file(format!(
                "[gateway] stage defaults to `dev`, which is not defined; set `stage` to one of: {known}"
            )),
        }
    }
    stages
}

fn check_name(name: &Spanned<String>, what: &str, d: &mut Diagnostics<'_>) {
    let n = name.get_ref();
    if n.is_empty()
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        d.at(
            name.span(),
            format!("{what} name `{n}` must be letters, digits, `_` or `-`"),
        );
    }
}

fn check_backends(
    raw: &Map<RawBackend>,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, BackendConfig> {
    let mut out = BTreeMap::new();
    for (name, b) in raw {
        check_name(name, "backend", d);
        let kind = b.kind.get_ref().as_str();
        let misplaced =
            |field: &str, present: bool, d: &mut Diagnostics<'_>, span: Range<usize>| {
                if present {
                    d.at(
                        span,
                        format!("`{field}` is not a setting of a `{kind}` backend"),
                    );
                }
            };
        let cfg = match kind {
            "lambda" => {
                if let Some(u) = &b.url {
                    misplaced("url", true, d, u.span());
                }
                if let Some(e) = &b.endpoint_url {
                    url(e, d);
                }
                BackendConfig::Lambda {
                    region: b.region.as_ref().map(|s| s.get_ref().clone()),
                    endpoint_url: b.endpoint_url.as_ref().map(|s| s.get_ref().clone()),
                    profile: b.profile.as_ref().map(|s| s.get_ref().clone()),
                }
            }
            "http" => {
                for (f, v) in [("region", &b.region), ("endpoint_url", &b.endpoint_url)] {
                    if let Some(v) = v {
                        misplaced(f, true, d, v.span());
                    }
                }
                let Some(u) = &b.url else {
                    d.at(
                        b.kind.span(),
                        format!("backend `{}` of kind `http` needs a `url`", name.get_ref()),
                    );
                    continue;
                };
                // `${stageVariables.X}` is checked per stage; the rest must parse.
                if !u.get_ref().contains("${") {
                    url(u, d);
                }
                BackendConfig::Http {
                    url: u.get_ref().clone(),
                    timeout: b.timeout.as_ref().and_then(|t| duration(t, d)),
                    headers: b
                        .headers
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                        .collect(),
                }
            }
            "local" => {
                for (f, v) in [
                    ("region", &b.region),
                    ("endpoint_url", &b.endpoint_url),
                    ("url", &b.url),
                ] {
                    if let Some(v) = v {
                        misplaced(f, true, d, v.span());
                    }
                }
                BackendConfig::Local {
                    max_queue: b.max_queue.as_ref().and_then(|q| count(q, "max_queue", d)),
                }
            }
            other => {
                d.at(
                    b.kind.span(),
                    format!(
                        "backend kind `{other}` is not one of \"lambda\", \"http\" or \"local\""
                    ),
                );
                continue;
            }
        };
        out.insert(name.get_ref().clone(), cfg);
    }
    out
}

fn check_functions(
    raw: &Map<RawFunction>,
    base_dir: &Path,
    backends: &BTreeMap<String, BackendConfig>,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, FunctionConfig> {
    let mut out = BTreeMap::new();
    for (key, f) in raw {
        check_name(key, "function", d);
        if let Some(cmd) = &f.command
            && cmd.get_ref().is_empty()
        {
            d.at(cmd.span(), "`command` must name a program to run");
        }
        if let Some(b) = &f.backend {
            match backends.get(b.get_ref()) {
                None => d.at(b.span(), unknown_backend(b.get_ref())),
                Some(BackendConfig::Http { .. }) => d.at(
                    b.span(),
                    format!(
                        "backend `{}` is an `http` backend; functions run on `lambda` or `local` backends",
                        b.get_ref()
                    ),
                ),
                _ => {}
            }
        }
        let timeout = f
            .timeout
            .as_ref()
            .and_then(|t| duration(t, d))
            .unwrap_or(Duration::from_secs(3));
        if let Some(t) = &f.timeout
            && timeout > Duration::from_secs(900)
        {
            d.at(
                t.span(),
                "a function `timeout` is at most 900s (Lambda's limit)",
            );
        }
        let memory_size = match &f.memory_size {
            Some(m) if !(128..=10_240).contains(m.get_ref()) => {
                d.at(m.span(), "`memory_size` is in MB, from 128 to 10240");
                128
            }
            Some(m) => *m.get_ref() as u32,
            None => 128,
        };
        out.insert(
            key.get_ref().clone(),
            FunctionConfig {
                key: key.get_ref().clone(),
                command: f.command.as_ref().map(|c| c.get_ref().clone()),
                name: f
                    .name
                    .as_ref()
                    .map(|n| n.get_ref().clone())
                    .unwrap_or_else(|| key.get_ref().clone()),
                env: f
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                    .collect(),
                timeout,
                timeout_configured: f.timeout.is_some(),
                concurrency: f
                    .concurrency
                    .as_ref()
                    .and_then(|c| count(c, "concurrency", d))
                    .unwrap_or(4)
                    .max(1),
                memory_size,
                handler: f.handler.as_ref().map(|h| h.get_ref().clone()),
                cwd: f
                    .cwd
                    .as_ref()
                    .map(|c| base_dir.join(c.get_ref()))
                    .unwrap_or_else(|| base_dir.to_path_buf()),
                runtime: f.runtime.as_ref().map(|r| r.get_ref().clone()),
                backend: f.backend.as_ref().map(|b| b.get_ref().clone()),
                queue: f
                    .queue
                    .as_ref()
                    .and_then(|q| count(q, "queue", d))
                    .unwrap_or(100),
            },
        );
    }
    out
}

fn check_stage_backends(
    raw: &RawConfig,
    backends: &BTreeMap<String, BackendConfig>,
    d: &mut Diagnostics<'_>,
) {
    for s in raw.stages.values() {
        if let Some(b) = &s.backend {
            match backends.get(b.get_ref()) {
                None => d.at(b.span(), unknown_backend(b.get_ref())),
                Some(BackendConfig::Http { .. }) => d.at(
                    b.span(),
                    format!(
                        "backend `{}` is an `http` backend; a stage's backend runs functions (`lambda` or `local`)",
                        b.get_ref()
                    ),
                ),
                _ => {}
            }
        }
    }
}

fn unknown_backend(name: &str) -> String {
    format!("unknown backend `{name}`; define it as [backends.{name}]")
}

/// `${stageVariables.NAME}` in function names, env values and backend URLs
/// must resolve in every stage.
fn check_stage_variables(
    raw: &RawConfig,
    stages: &BTreeMap<String, StageConfig>,
    d: &mut Diagnostics<'_>,
) {
    let mut templates: Vec<&Str> = Vec::new();
    for f in raw.functions.values() {
        templates.extend(f.name.iter());
        templates.extend(f.env.values());
    }
    for b in raw.backends.values() {
        templates.extend(b.url.iter());
        if let Some(h) = &b.headers {
            templates.extend(h.values());
        }
    }
    for t in templates {
        match stage_variable_refs(t.get_ref()) {
            Err(msg) => d.at(t.span(), msg),
            Ok(names) => {
                for name in names {
                    for stage in stages.values() {
                        if !stage.variables.contains_key(&name) {
                            d.at(
                                t.span(),
                                format!(
                                    "`${{stageVariables.{name}}}` is not defined in stage `{}`; add it to [stages.{}] variables",
                                    stage.name, stage.name
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Lists the stage variables a template refers to.
pub fn stage_variable_refs(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("`${{` in `{text}` is not closed with `}}`"));
        };
        let inner = &after[..end];
        let Some(name) = inner.strip_prefix("stageVariables.") else {
            return Err(format!(
                "`${{{inner}}}` is not a stage variable; write `${{stageVariables.NAME}}`"
            ));
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`{name}` is not a valid stage variable name"));
        }
        out.push(name.to_string());
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// Replaces `${stageVariables.NAME}` with the stage's values (validated at load).
pub fn substitute(text: &str, variables: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${stageVariables.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "${stageVariables.".len()..];
        match after.find('}') {
            Some(end) => {
                if let Some(v) = variables.get(&after[..end]) {
                    out.push_str(v);
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn check_auth(
    raw: &Map<RawAuth>,
    functions: &Map<RawFunction>,
    base_dir: &Path,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, AuthConfig> {
    let mut out = BTreeMap::new();
    for (name, a) in raw {
        check_name(name, "authorizer", d);
        let kind = match a.kind.get_ref().as_str() {
            "jwt" => AuthKind::Jwt,
            "api_key" => AuthKind::ApiKey,
            "sigv4" => AuthKind::Sigv4,
            "lambda" => AuthKind::Lambda,
            other => {
                d.at(
                    a.kind.span(),
                    format!(
                        "authorizer kind `{other}` is not one of \"jwt\", \"api_key\", \"sigv4\" or \"lambda\""
                    ),
                );
                continue;
            }
        };
        if kind == AuthKind::Jwt
            && a.issuer.is_none()
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
        for src in a.identity_sources.iter().flatten() {
            if let Err(e) = crate::auth::IdentitySource::parse(src.get_ref()) {
                d.at(src.span(), e);
            }
        }
        for alg in a.algorithms.iter().flatten() {
            const KNOWN: &[&str] = &[
                "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
                "HS256", "HS384", "HS512",
            ];
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
        if kind == AuthKind::Lambda
            && let Some(r) = &a.response
            && r.get_ref() == "simple"
            && a.payload_version
                .as_ref()
                .is_some_and(|p| p.get_ref() != "2.0")
        {
            d.at(r.span(), "simple responses need payload_version = \"2.0\"");
        }
        if kind == AuthKind::Lambda {
            match &a.function {
                None => d.at(
                    a.kind.span(),
                    format!("lambda authorizer `{}` needs a `function`", name.get_ref()),
                ),
                Some(f) if !functions.contains_key(f) => d.at(
                    f.span(),
                    format!(
                        "unknown function `{}`; define it as [functions.{}]",
                        f.get_ref(),
                        f.get_ref()
                    ),
                ),
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
        let ttl = match &a.ttl {
            Some(t) => {
                let v = duration(t, d).unwrap_or_default();
                if v > Duration::from_secs(3600) {
                    d.at(t.span(), "`ttl` is at most 3600s, as in API Gateway");
                }
                v
            }
            None => Duration::from_secs(300),
        };
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
                secret_file: a.secret_file.as_ref().map(|s| base_dir.join(s.get_ref())),
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
                    .map(|s| base_dir.join(s.get_ref())),
            },
        );
    }
    out
}

fn check_plans(raw: &Map<RawPlan>, d: &mut Diagnostics<'_>) -> BTreeMap<String, PlanConfig> {
    let mut out = BTreeMap::new();
    for (name, p) in raw {
        check_name(name, "plan", d);
        let quota = p.quota.as_ref().and_then(|q| {
            let qr = q.get_ref();
            let limit = *qr.limit.get_ref();
            if limit <= 0 {
                d.at(
                    qr.limit.span(),
                    "quota `limit` must be a positive number of requests",
                );
                return None;
            }
            let period = match qr.period.get_ref().as_str() {
                "day" => QuotaPeriod::Day,
                "week" => QuotaPeriod::Week,
                "month" => QuotaPeriod::Month,
                other => {
                    d.at(
                        qr.period.span(),
                        format!(
                            "quota period `{other}` is not one of \"day\", \"week\" or \"month\""
                        ),
                    );
                    return None;
                }
            };
            Some(QuotaConfig {
                limit: limit as u64,
                period,
            })
        });
        out.insert(
            name.get_ref().clone(),
            PlanConfig {
                name: name.get_ref().clone(),
                throttle: p.throttle.as_ref().and_then(|t| throttle(t, d)),
                route_throttles: p
                    .route_throttles
                    .iter()
                    .flatten()
                    .filter_map(|(k, t)| throttle(t, d).map(|t| (k.get_ref().clone(), t)))
                    .collect(),
                quota,
                description: p.description.clone(),
            },
        );
    }
    out
}

fn check_store(raw: Option<&RawStore>, base_dir: &Path, d: &mut Diagnostics<'_>) -> StoreConfig {
    let Some(s) = raw else {
        return StoreConfig::Sqlite {
            path: base_dir.join("lambdagate.db"),
        };
    };
    match s.kind.get_ref().as_str() {
        "sqlite" => StoreConfig::Sqlite {
            path: base_dir.join(
                s.path
                    .as_ref()
                    .map(|p| p.get_ref().as_str())
                    .unwrap_or("lambdagate.db"),
            ),
        },
        "postgres" => {
            let url = match (&s.url, &s.url_env) {
                (Some(u), _) => u.get_ref().clone(),
                (None, Some(env)) => std::env::var(env.get_ref()).unwrap_or_else(|_| {
                    d.at(
                        env.span(),
                        format!("environment variable `{}` is not set", env.get_ref()),
                    );
                    String::new()
                }),
                (None, None) => {
                    d.at(s.kind.span(), "a postgres store needs `url` or `url_env`");
                    String::new()
                }
            };
            let schema = s.schema.as_ref().and_then(|sc| {
                let v = sc.get_ref();
                let ok = !v.is_empty()
                    && v.len() <= 63
                    && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && !v.starts_with(|c: char| c.is_ascii_digit());
                if !ok {
                    d.at(
                        sc.span(),
                        format!("schema `{v}` must be a lower-case SQL identifier (a-z, 0-9, _; at most 63)"),
                    );
                }
                ok.then(|| v.clone())
            });
            StoreConfig::Postgres { url, schema }
        }
        other => {
            d.at(
                s.kind.span(),
                format!("store kind `{other}` is not one of \"sqlite\" or \"postgres\""),
            );
            StoreConfig::Sqlite {
                path: base_dir.join("lambdagate.db"),
            }
        }
    }
}

fn check_api_keys(raw: Option<&RawApiKeys>, d: &mut Diagnostics<'_>) -> ApiKeySettings {
    let mut out = ApiKeySettings::default();
    let Some(k) = raw else {
        return out;
    };
    if let Some(src) = &k.source {
        out.source = match src.get_ref().as_str() {
            "header" => ApiKeySource::Header,
            "authorizer" => ApiKeySource::Authorizer,
            other => {
                d.at(
                    src.span(),
                    format!("api key source `{other}` is not one of \"header\" or \"authorizer\""),
                );
                ApiKeySource::Header
            }
        };
    }
    if let Some(h) = &k.header {
        match http::HeaderName::from_bytes(h.get_ref().as_bytes()) {
            Ok(name) => out.header = name.as_str().to_string(),
            Err(_) => d.at(
                h.span(),
                format!("`{}` is not a valid HTTP header name", h.get_ref()),
            ),
        }
    }
    if let Some(t) = &k.cache_ttl
        && let Some(ttl) = duration(t, d)
    {
        if ttl > Duration::from_secs(300) {
            d.at(
                t.span(),
                "`cache_ttl` is at most 300s (revocation waits this long to reach every node)",
            );
        }
        out.cache_ttl = ttl;
    }
    if let Some(t) = &k.usage_flush_interval
        && let Some(every) = duration(t, d)
    {
        if every.is_zero() || every > Duration::from_secs(24 * 3600) {
            d.at(
                t.span(),
                "`usage_flush_interval` is more than 0s and at most 24h",
            );
        } else {
            out.usage_flush_interval = every;
        }
    }
    out
}

/// Every per-route throttle in a plan names a route that exists.
fn check_plan_route_keys(plans: &Map<RawPlan>, routes: &[RouteConfig], d: &mut Diagnostics<'_>) {
    for p in plans.values() {
        for key in p.route_throttles.iter().flatten().map(|(k, _)| k) {
            if !routes.iter().any(|r| r.route_key() == *key.get_ref()) {
                d.at(
                    key.span(),
                    format!(
                        "no route `{}`; route throttles are keyed like \"GET /items/{{id}}\"",
                        key.get_ref()
                    ),
                );
            }
        }
    }
}

/// `[cluster] lease` by default: one Redis step per 5 ms of a throttle's
/// rate (and per request below 200 requests/s).
const DEFAULT_LEASE: Duration = Duration::from_millis(5);
const MAX_LEASE: Duration = Duration::from_secs(1);

fn check_cluster(c: &RawCluster, d: &mut Diagnostics<'_>) -> Option<ClusterConfig> {
    let url = c.redis_url.as_ref()?;
    if !url.get_ref().starts_with("redis://") && !url.get_ref().starts_with("rediss://") {
        d.at(
            url.span(),
            "`redis_url` must start with redis:// or rediss://",
        );
    }
    let key_prefix = match &c.key_prefix {
        Some(p) if p.get_ref().is_empty() || p.get_ref().contains(char::is_whitespace) => {
            d.at(
                p.span(),
                "`key_prefix` must be non-empty and without spaces",
            );
            String::new()
        }
        Some(p) => p.get_ref().clone(),
        None => "lambdagate".to_string(),
    };
    let mut lease = DEFAULT_LEASE;
    if let Some(l) = &c.lease
        && let Some(v) = duration(l, d)
    {
        if v > MAX_LEASE {
            d.at(
                l.span(),
                "`lease` is at most 1s (leased cells left unspent are out of the other nodes' reach that long)",
            );
        }
        lease = v;
    }
    Some(ClusterConfig {
        redis_url: url.get_ref().clone(),
        fail_closed: c.fail_closed.unwrap_or(false),
        key_prefix,
        lease,
    })
}

fn check_routes(
    raw: &RawConfig,
    gateway: &GatewaySettings,
    backends: &BTreeMap<String, BackendConfig>,
    functions: &BTreeMap<String, FunctionConfig>,
    templates: &mut TemplateSetBuilder,
    d: &mut Diagnostics<'_>,
) -> Vec<RouteConfig> {
    let file_name = d
        .file()
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "routes.toml".to_string());
    let mut out = Vec::new();
    let mut table = RouteTable::new();
    for (index, spanned) in raw.routes.iter().enumerate() {
        let r = spanned.get_ref();
        let method = r.method.get_ref().to_ascii_uppercase();
        let mut ok = true;
        if !METHODS.contains(&method.as_str()) {
            d.at(
                r.method.span(),
                format!(
                    "method `{}` is not one of {}",
                    r.method.get_ref(),
                    METHODS.join(", ")
                ),
            );
            ok = false;
        }
        let template = match RouteTemplate::parse(r.path.get_ref()) {
            Ok(t) => t,
            Err(e) => {
                let span = r.path.span();
                // +1 skips the opening quote of the TOML string.
                let at = span.start + 1 + e.offset;
                d.at(at..span.end, e.message);
                continue;
            }
        };
        if template.is_default() && gateway.flavor == Flavor::Rest {
            d.at(
                r.path.span(),
                "`$default` routes exist only in the http flavor; use `ANY /{proxy+}` in a rest API",
            );
            ok = false;
        }
        let integration = match (&r.function, &r.backend, &r.mock) {
            (Some(f), backend, None) => {
                if !functions.contains_key(f.get_ref()) {
                    d.at(
                        f.span(),
                        format!(
                            "unknown function `{}`; define it as [functions.{}]",
                            f.get_ref(),
                            f.get_ref()
                        ),
                    );
                    ok = false;
                }
                if let Some(b) = backend {
                    match backends.get(b.get_ref()) {
                        None => {
                            d.at(b.span(), unknown_backend(b.get_ref()));
                            ok = false;
                        }
                        Some(BackendConfig::Http { .. }) => {
                            d.at(
                                b.span(),
                                format!(
                                    "backend `{}` is an `http` backend and cannot run function `{}`",
                                    b.get_ref(),
                                    f.get_ref()
                                ),
                            );
                            ok = false;
                        }
                        _ => {}
                    }
                }
                IntegrationConfig::Function {
                    function: f.get_ref().clone(),
                    backend: backend.as_ref().map(|b| b.get_ref().clone()),
                }
            }
            (None, Some(b), None) => match backends.get(b.get_ref()) {
                Some(BackendConfig::Http { .. }) => IntegrationConfig::Http {
                    backend: b.get_ref().clone(),
                },
                Some(other) => {
                    d.at(
                        b.span(),
                        format!(
                            "backend `{}` is a `{}` backend; a route on it needs a `function`",
                            b.get_ref(),
                            other.kind()
                        ),
                    );
                    continue;
                }
                None => {
                    d.at(b.span(), unknown_backend(b.get_ref()));
                    continue;
                }
            },
            (None, None, Some(m)) => {
                // A 1xx is an interim answer: a client would take the next
                // response on its connection as this request's.
                if !(200..=599).contains(&m.get_ref().status) {
                    d.at(
                        m.span(),
                        "mock `status` must be a final HTTP status (200-599)",
                    );
                }
                IntegrationConfig::Mock(m.get_ref().clone())
            }
            (None, None, None) => {
                d.at(
                    spanned.span(),
                    format!(
                        "route `{} {}` needs one of `function`, `backend` or `mock`",
                        r.method.get_ref(),
                        r.path.get_ref()
                    ),
                );
                continue;
            }
            _ => {
                d.at(
                    spanned.span(),
                    format!(
                        "route `{} {}` sets more than one of `function`, `backend` (http) and `mock`",
                        r.method.get_ref(),
                        r.path.get_ref()
                    ),
                );
                continue;
            }
        };
        if let Some(a) = &r.auth
            && !raw.auth.contains_key(a)
        {
            d.at(
                a.span(),
                format!(
                    "unknown authorizer `{}`; define it as [auth.{}]",
                    a.get_ref(),
                    a.get_ref()
                ),
            );
            ok = false;
        }
        if let Some(scopes) = &r.scopes
            && let Some(first) = scopes.first()
        {
            let kind = r
                .auth
                .as_ref()
                .and_then(|a| raw.auth.get(a))
                .map(|a| a.kind.get_ref().as_str());
            match (&r.auth, kind) {
                (None, _) => d.at(
                    first.span(),
                    "`scopes` need an `auth` authorizer on the route",
                ),
                (Some(_), Some(k)) if k != "jwt" => d.at(
                    first.span(),
                    "`scopes` are checked by jwt authorizers only (the token's scope/scp claims)",
                ),
                _ => {}
            }
        }
        let payload_version = match &r.payload_version {
            Some(p) => payload_version(p, d).unwrap_or(PayloadVersion::V2),
            None => match gateway.flavor {
                Flavor::Rest => PayloadVersion::V1,
                Flavor::Http => PayloadVersion::V2,
            },
        };
        if let Some(p) = &r.payload_version
            && gateway.flavor == Flavor::Rest
            && p.get_ref() == "2.0"
        {
            d.at(
                p.span(),
                "payload 2.0 exists only in the http flavor (REST APIs send 1.0)",
            );
        }
        if ok && let Err(conflict) = table.insert(&method, &template, index) {
            let msg = match conflict {
                TableConflict::Duplicate { earlier } => {
                    let (line, _) = crate::config::error::line_col(
                        source_text_hint(d),
                        raw.routes[earlier].span().start,
                    );
                    format!(
                        "duplicate route `{method} {}`; the same route is defined at line {line}",
                        template.as_str()
                    )
                }
                TableConflict::ParamName { earlier, this } => format!(
                    "path `{}` names parameter `{{{this}}}` where another route names it `{{{earlier}}}`; API Gateway needs one name per position",
                    template.as_str()
                ),
            };
            d.at(r.path.span(), msg);
        }
        let params: Vec<String> = template.param_names().map(str::to_string).collect();
        let base_dir = templates.base_dir().to_path_buf();
        let shaping = shaping::check_route_shaping(
            r,
            matches!(integration, IntegrationConfig::Function { .. }),
            &params,
            &base_dir,
            &file_name,
            templates,
            d,
        );
        out.push(RouteConfig {
            index,
            method,
            template,
            integration,
            payload_version,
            timeout: r.timeout.as_ref().and_then(|t| duration(t, d)),
            auth: r.auth.as_ref().map(|a| a.get_ref().clone()),
            scopes: r
                .scopes
                .iter()
                .flatten()
                .map(|s| s.get_ref().clone())
                .collect(),
            api_key: r.api_key.unwrap_or(false),
            throttle: r.throttle.as_ref().and_then(|t| throttle(t, d)),
            binary_media_types: r
                .binary_media_types
                .as_ref()
                .map(|v| media_types(v, d))
                .unwrap_or_default(),
            cache: shaping.cache,
            response: shaping.response,
            request: shaping.request,
            mapping: shaping.mapping,
            summary: r.summary.clone(),
            description: r.description.clone(),
            tags: r.tags.clone().unwrap_or_default(),
            operation_id: r.operation_id.clone(),
            response_schema: None,
            method_responses: Vec::new(),
        });
    }
    out
}

fn source_text_hint<'a>(d: &'a Diagnostics<'_>) -> &'a str {
    d.source()
}

fn payload_version(p: &Str, d: &mut Diagnostics<'_>) -> Option<PayloadVersion> {
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

fn media_types(v: &[Str], d: &mut Diagnostics<'_>) -> Vec<String> {
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

fn count(v: &Spanned<i64>, what: &str, d: &mut Diagnostics<'_>) -> Option<usize> {
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

fn listen_addr(v: &Str, d: &mut Diagnostics<'_>) -> Option<SocketAddr> {
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

fn url(v: &Str, d: &mut Diagnostics<'_>) {
    let s = v.get_ref();
    match s.parse::<http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() => {}
        _ => d.at(
            v.span(),
            format!("`{s}` is not an http(s) URL like \"http://127.0.0.1:3000\""),
        ),
    }
}

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

fn duration(v: &Str, d: &mut Diagnostics<'_>) -> Option<Duration> {
    match parse_duration(v.get_ref()) {
        Ok(x) => Some(x),
        Err(e) => {
            d.at(v.span(), e);
            None
        }
    }
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

fn size(v: &Spanned<toml::Value>, d: &mut Diagnostics<'_>) -> Option<usize> {
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

    #[test]
    fn substitution() {
        let vars = BTreeMap::from([("alias".to_string(), "live".to_string())]);
        assert_eq!(
            substitute("hello:${stageVariables.alias}", &vars),
            "hello:live"
        );
        assert_eq!(
            stage_variable_refs("a-${stageVariables.x}-${stageVariables.y}").unwrap(),
            vec!["x", "y"]
        );
        assert!(stage_variable_refs("${env.HOME}").is_err());
    }
}
