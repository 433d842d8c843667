//! routes.toml → an OpenAPI 3.1 document, built with `utoipa`'s OpenAPI
//! types. Runs at start-up (the served spec) and in `lambdagate openapi`;
//! never per request. With `aws` the document also carries the
//! `x-amazon-apigateway-*` extensions API Gateway needs to import it.
//!
//! What cannot be described is reported in [`Generated::warnings`], never
//! dropped silently.

mod aws;
mod paths;
mod responses;
mod schemas;
mod security;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::Value;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::PathItem;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::server::ServerBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder,
    PathsBuilder, Ref, RefOr, ResponseBuilder, Schema, Tag, Type,
};

use crate::config::Config;

use paths::set_operation;
pub use paths::{RequestSpec, default_operation_id};
pub use responses::default_description;

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

        let components = self.components();

        let info = InfoBuilder::new()
            .title(config.openapi.title.clone())
            .version(config.openapi.version.clone())
            .description(config.openapi.description.clone())
            .build();

        let mut doc = OpenApiBuilder::new()
            .info(info)
            .servers(Some(self.servers()))
            .paths(paths_builder.build())
            .components(Some(components))
            .build();
        if !tags.is_empty() {
            doc.tags = Some(tags.into_iter().map(Tag::new).collect());
        }
        if self.options.aws {
            let ext = self.document_extensions();
            if !ext.is_empty() {
                doc.extensions = Some(ext);
            }
        }
        Ok(Generated {
            document: doc,
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    /// Shared schemas, the gateway's error responses and the security
    /// schemes.
    fn components(&mut self) -> utoipa::openapi::Components {
        let config = self.config;
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
                .property(
                    "errors",
                    utoipa::openapi::ArrayBuilder::new()
                        .items(ObjectBuilder::new().schema_type(Type::String))
                        .description(Some(
                            "Request validation: up to five problems, each prefixed with the JSON pointer of the value.",
                        )),
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
                for (h, d) in [
                    ("Retry-After", "Seconds to wait before retrying."),
                    (
                        "RateLimit-Limit",
                        "The burst of the most restrictive throttle (throttled routes).",
                    ),
                    (
                        "RateLimit-Remaining",
                        "Requests left in that throttle's bucket (throttled routes).",
                    ),
                    (
                        "RateLimit-Reset",
                        "Seconds until that bucket is full again (throttled routes).",
                    ),
                ] {
                    r = r.header(
                        h,
                        HeaderBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                            .description(Some(d))
                            .build(),
                    );
                }
            }
            components = components.response(*name, r.build());
        }
        for (name, auth) in &config.auth {
            let scheme = self.security_scheme(auth);
            components = components.security_scheme(name, scheme);
        }
        if self.uses_api_key {
            let v = ApiKeyValue::with_description(
                config.api_keys.header.clone(),
                match config.api_keys.source {
                    crate::config::ApiKeySource::Header => {
                        "An API key issued by the gateway (`lambdagate keys`).".to_string()
                    }
                    crate::config::ApiKeySource::Authorizer => {
                        "An API key issued by the gateway (`lambdagate keys`); the Lambda authorizer returns it as `usageIdentifierKey`.".to_string()
                    }
                },
            );
            components = components
                .security_scheme(API_KEY_SCHEME, SecurityScheme::ApiKey(ApiKey::Header(v)));
        }
        components.build()
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
}

fn extend(ext: &mut Option<Extensions>, key: &str, value: Value) {
    ext.get_or_insert_with(Extensions::default)
        .insert(key.to_string(), value);
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
