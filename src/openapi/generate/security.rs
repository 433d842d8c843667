//! Security schemes: `[auth.*]` authorizers as bearer JWT / OpenID Connect,
//! API key headers, SigV4 and Lambda authorizers (with `--aws`, API
//! Gateway's `x-amazon-apigateway-authorizer`).

use serde_json::{Value, json};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, OpenIdConnect, SecurityScheme,
};

use super::Generator;
use crate::config::{AuthConfig, AuthKind, Flavor};

impl Generator<'_> {
    pub(super) fn security_scheme(&mut self, auth: &AuthConfig) -> SecurityScheme {
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
