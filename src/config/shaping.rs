//! Config slices of the data-shaping features — route `cache`, `response`,
//! `request`, non-proxy mapping (`request_template`, `responses`,
//! `content_handling`), `[cache]` and `[cors]`: their validated model and the
//! `check_*` passes that build it. Templates and JSON Schemas are compiled
//! here, at load time, so `lambdagate validate` reports their errors too.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use crate::config::error::Diagnostics;
use crate::config::raw::*;
use crate::transform::template::{TemplateSet, TemplateSetBuilder};

/// API Gateway's cache TTL bounds.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(3600);

/// `[cache]`: the one response cache all routes share.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Bytes of all entries together.
    pub max_size: u64,
    /// Larger responses are served but not cached.
    pub max_entry_size: usize,
    /// Entries are shared between nodes in `[cluster]`'s Redis.
    pub shared: bool,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_size: 64 * 1024 * 1024,
            max_entry_size: 1024 * 1024,
            shared: false,
        }
    }
}

/// A route's `cache = {...}`.
#[derive(Debug, Clone)]
pub struct RouteCache {
    pub ttl: Duration,
    pub key: Vec<CacheKeyPart>,
    pub per_identity: bool,
    pub invalidation: Invalidation,
}

/// One request parameter that is part of the cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheKeyPart {
    Path(String),
    Query(String),
    /// Lower-case header name.
    Header(String),
    /// A SHA-256 digest of the request body.
    Body,
}

impl RouteCache {
    /// Does the key cover the request body?
    pub fn keys_body(&self) -> bool {
        self.key.contains(&CacheKeyPart::Body)
    }
}

/// Who may refresh an entry with `Cache-Control: max-age=0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// The header is ignored (the default).
    Nobody,
    /// Callers the route's authorizer or API key identified.
    Authorized,
    /// Any caller.
    Anyone,
}

/// A route's `response = {...}`: what the function's JSON may be rendered as.
#[derive(Debug, Clone)]
pub struct RouteResponse {
    /// In the order they were written; `Accept` picks one.
    pub offers: Vec<ResponseOffer>,
    /// Index into `offers` used when `Accept` is absent or names none.
    pub default: usize,
}

#[derive(Debug, Clone)]
pub struct ResponseOffer {
    /// `text/html`, `application/json`, ...
    pub media_type: String,
    /// Template name in the [`TemplateSet`]; `None` passes the function's body through.
    pub template: Option<String>,
}

/// A route's `request = {...}`: API Gateway's request validator.
#[derive(Debug, Clone, Default)]
pub struct RouteRequest {
    pub body_schema: Option<JsonSchema>,
    pub required_query: Vec<String>,
    /// Header names as written (matched case-insensitively).
    pub required_headers: Vec<String>,
}

/// A compiled JSON Schema and the file it came from.
#[derive(Clone)]
pub struct JsonSchema {
    pub path: PathBuf,
    pub validator: Arc<jsonschema::Validator>,
}

impl fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonSchema({})", self.path.display())
    }
}

/// API Gateway's `contentHandling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentHandling {
    /// Binary → base64 text.
    ConvertToText,
    /// Base64 text → binary.
    ConvertToBinary,
}

/// A non-proxy (mapping template) integration: set when a function route
/// has `request_template` or `responses`.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// Template name; `None` passes the request body through.
    pub request_template: Option<String>,
    pub content_handling: Option<ContentHandling>,
    pub responses: Vec<IntegrationResponse>,
}

/// One integration response: when it applies and what it sends.
#[derive(Debug, Clone)]
pub struct IntegrationResponse {
    /// Anchored regex over the function's error message; `None` is the
    /// default response, used for successful invocations.
    pub pattern: Option<regex::Regex>,
    pub status: u16,
    /// Header name → template name.
    pub headers: Vec<(String, String)>,
    /// Its renderings (API Gateway's `responseTemplates`), one per media
    /// type, the request's `Accept` picking one; at least one. A `None`
    /// template passes the function's output through.
    pub offers: Vec<ResponseOffer>,
    /// Index into `offers` used when `Accept` is absent or names none.
    pub default: usize,
    pub content_handling: Option<ContentHandling>,
}

/// `[cors]`, checked so tower-http's `CorsLayer` can never refuse it.
#[derive(Debug, Clone, Default)]
pub struct CorsConfig {
    /// `*` alone means any origin.
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: Option<Duration>,
}

/// Route slices built by [`check_route_shaping`].
#[derive(Debug, Default)]
pub struct RouteShaping {
    pub cache: Option<RouteCache>,
    pub response: Option<RouteResponse>,
    pub request: Option<RouteRequest>,
    pub mapping: Option<Mapping>,
}

/// Resolves a path written in routes.toml against the routes file's folder.
fn resolve(base_dir: &Path, p: &str) -> PathBuf {
    base_dir.join(p)
}

pub fn check_cache_settings(
    raw: Option<&RawCacheSettings>,
    has_cluster_redis: bool,
    d: &mut Diagnostics<'_>,
) -> CacheSettings {
    let mut s = CacheSettings::default();
    let Some(raw) = raw else { return s };
    if let Some(shared) = &raw.shared
        && *shared.get_ref()
    {
        if !has_cluster_redis {
            d.at(
                shared.span(),
                "`shared = true` needs `[cluster] redis_url`, the Redis the nodes share",
            );
        }
        s.shared = true;
    }
    if let Some(v) = &raw.max_size
        && let Some(n) = size(v, d)
    {
        s.max_size = n as u64;
    }
    if let Some(v) = &raw.max_entry_size
        && let Some(n) = size(v, d)
    {
        s.max_entry_size = n;
    }
    s
}

fn size(v: &Spanned<toml::Value>, d: &mut Diagnostics<'_>) -> Option<usize> {
    match crate::config::validate::parse_size(v.get_ref()) {
        Ok(n) if n > 0 => Some(n),
        Ok(_) => {
            d.at(v.span(), "a size must be more than 0");
            None
        }
        Err(e) => {
            d.at(v.span(), e);
            None
        }
    }
}

fn duration(v: &Str, d: &mut Diagnostics<'_>) -> Option<Duration> {
    match crate::config::validate::parse_duration(v.get_ref()) {
        Ok(x) => Some(x),
        Err(e) => {
            d.at(v.span(), e);
            None
        }
    }
}

pub fn check_cors(raw: &Spanned<RawCors>, d: &mut Diagnostics<'_>) -> CorsConfig {
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
        if s != "*" && http::HeaderName::from_bytes(s.as_bytes()).is_err() {
            d.at(h.span(), format!("`{s}` is not a header name"));
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

/// Checks and compiles one route's shaping slices.
#[allow(clippy::too_many_arguments)]
pub fn check_route_shaping(
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

/// Methods whose requests carry no body API Gateway would key on; a cached
/// route with any other method must key on the body (`"body"` in `key`).
const BODYLESS_METHODS: [&str; 4] = ["GET", "HEAD", "OPTIONS", "ANY"];

fn check_route_cache(
    c: &Spanned<RawRouteCache>,
    method: &str,
    params: &[String],
    d: &mut Diagnostics<'_>,
) -> RouteCache {
    let raw = c.get_ref();
    let ttl = match &raw.ttl {
        Some(t) => {
            let v = duration(t, d).unwrap_or(DEFAULT_CACHE_TTL);
            if v > MAX_CACHE_TTL {
                d.at(t.span(), "cache `ttl` is at most 3600s, as in API Gateway");
            }
            if v.is_zero() {
                d.at(
                    t.span(),
                    "cache `ttl` must be more than 0 (remove `cache` to turn caching off)",
                );
            }
            v
        }
        None => DEFAULT_CACHE_TTL,
    };
    let mut key = Vec::new();
    for k in raw.key.iter().flatten() {
        let s = k.get_ref();
        if s == "body" {
            if key.contains(&CacheKeyPart::Body) {
                d.at(k.span(), "cache key `body` is listed twice");
            }
            key.push(CacheKeyPart::Body);
            continue;
        }
        let part = match s.split_once('.') {
            Some(("path", name)) if !name.is_empty() => {
                if !params.iter().any(|p| p == name) {
                    d.at(
                        k.span(),
                        format!("`{s}`: the route's path has no parameter `{{{name}}}`"),
                    );
                }
                CacheKeyPart::Path(name.to_string())
            }
            Some(("query", name)) if !name.is_empty() => CacheKeyPart::Query(name.to_string()),
            Some(("header", name)) if http::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
                CacheKeyPart::Header(name.to_ascii_lowercase())
            }
            _ => {
                d.at(
                    k.span(),
                    format!(
                        "cache key `{s}` is not `path.NAME`, `query.NAME`, `header.NAME` or `body`"
                    ),
                );
                continue;
            }
        };
        key.push(part);
    }
    let method = method.trim().to_ascii_uppercase();
    if !BODYLESS_METHODS.contains(&method.as_str()) && !key.contains(&CacheKeyPart::Body) {
        d.at(
            c.span(),
            format!(
                "a cached {method} route must key on its body: add \"body\" to the cache `key` \
                 (otherwise one caller's answer would be served for another's body)"
            ),
        );
    }
    let invalidation = match raw.invalidation.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("nobody") => Invalidation::Nobody,
        Some("authorized") => Invalidation::Authorized,
        Some("anyone") => Invalidation::Anyone,
        Some(other) => {
            d.at(
                raw.invalidation
                    .as_ref()
                    .map(|s| s.span())
                    .unwrap_or_default(),
                format!(
                    "cache `invalidation` `{other}` is not \"nobody\", \"authorized\" or \"anyone\""
                ),
            );
            Invalidation::Nobody
        }
    };
    RouteCache {
        ttl,
        key,
        per_identity: raw.per_identity.unwrap_or(false),
        invalidation,
    }
}

/// The media type a template file renders by its extension.
fn media_type_for(path: &str) -> &'static str {
    let ext = path
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "csv" => "text/csv",
        "json" => "application/json",
        "md" => "text/markdown",
        _ => "text/plain",
    }
}

fn check_media_type(v: &Str, d: &mut Diagnostics<'_>) -> String {
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

fn check_route_response(
    resp: &Spanned<RawRouteResponse>,
    templates: &mut TemplateSetBuilder,
    d: &mut Diagnostics<'_>,
) -> Option<RouteResponse> {
    let raw = resp.get_ref();
    let mut offers: Vec<ResponseOffer> = Vec::new();
    if let Some(t) = &raw.template {
        let media_type = match &raw.content_type {
            Some(ct) => check_media_type(ct, d),
            None => media_type_for(t.get_ref()).to_string(),
        };
        let name = templates.add_file(t, d);
        offers.push(ResponseOffer {
            media_type,
            template: name,
        });
    } else if let Some(ct) = &raw.content_type {
        d.at(
            ct.span(),
            "`content_type` describes `template`; set `template` too",
        );
    }
    for (media, file) in raw.templates.iter().flatten() {
        let media_span = Spanned::new(file.span(), media.clone());
        let media_type = check_media_type(&media_span, d);
        let name = templates.add_file(file, d);
        offers.push(ResponseOffer {
            media_type,
            template: name,
        });
    }
    if raw.json.unwrap_or(false) {
        offers.push(ResponseOffer {
            media_type: "application/json".to_string(),
            template: None,
        });
    }
    if offers.iter().all(|o| o.template.is_none()) {
        d.at(
            resp.span(),
            "`response` needs a `template` (or `templates`) to render the function's JSON with",
        );
        return None;
    }
    for (i, o) in offers.iter().enumerate() {
        if offers[..i].iter().any(|p| p.media_type == o.media_type) {
            d.at(
                resp.span(),
                format!("`response` offers `{}` twice", o.media_type),
            );
        }
    }
    let default =
        chosen_default(raw.default.as_ref(), &offers, "the offered types", d).unwrap_or(0);
    Some(RouteResponse { offers, default })
}

/// The index of the configured `default` among `offers` (`None` when unset);
/// a type that is not offered is reported and the first offer used.
fn chosen_default(
    default: Option<&Str>,
    offers: &[ResponseOffer],
    offered: &str,
    d: &mut Diagnostics<'_>,
) -> Option<usize> {
    let def = default?;
    let t = def.get_ref().trim().to_ascii_lowercase();
    let found = offers.iter().position(|o| o.media_type == t);
    if found.is_none() {
        let list = offers
            .iter()
            .map(|o| o.media_type.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        d.at(
            def.span(),
            format!("`default` `{t}` is not one of {offered}: {list}"),
        );
    }
    Some(found.unwrap_or(0))
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
        if http::HeaderName::from_bytes(h.get_ref().as_bytes()).is_err() {
            d.at(h.span(), format!("`{}` is not a header name", h.get_ref()));
        }
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
    let path = resolve(base_dir, p.get_ref());
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
        Some(off) => crate::config::error::line_col(text, off),
        None => (1, 1),
    }
}

fn content_handling(v: &Str, d: &mut Diagnostics<'_>) -> Option<ContentHandling> {
    match v.get_ref().as_str() {
        "CONVERT_TO_TEXT" => Some(ContentHandling::ConvertToText),
        "CONVERT_TO_BINARY" => Some(ContentHandling::ConvertToBinary),
        other => {
            d.at(
                v.span(),
                format!("`content_handling` `{other}` is not \"CONVERT_TO_TEXT\" or \"CONVERT_TO_BINARY\""),
            );
            None
        }
    }
}

fn check_mapping(
    r: &RawRoute,
    file_name: &str,
    templates: &mut TemplateSetBuilder,
    d: &mut Diagnostics<'_>,
) -> Mapping {
    let request_template = r
        .request_template
        .as_ref()
        .and_then(|t| templates.add_inline(t, file_name, d));
    let content_handling_req = r
        .content_handling
        .as_ref()
        .and_then(|c| content_handling(c, d));
    let mut responses = Vec::new();
    let mut default_seen = false;
    for resp in r.responses.iter().flatten() {
        let raw = resp.get_ref();
        let pattern = match &raw.pattern {
            None => {
                if default_seen {
                    d.at(
                        resp.span(),
                        "only one response may leave out `pattern` (the default response)",
                    );
                }
                default_seen = true;
                None
            }
            Some(p) => match regex::Regex::new(&format!("^(?:{})$", p.get_ref())) {
                Ok(re) => Some(re),
                Err(e) => {
                    d.at(p.span(), format!("`pattern` is not a valid regex: {e}"));
                    None
                }
            },
        };
        let status = *raw.status.get_ref();
        if !(200..=599).contains(&status) {
            d.at(
                raw.status.span(),
                "`status` must be a final HTTP status (200-599)",
            );
        }
        let mut headers = Vec::new();
        for (name, value) in raw.headers.iter().flatten() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                d.at(value.span(), format!("`{name}` is not a header name"));
                continue;
            }
            if let Some(t) = templates.add_inline(value, file_name, d) {
                headers.push((name.to_ascii_lowercase(), t));
            }
        }
        let (offers, default) = check_response_templates(resp, file_name, templates, d);
        responses.push(IntegrationResponse {
            pattern,
            status: status.clamp(100, 599) as u16,
            headers,
            offers,
            default,
            content_handling: raw
                .content_handling
                .as_ref()
                .and_then(|c| content_handling(c, d)),
        });
    }
    Mapping {
        request_template,
        content_handling: content_handling_req,
        responses,
    }
}

/// An integration response's renderings: `template` (with `content_type`,
/// default `application/json`) and/or `templates` (media type → template),
/// and the one served when `Accept` names none: `default`, else
/// `application/json` when offered, else the first.
fn check_response_templates(
    resp: &Spanned<RawIntegrationResponse>,
    file_name: &str,
    templates: &mut TemplateSetBuilder,
    d: &mut Diagnostics<'_>,
) -> (Vec<ResponseOffer>, usize) {
    let raw = resp.get_ref();
    let mut offers: Vec<ResponseOffer> = Vec::new();
    let short_form = raw.template.is_some() || raw.content_type.is_some();
    if short_form || raw.templates.is_none() {
        offers.push(ResponseOffer {
            media_type: match &raw.content_type {
                Some(ct) => check_media_type(ct, d),
                None => "application/json".to_string(),
            },
            template: raw
                .template
                .as_ref()
                .and_then(|t| templates.add_inline(t, file_name, d)),
        });
    }
    for (media, t) in raw.templates.iter().flatten() {
        let media_type = check_media_type(&Spanned::new(t.span(), media.clone()), d);
        if offers.iter().any(|o| o.media_type == media_type) {
            d.at(
                t.span(),
                format!("this response renders `{media_type}` twice"),
            );
            continue;
        }
        offers.push(ResponseOffer {
            media_type,
            template: templates.add_inline(t, file_name, d),
        });
    }
    let default = chosen_default(
        raw.default.as_ref(),
        &offers,
        "this response's media types",
        d,
    )
    .unwrap_or_else(|| {
        offers
            .iter()
            .position(|o| o.media_type == "application/json")
            .unwrap_or(0)
    });
    (offers, default)
}

/// Finishes the template set, reporting syntax errors in every file.
pub fn finish_templates(builder: TemplateSetBuilder, d: &mut Diagnostics<'_>) -> Arc<TemplateSet> {
    Arc::new(builder.finish(d))
}
