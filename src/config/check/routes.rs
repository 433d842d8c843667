//! `[[routes]]`: each route's method, path, integration, auth, payload
//! version and place in the route table, then its shaping slices. A route
//! that cannot be matched or has no usable integration is reported and
//! left out; one that conflicts with an earlier route is reported once.

use std::collections::BTreeMap;

use toml::Spanned;

use super::{shaping, unknown_authorizer, unknown_backend, unknown_function};
use crate::config::error::{Diagnostics, line_col};
use crate::config::model::{
    BackendConfig, Flavor, FunctionConfig, GatewaySettings, IntegrationConfig, PayloadVersion,
    RouteConfig,
};
use crate::config::raw::{Map, RawAuth, RawConfig, RawRoute};
use crate::config::values::{duration, media_types, payload_version, throttle};
use crate::routing::{RouteTable, RouteTemplate, TableConflict};
use crate::transform::template::TemplateSetBuilder;

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY",
];

pub(super) fn check_routes(
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
        // `ok` says whether the route may enter the route table: a route
        // with a broken reference is reported, never matched.
        let mut ok = check_method(r, &method, d);
        let Some(template) = parse_template(r, d) else {
            continue;
        };
        ok &= check_default_route(r, &template, gateway.flavor, d);
        let Some((integration, integration_ok)) =
            check_integration(spanned, backends, functions, d)
        else {
            continue;
        };
        ok &= integration_ok;
        ok &= check_route_auth(r, &raw.auth, d);
        check_scopes(r, &raw.auth, d);
        let payload_version = check_payload_version(r, gateway.flavor, d);
        if ok && let Err(conflict) = table.insert(&method, &template, index) {
            report_conflict(raw, r, &method, &template, conflict, d);
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

/// The method (already upper-cased) is one API Gateway routes on.
fn check_method(r: &RawRoute, method: &str, d: &mut Diagnostics<'_>) -> bool {
    if METHODS.contains(&method) {
        return true;
    }
    d.at(
        r.method.span(),
        format!(
            "method `{}` is not one of {}",
            r.method.get_ref(),
            METHODS.join(", ")
        ),
    );
    false
}

/// The path as a route template; its error points into the path string.
fn parse_template(r: &RawRoute, d: &mut Diagnostics<'_>) -> Option<RouteTemplate> {
    match RouteTemplate::parse(r.path.get_ref()) {
        Ok(t) => Some(t),
        Err(e) => {
            let span = r.path.span();
            // +1 skips the opening quote of the TOML string.
            let at = span.start + 1 + e.offset;
            d.at(at..span.end, e.message);
            None
        }
    }
}

/// `$default` routes are an HTTP API feature.
fn check_default_route(
    r: &RawRoute,
    template: &RouteTemplate,
    flavor: Flavor,
    d: &mut Diagnostics<'_>,
) -> bool {
    if template.is_default() && flavor == Flavor::Rest {
        d.at(
            r.path.span(),
            "`$default` routes exist only in the http flavor; use `ANY /{proxy+}` in a rest API",
        );
        return false;
    }
    true
}

/// Exactly one of `function` (optionally on a named backend), `backend`
/// (an http one) or `mock`. `None` leaves the route out; the flag is false
/// when the integration names something that does not exist or cannot run it.
fn check_integration(
    spanned: &Spanned<RawRoute>,
    backends: &BTreeMap<String, BackendConfig>,
    functions: &BTreeMap<String, FunctionConfig>,
    d: &mut Diagnostics<'_>,
) -> Option<(IntegrationConfig, bool)> {
    let r = spanned.get_ref();
    match (&r.function, &r.backend, &r.mock) {
        (Some(f), backend, None) => {
            let mut ok = true;
            if !functions.contains_key(f.get_ref()) {
                d.at(f.span(), unknown_function(f.get_ref()));
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
            let integration = IntegrationConfig::Function {
                function: f.get_ref().clone(),
                backend: backend.as_ref().map(|b| b.get_ref().clone()),
            };
            Some((integration, ok))
        }
        (None, Some(b), None) => match backends.get(b.get_ref()) {
            Some(BackendConfig::Http { .. }) => Some((
                IntegrationConfig::Http {
                    backend: b.get_ref().clone(),
                },
                true,
            )),
            Some(other) => {
                d.at(
                    b.span(),
                    format!(
                        "backend `{}` is a `{}` backend; a route on it needs a `function`",
                        b.get_ref(),
                        other.kind()
                    ),
                );
                None
            }
            None => {
                d.at(b.span(), unknown_backend(b.get_ref()));
                None
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
            Some((IntegrationConfig::Mock(m.get_ref().clone()), true))
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
            None
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
            None
        }
    }
}

/// The route's `auth` names a defined authorizer.
fn check_route_auth(r: &RawRoute, auth: &Map<RawAuth>, d: &mut Diagnostics<'_>) -> bool {
    match &r.auth {
        Some(a) if !auth.contains_key(a) => {
            d.at(a.span(), unknown_authorizer(a.get_ref()));
            false
        }
        _ => true,
    }
}

/// `scopes` need a jwt authorizer, the only kind that reads them.
fn check_scopes(r: &RawRoute, auth: &Map<RawAuth>, d: &mut Diagnostics<'_>) {
    let Some(first) = r.scopes.as_ref().and_then(|s| s.first()) else {
        return;
    };
    let kind = r
        .auth
        .as_ref()
        .and_then(|a| auth.get(a))
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

/// The payload version written, else the flavor's; 2.0 is HTTP API only.
fn check_payload_version(r: &RawRoute, flavor: Flavor, d: &mut Diagnostics<'_>) -> PayloadVersion {
    let Some(p) = &r.payload_version else {
        return match flavor {
            Flavor::Rest => PayloadVersion::V1,
            Flavor::Http => PayloadVersion::V2,
        };
    };
    let version = payload_version(p, d).unwrap_or(PayloadVersion::V2);
    if flavor == Flavor::Rest && p.get_ref() == "2.0" {
        d.at(
            p.span(),
            "payload 2.0 exists only in the http flavor (REST APIs send 1.0)",
        );
    }
    version
}

/// A route the table refused: the same route twice, or one parameter
/// position named two ways.
fn report_conflict(
    raw: &RawConfig,
    r: &RawRoute,
    method: &str,
    template: &RouteTemplate,
    conflict: TableConflict,
    d: &mut Diagnostics<'_>,
) {
    let msg = match conflict {
        TableConflict::Duplicate { earlier } => {
            let (line, _) = line_col(d.source(), raw.routes[earlier].span().start);
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
