//! A route's shaping slices — `cache`, `response`, `request` and the
//! non-proxy mapping — checked together, since they depend on one another
//! and on the route's integration. Templates and JSON Schemas are compiled
//! here, at load time, so `lambdagate validate` reports their errors too.

use std::path::Path;
use std::sync::Arc;

use super::cache::check_route_cache;
use super::response::{check_mapping, check_route_response};
use crate::config::error::{Diagnostics, line_col};
use crate::config::raw::{RawRoute, RawRouteRequest, Str};
use crate::config::shaping::{JsonSchema, Mapping, RouteCache, RouteRequest, RouteResponse};
use crate::config::values::{file_path, header_name};
use crate::transform::template::{TemplateSet, TemplateSetBuilder};

/// Route slices built by [`check_route_shaping`].
#[derive(Debug, Default)]
pub(super) struct RouteShaping {
    pub(super) cache: Option<RouteCache>,
    pub(super) response: Option<RouteResponse>,
    pub(super) request: Option<RouteRequest>,
    pub(super) mapping: Option<Mapping>,
}

/// Checks and compiles one route's shaping slices.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_route_shaping(
    r: &RawRoute,
    is_function: bool,
    params: &[String],
    base_dir: &Path,
    file_name: &str,
    templates: &mut TemplateSetBuilder,
    d: &mut Diagnostics<'_>,
) -> RouteShaping {
    let mut out = RouteShaping::default();
    if let Some(c) = &r.cache {
        out.cache = Some(check_route_cache(c, r.method.get_ref(), params, d));
    }
    if let Some(resp) = &r.response {
        out.response = check_route_response(resp, templates, d);
    }
    if let Some(req) = &r.request {
        out.request = Some(check_route_request(req.get_ref(), base_dir, d));
    }
    let non_proxy =
        r.request_template.is_some() || r.responses.is_some() || r.content_handling.is_some();
    if non_proxy {
        if !is_function {
            let span = r
                .request_template
                .as_ref()
                .map(|t| t.span())
                .or_else(|| r.content_handling.as_ref().map(|t| t.span()))
                .or_else(|| {
                    r.responses
                        .as_ref()
                        .and_then(|v| v.first())
                        .map(|t| t.span())
                })
                .unwrap_or_default();
            d.at(
                span,
                "`request_template`, `responses` and `content_handling` (a non-proxy integration) need a `function` route",
            );
        }
        out.mapping = Some(check_mapping(r, file_name, templates, d));
    }
    if out.mapping.is_some()
        && let Some(resp) = &r.response
    {
        d.at(
            resp.span(),
            "a non-proxy route renders with `responses` templates; `response` is for proxy routes",
        );
    }
    out
}

fn check_route_request(
    raw: &RawRouteRequest,
    base_dir: &Path,
    d: &mut Diagnostics<'_>,
) -> RouteRequest {
    let body_schema = raw
        .body_schema
        .as_ref()
        .and_then(|p| load_schema(p, base_dir, d));
    let mut required_headers = Vec::new();
    for h in raw.required_headers.iter().flatten() {
        header_name(h.get_ref(), h.span(), d);
        required_headers.push(h.get_ref().clone());
    }
    RouteRequest {
        body_schema,
        required_query: raw
            .required_query
            .iter()
            .flatten()
            .map(|q| q.get_ref().clone())
            .collect(),
        required_headers,
    }
}

/// Reads and compiles a JSON Schema; problems name the schema file.
fn load_schema(p: &Str, base_dir: &Path, d: &mut Diagnostics<'_>) -> Option<JsonSchema> {
    let path = file_path(base_dir, p.get_ref());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            d.at(
                p.span(),
                format!("cannot read JSON Schema `{}`: {e}", path.display()),
            );
            return None;
        }
    };
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            d.in_file(&path, e.line(), e.column(), format!("not valid JSON: {e}"));
            return None;
        }
    };
    match jsonschema::validator_for(&value) {
        Ok(v) => Some(JsonSchema {
            path,
            validator: Arc::new(v),
        }),
        Err(e) => {
            let pointer = e.instance_path().as_str().to_string();
            let (line, col) = json_pointer_position(&text, &pointer);
            d.in_file(
                &path,
                line,
                col,
                format!(
                    "not a valid JSON Schema at `{}`: {e}",
                    if pointer.is_empty() {
                        "/"
                    } else {
                        pointer.as_str()
                    }
                ),
            );
            None
        }
    }
}

/// Best-effort line/column of the key a JSON pointer ends in (1:1 if not found).
fn json_pointer_position(text: &str, pointer: &str) -> (usize, usize) {
    let Some(last) = pointer.rsplit('/').next().filter(|s| !s.is_empty()) else {
        return (1, 1);
    };
    let needle = format!("\"{}\"", last.replace("~1", "/").replace("~0", "~"));
    match text.find(&needle) {
        Some(off) => line_col(text, off),
        None => (1, 1),
    }
}

/// Finishes the template set, reporting syntax errors in every file.
pub(super) fn finish_templates(
    builder: TemplateSetBuilder,
    d: &mut Diagnostics<'_>,
) -> Arc<TemplateSet> {
    Arc::new(builder.finish(d))
}
