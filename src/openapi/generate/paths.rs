//! Paths and operations: one OpenAPI operation per route and method, with
//! its parameters, request body, responses and security requirement.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Value, json};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, Ref, RefOr, Required, ResponseBuilder, Schema, Type,
};

use super::{API_KEY_SCHEME, GATEWAY_RESPONSES, GenerateError, Generator};
use crate::config::{Config, IntegrationConfig, RouteConfig};
use crate::routing::Segment;

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
            crate::config::CacheKeyPart::Path(_) | crate::config::CacheKeyPart::Body => None,
        })
        .collect()
}

impl Generator<'_> {
    /// `/files/{proxy+}` → `/files/{proxy}` (API Gateway keeps the `+`).
    pub(super) fn openapi_path(&self, route: &RouteConfig) -> String {
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

    pub(super) fn operation(
        &mut self,
        route: &RouteConfig,
        method: &str,
    ) -> Result<Operation, GenerateError> {
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
                for offer in &ir.offers {
                    r = r.content(
                        offer.media_type.clone(),
                        ContentBuilder::new()
                            .schema(Some(if offer.media_type.contains("json") {
                                ObjectBuilder::new()
                            } else {
                                ObjectBuilder::new().schema_type(Type::String)
                            }))
                            .build(),
                    );
                }
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
        // The integration's answer, unless `method_responses` documents
        // the successes of a proxy integration itself; then those entries.
        let proxied =
            route.mapping.is_none() && !matches!(route.integration, IntegrationConfig::Mock(_));
        let documents_success = route
            .method_responses
            .iter()
            .any(|m| (200..300).contains(&m.status));
        let mut responses: BTreeMap<String, utoipa::openapi::Response> = BTreeMap::new();
        if !(proxied && documents_success) {
            responses.insert(status, response);
        }
        for (code, r) in extra {
            responses.entry(code).or_insert(r);
        }
        for m in &route.method_responses {
            let r = self.method_response(route, m)?;
            responses.insert(m.status.to_string(), r);
        }
        let secured = route.auth.is_some() || route.api_key;
        let invokes = !matches!(route.integration, IntegrationConfig::Mock(_));
        for (name, code, _) in GATEWAY_RESPONSES {
            let wanted = match code {
                400 => !request.is_empty(),
                401 | 403 => secured,
                502 | 504 => invokes,
                _ => true,
            };
            if wanted && !responses.contains_key(&code.to_string()) {
                op = op.response(
                    code.to_string(),
                    Ref::new(format!("#/components/responses/{name}")),
                );
            }
        }
        if route.cache.is_some() {
            for (_, r) in responses.iter_mut().filter(|(c, _)| c.starts_with('2')) {
                r.headers.insert(
                    "X-Cache".to_string(),
                    HeaderBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .enum_values(Some(["Hit", "Miss"])),
                        ))
                        .description(Some("Whether the gateway's response cache answered."))
                        .build()
                        .into(),
                );
            }
        }
        for (code, r) in responses {
            op = op.response(code, r);
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
pub(super) fn pattern_text(p: &regex::Regex) -> &str {
    let s = p.as_str();
    s.strip_prefix("^(?:")
        .and_then(|r| r.strip_suffix(")$"))
        .unwrap_or(s)
}

pub(super) fn set_operation(item: &mut PathItem, method: &str, op: Operation) {
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
