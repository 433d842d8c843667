//! OpenAPI: the document generated from routes.toml (`generate`), the
//! importer of API Gateway exports (`import`), and the spec-serving phase.
//!
//! Phase: runs after the limits and before route match. A `GET`/`HEAD` of
//! the configured spec path (default `/openapi.json`) or docs page (default
//! `/openapi.html`) is answered here with the document generated once at
//! start-up; every other request passes through untouched. A route whose
//! literal path equals one of these is refused at load time, so the two
//! never fight; `[openapi] path = ""` / `docs_path = ""` turn them off.

pub mod generate;
pub mod import;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::pipeline::phase::{Next, Phase, PhaseFuture, answer};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use toml::Spanned;

use crate::config::error::Diagnostics;
use crate::config::raw::{RawOpenApi, RawRoute};
use crate::config::{Config, OpenApiSettings, RouteConfig};

pub use generate::{GenerateError, GenerateOptions, Generated, generate};

/// `[openapi]`: defaults filled in, paths checked against the routes.
pub fn check_settings(
    raw: Option<&RawOpenApi>,
    routes: &[Spanned<RawRoute>],
    d: &mut Diagnostics<'_>,
) -> OpenApiSettings {
    let path = match raw.and_then(|o| o.path.as_ref()) {
        Some(p) => checked_path(p, "path", d),
        None => Some("/openapi.json".to_string()),
    };
    let docs_path = match raw.and_then(|o| o.docs_path.as_ref()) {
        Some(p) => checked_path(p, "docs_path", d),
        None => path.as_ref().map(|p| match p.strip_suffix(".json") {
            Some(stem) => format!("{stem}.html"),
            None => format!("{}.html", p.trim_end_matches('/')),
        }),
    };
    for (key, p) in [("path", &path), ("docs_path", &docs_path)] {
        if let Some(p) = p
            && let Some(r) = literal_route(routes, p)
        {
            d.at(
                r.path.span(),
                format!(
                    "`{p}` is where the gateway serves its OpenAPI {}; set [openapi] {key} to another path (or to \"\" to turn it off)",
                    if key == "path" { "document" } else { "docs page" }
                ),
            );
        }
    }
    OpenApiSettings {
        path,
        docs_path,
        title: raw
            .and_then(|o| o.title.clone())
            .unwrap_or_else(|| "lambdagate API".to_string()),
        version: raw
            .and_then(|o| o.version.clone())
            .unwrap_or_else(|| "1.0.0".to_string()),
        description: raw.and_then(|o| o.description.clone()),
    }
}

fn checked_path(p: &Spanned<String>, key: &str, d: &mut Diagnostics<'_>) -> Option<String> {
    let v = p.get_ref();
    if v.is_empty() {
        return None;
    }
    if !v.starts_with('/') || v.contains(['{', '}', '?', '#', ' ']) {
        d.at(
            p.span(),
            format!(
                "[openapi] {key} must be a plain path starting with `/`, or \"\" to turn it off"
            ),
        );
        return None;
    }
    Some(v.clone())
}

/// A GET/ANY route whose template is exactly `path`.
fn literal_route<'a>(routes: &'a [Spanned<RawRoute>], path: &str) -> Option<&'a RawRoute> {
    routes.iter().map(|r| r.get_ref()).find(|r| {
        r.path.get_ref() == path
            && matches!(
                r.method.get_ref().to_ascii_uppercase().as_str(),
                "GET" | "HEAD" | "ANY"
            )
    })
}

/// A response a route documents with `method_responses` (API Gateway's
/// "method response"): OpenAPI only, never enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodResponse {
    pub status: u16,
    /// JSON Schema file of the body.
    pub schema: Option<PathBuf>,
    /// Media type of the body (default `application/json` with a schema).
    pub content_type: Option<String>,
    pub description: Option<String>,
}

/// Route `response_schema = "file.json"` and `method_responses`: schema
/// files resolved and checked to be JSON, statuses and media types checked.
pub fn check_response_schemas(
    raw: &[Spanned<RawRoute>],
    routes: &mut [RouteConfig],
    base_dir: &Path,
    d: &mut Diagnostics<'_>,
) {
    for route in routes {
        let Some(r) = raw.get(route.index).map(|r| r.get_ref()) else {
            continue;
        };
        if let Some(spec) = &r.response_schema {
            route.response_schema = schema_file(spec, base_dir, d);
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in r.method_responses.iter().flatten() {
            let m = m.get_ref();
            let status = *m.status.get_ref();
            let Some(status) = u16::try_from(status)
                .ok()
                .filter(|s| (100..=599).contains(s))
            else {
                d.at(
                    m.status.span(),
                    format!("status {status} is not an HTTP status (100 to 599)"),
                );
                continue;
            };
            if !seen.insert(status) {
                d.at(
                    m.status.span(),
                    format!("status {status} is documented twice in method_responses"),
                );
                continue;
            }
            let content_type = m.content_type.as_ref().and_then(|c| {
                let v = c.get_ref();
                let token = |t: &str| {
                    !t.is_empty()
                        && t.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
                };
                if v.split_once('/').is_some_and(|(a, b)| token(a) && token(b)) {
                    Some(v.clone())
                } else {
                    d.at(
                        c.span(),
                        format!("`{v}` is not a media type such as \"text/html\""),
                    );
                    None
                }
            });
            route.method_responses.push(MethodResponse {
                status,
                schema: m.schema.as_ref().and_then(|s| schema_file(s, base_dir, d)),
                content_type,
                description: m.description.clone(),
            });
        }
    }
}

/// A documentation schema file: readable, JSON, an object or a boolean.
fn schema_file(
    spec: &Spanned<String>,
    base_dir: &Path,
    d: &mut Diagnostics<'_>,
) -> Option<PathBuf> {
    let path = base_dir.join(spec.get_ref());
    match std::fs::read_to_string(&path) {
        Err(e) => d.at(
            spec.span(),
            format!("cannot read response schema {}: {e}", path.display()),
        ),
        Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(_)) | Ok(serde_json::Value::Bool(_)) => {
                return Some(path);
            }
            Ok(_) => d.at(
                spec.span(),
                format!(
                    "response schema {} is not a JSON Schema object",
                    path.display()
                ),
            ),
            Err(e) => d.at(
                spec.span(),
                format!("response schema {} is not JSON: {e}", path.display()),
            ),
        },
    }
    None
}

/// The spec and docs page the running gateway serves, rendered once.
pub struct ServedSpec {
    pub spec_path: Option<String>,
    pub docs_path: Option<String>,
    json: bytes::Bytes,
    html: bytes::Bytes,
}

impl ServedSpec {
    /// Generates the document for the serving stage; `None` when both the
    /// spec and the docs page are turned off.
    pub fn build(config: &Config, stage: &str) -> Result<Option<Self>, GenerateError> {
        let settings = &config.openapi;
        if settings.path.is_none() && settings.docs_path.is_none() {
            return Ok(None);
        }
        let generated = generate(
            config,
            &GenerateOptions {
                stage: Some(stage.to_string()),
                aws: false,
            },
        )?;
        for w in &generated.warnings {
            tracing::debug!("openapi: {w}");
        }
        let json = generate::to_json(&generated.document);
        let html = docs_page(config, &generated.document);
        Ok(Some(Self {
            spec_path: settings.path.clone(),
            docs_path: settings.docs_path.clone(),
            json: json.into(),
            html: html.into(),
        }))
    }

    /// The response for `path`, if it is the spec or the docs page.
    fn answer(&self, path: &str, stage: &str, stage_prefix: bool) -> Option<Response> {
        let unprefixed = if stage_prefix {
            path.strip_prefix('/')
                .and_then(|p| p.strip_prefix(stage))
                .filter(|p| p.starts_with('/'))
        } else {
            None
        };
        let is = |want: &Option<String>| {
            want.as_deref()
                .is_some_and(|w| w == path || Some(w) == unprefixed)
        };
        let (body, content_type) = if is(&self.spec_path) {
            (self.json.clone(), "application/json")
        } else if is(&self.docs_path) {
            (self.html.clone(), "text/html; charset=utf-8")
        } else {
            return None;
        };
        let mut res = (StatusCode::OK, body).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        Some(res)
    }
}

/// Spec-serving phase: answers `GET`/`HEAD` of the spec and docs paths.
pub struct ServeSpec {
    pub spec: Arc<ServedSpec>,
    /// The serving stage's name, for a `/{stage}` prefix.
    pub stage: String,
    pub stage_prefix: bool,
}

/// All of its work comes before the rest of the pipeline, so it hands back
/// the rest's future (or its answer) instead of awaiting it.
impl Phase for ServeSpec {
    fn call(self: Arc<Self>, req: Request, next: Next) -> PhaseFuture {
        if (req.method() == Method::GET || req.method() == Method::HEAD)
            && let Some(res) = self
                .spec
                .answer(req.uri().path(), &self.stage, self.stage_prefix)
        {
            return answer(res);
        }
        next.run(req)
    }
}

/// A small self-contained HTML page listing every operation (no scripts,
/// nothing fetched from elsewhere).
fn docs_page(config: &Config, doc: &utoipa::openapi::OpenApi) -> String {
    let value = generate::canonical(doc);
    let mut operations = Vec::new();
    if let Some(paths) = value.get("paths").and_then(|p| p.as_object()) {
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                if method.starts_with("x-") || !op.is_object() {
                    continue;
                }
                let security: Vec<String> = op
                    .get("security")
                    .and_then(|s| s.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_object())
                    .flat_map(|r| {
                        r.iter().map(|(k, scopes)| {
                            let scopes: Vec<&str> = scopes
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|s| s.as_str())
                                .collect();
                            if scopes.is_empty() {
                                k.clone()
                            } else {
                                format!("{k} ({})", scopes.join(", "))
                            }
                        })
                    })
                    .collect();
                let params: Vec<serde_json::Value> = op
                    .get("parameters")
                    .and_then(|p| p.as_array())
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        serde_json::json!({
                            "name": p.get("name"),
                            "location": p.get("in"),
                            "required": if p.get("required") == Some(&serde_json::Value::Bool(true)) { "required" } else { "optional" },
                        })
                    })
                    .collect();
                let responses: Vec<String> = op
                    .get("responses")
                    .and_then(|r| r.as_object())
                    .map(|r| r.keys().cloned().collect())
                    .unwrap_or_default();
                operations.push(serde_json::json!({
                    "id": op.get("operationId"),
                    "method": method.to_ascii_uppercase(),
                    "path": path,
                    "summary": op.get("summary"),
                    "description": op.get("description"),
                    "security": security.join(" + "),
                    "params": params,
                    "responses": responses,
                }));
            }
        }
    }
    let servers: Vec<String> = doc
        .servers
        .iter()
        .flatten()
        .map(|s| format!("<code>{}</code>", esc(&s.url)))
        .collect();
    let s = &config.openapi;
    let mut html =
        String::from("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html += &format!(
        "<title>{}</title>\n<style>{DOCS_CSS}</style>\n</head>\n<body>\n",
        esc(&s.title)
    );
    html += &format!(
        "<h1>{} <small>{}</small></h1>\n",
        esc(&s.title),
        esc(&s.version)
    );
    if let Some(d) = &s.description {
        html += &format!("<p>{}</p>\n", esc(d));
    }
    if let Some(p) = &s.path {
        html += &format!("<p>OpenAPI document: <a href=\"{0}\">{0}</a>", esc(p));
        if !servers.is_empty() {
            html += &format!(" · servers: {}", servers.join(" "));
        }
        html += "</p>\n";
    }
    for op in operations {
        let text = |k: &str| op.get(k).and_then(|v| v.as_str()).map(esc);
        html += &format!(
            "<div class=\"op\" id=\"{}\"><span class=\"m\">{}</span> <code>{}</code>",
            text("id").unwrap_or_default(),
            text("method").unwrap_or_default(),
            text("path").unwrap_or_default()
        );
        if let Some(summary) = text("summary") {
            html += &format!(" — {summary}");
        }
        if let Some(sec) = text("security").filter(|s| !s.is_empty()) {
            html += &format!(" <span class=\"sec\">· {sec}</span>");
        }
        if let Some(d) = text("description") {
            html += &format!("<p>{d}</p>");
        }
        let params = op
            .get("params")
            .and_then(|p| p.as_array())
            .cloned()
            .unwrap_or_default();
        if !params.is_empty() {
            html += "<table>";
            for p in params {
                let f = |k: &str| {
                    p.get(k)
                        .and_then(|v| v.as_str())
                        .map(esc)
                        .unwrap_or_default()
                };
                html += &format!(
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    f("name"),
                    f("location"),
                    f("required")
                );
            }
            html += "</table>";
        }
        let responses: Vec<String> = op
            .get("responses")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str())
            .map(|r| format!("<code>{}</code>", esc(r)))
            .collect();
        html += &format!("<div>Responses: {}</div></div>\n", responses.join(" "));
    }
    html += "</body>\n</html>\n";
    html
}

const DOCS_CSS: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}\
.op{border:1px solid #ddd;border-radius:6px;margin:.6rem 0;padding:.5rem .8rem}\
.m{display:inline-block;min-width:4.5rem;font-weight:bold;font-family:monospace}\
code{background:#f4f4f4;padding:0 .2rem}.sec{color:#805;font-size:.9em}\
table{border-collapse:collapse;margin-top:.3rem}td{padding:.1rem .6rem .1rem 0;font-size:.9em}";

/// HTML-escapes text for element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
