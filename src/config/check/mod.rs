//! Raw → validated. One file per routes.toml section, each an independent
//! `check_*` pass that walks the raw shapes and records every problem with
//! its position; the model is only returned when there are none, so the
//! server never starts on a config it cannot honour. Values shared by the
//! sections (durations, sizes, paths, ...) are parsed in `config::values`.

mod auth;
mod backends;
mod cache;
mod cors;
mod functions;
mod gateway;
mod plans;
mod response;
mod routes;
mod shaping;
mod stages;
mod store;

use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::config::error::Diagnostics;
use crate::config::model::Config;
use crate::config::raw::{RawConfig, Str};
use crate::transform::template::TemplateSetBuilder;

pub(crate) use stages::substitute;

/// Builds the model from raw shapes, reporting every error found.
pub(super) fn validate(raw: RawConfig, source: &Path, d: &mut Diagnostics<'_>) -> Option<Config> {
    let base_dir = source
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let mut gateway = gateway::check_gateway(&raw.gateway, d);
    gateway.tls = gateway::check_tls(raw.gateway.tls.as_ref(), &base_dir, d);
    let stages = stages::check_stages(&raw, &gateway, d);
    let backends = backends::check_backends(&raw.backends, d);
    let functions = functions::check_functions(&raw.functions, &base_dir, &backends, d);
    stages::check_stage_backends(&raw, &backends, d);
    stages::check_stage_variables(&raw, &stages, d);
    let auth = auth::check_auth(&raw.auth, &raw.functions, &base_dir, d);
    let plans = plans::check_plans(&raw.plans, d);
    let store = store::check_store(raw.store.as_ref(), &base_dir, d);
    let api_keys = store::check_api_keys(raw.api_keys.as_ref(), d);
    let cluster = raw
        .cluster
        .as_ref()
        .and_then(|c| store::check_cluster(c, d));
    let admin = raw
        .admin
        .as_ref()
        .map(|a| gateway::check_admin(a, &base_dir, d));
    let invoke_api = raw
        .invoke_api
        .as_ref()
        .map(|a| gateway::check_invoke_api(a, &raw.auth, d));
    let cors = raw.cors.as_ref().map(|c| cors::check_cors(c, d));
    let cache = cache::check_cache_settings(
        raw.cache.as_ref(),
        raw.cluster.as_ref().is_some_and(|c| c.redis_url.is_some()),
        d,
    );
    let openapi = crate::openapi::check_settings(raw.openapi.as_ref(), &raw.routes, d);
    let mut templates = TemplateSetBuilder::new(&base_dir);
    let mut routes = routes::check_routes(&raw, &gateway, &backends, &functions, &mut templates, d);
    let templates = shaping::finish_templates(templates, d);
    crate::openapi::check_response_schemas(&raw.routes, &mut routes, &base_dir, d);
    plans::check_plan_route_keys(&raw.plans, &routes, d);

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

pub(super) fn string_or(v: &Option<Str>, default: &str) -> String {
    v.as_ref()
        .map(|s| s.get_ref().clone())
        .unwrap_or_else(|| default.to_string())
}

pub(super) fn check_name(name: &Spanned<String>, what: &str, d: &mut Diagnostics<'_>) {
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

pub(super) fn unknown_backend(name: &str) -> String {
    format!("unknown backend `{name}`; define it as [backends.{name}]")
}

/// A reference to an authorizer that is not defined.
pub(super) fn unknown_authorizer(name: &str) -> String {
    format!("unknown authorizer `{name}`; define it as [auth.{name}]")
}

/// A reference to a function that is not defined.
pub(super) fn unknown_function(name: &str) -> String {
    format!("unknown function `{name}`; define it as [functions.{name}]")
}
