//! Operations → `[[routes]]`: route key, documentation, security
//! requirements and request validation.

use serde_json::{Map, Value};

use super::out::{OutRequest, OutRoute};
use super::schemas::resolve;
use super::{Importer, OpContext, str_field};
use crate::openapi::generate::default_operation_id;
use crate::routing::RouteTemplate;

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
pub(super) const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

impl Importer {
    pub(super) fn operation(&mut self, ctx: &OpContext<'_>, method: &str, path: &str, op: &Value) {
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
            summary: str_field(op, "summary").or_else(|| path_field(ctx, "summary")),
            description: str_field(op, "description").or_else(|| path_field(ctx, "description")),
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
        for p in self.parameters(ctx, &key, op) {
            let name = str_field(&p, "name").unwrap_or_default();
            let location = str_field(&p, "in").unwrap_or_default();
            let required = p.get("required") == Some(&Value::Bool(true));
            match location.as_str() {
                "path" => self.plain_string_param(&key, &p),
                "body" => {
                    if let Some(schema) = p.get("schema") {
                        self.body_schema(ctx, &key, &mut request, schema, validate_body, op);
                    }
                }
                "query" | "header" if required && validate_params => {
                    self.plain_string_param(&key, &p);
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
        self.consumes(ctx, &key, op);
        if let Some(body) = op.get("requestBody") {
            let body = resolve(ctx.api, body);
            let content = body.get("content").and_then(|c| c.as_object());
            for t in content.into_iter().flat_map(|c| c.keys()) {
                if t != "application/json" {
                    self.warn(format!(
                        "route `{key}`: request body type `{t}` is not imported; routes.toml validates JSON bodies only"
                    ));
                }
            }
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

        self.responses(ctx, &key, op, &mut route);
        self.out.routes.push(route);
    }

    /// The operation's parameters, resolved, with the path item's own
    /// (those the operation does not redefine) in front.
    fn parameters(&mut self, ctx: &OpContext<'_>, key: &str, op: &Value) -> Vec<Value> {
        let read = |v: Option<&Value>| -> Vec<Value> {
            v.and_then(|p| p.as_array())
                .into_iter()
                .flatten()
                .map(|p| resolve(ctx.api, p))
                .collect()
        };
        let own = read(op.get("parameters"));
        let mut all: Vec<Value> = read(ctx.path_item.get("parameters"))
            .into_iter()
            .filter(|p| {
                !own.iter()
                    .any(|o| o.get("name") == p.get("name") && o.get("in") == p.get("in"))
            })
            .collect();
        all.extend(own);
        all.retain(|p| {
            let ok = p.get("name").is_some_and(Value::is_string)
                && p.get("in").is_some_and(Value::is_string);
            if !ok {
                self.warn(format!(
                    "route `{key}`: a parameter without `name` and `in` ({p}) is not imported"
                ));
            }
            ok
        });
        all
    }

    /// routes.toml parameters are plain strings: a type, format, pattern or
    /// enum documented for one is reported.
    fn plain_string_param(&mut self, key: &str, p: &Value) {
        let name = str_field(p, "name").unwrap_or_default();
        let location = str_field(p, "in").unwrap_or_default();
        // OpenAPI 3 has a `schema`; Swagger 2 puts the keywords on the parameter.
        let schema: Map<String, Value> = match p.get("schema").and_then(|s| s.as_object()) {
            Some(s) => s.clone(),
            None => p
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| !PARAMETER_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let extra: Map<String, Value> = schema
            .into_iter()
            .filter(|(k, v)| !(k == "type" && v == "string") && k != "description")
            .collect();
        if !extra.is_empty() {
            self.warn(format!(
                "route `{key}`: {location} parameter `{name}` is documented with {}; routes.toml parameters are plain strings, so that is not imported",
                Value::Object(extra)
            ));
        }
    }

    /// Swagger 2 `consumes`: JSON is what a body schema validates; other
    /// media types are reported.
    fn consumes(&mut self, ctx: &OpContext<'_>, key: &str, op: &Value) {
        for t in media_types(op.get("consumes").or_else(|| ctx.api.get("consumes"))) {
            if t != "application/json" {
                self.warn(format!(
                    "route `{key}`: request media type `{t}` (consumes) is not imported; routes.toml validates JSON bodies only"
                ));
            }
        }
    }
}

/// Parameter fields that are not schema keywords.
const PARAMETER_KEYS: &[&str] = &[
    "name",
    "in",
    "required",
    "description",
    "allowEmptyValue",
    "collectionFormat",
];

/// A `consumes`/`produces` list.
pub(super) fn media_types(v: Option<&Value>) -> Vec<String> {
    v.and_then(|c| c.as_array())
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect()
}

/// A string field of the path item (summary, description).
fn path_field(ctx: &OpContext<'_>, k: &str) -> Option<String> {
    ctx.path_item
        .get(k)
        .and_then(|s| s.as_str())
        .map(str::to_string)
}
