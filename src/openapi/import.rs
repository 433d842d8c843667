//! API Gateway OpenAPI/Swagger export (REST or HTTP API, JSON or YAML, or a
//! SAM/CloudFormation template holding one) → routes.toml and the JSON
//! Schema files it names. Runs in `lambdagate import`, never in the gateway.
//!
//! Everything the export says that routes.toml cannot express is listed in
//! [`Imported::warnings`]; nothing is dropped silently. The output of
//! `import → openapi --aws → import` is byte-identical to the first import.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::openapi::generate::{GATEWAY_RESPONSES, default_operation_id};
use crate::routing::RouteTemplate;

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

/// Reads JSON or YAML. CloudFormation short-form tags are tolerated:
/// `!Sub "x"` is its string, `!Ref X` is `${X}`, `!GetAtt X.Arn` is `${X.Arn}`.
pub fn load_document(text: &str) -> Result<Value, ImportError> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    let y: yaml_serde::Value =
        yaml_serde::from_str(text).map_err(|e| ImportError::Parse(e.to_string()))?;
    Ok(yaml_to_json(y))
}

fn yaml_to_json(v: yaml_serde::Value) -> Value {
    use yaml_serde::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(s) => Value::Array(s.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match yaml_to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let inner = yaml_to_json(t.value);
            match (tag.as_str(), inner) {
                ("!Ref", Value::String(s)) => Value::String(format!("${{{s}}}")),
                ("!GetAtt", Value::String(s)) => Value::String(format!("${{{s}}}")),
                ("!GetAtt", Value::Array(parts)) => Value::String(format!(
                    "${{{}}}",
                    parts
                        .iter()
                        .filter_map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(".")
                )),
                // `!Sub [template, {vars}]`: the template.
                ("!Sub", Value::Array(mut parts)) if !parts.is_empty() => parts.swap_remove(0),
                (_, inner) => inner,
            }
        }
    }
}

/// The API documents in `doc`: itself, or the `Body`/`DefinitionBody` of
/// each API resource of a CloudFormation/SAM template.
fn api_documents(doc: &Value, warnings: &mut Vec<String>) -> Vec<(String, Value)> {
    if doc.get("paths").is_some() {
        return vec![(String::new(), doc.clone())];
    }
    let mut out = Vec::new();
    if let Some(resources) = doc.get("Resources").and_then(|r| r.as_object()) {
        for (name, r) in resources {
            let props = r.get("Properties");
            let body = props
                .and_then(|p| p.get("Body").or_else(|| p.get("DefinitionBody")))
                .filter(|b| b.get("paths").is_some());
            if let Some(b) = body {
                out.push((name.clone(), b.clone()));
            }
        }
    }
    if out.len() > 1 {
        warnings.push(format!(
            "the template holds {} APIs ({}); their routes are merged into one routes file",
            out.len(),
            out.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

// ---- routes.toml shapes written by the importer ----

#[derive(Serialize, Default)]
struct OutConfig {
    gateway: OutGateway,
    openapi: OutOpenApi,
    stages: BTreeMap<String, OutStage>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    backends: BTreeMap<String, OutBackend>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    functions: BTreeMap<String, OutFunction>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    auth: BTreeMap<String, OutAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cors: Option<OutCors>,
    routes: Vec<OutRoute>,
}

#[derive(Serialize, Default)]
struct OutGateway {
    flavor: String,
    stage: String,
    region: String,
    account_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    binary_media_types: Vec<String>,
}

#[derive(Serialize, Default)]
struct OutOpenApi {
    title: String,
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

#[derive(Serialize, Default)]
struct OutStage {
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<String>,
}

#[derive(Serialize)]
struct OutBackend {
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

#[derive(Serialize, Default)]
struct OutFunction {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Serialize, Default)]
struct OutAuth {
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    audience: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    authorizer_type: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    identity_sources: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<String>,
}

#[derive(Serialize, Default)]
struct OutCors {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allow_origins: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allow_methods: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allow_headers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    expose_headers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allow_credentials: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_age: Option<String>,
}

#[derive(Serialize, Default)]
struct OutRoute {
    method: String,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    function: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<OutRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mock: Option<OutMock>,
}

#[derive(Serialize, Default)]
struct OutRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    body_schema: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    required_query: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    required_headers: Vec<String>,
}

#[derive(Serialize, Default)]
struct OutMock {
    status: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    body: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
}

/// Integration and authorizer fields the importer understands; anything
/// else is reported.
const KNOWN_INTEGRATION_KEYS: &[&str] = &[
    "type",
    "uri",
    "httpMethod",
    "payloadFormatVersion",
    "passthroughBehavior",
    "timeoutInMillis",
    "requestParameters",
    "requestTemplates",
    "responses",
    "connectionType",
];
const OPERATION_KEYS: &[&str] = &[
    "operationId",
    "summary",
    "description",
    "tags",
    "parameters",
    "requestBody",
    "responses",
    "security",
    "consumes",
    "produces",
    "isDefaultRoute",
    "x-amazon-apigateway-integration",
    "x-amazon-apigateway-request-validator",
];
const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

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
                    "x-amazon-apigateway-api-key-source"
                        if v.as_str()
                            .is_some_and(|s| !s.eq_ignore_ascii_case("HEADER")) =>
                    {
                        self.warn(format!(
                            "x-amazon-apigateway-api-key-source `{}`: API keys from a Lambda authorizer's usageIdentifierKey are not supported; keys are read from the x-api-key header",
                            v.as_str().unwrap_or_default()
                        ));
                    }
                    "x-amazon-apigateway-api-key-source" => {}
                    "x-amazon-apigateway-importexport-version"
                    | "x-amazon-apigateway-request-validators"
                    | "x-amazon-apigateway-request-validator" => {}
                    other if other.starts_with("x-amazon-apigateway-") => {
                        self.warn(format!("`{other}` is not supported and was not imported"));
                    }
                    _ => {}
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

    /// Records the region and account of an ARN; the first one wins.
    fn note_arn(&mut self, region: &str, account: Option<&str>) {
        if self.region.is_none() && !region.is_empty() && !region.contains('$') {
            self.region = Some(region.to_string());
        }
        if let Some(a) = account
            && self.account.is_none()
            && !a.is_empty()
            && !a.contains('$')
        {
            self.account = Some(a.to_string());
        }
    }

    /// The function key for a Lambda integration or authorizer URI, and
    /// its `[functions.*]` entry.
    fn function_from_uri(&mut self, uri: &str, what: &str) -> Option<String> {
        // `arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/ARN/invocations`
        let arn = match uri.split_once("/functions/") {
            Some((head, rest)) => {
                let region = head.split(':').nth(3).unwrap_or_default().to_string();
                self.note_arn(&region, None);
                rest.strip_suffix("/invocations")
                    .unwrap_or(rest)
                    .to_string()
            }
            None => uri.to_string(),
        };
        let name = if let Some((head, name)) = arn.split_once(":function:") {
            let parts: Vec<&str> = head.split(':').collect();
            let region = parts.get(3).copied().unwrap_or_default().to_string();
            let account = parts.get(4).copied().map(str::to_string);
            self.note_arn(&region, account.as_deref());
            name.to_string()
        } else if let Some(inner) = arn.strip_prefix("${").and_then(|a| a.strip_suffix('}')) {
            // A CloudFormation reference such as `${HelloWorldFunction.Arn}`.
            inner.strip_suffix(".Arn").unwrap_or(inner).to_string()
        } else {
            self.warn(format!(
                "{what}: cannot find a Lambda function in `{uri}`; the whole value is used as the function name"
            ));
            arn
        };
        if name.is_empty() {
            return None;
        }
        let base = name.split(':').next().unwrap_or(&name);
        let mut key: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
            .trim_matches('_')
            .to_string();
        if key.is_empty() {
            key = "function".into();
        }
        let entry = OutFunction {
            name: (name != key).then(|| name.clone()),
        };
        match self.out.functions.get(&key) {
            Some(existing) if existing.name != entry.name => {
                let mut n = 2;
                while self.out.functions.contains_key(&format!("{key}{n}")) {
                    n += 1;
                }
                key = format!("{key}{n}");
                self.out.functions.insert(
                    key.clone(),
                    OutFunction {
                        name: Some(name.clone()),
                    },
                );
            }
            Some(_) => {}
            None => {
                self.out.functions.insert(key.clone(), entry);
            }
        }
        Some(key)
    }

    fn security_scheme(&mut self, name: &str, scheme: &Value) {
        let authtype = scheme
            .get("x-amazon-apigateway-authtype")
            .and_then(|a| a.as_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let authorizer = scheme.get("x-amazon-apigateway-authorizer");
        let kind = authorizer
            .and_then(|a| a.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let auth = if authtype == "awssigv4" {
            OutAuth {
                kind: "sigv4".into(),
                ..Default::default()
            }
        } else if kind == "jwt" {
            let a = authorizer.cloned().unwrap_or_default();
            let source = identity_sources(a.get("identitySource"));
            OutAuth {
                kind: "jwt".into(),
                issuer: a
                    .pointer("/jwtConfiguration/issuer")
                    .and_then(|i| i.as_str())
                    .map(str::to_string),
                audience: a
                    .pointer("/jwtConfiguration/audience")
                    .and_then(|a| a.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect(),
                identity_sources: if source == ["$request.header.Authorization"] {
                    Vec::new()
                } else {
                    source
                },
                ..Default::default()
            }
        } else if kind == "token" || kind == "request" {
            let a = authorizer.cloned().unwrap_or_default();
            let function = a
                .get("authorizerUri")
                .and_then(|u| u.as_str())
                .and_then(|u| self.function_from_uri(u, &format!("authorizer `{name}`")));
            for k in ["identityValidationExpression", "authorizerCredentials"] {
                if let Some(v) = a.get(k) {
                    self.warn(format!(
                        "authorizer `{name}`: `{k}` ({v}) is not supported and was not imported"
                    ));
                }
            }
            let ttl = a
                .get("authorizerResultTtlInSeconds")
                .and_then(|t| t.as_u64())
                .filter(|t| *t != 300)
                .map(|t| format!("{t}s"));
            let mut sources = identity_sources(a.get("identitySource"));
            if sources.is_empty()
                && scheme.get("in").and_then(|i| i.as_str()) == Some("header")
                && let Some(h) = scheme.get("name").and_then(|n| n.as_str())
            {
                // A TOKEN authorizer reads the header its scheme names.
                sources.push(format!("$request.header.{h}"));
            }
            OutAuth {
                kind: "lambda".into(),
                function,
                authorizer_type: Some(kind.clone()),
                identity_sources: sources,
                response: (a.get("enableSimpleResponses") == Some(&Value::Bool(true)))
                    .then(|| "simple".to_string()),
                payload_version: a
                    .get("authorizerPayloadFormatVersion")
                    .and_then(|p| p.as_str())
                    .filter(|p| *p != "2.0")
                    .map(str::to_string),
                ttl,
                ..Default::default()
            }
        } else if kind == "cognito_user_pools" || authtype == "cognito_user_pools" {
            self.warn(format!(
                "security scheme `{name}`: Cognito user pool authorizers are not supported; use a `jwt` authorizer with the pool's issuer"
            ));
            return;
        } else if scheme.get("type").and_then(|t| t.as_str()) == Some("apiKey")
            && scheme
                .get("name")
                .and_then(|n| n.as_str())
                .is_some_and(|n| n.eq_ignore_ascii_case("x-api-key"))
        {
            // API Gateway's API key: routes get `api_key = true`.
            return;
        } else {
            self.warn(format!(
                "security scheme `{name}` has no API Gateway authorizer this importer knows; not imported"
            ));
            return;
        };
        self.out.auth.insert(name.to_string(), auth);
    }

    fn operation(&mut self, ctx: &OpContext<'_>, method: &str, path: &str, op: &Value) {
        let key = format!("{method} {path}");
        let Some(opo) = op.as_object() else {
            return;
        };
        if RouteTemplate::parse(path).is_err() {
            self.warn(format!(
                "route `{key}`: the path cannot be a routes.toml template; not imported"
            ));
            return;
        }
        if path == "$default" && self.rest {
            self.warn(format!(
                "route `{key}`: `$default` exists only in HTTP APIs; not imported"
            ));
            return;
        }
        if !self.route_keys.insert(key.clone()) {
            self.warn(format!("route `{key}` appears twice; the first is kept"));
            return;
        }
        for k in opo.keys() {
            if !OPERATION_KEYS.contains(&k.as_str()) {
                self.warn(format!("route `{key}`: `{k}` was not imported"));
            }
        }
        let mut route = OutRoute {
            method: method.to_string(),
            path: path.to_string(),
            summary: str_field(op, "summary"),
            description: str_field(op, "description"),
            tags: op
                .get("tags")
                .and_then(|t| t.as_array())
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
            ..Default::default()
        };
        let template = RouteTemplate::parse(path).ok();
        route.operation_id = str_field(op, "operationId").filter(|id| {
            template
                .as_ref()
                .is_none_or(|t| *id != default_operation_id(method, t))
        });

        // Integration.
        let Some(integration) = op.get("x-amazon-apigateway-integration") else {
            self.warn(format!(
                "route `{key}` has no x-amazon-apigateway-integration; not imported"
            ));
            return;
        };
        if !self.integration(&key, &mut route, integration) {
            return;
        }

        // Security.
        let security = op.get("security").or(ctx.top_security);
        if let Some(reqs) = security.and_then(|s| s.as_array()) {
            if reqs.len() > 1 {
                self.warn(format!(
                    "route `{key}`: only the first of {} alternative security requirements is imported",
                    reqs.len()
                ));
            }
            if let Some(req) = reqs.first().and_then(|r| r.as_object()) {
                for (name, scopes) in req {
                    let scheme = ctx.schemes.get(name);
                    let is_api_key = scheme.is_some_and(|s| {
                        s.get("x-amazon-apigateway-authorizer").is_none()
                            && s.get("x-amazon-apigateway-authtype").is_none()
                            && s.get("type").and_then(|t| t.as_str()) == Some("apiKey")
                            && s.get("name")
                                .and_then(|n| n.as_str())
                                .is_some_and(|n| n.eq_ignore_ascii_case("x-api-key"))
                    });
                    if is_api_key {
                        route.api_key = Some(true);
                    } else if self.out.auth.contains_key(name) {
                        if route.auth.is_some() {
                            self.warn(format!(
                                "route `{key}`: more than one authorizer required; only `{}` is imported",
                                route.auth.as_deref().unwrap_or_default()
                            ));
                            continue;
                        }
                        route.auth = Some(name.clone());
                        route.scopes = scopes
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect();
                        if self.out.auth.get(name).is_some_and(|a| a.kind != "jwt")
                            && !route.scopes.is_empty()
                        {
                            self.warn(format!(
                                "route `{key}`: scopes on a non-JWT authorizer `{name}` are not imported"
                            ));
                            route.scopes.clear();
                        }
                    } else {
                        self.warn(format!(
                            "route `{key}`: security scheme `{name}` was not imported, so the route is imported without it"
                        ));
                    }
                }
            }
        }

        // Request validation.
        let validator_name = op
            .get("x-amazon-apigateway-request-validator")
            .and_then(|v| v.as_str())
            .or(ctx.default_validator);
        let (validate_body, validate_params) = match validator_name {
            Some(n) => match ctx.validators.get(n) {
                Some(v) => (
                    v.get("validateRequestBody") == Some(&Value::Bool(true)),
                    v.get("validateRequestParameters") == Some(&Value::Bool(true)),
                ),
                None => {
                    self.warn(format!(
                        "route `{key}`: request validator `{n}` is not defined; nothing validated"
                    ));
                    (false, false)
                }
            },
            None => (false, false),
        };
        let mut request = OutRequest::default();
        for p in op
            .get("parameters")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
        {
            let p = resolve(ctx.api, p);
            let name = str_field(&p, "name").unwrap_or_default();
            let location = str_field(&p, "in").unwrap_or_default();
            let required = p.get("required") == Some(&Value::Bool(true));
            match location.as_str() {
                "path" => {}
                "body" => {
                    if let Some(schema) = p.get("schema") {
                        self.body_schema(ctx, &key, &mut request, schema, validate_body, op);
                    }
                }
                "query" | "header" if required && validate_params => {
                    if location == "query" {
                        request.required_query.push(name);
                    } else {
                        request.required_headers.push(name);
                    }
                }
                other => self.warn(format!(
                    "route `{key}`: {} {other} parameter `{name}` is documentation only in this export{}; not imported",
                    if required { "required" } else { "optional" },
                    if required && !validate_params {
                        " (no request validator checks it)"
                    } else {
                        ""
                    }
                )),
            }
        }
        if let Some(body) = op.get("requestBody") {
            let body = resolve(ctx.api, body);
            let content = body.get("content").and_then(|c| c.as_object());
            match content.and_then(|c| c.get("application/json")).and_then(|m| m.get("schema")) {
                Some(schema) => {
                    self.body_schema(ctx, &key, &mut request, schema, validate_body, op)
                }
                None => self.warn(format!(
                    "route `{key}`: a request body without an application/json schema is not imported"
                )),
            }
        }
        if request.body_schema.is_some()
            || !request.required_query.is_empty()
            || !request.required_headers.is_empty()
        {
            route.request = Some(request);
        }

        // Responses: a 2xx JSON schema is the documented response.
        if let Some(responses) = op.get("responses").and_then(|r| r.as_object()) {
            for (code, r) in responses {
                if let Some(rf) = r.get("$ref").and_then(|r| r.as_str())
                    && let Some(n) = rf.strip_prefix("#/components/responses/")
                    && GATEWAY_RESPONSES.iter().any(|(g, _, _)| *g == n)
                {
                    continue; // the gateway's own error responses
                }
                let r = resolve(ctx.api, r);
                let schema = r
                    .pointer("/content/application~1json/schema")
                    .or_else(|| r.get("schema"));
                let is_success = code.starts_with('2');
                if is_success
                    && route.mock.is_none()
                    && r.get("headers")
                        .and_then(|h| h.as_object())
                        .is_some_and(|h| !h.is_empty())
                {
                    self.warn(format!(
                        "route `{key}`: response {code} headers are documentation only; not imported"
                    ));
                }
                match schema {
                    Some(s) if is_success && route.mock.is_none() => {
                        if route.response_schema.is_none() && !is_empty_model(s) {
                            route.response_schema = self.schema_file(ctx, s, &key, "response");
                        }
                    }
                    _ if is_success => {}
                    _ => self.warn(format!(
                        "route `{key}`: response {code} is documentation only; not imported"
                    )),
                }
            }
        }
        self.out.routes.push(route);
    }

    fn body_schema(
        &mut self,
        ctx: &OpContext<'_>,
        key: &str,
        request: &mut OutRequest,
        schema: &Value,
        validated: bool,
        _op: &Value,
    ) {
        if !validated {
            if !is_empty_model(schema) {
                self.warn(format!(
                    "route `{key}`: the request body model is not validated in this export (no request validator with validateRequestBody); not imported"
                ));
            }
            return;
        }
        request.body_schema = self.schema_file(ctx, schema, key, "body");
    }

    /// Writes `schemas/NAME.json` with every referenced model inlined
    /// under `$defs`; returns its path.
    fn schema_file(
        &mut self,
        ctx: &OpContext<'_>,
        schema: &Value,
        key: &str,
        what: &str,
    ) -> Option<String> {
        let (name, mut root) = match schema.get("$ref").and_then(|r| r.as_str()) {
            Some(r) => {
                let n = ref_name(r)?.to_string();
                (n.clone(), model(ctx.api, &n)?.clone())
            }
            None => {
                let n: String = format!("{key} {what}")
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect::<String>()
                    .trim_matches('_')
                    .to_string();
                (n, schema.clone())
            }
        };
        let mut defs = Map::new();
        let mut pending: Vec<String> = Vec::new();
        collect_refs(&root, &mut pending);
        while let Some(n) = pending.pop() {
            if n == name || defs.contains_key(&n) {
                continue;
            }
            match model(ctx.api, &n) {
                Some(m) => {
                    collect_refs(m, &mut pending);
                    defs.insert(n, m.clone());
                }
                None => self.warn(format!(
                    "route `{key}`: schema `{n}` is referenced but not defined"
                )),
            }
        }
        rewrite_model_refs(&mut root, &name);
        for v in defs.values_mut() {
            rewrite_model_refs(v, &name);
        }
        if !defs.is_empty()
            && let Some(o) = root.as_object_mut()
        {
            o.insert("$defs".into(), Value::Object(defs));
        }
        let file = format!("schemas/{}.json", safe_file_name(&name));
        let text = serde_json::to_string_pretty(&root).unwrap_or_default() + "\n";
        match self.files.get(&file) {
            Some(existing) if *existing != text => {
                self.warn(format!(
                    "schema `{name}` differs between uses; {file} keeps the first"
                ));
            }
            _ => {
                self.files.insert(file.clone(), text);
            }
        }
        Some(file)
    }

    /// Fills the route's integration; false when the route cannot be imported.
    fn integration(&mut self, key: &str, route: &mut OutRoute, i: &Value) -> bool {
        let kind = i
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if let Some(o) = i.as_object() {
            for k in o.keys() {
                if !KNOWN_INTEGRATION_KEYS.contains(&k.as_str()) {
                    self.warn(format!(
                        "route `{key}`: integration `{k}` is not supported and was not imported"
                    ));
                }
            }
        }
        let uri = i.get("uri").and_then(|u| u.as_str()).unwrap_or_default();
        let default_payload = if self.rest { "1.0" } else { "2.0" };
        match kind.as_str() {
            "aws_proxy" | "aws" => {
                let Some(function) = self.function_from_uri(uri, &format!("route `{key}`")) else {
                    self.warn(format!(
                        "route `{key}`: integration has no function URI; not imported"
                    ));
                    return false;
                };
                route.function = Some(function);
                if kind == "aws" {
                    let mut parts = Vec::new();
                    for k in ["requestTemplates", "responses", "requestParameters"] {
                        if i.get(k).is_some() {
                            parts.push(k);
                        }
                    }
                    self.warn(format!(
                        "route `{key}`: non-proxy Lambda integration (type aws) imported as a proxy integration; its {} are not converted, so the function now receives the proxy event",
                        if parts.is_empty() {
                            "settings".to_string()
                        } else {
                            parts.join(", ")
                        }
                    ));
                } else {
                    for k in ["requestTemplates", "responses", "requestParameters"] {
                        if i.get(k).is_some() {
                            self.warn(format!(
                                "route `{key}`: integration `{k}` is not supported on a proxy integration and was not imported"
                            ));
                        }
                    }
                }
                if let Some(p) = i.get("payloadFormatVersion").and_then(|p| p.as_str())
                    && p != default_payload
                {
                    if self.rest {
                        self.warn(format!(
                            "route `{key}`: payload {p} does not exist in REST APIs; 1.0 is used"
                        ));
                    } else {
                        route.payload_version = Some(p.to_string());
                    }
                }
            }
            "http_proxy" | "http" => {
                let Some((url, fixed)) = upstream_base(uri, &route.path) else {
                    self.warn(format!(
                        "route `{key}`: HTTP integration has no URI; not imported"
                    ));
                    return false;
                };
                if !fixed {
                    self.warn(format!(
                        "route `{key}`: upstream URI `{uri}` does not end with the route's path; the gateway forwards the request path after it"
                    ));
                }
                let n = self.upstreams.len();
                let name = self
                    .upstreams
                    .entry(url.clone())
                    .or_insert_with(|| {
                        if n == 0 {
                            "upstream".to_string()
                        } else {
                            format!("upstream{}", n + 1)
                        }
                    })
                    .clone();
                self.out.backends.insert(
                    name.clone(),
                    OutBackend {
                        kind: "http".into(),
                        region: None,
                        url: Some(url),
                    },
                );
                route.backend = Some(name);
                if kind == "http" {
                    self.warn(format!(
                        "route `{key}`: non-proxy HTTP integration imported as an HTTP proxy; its mappings are not converted"
                    ));
                }
                if let Some(params) = i.get("requestParameters").and_then(|p| p.as_object()) {
                    for (k, v) in params {
                        let plain = k
                            .strip_prefix("integration.request.path.")
                            .is_some_and(|p| {
                                v.as_str() == Some(&format!("method.request.path.{p}"))
                            });
                        if !plain {
                            self.warn(format!(
                                "route `{key}`: request parameter mapping `{k}` is not supported and was not imported"
                            ));
                        }
                    }
                }
            }
            "mock" => {
                let default = i.pointer("/responses/default");
                let status = default
                    .and_then(|d| d.get("statusCode"))
                    .and_then(|s| {
                        s.as_str()
                            .and_then(|s| s.parse::<u16>().ok())
                            .or_else(|| s.as_u64().map(|n| n as u16))
                    })
                    .or_else(|| {
                        i.pointer("/requestTemplates/application~1json")
                            .and_then(|t| t.as_str())
                            .and_then(|t| serde_json::from_str::<Value>(t).ok())
                            .and_then(|v| v.get("statusCode").and_then(|s| s.as_u64()))
                            .map(|n| n as u16)
                    })
                    .unwrap_or(200);
                let mut mock = OutMock {
                    status,
                    ..Default::default()
                };
                if let Some(params) = default
                    .and_then(|d| d.get("responseParameters"))
                    .and_then(|p| p.as_object())
                {
                    for (k, v) in params {
                        let literal = v
                            .as_str()
                            .and_then(|s| s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')));
                        match (k.strip_prefix("method.response.header."), literal) {
                            (Some(h), Some(val)) => {
                                mock.headers.insert(h.to_string(), val.replace("\\'", "'"));
                            }
                            _ => self.warn(format!(
                                "route `{key}`: mock response parameter `{k}` is not a literal header; not imported"
                            )),
                        }
                    }
                }
                if let Some(templates) = default
                    .and_then(|d| d.get("responseTemplates"))
                    .and_then(|t| t.as_object())
                    && let Some((ct, body)) = templates.iter().next()
                {
                    let body = body.as_str().unwrap_or_default().to_string();
                    if body.contains("$input") || body.contains("$context") || body.contains("#set")
                    {
                        self.warn(format!(
                            "route `{key}`: the mock's response template uses VTL; it is served as literal text"
                        ));
                    }
                    if templates.len() > 1 {
                        self.warn(format!(
                            "route `{key}`: only the `{ct}` mock response template is imported"
                        ));
                    }
                    if ct != "application/json"
                        && !mock
                            .headers
                            .keys()
                            .any(|h| h.eq_ignore_ascii_case("content-type"))
                    {
                        mock.headers.insert("content-type".into(), ct.clone());
                    }
                    mock.body = body;
                }
                if let Some(responses) = i.get("responses").and_then(|r| r.as_object())
                    && responses.len() > 1
                {
                    self.warn(format!(
                        "route `{key}`: only the default mock response is imported"
                    ));
                }
                route.mock = Some(mock);
            }
            other => {
                self.warn(format!(
                    "route `{key}`: integration type `{other}` is not supported; not imported"
                ));
                return false;
            }
        }
        if let Some(ms) = i.get("timeoutInMillis").and_then(|t| t.as_u64()) {
            let default_ms = if self.rest { 29_000 } else { 30_000 };
            if ms != default_ms {
                route.timeout = Some(format_duration(Duration::from_millis(ms)));
            }
        }
        if let Some(p) = i.get("passthroughBehavior").and_then(|p| p.as_str())
            && !p.eq_ignore_ascii_case("when_no_match")
            && kind != "aws"
        {
            self.warn(format!(
                "route `{key}`: passthroughBehavior `{p}` is not supported"
            ));
        }
        true
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
    schemes: &'a Map<String, Value>,
    validators: &'a Map<String, Value>,
    default_validator: Option<&'a str>,
    top_security: Option<&'a Value>,
}

fn str_field(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(|s| s.as_str()).map(str::to_string)
}

/// `method.request.header.X` / `$request.header.X`, comma-separated or a
/// list → `$request.header.X` entries.
fn identity_sources(v: Option<&Value>) -> Vec<String> {
    let raw: Vec<String> = match v {
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|s| s.as_str().map(|s| s.trim().to_string()))
            .collect(),
        _ => Vec::new(),
    };
    raw.into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_prefix("method.request.") {
            Some(rest) => format!("$request.{rest}"),
            None => s,
        })
        .collect()
}

/// `#/definitions/X` or `#/components/schemas/X` → `X`.
fn ref_name(r: &str) -> Option<&str> {
    r.strip_prefix("#/definitions/")
        .or_else(|| r.strip_prefix("#/components/schemas/"))
}

fn model<'a>(api: &'a Value, name: &str) -> Option<&'a Value> {
    api.get("definitions")
        .and_then(|d| d.get(name))
        .or_else(|| api.pointer(&format!("/components/schemas/{name}")))
}

/// A `$ref` to a response, parameter or request body, followed once.
fn resolve(api: &Value, v: &Value) -> Value {
    if let Some(r) = v.get("$ref").and_then(|r| r.as_str())
        && let Some(path) = r.strip_prefix('#')
        && let Some(target) = api.pointer(path)
    {
        return target.clone();
    }
    v.clone()
}

/// API Gateway's built-in `Empty` model documents nothing.
fn is_empty_model(schema: &Value) -> bool {
    schema
        .get("$ref")
        .and_then(|r| r.as_str())
        .and_then(ref_name)
        == Some("Empty")
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(n) = o.get("$ref").and_then(|r| r.as_str()).and_then(ref_name) {
                out.push(n.to_string());
            }
            o.values().for_each(|c| collect_refs(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| collect_refs(c, out)),
        _ => {}
    }
}

/// Model refs → `#/$defs/X` (or `#` for the file's own model).
fn rewrite_model_refs(v: &mut Value, root: &str) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref")
                && let Some(n) = ref_name(r)
            {
                *r = if n == root {
                    "#".to_string()
                } else {
                    format!("#/$defs/{n}")
                };
            }
            o.values_mut().for_each(|c| rewrite_model_refs(c, root));
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rewrite_model_refs(c, root)),
        _ => {}
    }
}

fn safe_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The backend URL of an HTTP integration: its URI less the route's path
/// (or, on a greedy route, less `/{proxy}`). The bool says whether the
/// URI ended as expected.
fn upstream_base(uri: &str, route_path: &str) -> Option<(String, bool)> {
    if uri.is_empty() {
        return None;
    }
    let template = RouteTemplate::parse(route_path).ok();
    let greedy = template
        .as_ref()
        .and_then(|t| t.greedy_param().map(|p| format!("/{{{p}}}")));
    let suffixes: Vec<String> = match greedy {
        Some(g) => vec![g, route_path.to_string()],
        None => vec![route_path.to_string()],
    };
    for s in suffixes {
        if let Some(base) = uri.strip_suffix(&s) {
            return Some((base.to_string(), true));
        }
    }
    Some((uri.to_string(), false))
}

fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudformation_tags_are_tolerated() {
        let v = load_document(
            "a: !Sub arn:${AWS::Region}:x\nb: !Ref Thing\nc: !GetAtt Fn.Arn\nd: !Sub [\"x-${y}\", {y: 1}]\n",
        )
        .unwrap();
        assert_eq!(v["a"], "arn:${AWS::Region}:x");
        assert_eq!(v["b"], "${Thing}");
        assert_eq!(v["c"], "${Fn.Arn}");
        assert_eq!(v["d"], "x-${y}");
    }

    #[test]
    fn identity_sources_use_http_api_spelling() {
        assert_eq!(
            identity_sources(Some(&Value::String(
                "method.request.header.header, method.request.querystring.query".into()
            ))),
            ["$request.header.header", "$request.querystring.query"]
        );
    }

    #[test]
    fn upstream_url_drops_the_route_path() {
        assert_eq!(
            upstream_base("http://h:3000/{proxy}", "/legacy/{proxy+}"),
            Some(("http://h:3000".to_string(), true))
        );
        assert_eq!(
            upstream_base("http://h/items/{id}", "/items/{id}"),
            Some(("http://h".to_string(), true))
        );
        assert_eq!(
            upstream_base("http://h/other", "/items"),
            Some(("http://h/other".to_string(), false))
        );
    }
}
