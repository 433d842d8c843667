//! API Gateway OpenAPI/Swagger export (REST or HTTP API, JSON or YAML, or a
//! SAM/CloudFormation template holding one) → routes.toml and the JSON
//! Schema files it names. Runs in `lambdagate import`, never in the gateway.
//!
//! Everything the export says that routes.toml cannot express is listed in
//! [`Imported::warnings`]; nothing is dropped silently. The output of
//! `import → openapi --aws → import` is byte-identical to the first import.

mod auth;
mod integration;
mod out;
mod responses;
mod routes;
mod schemas;
mod source;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use out::{OutApiKeys, OutBackend, OutConfig, OutCors, OutStage};
use routes::METHODS;
use source::api_documents;
pub use source::load_document;

/// The result of an import: the routes file, the schema files it names
/// (relative path, contents) and what could not be carried over.
#[derive(Debug)]
pub struct Imported {
    pub routes_toml: String,
    pub files: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not JSON or YAML: {0}")]
    Parse(String),
    #[error("no OpenAPI or Swagger document found (no `paths`)")]
    NoDocument,
    #[error("cannot write the routes file: {0}")]
    Write(String),
}

struct Importer {
    out: OutConfig,
    warnings: Vec<String>,
    files: BTreeMap<String, String>,
    rest: bool,
    region: Option<String>,
    account: Option<String>,
    upstreams: BTreeMap<String, String>,
    route_keys: BTreeSet<String>,
}

/// Converts an export (its text) into routes.toml and schema files.
pub fn import(text: &str) -> Result<Imported, ImportError> {
    let doc = load_document(text)?;
    let mut warnings = Vec::new();
    let apis = api_documents(&doc, &mut warnings);
    if apis.is_empty() {
        return Err(ImportError::NoDocument);
    }
    let http = apis
        .iter()
        .any(|(_, d)| d.get("x-amazon-apigateway-importexport-version").is_some());
    let mut im = Importer {
        out: OutConfig::default(),
        warnings,
        files: BTreeMap::new(),
        rest: !http,
        region: None,
        account: None,
        upstreams: BTreeMap::new(),
        route_keys: BTreeSet::new(),
    };
    im.out.gateway.flavor = if http { "http" } else { "rest" }.into();
    for (i, (_, api)) in apis.iter().enumerate() {
        im.api(api, i == 0);
    }
    im.finish()
}

impl Importer {
    fn warn(&mut self, w: String) {
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    fn api(&mut self, api: &Value, first: bool) {
        let info = api.get("info");
        if first {
            self.out.openapi.title = info
                .and_then(|i| i.get("title"))
                .and_then(|t| t.as_str())
                .unwrap_or("Imported API")
                .to_string();
            self.out.openapi.version = info
                .and_then(|i| i.get("version"))
                .and_then(|t| t.as_str())
                .map_or_else(|| "1.0.0".to_string(), str::to_string);
            self.out.openapi.description = info
                .and_then(|i| i.get("description"))
                .and_then(|t| t.as_str())
                .map(str::to_string);
            self.stages(api);
        }

        // API-wide extensions.
        if let Some(obj) = api.as_object() {
            for (k, v) in obj {
                match k.as_str() {
                    "x-amazon-apigateway-binary-media-types" => {
                        for t in v
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|t| t.as_str())
                        {
                            let t = t.replace("~1", "/");
                            if !self.out.gateway.binary_media_types.contains(&t) {
                                self.out.gateway.binary_media_types.push(t);
                            }
                        }
                    }
                    "x-amazon-apigateway-cors" => self.cors(v),
                    "x-amazon-apigateway-api-key-source" => {
                        match v.as_str().map(str::to_ascii_uppercase).as_deref() {
                            Some("HEADER") => {}
                            Some("AUTHORIZER") => {
                                self.out.api_keys = Some(OutApiKeys {
                                    source: "authorizer".into(),
                                });
                            }
                            _ => self.warn(format!(
                                "x-amazon-apigateway-api-key-source {v} is not HEADER or AUTHORIZER; not imported"
                            )),
                        }
                    }
                    "x-amazon-apigateway-importexport-version"
                    | "x-amazon-apigateway-request-validators"
                    | "x-amazon-apigateway-request-validator" => {}
                    other if other.starts_with("x-amazon-apigateway-") => {
                        self.warn(format!("`{other}` is not supported and was not imported"));
                    }
                    "swagger" | "openapi" | "basePath" | "servers" | "paths" | "definitions"
                    | "components" | "securityDefinitions" | "security" | "consumes"
                    | "produces" => {}
                    "info" => {
                        for f in v.as_object().into_iter().flat_map(|i| i.keys()) {
                            if !["title", "version", "description"].contains(&f.as_str()) {
                                self.warn(format!("`info.{f}` was not imported"));
                            }
                        }
                    }
                    "host" | "schemes" => self.warn(format!(
                        "`{k}` ({v}) was not imported: the gateway serves where [gateway] listen (and tls) say"
                    )),
                    "tags" => {
                        let described = v
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|t| t.as_object().is_some_and(|t| t.len() > 1));
                        if described {
                            self.warn(
                                "tag descriptions were not imported; routes keep their tag names"
                                    .to_string(),
                            );
                        }
                    }
                    other => self.warn(format!("`{other}` was not imported")),
                }
            }
        }

        // Security schemes → [auth.*].
        let schemes = api
            .pointer("/components/securitySchemes")
            .or_else(|| api.get("securityDefinitions"))
            .and_then(|s| s.as_object())
            .cloned()
            .unwrap_or_default();
        for (name, scheme) in &schemes {
            self.security_scheme(name, scheme);
        }

        let validators = api
            .get("x-amazon-apigateway-request-validators")
            .and_then(|v| v.as_object())
            .cloned()
            .unwrap_or_default();
        let default_validator = api
            .get("x-amazon-apigateway-request-validator")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let top_security = api.get("security").cloned();

        let Some(paths) = api.get("paths").and_then(|p| p.as_object()) else {
            return;
        };
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            let route_path = if path == "/$default" || path == "$default" {
                "$default".to_string()
            } else {
                path.clone()
            };
            for (key, op) in item {
                let method = if key == "x-amazon-apigateway-any-method" {
                    "ANY".to_string()
                } else if METHODS.contains(&key.as_str()) {
                    key.to_ascii_uppercase()
                } else {
                    if key.starts_with("x-amazon-apigateway-") {
                        self.warn(format!(
                            "path `{path}`: `{key}` is not supported and was not imported"
                        ));
                    } else if key != "parameters" && key != "summary" && key != "description" {
                        self.warn(format!("path `{path}`: `{key}` was not imported"));
                    }
                    continue;
                };
                let ctx = OpContext {
                    api,
                    path_item: item,
                    schemes: &schemes,
                    validators: &validators,
                    default_validator: default_validator.as_deref(),
                    top_security: top_security.as_ref(),
                };
                self.operation(&ctx, &method, &route_path, op);
            }
        }
    }

    fn stages(&mut self, api: &Value) {
        let mut names: Vec<String> = Vec::new();
        if let Some(base) = api.get("basePath").and_then(|b| b.as_str()) {
            names.push(base.trim_matches('/').to_string());
        }
        for s in api
            .get("servers")
            .and_then(|s| s.as_array())
            .into_iter()
            .flatten()
        {
            let from_var = s
                .pointer("/variables/basePath/default")
                .and_then(|b| b.as_str())
                .map(|b| b.trim_matches('/').to_string());
            let from_url = s.get("url").and_then(|u| u.as_str()).map(|u| {
                let after_scheme = u.split_once("://").map_or(u, |(_, r)| r);
                after_scheme
                    .split_once('/')
                    .map(|(_, p)| p.trim_matches('/').to_string())
                    .unwrap_or_default()
            });
            if let Some(n) = from_var.or(from_url) {
                names.push(n);
            }
        }
        let mut stages: Vec<String> = Vec::new();
        for n in names {
            let n: String = n
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            if !n.is_empty() && !n.contains('{') && !stages.contains(&n) {
                stages.push(n);
            }
        }
        if stages.is_empty() {
            stages.push("dev".into());
        }
        self.out.gateway.stage = stages[0].clone();
        for s in stages {
            self.out.stages.insert(s, OutStage::default());
        }
    }

    fn cors(&mut self, v: &Value) {
        let list = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(|a| a.as_array())
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        self.out.cors = Some(OutCors {
            allow_origins: list("allowOrigins"),
            allow_methods: list("allowMethods"),
            allow_headers: list("allowHeaders"),
            expose_headers: list("exposeHeaders"),
            allow_credentials: v.get("allowCredentials").and_then(|b| b.as_bool()),
            max_age: v
                .get("maxAge")
                .and_then(|m| m.as_u64())
                .map(|s| format!("{s}s")),
        });
    }

    fn finish(mut self) -> Result<Imported, ImportError> {
        // Path order, whatever order the export's APIs came in.
        self.out.routes.sort_by(|a, b| a.path.cmp(&b.path));
        if self.region.is_none() && !self.out.functions.is_empty() {
            self.warn(
                "no AWS region found in the export's ARNs; us-east-1 is written to [gateway] region"
                    .to_string(),
            );
        }
        self.out.gateway.region = self.region.clone().unwrap_or_else(|| "us-east-1".into());
        self.out.gateway.account_id = self
            .account
            .clone()
            .unwrap_or_else(|| "123456789012".into());
        if !self.out.functions.is_empty() {
            self.out.backends.insert(
                "aws".into(),
                OutBackend {
                    kind: "lambda".into(),
                    region: Some(self.out.gateway.region.clone()),
                    url: None,
                },
            );
            for s in self.out.stages.values_mut() {
                s.backend = Some("aws".into());
            }
        }
        let body = toml::to_string(&self.out).map_err(|e| ImportError::Write(e.to_string()))?;
        let routes_toml = format!(
            "# Imported from an API Gateway export by `lambdagate import`.\n# Functions run on the `aws` (Lambda) backend; add a `local` backend and\n# `command`s to run them on this machine.\n\n{body}"
        );
        Ok(Imported {
            routes_toml,
            files: self.files.into_iter().collect(),
            warnings: self.warnings,
        })
    }
}

struct OpContext<'a> {
    api: &'a Value,
    /// The path item: its parameters, summary and description.
    path_item: &'a Map<String, Value>,
    schemes: &'a Map<String, Value>,
    validators: &'a Map<String, Value>,
    default_validator: Option<&'a str>,
    top_security: Option<&'a Value>,
}

pub(super) fn str_field(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(|s| s.as_str()).map(str::to_string)
}
