//! `--aws`: the `x-amazon-apigateway-*` extensions API Gateway needs to
//! import the document (integrations, API key source, binary media types,
//! request validators, CORS).

use serde_json::{Value, json};
use utoipa::openapi::extensions::Extensions;

use super::Generator;
use super::paths::pattern_text;
use crate::config::{Flavor, IntegrationConfig, RouteConfig};

impl Generator<'_> {
    /// The document-level extensions.
    pub(super) fn document_extensions(&mut self) -> Extensions {
        let config = self.config;
        let mut ext = Extensions::default();
        if config.gateway.flavor == Flavor::Http {
            ext.insert(
                "x-amazon-apigateway-importexport-version".into(),
                json!("1.0"),
            );
        }
        if self.uses_api_key || config.api_keys.source == crate::config::ApiKeySource::Authorizer {
            ext.insert(
                "x-amazon-apigateway-api-key-source".into(),
                json!(match config.api_keys.source {
                    crate::config::ApiKeySource::Header => "HEADER",
                    crate::config::ApiKeySource::Authorizer => "AUTHORIZER",
                }),
            );
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
        ext
    }

    /// The API Gateway URI that invokes a Lambda function.
    pub(super) fn lambda_uri(&self, function_name: &str) -> String {
        let gw = &self.config.gateway;
        format!(
            "arn:aws:apigateway:{r}:lambda:path/2015-03-31/functions/arn:aws:lambda:{r}:{a}:function:{function_name}/invocations",
            r = gw.region,
            a = gw.account_id
        )
    }

    pub(super) fn aws_integration(&mut self, route: &RouteConfig, method: &str) -> Value {
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
