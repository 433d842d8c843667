//! routes.toml → an OpenAPI 3.1 document, built with `utoipa`'s OpenAPI
//! types. Runs at start-up (the served spec) and in `lambdagate openapi`;
//! never per request. With `aws` the document also carries the
//! `x-amazon-apigateway-*` extensions API Gateway needs to import it.
//!
//! What cannot be described is reported in [`Generated::warnings`], never
//! dropped silently.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, OpenIdConnect, SecurityRequirement,
    SecurityScheme,
};
use utoipa::openapi::server::ServerBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder,
    PathsBuilder, Ref, RefOr, Required, ResponseBuilder, Schema, Tag, Type,
};

use crate::config::{AuthConfig, AuthKind, Config, Flavor, IntegrationConfig, RouteConfig};
use crate::routing::Segment;

/// The shared schema of every error body the gateway writes itself.
pub const ERROR_SCHEMA: &str = "GatewayError";
/// The security scheme of `api_key = true` routes.
pub const API_KEY_SCHEME: &str = "api_key";
/// Methods an `ANY` route stands for in a plain (non-AWS) document.
const ANY_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The gateway's own error responses: component name, status, description.
pub const GATEWAY_RESPONSES: &[(&str, u16, &str)] = &[
    ("BadRequest", 400, "The request failed validation."),
    (
        "Unauthorized",
        401,
        "No or invalid credentials (authorizer refused).",
    ),
    (
        "Forbidden",
        403,
        "Credentials valid but not allowed here (missing scope, API key or policy).",
    ),
    (
        "PayloadTooLarge",
        413,
        "The request body is over the limit.",
    ),
    (
        "TooManyRequests",
        429,
        "A throttle, quota or concurrency limit was hit; see `Retry-After`.",
    ),
    (
        "BadGateway",
        502,
        "The function failed or returned a malformed response.",
    ),
    (
        "GatewayTimeout",
        504,
        "The integration did not answer in time.",
    ),
];

#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    /// Document only this stage's server (default: every stage).
    pub stage: Option<String>,
    /// Add the `x-amazon-apigateway-*` extensions.
    pub aws: bool,
}

/// A generated document and what could not be expressed in it.
pub struct Generated {
    pub document: OpenApi,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("stage `{0}` is not defined in the routes file")]
    UnknownStage(String),
    #[error("{path}: {message}")]
    Schema { path: PathBuf, message: String },
}

/// What a route's `request = {...}` asks the validator to check.
#[derive(Debug, Default, Clone)]
pub struct RequestSpec {
    pub body_schema: Option<PathBuf>,
    pub required_query: Vec<String>,
    pub required_headers: Vec<String>,
}

impl RequestSpec {
    pub fn of(_config: &Config, route: &RouteConfig) -> Self {
        let Some(t) = &route.request else {
            return Self::default();
        };
        Self {
            body_schema: t.body_schema.as_ref().map(|s| s.path.clone()),
            required_query: t.required_query.clone(),
            required_headers: t.required_headers.clone(),
        }
    }

    pub fn validates_params(&self) -> bool {
        !self.required_query.is_empty() || !self.required_headers.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.body_schema.is_none() && !self.validates_params()
    }
}

/// Optional query/header parameters named in a route's cache key.
fn cache_key_params(route: &RouteConfig) -> Vec<(ParameterIn, String)> {
    let Some(cache) = &route.cache else {
        return Vec::new();
    };
    cache
        .key
        .iter()
        .filter_map(|k| match k {
            crate::config::CacheKeyPart::Query(q) => Some((ParameterIn::Query, q.clone())),
            crate::config::CacheKeyPart::Header(h) => Some((ParameterIn::Header, h.clone())),
            crate::config::CacheKeyPart::Path(_) => None,
        })
        .collect()
}

/// Builds the document for `config`.
pub fn generate(config: &Config, options: &GenerateOptions) -> Result<Generated, GenerateError> {
    if let Some(s) = &options.stage
        && !config.stages.contains_key(s)
    {
        return Err(GenerateError::UnknownStage(s.clone()));
    }
    let mut g = Generator {
        config,
        options,
        warnings: Vec::new(),
        schemas: BTreeMap::new(),
        schema_names: BTreeMap::new(),
        operation_ids: BTreeSet::new(),
        validators: BTreeSet::new(),
        uses_api_key: false,
    };
    g.build()
}

struct Generator<'a> {
    config: &'a Config,
    options: &'a GenerateOptions,
    warnings: Vec<String>,
    /// Component name → schema.
    schemas: BTreeMap<String, RefOr<Schema>>,
    /// Schema file → component name.
    schema_names: BTreeMap<PathBuf, String>,
    operation_ids: BTreeSet<String>,
    /// Request validators used (AWS).
    validators: BTreeSet<&'static str>,
    uses_api_key: bool,
}

impl Generator<'_> {
    fn build(&mut self) -> Result<Generated, GenerateError> {
        let config = self.config;
        let mut paths: BTreeMap<String, PathItem> = BTreeMap::new();
        let mut tags: BTreeSet<String> = BTreeSet::new();
        for route in &config.routes {
            tags.extend(route.tags.iter().cloned());
            if route.template.is_default() {
                if self.options.aws {
                    let op = self.operation(route, "ANY")?;
                    let mut value = serde_json::to_value(&op).unwrap_or(Value::Null);
                    if let Value::Object(m) = &mut value {
                        m.insert("isDefaultRoute".into(), Value::Bool(true));
                    }
                    let item = paths.entry("/$default".into()).or_default();
                    extend(
                        &mut item.extensions,
                        "x-amazon-apigateway-any-method",
                        value,
                    );
                } else {
                    self.warnings.push(
                        "route `$default` (any method, any path) has no OpenAPI path and is left out of the document (use --aws to include it as API Gateway does)"
                    .to_string());
                }
                continue;
            }
            let path = self.openapi_path(route);
            if route.method == "ANY" {
                if self.options.aws {
                    let op = self.operation(route, "ANY")?;
                    let value = serde_json::to_value(&op).unwrap_or(Value::Null);
                    let item = paths.entry(path).or_default();
                    extend(
                        &mut item.extensions,
                        "x-amazon-apigateway-any-method",
                        value,
                    );
                } else {
                    // Explicit routes on the same template win over ANY.
                    let explicit: BTreeSet<&str> = config
                        .routes
                        .iter()
                        .filter(|r| r.template == route.template && r.method != "ANY")
                        .map(|r| r.method.as_str())
                        .collect();
                    for m in ANY_METHODS.iter().filter(|m| !explicit.contains(**m)) {
                        let op = self.operation(route, m)?;
                        set_operation(paths.entry(path.clone()).or_default(), m, op);
                    }
                }
                continue;
            }
            let op = self.operation(route, &route.method)?;
            set_operation(paths.entry(path).or_default(), &route.method, op);
        }

        let mut paths_builder = PathsBuilder::new();
        for (p, item) in paths {
            paths_builder = paths_builder.path(p, item);
        }

        let mut components = ComponentsBuilder::new().schema(
            ERROR_SCHEMA,
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .title(Some(ERROR_SCHEMA))
                .description(Some(
                    "The body of every error the gateway answers itself, as API Gateway writes it.",
                ))
                .property(
                    "message",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some("What went wrong, in API Gateway's words.")),
                )
                .required("message"),
        );
        for (name, schema) in std::mem::take(&mut self.schemas) {
            components = components.schema(name, schema);
        }
        for (name, status, description) in GATEWAY_RESPONSES {
            let mut r = ResponseBuilder::new()
                .description(format!("{status}: {description}"))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(ERROR_SCHEMA)))
                        .build(),
                )
                .header(
                    "x-amzn-ErrorType",
                    HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .description(Some(
                            "API Gateway's error type, e.g. `UnauthorizedException`.",
                        ))
                        .build(),
                );
            if *status == 429 {
                r = r.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                        .description(Some("Seconds to wait before retrying."))
                        .build(),
                );
            }
            components = components.response(*name, r.build());
        }
        for (name, auth) in &config.auth {
            let scheme = self.security_scheme(auth);
            components = components.security_scheme(name, scheme);
        }
        if self.uses_api_key {
            let v = ApiKeyValue::with_description(
                "x-api-key",
                "An API key issued by the gateway (`lambdagate keys`).",
            );
            components = components
                .security_scheme(API_KEY_SCHEME, SecurityScheme::ApiKey(ApiKey::Header(v)));
        }

        let info = InfoBuilder::new()
            .title(config.openapi.title.clone())
            .version(config.openapi.version.clone())
            .description(config.openapi.description.clone())
            .build();

        let mut doc = OpenApiBuilder::new()
            .info(info)
            .servers(Some(self.servers()))
            .paths(paths_builder.build())
            .components(Some(components.build()))
            .build();
        if !tags.is_empty() {
            doc.tags = Some(tags.into_iter().map(Tag::new).collect());
        }
        if self.options.aws {
            let mut ext = Extensions::default();
            if config.gateway.flavor == Flavor::Http {
                ext.insert(
                    "x-amazon-apigateway-importexport-version".into(),
                    json!("1.0"),
                );
            }
            if self.uses_api_key {
                ext.insert("x-amazon-apigateway-api-key-source".into(), json!("HEADER"));
            }
            let mut binary: Vec<&String> = config.gateway.binary_media_types.iter().collect();
            for r in &config.routes {
                for t in &r.binary_media_types {
                    if !binary.contains(&t) {
                        binary.push(t);
                        self.warnings.push(format!(
                            "route `{}`: API Gateway has no per-route binary media types; `{t}` is listed API-wide",
                            r.route_key()
                        ));
                    }
                }
            }
            if !binary.is_empty() {
                ext.insert(
                    "x-amazon-apigateway-binary-media-types".into(),
                    json!(binary),
                );
            }
            if !self.validators.is_empty() {
                let all = [
                    ("body", true, false),
                    ("params", false, true),
                    ("all", true, true),
                ];
                let v: serde_json::Map<String, Value> = all
                    .iter()
                    .filter(|(n, _, _)| self.validators.contains(n))
                    .map(|(n, b, p)| {
                        (
                            n.to_string(),
                            json!({"validateRequestBody": b, "validateRequestParameters": p}),
                        )
                    })
                    .collect();
                ext.insert(
                    "x-amazon-apigateway-request-validators".into(),
                    Value::Object(v),
                );
            }
            if let Some(cors) = &config.cors {
                let mut c = serde_json::Map::new();
                let list = |v: &Vec<String>| json!(v);
                if !cors.allow_origins.is_empty() {
                    c.insert("allowOrigins".into(), list(&cors.allow_origins));
                }
                if !cors.allow_methods.is_empty() {
                    c.insert("allowMethods".into(), list(&cors.allow_methods));
                }
                if !cors.allow_headers.is_empty() {
                    c.insert("allowHeaders".into(), list(&cors.allow_headers));
                }
                if !cors.expose_headers.is_empty() {
                    c.insert("exposeHeaders".into(), list(&cors.expose_headers));
                }
                if cors.allow_credentials {
                    c.insert("allowCredentials".into(), json!(true));
                }
                if let Some(d) = &cors.max_age {
                    c.insert("maxAge".into(), json!(d.as_secs()));
                }
                ext.insert("x-amazon-apigateway-cors".into(), Value::Object(c));
            }
            if !ext.is_empty() {
                doc.extensions = Some(ext);
            }
        }
        Ok(Generated {
            document: doc,
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    /// `/files/{proxy+}` → `/files/{proxy}` (API Gateway keeps the `+`).
    fn openapi_path(&self, route: &RouteConfig) -> String {
        if self.options.aws {
            return route.template.as_str().to_string();
        }
        let mut p = String::new();
        for s in route.template.segments() {
            p.push('/');
            match s {
                Segment::Literal(l) => p.push_str(l),
                Segment::Param(n) | Segment::Greedy(n) => {
                    p.push('{');
                    p.push_str(n);
                    p.push('}');
                }
            }
        }
        if p.is_empty() {
            p.push('/');
        }
        p
    }

    fn servers(&self) -> Vec<utoipa::openapi::Server> {
        let gw = &self.config.gateway;
        let host = match gw.listen.ip() {
            ip if ip.is_unspecified() => "localhost".to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        let base = format!("http://{host}:{}", gw.listen.port());
        let mut stages: Vec<&String> = match &self.options.stage {
            Some(s) => vec![s],
            None => {
                let mut v: Vec<&String> = vec![&gw.stage];
                v.extend(self.config.stages.keys().filter(|k| **k != gw.stage));
                v
            }
        };
        stages.dedup();
        stages
            .into_iter()
            .map(|s| {
                let url = if gw.stage_prefix {
                    format!("{base}/{s}")
                } else {
                    base.clone()
                };
                ServerBuilder::new()
                    .url(url)
                    .description(Some(format!("stage `{s}`")))
                    .build()
            })
            .collect()
    }

    fn operation_id(&mut self, route: &RouteConfig, method: &str) -> String {
        let base = match (
            &route.operation_id,
            route.method == "ANY" && method != "ANY",
        ) {
            (Some(id), false) => id.clone(),
            (Some(id), true) => format!("{id}_{}", method.to_ascii_lowercase()),
            (None, _) => default_operation_id(method, &route.template),
        };
        let mut id = base.clone();
        let mut n = 2;
        while !self.operation_ids.insert(id.clone()) {
            id = format!("{base}_{n}");
            n += 1;
        }
        id
    }

    fn operation(&mut self, route: &RouteConfig, method: &str) -> Result<Operation, GenerateError> {
        let config = self.config;
        let request = RequestSpec::of(config, route);
        let mut op = OperationBuilder::new()
            .operation_id(Some(self.operation_id(route, method)))
            .summary(route.summary.clone())
            .description(route.description.clone());
        if !route.tags.is_empty() {
            op = op.tags(Some(route.tags.clone()));
        }

        // Parameters: path, then required query/headers, then cache keys.
        for s in route.template.segments() {
            match s {
                Segment::Param(n) => {
                    op = op.parameter(
                        ParameterBuilder::new()
                            .name(n)
                            .parameter_in(ParameterIn::Path)
                            .required(Required::True)
                            .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
                    );
                }
                Segment::Greedy(n) => {
                    op = op.parameter(
                        ParameterBuilder::new()
                            .name(n)
                            .parameter_in(ParameterIn::Path)
                            .required(Required::True)
                            .description(Some(
                                "The rest of the path (greedy `{proxy+}`: may contain `/`).",
                            ))
                            .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
                    );
                }
                Segment::Literal(_) => {}
            }
        }
        let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
        let params = request
            .required_query
            .iter()
            .map(|q| (ParameterIn::Query, q.clone(), true))
            .chain(
                request
                    .required_headers
                    .iter()
                    .map(|h| (ParameterIn::Header, h.clone(), true)),
            )
            .chain(
                cache_key_params(route)
                    .into_iter()
                    .map(|(i, n)| (i, n, false)),
            );
        for (location, name, required) in params {
            let key = (
                match location {
                    ParameterIn::Header => "header".to_string(),
                    _ => "query".to_string(),
                },
                if matches!(location, ParameterIn::Header) {
                    name.to_ascii_lowercase()
                } else {
                    name.clone()
                },
            );
            if !seen.insert(key) {
                continue;
            }
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(location)
                    .required(if required {
                        Required::True
                    } else {
                        Required::False
                    })
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }

        if let Some(body) = &request.body_schema {
            let name = self.schema_component(body)?;
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(name)))
                            .build(),
                    )
                    .build(),
            ));
        }

        // Responses: the integration's, then the gateway's own.
        let (status, response) = match &route.integration {
            IntegrationConfig::Mock(m) => {
                let content_type = m
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    .map(|(_, v)| v.clone());
                let mut r =
                    ResponseBuilder::new().description("The route's static (mock) response.");
                let ct = content_type.clone().unwrap_or_else(|| "text/plain".into());
                let json_body = ct.contains("json");
                let schema: RefOr<Schema> = match &route.response_schema {
                    Some(file) => Ref::from_schema_name(self.schema_component(file)?).into(),
                    None if json_body => ObjectBuilder::new().into(),
                    None => ObjectBuilder::new().schema_type(Type::String).into(),
                };
                if !m.body.is_empty() || content_type.is_some() {
                    let example = if json_body {
                        serde_json::from_str(&m.body).ok()
                    } else {
                        Some(Value::String(m.body.clone()))
                    };
                    r = r.content(
                        ct,
                        ContentBuilder::new()
                            .schema(Some(schema))
                            .example(example)
                            .build(),
                    );
                }
                for k in m.headers.keys() {
                    if !k.eq_ignore_ascii_case("content-type") {
                        r = r.header(
                            k,
                            HeaderBuilder::new()
                                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                                .build(),
                        );
                    }
                }
                (m.status.to_string(), r.build())
            }
            IntegrationConfig::Function { function, .. } => {
                let r = ResponseBuilder::new()
                    .description(format!("The response of function `{function}`."));
                let r = self.success_content(route, r)?;
                ("200".to_string(), r.build())
            }
            IntegrationConfig::Http { backend } => {
                let r = ResponseBuilder::new()
                    .description(format!("The response of upstream `{backend}`."));
                let r = self.success_content(route, r)?;
                ("200".to_string(), r.build())
            }
        };
        // A non-proxy integration answers with its integration responses.
        let mut status = status;
        let mut response = response;
        let mut extra: Vec<(String, utoipa::openapi::Response)> = Vec::new();
        if let Some(mapping) = &route.mapping {
            for ir in &mapping.responses {
                let mut r = ResponseBuilder::new().description(match &ir.pattern {
                    None => "The integration's default response.".to_string(),
                    Some(p) => format!("When the function's error matches `{}`.", pattern_text(p)),
                });
                r = r.content(
                    ir.content_type.clone(),
                    ContentBuilder::new()
                        .schema(Some(if ir.content_type.contains("json") {
                            ObjectBuilder::new()
                        } else {
                            ObjectBuilder::new().schema_type(Type::String)
                        }))
                        .build(),
                );
                for (h, _) in &ir.headers {
                    r = r.header(
                        h,
                        HeaderBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                            .build(),
                    );
                }
                if ir.pattern.is_none() {
                    status = ir.status.to_string();
                    response = r.build();
                } else {
                    extra.push((ir.status.to_string(), r.build()));
                }
            }
        }
        for (code, r) in extra {
            if code != status {
                op = op.response(code, r);
            }
        }
        op = op.response(status.clone(), response);
        let secured = route.auth.is_some() || route.api_key;
        let invokes = !matches!(route.integration, IntegrationConfig::Mock(_));
        for (name, code, _) in GATEWAY_RESPONSES {
            let wanted = match code {
                400 => !request.is_empty(),
                401 | 403 => secured,
                502 | 504 => invokes,
                _ => true,
            };
            if wanted && *code.to_string() != status {
                op = op.response(
                    code.to_string(),
                    Ref::new(format!("#/components/responses/{name}")),
                );
            }
        }

        // Security: the route's authorizer and its API key must both pass.
        if secured {
            let mut req = SecurityRequirement::default();
            if let Some(a) = &route.auth {
                let scopes: Vec<String> = route.scopes.clone();
                req = req.add(a.clone(), scopes);
            }
            if route.api_key {
                self.uses_api_key = true;
                req = req.add(API_KEY_SCHEME, Vec::<String>::new());
            }
            op = op.security(req);
        }

        let mut op = op.build();
        if self.options.aws {
            let mut ext = Extensions::default();
            ext.insert(
                "x-amazon-apigateway-integration".into(),
                self.aws_integration(route, method),
            );
            let validator = match (request.body_schema.is_some(), request.validates_params()) {
                (true, true) => Some("all"),
                (true, false) => Some("body"),
                (false, true) => Some("params"),
                (false, false) => None,
            };
            if let Some(v) = validator {
                self.validators.insert(v);
                ext.insert("x-amazon-apigateway-request-validator".into(), json!(v));
            }
            op.extensions = Some(ext);
        }
        Ok(op)
    }

    /// The success response's media types: the route's `response` offers
    /// (templates render text), else JSON with the `response_schema`.
    fn success_content(
        &mut self,
        route: &RouteConfig,
        mut r: ResponseBuilder,
    ) -> Result<ResponseBuilder, GenerateError> {
        let json_schema: Option<RefOr<Schema>> = match &route.response_schema {
            Some(file) => Some(Ref::from_schema_name(self.schema_component(file)?).into()),
            None => None,
        };
        match &route.response {
            Some(offers) if !offers.offers.is_empty() => {
                for offer in &offers.offers {
                    let schema: RefOr<Schema> = match (&offer.template, &json_schema) {
                        (None, Some(s)) => s.clone(),
                        (None, None) => ObjectBuilder::new().into(),
                        (Some(_), _) => ObjectBuilder::new().schema_type(Type::String).into(),
                    };
                    r = r.content(
                        offer.media_type.clone(),
                        ContentBuilder::new().schema(Some(schema)).build(),
                    );
                }
            }
            _ => {
                if let Some(s) = json_schema {
                    r = r.content(
                        "application/json",
                        ContentBuilder::new().schema(Some(s)).build(),
                    );
                }
            }
        }
        Ok(r)
    }

    /// Loads a schema file once and registers it as a component.
    fn schema_component(&mut self, path: &Path) -> Result<String, GenerateError> {
        if let Some(name) = self.schema_names.get(path) {
            return Ok(name.clone());
        }
        let text = std::fs::read_to_string(path).map_err(|e| GenerateError::Schema {
            path: path.to_path_buf(),
            message: format!("cannot read the schema: {e}"),
        })?;
        let mut value: Value = serde_json::from_str(&text).map_err(|e| GenerateError::Schema {
            path: path.to_path_buf(),
            message: format!("not JSON: {e}"),
        })?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("Schema")
            .to_string();
        let name = self.unique_schema_name(&component_name(&stem), &value);
        self.schema_names.insert(path.to_path_buf(), name.clone());

        // `$defs` become components of their own, and refs follow them.
        let mut renames: BTreeMap<String, String> = BTreeMap::new();
        let defs = value
            .as_object_mut()
            .and_then(|o| o.remove("$defs").or_else(|| o.remove("definitions")));
        let mut def_values = Vec::new();
        if let Some(Value::Object(defs)) = defs {
            for (def, mut v) in defs {
                rewrite_refs(&mut v, &BTreeMap::new());
                let n = self.unique_schema_name(&component_name(&def), &v);
                renames.insert(def.clone(), n.clone());
                def_values.push((n, v));
            }
        }
        for (n, mut v) in def_values {
            rewrite_refs(&mut v, &renames);
            let s = self.convert_schema(&v, &format!("{} ($defs/{n})", path.display()));
            self.schemas.insert(n, s);
        }
        rewrite_refs(&mut value, &renames);
        if let Some(o) = value.as_object_mut() {
            o.remove("$schema");
            o.remove("$id");
        }
        let s = self.convert_schema(&value, &path.display().to_string());
        self.schemas.insert(name.clone(), s);
        Ok(name)
    }

    /// A name not yet used by a different schema (equal schemas share one).
    fn unique_schema_name(&self, base: &str, value: &Value) -> String {
        let normal = |v: &Value| {
            serde_json::from_value::<RefOr<Schema>>(v.clone())
                .ok()
                .and_then(|s| serde_json::to_value(s).ok())
        };
        let wanted = normal(value);
        let mut name = base.to_string();
        let mut n = 2;
        loop {
            match self.schemas.get(&name) {
                None if name != ERROR_SCHEMA => return name,
                Some(existing)
                    if wanted.is_some() && serde_json::to_value(existing).ok() == wanted =>
                {
                    return name;
                }
                _ => {
                    name = format!("{base}{n}");
                    n += 1;
                }
            }
        }
    }

    /// JSON Schema → utoipa's `Schema`; keywords utoipa cannot carry are
    /// reported.
    fn convert_schema(&mut self, value: &Value, what: &str) -> RefOr<Schema> {
        match serde_json::from_value::<RefOr<Schema>>(value.clone()) {
            Ok(s) => {
                let back = serde_json::to_value(&s).unwrap_or(Value::Null);
                let mut lost = Vec::new();
                lost_keywords(value, &back, "", &mut lost);
                if !lost.is_empty() {
                    self.warnings.push(format!(
                        "schema {what}: OpenAPI output drops {}",
                        lost.join(", ")
                    ));
                }
                s
            }
            Err(e) => {
                self.warnings.push(format!(
                    "schema {what} cannot be expressed ({e}); documented as any value"
                ));
                RefOr::T(Schema::Object(ObjectBuilder::new().build()))
            }
        }
    }

    fn security_scheme(&mut self, auth: &AuthConfig) -> SecurityScheme {
        let aws = self.options.aws;
        let rest = self.config.gateway.flavor == Flavor::Rest;
        match auth.kind {
            AuthKind::Jwt => {
                let mut ext = Extensions::default();
                if aws {
                    let source = auth
                        .identity_sources
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "$request.header.Authorization".into());
                    ext.insert(
                        "x-amazon-apigateway-authorizer".into(),
                        json!({
                            "type": "jwt",
                            "identitySource": source,
                            "jwtConfiguration": {
                                "issuer": auth.issuer,
                                "audience": auth.audience,
                            },
                        }),
                    );
                    if rest {
                        self.warnings.push(format!(
                            "authorizer `{}`: REST APIs have no JWT authorizer; API Gateway needs an HTTP API (flavor = \"http\") or a Cognito/Lambda authorizer",
                            auth.name
                        ));
                    }
                }
                if auth.jwks_url.is_none()
                    && auth.secret_env.is_none()
                    && auth.secret_file.is_none()
                    && let Some(issuer) = &auth.issuer
                    && !aws
                {
                    return SecurityScheme::OpenIdConnect(OpenIdConnect::new(format!(
                        "{}/.well-known/openid-configuration",
                        issuer.trim_end_matches('/')
                    )));
                }
                let mut h = HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(auth.issuer.as_ref().map(|i| format!("A JWT issued by {i}")))
                    .build();
                if !ext.is_empty() {
                    h.extensions = Some(ext);
                }
                SecurityScheme::Http(h)
            }
            AuthKind::ApiKey => {
                let header = auth.header.clone().unwrap_or_else(|| "x-api-key".into());
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    header,
                    "An API key issued by the gateway.".to_string(),
                )))
            }
            AuthKind::Sigv4 => {
                let mut v = ApiKeyValue::with_description(
                    "Authorization".to_string(),
                    format!(
                        "AWS Signature Version 4 (service `{}`).",
                        auth.service.as_deref().unwrap_or("execute-api")
                    ),
                );
                v.extensions = Some(Extensions::from_iter([(
                    "x-amazon-apigateway-authtype",
                    json!("awsSigv4"),
                )]));
                SecurityScheme::ApiKey(ApiKey::Header(v))
            }
            AuthKind::Lambda => {
                let source = auth
                    .identity_sources
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "$request.header.Authorization".into());
                let (location, name) = identity_source_location(&source);
                let mut v = ApiKeyValue::with_description(
                    name,
                    format!(
                        "Checked by the Lambda authorizer `{}`.",
                        auth.function.as_deref().unwrap_or("?")
                    ),
                );
                if aws {
                    let function = auth.function.as_deref().unwrap_or_default();
                    let function_name = self
                        .config
                        .functions
                        .get(function)
                        .map_or(function, |f| f.name.as_str());
                    let kind = auth.authorizer_type.as_deref().unwrap_or("request");
                    let sources: Vec<String> = auth
                        .identity_sources
                        .iter()
                        .map(|s| aws_identity_source(s, rest))
                        .collect();
                    let mut a = serde_json::Map::new();
                    a.insert("type".into(), json!(kind));
                    a.insert(
                        "authorizerUri".into(),
                        json!(self.lambda_uri(function_name)),
                    );
                    a.insert(
                        "authorizerResultTtlInSeconds".into(),
                        json!(auth.ttl.as_secs()),
                    );
                    if !sources.is_empty() {
                        a.insert(
                            "identitySource".into(),
                            if rest {
                                json!(sources.join(", "))
                            } else {
                                json!(sources)
                            },
                        );
                    }
                    if !rest {
                        a.insert(
                            "authorizerPayloadFormatVersion".into(),
                            json!(auth.payload_version.map_or("2.0", |p| p.as_str())),
                        );
                        a.insert(
                            "enableSimpleResponses".into(),
                            json!(auth.response.as_deref() == Some("simple")),
                        );
                    }
                    v.extensions = Some(Extensions::from_iter([
                        ("x-amazon-apigateway-authtype", json!("custom")),
                        ("x-amazon-apigateway-authorizer", Value::Object(a)),
                    ]));
                }
                SecurityScheme::ApiKey(match location {
                    "query" => ApiKey::Query(v),
                    _ => ApiKey::Header(v),
                })
            }
        }
    }

    /// The API Gateway URI that invokes a Lambda function.
    fn lambda_uri(&self, function_name: &str) -> String {
        let gw = &self.config.gateway;
        format!(
            "arn:aws:apigateway:{r}:lambda:path/2015-03-31/functions/arn:aws:lambda:{r}:{a}:function:{function_name}/invocations",
            r = gw.region,
            a = gw.account_id
        )
    }

    fn aws_integration(&mut self, route: &RouteConfig, method: &str) -> Value {
        let config = self.config;
        let mut i = serde_json::Map::new();
        match &route.integration {
            IntegrationConfig::Function { function, backend } => {
                let name = config
                    .functions
                    .get(function)
                    .map_or(function.as_str(), |f| f.name.as_str());
                i.insert("httpMethod".into(), json!("POST"));
                i.insert("uri".into(), json!(self.lambda_uri(name)));
                i.insert("passthroughBehavior".into(), json!("when_no_match"));
                if let Some(mapping) = &route.mapping {
                    // Non-proxy: statuses and selection patterns carry over;
                    // the templates are minijinja, not VTL.
                    i.insert("type".into(), json!("aws"));
                    let responses: serde_json::Map<String, Value> = mapping
                        .responses
                        .iter()
                        .map(|r| {
                            (
                                r.pattern
                                    .as_ref()
                                    .map_or("default".to_string(), |p| pattern_text(p).to_string()),
                                json!({ "statusCode": r.status.to_string() }),
                            )
                        })
                        .collect();
                    if !responses.is_empty() {
                        i.insert("responses".into(), Value::Object(responses));
                    }
                    self.warnings.push(format!(
                        "route `{}`: its mapping templates are minijinja, not VTL; add requestTemplates/responseTemplates by hand for API Gateway (docs/mapping-templates.md)",
                        route.route_key()
                    ));
                } else {
                    i.insert("type".into(), json!("aws_proxy"));
                    i.insert(
                        "payloadFormatVersion".into(),
                        json!(route.payload_version.as_str()),
                    );
                }
                if backend.is_some() {
                    self.warnings.push(format!(
                        "route `{}`: its `backend` pin has no API Gateway equivalent",
                        route.route_key()
                    ));
                }
            }
            IntegrationConfig::Http { backend } => {
                let base = match config.backends.get(backend) {
                    Some(crate::config::BackendConfig::Http { url, .. }) => {
                        url.trim_end_matches('/').to_string()
                    }
                    _ => String::new(),
                };
                let uri = match route.template.greedy_param() {
                    Some(p) => format!("{base}/{{{p}}}"),
                    None => format!("{base}{}", route.template.as_str()),
                };
                i.insert("type".into(), json!("http_proxy"));
                i.insert("httpMethod".into(), json!(method));
                i.insert("uri".into(), json!(uri));
                i.insert("payloadFormatVersion".into(), json!("1.0"));
                if config.gateway.flavor == Flavor::Rest {
                    let params: serde_json::Map<String, Value> = route
                        .template
                        .param_names()
                        .map(|p| {
                            (
                                format!("integration.request.path.{p}"),
                                json!(format!("method.request.path.{p}")),
                            )
                        })
                        .collect();
                    if !params.is_empty() {
                        i.insert("requestParameters".into(), Value::Object(params));
                    }
                }
            }
            IntegrationConfig::Mock(m) => {
                let content_type = m
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    .map_or("application/json", |(_, v)| v.as_str());
                let params: serde_json::Map<String, Value> = m
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            format!("method.response.header.{k}"),
                            json!(format!("'{}'", v.replace('\'', "\\'"))),
                        )
                    })
                    .collect();
                let mut default = serde_json::Map::new();
                default.insert("statusCode".into(), json!(m.status.to_string()));
                if !params.is_empty() {
                    default.insert("responseParameters".into(), Value::Object(params));
                }
                default.insert("responseTemplates".into(), json!({ content_type: m.body }));
                i.insert("type".into(), json!("mock"));
                i.insert(
                    "requestTemplates".into(),
                    json!({"application/json": format!("{{\"statusCode\": {}}}", m.status)}),
                );
                i.insert("responses".into(), json!({ "default": default }));
                if config.gateway.flavor == Flavor::Http {
                    self.warnings.push(format!(
                        "route `{}`: HTTP APIs have no mock integration; API Gateway imports it only into a REST API",
                        route.route_key()
                    ));
                }
            }
        }
        if let Some(t) = route.timeout {
            i.insert("timeoutInMillis".into(), json!(t.as_millis() as u64));
        }
        Value::Object(i)
    }
}

/// `get_items_by_id` for `GET /items/{id}`: the operationId of a route
/// that sets none.
pub fn default_operation_id(method: &str, template: &crate::routing::RouteTemplate) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    };
    let mut id = method.to_ascii_lowercase();
    for s in template.segments() {
        id.push('_');
        match s {
            Segment::Literal(l) => id.push_str(&clean(l)),
            Segment::Param(n) | Segment::Greedy(n) => {
                id.push_str("by_");
                id.push_str(&clean(n));
            }
        }
    }
    if template.segments().is_empty() {
        id.push_str(if template.is_default() {
            "_default"
        } else {
            "_root"
        });
    }
    id
}

/// A selection pattern as written, without the anchors the gateway adds.
fn pattern_text(p: &regex::Regex) -> &str {
    let s = p.as_str();
    s.strip_prefix("^(?:")
        .and_then(|r| r.strip_suffix(")$"))
        .unwrap_or(s)
}

/// `$request.header.Authorization` → ("header", "Authorization").
fn identity_source_location(source: &str) -> (&'static str, String) {
    let s = source
        .trim_start_matches("$request.")
        .trim_start_matches("method.request.");
    if let Some(h) = s.strip_prefix("header.") {
        ("header", h.to_string())
    } else if let Some(q) = s.strip_prefix("querystring.") {
        ("query", q.to_string())
    } else {
        ("header", "Authorization".to_string())
    }
}

/// `$request.header.X` in REST's spelling, `method.request.header.X`.
fn aws_identity_source(source: &str, rest: bool) -> String {
    match (rest, source.strip_prefix("$request.")) {
        (true, Some(rest_part)) => format!("method.request.{rest_part}"),
        _ => source.to_string(),
    }
}

fn set_operation(item: &mut PathItem, method: &str, op: Operation) {
    let slot = match method {
        "GET" => &mut item.get,
        "POST" => &mut item.post,
        "PUT" => &mut item.put,
        "PATCH" => &mut item.patch,
        "DELETE" => &mut item.delete,
        "HEAD" => &mut item.head,
        "OPTIONS" => &mut item.options,
        _ => &mut item.trace,
    };
    *slot = Some(op);
}

fn extend(ext: &mut Option<Extensions>, key: &str, value: Value) {
    ext.get_or_insert_with(Extensions::default)
        .insert(key.to_string(), value);
}

/// A component name from a file stem or `$defs` key.
fn component_name(s: &str) -> String {
    let n: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if n.is_empty() { "Schema".into() } else { n }
}

/// `#/$defs/X` (or `#/definitions/X`) → `#/components/schemas/<renamed X>`.
fn rewrite_refs(v: &mut Value, renames: &BTreeMap<String, String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref") {
                let def = r
                    .strip_prefix("#/$defs/")
                    .or_else(|| r.strip_prefix("#/definitions/"));
                if let Some(def) = def {
                    let target = renames.get(def).cloned().unwrap_or_else(|| def.to_string());
                    *r = format!("#/components/schemas/{target}");
                }
            }
            for (_, child) in o.iter_mut() {
                rewrite_refs(child, renames);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rewrite_refs(c, renames)),
        _ => {}
    }
}

/// Keywords present in `original` and missing from `back`, as JSON pointers.
fn lost_keywords(original: &Value, back: &Value, at: &str, lost: &mut Vec<String>) {
    match (original, back) {
        (Value::Object(o), Value::Object(b)) => {
            for (k, v) in o {
                let here = format!("{at}/{k}");
                match b.get(k) {
                    None => lost.push(format!("`{here}`")),
                    Some(bv) => lost_keywords(v, bv, &here, lost),
                }
            }
        }
        (Value::Array(o), Value::Array(b)) => {
            for (i, (ov, bv)) in o.iter().zip(b).enumerate() {
                lost_keywords(ov, bv, &format!("{at}/{i}"), lost);
            }
        }
        _ => {}
    }
}

/// Keys sorted at every level, so the output is the same on every run.
pub fn canonical(doc: &OpenApi) -> Value {
    fn sort(v: Value) -> Value {
        match v {
            Value::Object(o) => {
                let sorted: BTreeMap<String, Value> =
                    o.into_iter().map(|(k, v)| (k, sort(v))).collect();
                Value::Object(sorted.into_iter().collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(sort).collect()),
            other => other,
        }
    }
    sort(serde_json::to_value(doc).unwrap_or(Value::Null))
}

/// Pretty JSON with a final newline.
pub fn to_json(doc: &OpenApi) -> String {
    let mut s = serde_json::to_string_pretty(&canonical(doc)).unwrap_or_default();
    s.push('\n');
    s
}

pub fn to_yaml(doc: &OpenApi) -> Result<String, String> {
    yaml_serde::to_string(&canonical(doc)).map_err(|e| e.to_string())
}
