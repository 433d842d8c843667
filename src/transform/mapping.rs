//! Non-proxy (mapping template) integrations, in the integration phase: a
//! route with `request_template` and/or `responses` sends the function an
//! input built by a template instead of a proxy event, and maps the
//! function's result (or error) to HTTP through the integration response
//! its error message selects — API Gateway's `AWS` integration type.
//!
//! Templates see API Gateway's variables as minijinja objects:
//! `input.body`, `input.json('$.a')`, `input.path('$.a')`, `input.params()`,
//! `input.params('name')`; `context` (the payload 1.0 `requestContext`:
//! `context.requestId`, `context.identity.sourceIp`, `context.authorizer...`);
//! `stageVariables`; `util.escapeJavaScript(...)` and friends. The mapping
//! of each VTL construct is in docs/mapping-templates.md.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use minijinja::value::{Object, Value};
use minijinja::{Error, ErrorKind, State};
use serde_json::Value as Json;

use crate::config::{IntegrationResponse, Mapping};
use crate::error::GatewayError;
use crate::transform::binary;
use crate::transform::template::TemplateSet;

/// API Gateway's `$input`: the body and the request parameters.
#[derive(Debug)]
pub struct Input {
    body: String,
    json: std::sync::OnceLock<Option<Json>>,
    /// `{path, querystring, header}`
    params: Json,
}

impl Input {
    pub fn new(body: String, params: Json) -> Self {
        Self {
            body,
            json: std::sync::OnceLock::new(),
            params,
        }
    }

    fn parsed(&self) -> Option<&Json> {
        self.json
            .get_or_init(|| serde_json::from_str(&self.body).ok())
            .as_ref()
    }

    fn param(&self, name: &str) -> Json {
        for section in ["path", "querystring"] {
            if let Some(v) = self.params.get(section).and_then(|s| s.get(name)) {
                return v.clone();
            }
        }
        if let Some(Json::Object(h)) = self.params.get("header") {
            for (k, v) in h {
                if k.eq_ignore_ascii_case(name) {
                    return v.clone();
                }
            }
        }
        Json::String(String::new())
    }
}

fn arg_str(args: &[Value], what: &str) -> Result<String, Error> {
    args.first()
        .and_then(|a| a.as_str().map(str::to_string))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::MissingArgument,
                format!("{what} needs a string argument"),
            )
        })
}

impl Object for Input {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "body" => Some(Value::from(self.body.clone())),
            _ => None,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "json" => {
                let path = arg_str(args, "input.json")?;
                let selected = self
                    .parsed()
                    .and_then(|j| json_path(j, &path).ok().flatten());
                Ok(Value::from_safe_string(
                    selected.map(|v| v.to_string()).unwrap_or_default(),
                ))
            }
            "path" => {
                let path = arg_str(args, "input.path")?;
                match self.parsed() {
                    Some(j) => match json_path(j, &path) {
                        Ok(Some(v)) => Ok(Value::from(minijinja::value::Serde(&v))),
                        Ok(None) => Ok(Value::UNDEFINED),
                        Err(e) => Err(Error::new(ErrorKind::InvalidOperation, e)),
                    },
                    // Not JSON: `$` is the body text, anything else is undefined.
                    None if path.trim() == "$" => Ok(Value::from(self.body.clone())),
                    None => Ok(Value::UNDEFINED),
                }
            }
            "params" => match args.first() {
                None => Ok(Value::from(minijinja::value::Serde(&self.params))),
                Some(_) => {
                    let name = arg_str(args, "input.params")?;
                    Ok(Value::from(minijinja::value::Serde(self.param(&name))))
                }
            },
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// A small JSONPath: `$`, `.name`, `['name']`, `["name"]`, `[0]`.
/// `Ok(None)` when the path selects nothing.
pub fn json_path(root: &Json, path: &str) -> Result<Option<Json>, String> {
    let p = path.trim();
    let Some(mut rest) = p.strip_prefix('$') else {
        return Err(format!("JSONPath `{path}` must start with `$`"));
    };
    let mut cur = root;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() {
                return Err(format!("JSONPath `{path}` has an empty name"));
            }
            match cur.get(name) {
                Some(v) => cur = v,
                None => return Ok(None),
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("JSONPath `{path}`: `[` is not closed"))?;
            let inner = r[..end].trim();
            let quoted = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
            let next = match quoted {
                Some(name) => cur.get(name),
                None => {
                    let i: usize = inner.parse().map_err(|_| {
                        format!("JSONPath `{path}`: `[{inner}]` is not an index or a quoted name")
                    })?;
                    cur.get(i)
                }
            };
            match next {
                Some(v) => cur = v,
                None => return Ok(None),
            }
            rest = &r[end + 1..];
        } else {
            return Err(format!("JSONPath `{path}`: unexpected `{rest}`"));
        }
    }
    Ok(Some(cur.clone()))
}

/// What a mapping template renders with.
pub struct MappingScope {
    /// The payload 1.0 `requestContext`.
    pub context: Json,
    pub stage_variables: Json,
    /// `{path, querystring, header}` of the request.
    pub params: Json,
    /// The request's `Accept` values: they pick each response's template.
    pub accept: Vec<String>,
}

impl MappingScope {
    /// Builds the scope from a payload 1.0 event of the request.
    pub fn from_v1_event(event: &Json) -> Self {
        let or_empty = |v: Option<&Json>| match v {
            Some(Json::Object(m)) => Json::Object(m.clone()),
            _ => Json::Object(Default::default()),
        };
        Self {
            context: or_empty(event.get("requestContext")),
            stage_variables: or_empty(event.get("stageVariables")),
            params: serde_json::json!({
                "path": or_empty(event.get("pathParameters")),
                "querystring": or_empty(event.get("queryStringParameters")),
                "header": or_empty(event.get("headers")),
            }),
            accept: accept_values(event),
        }
    }

    fn render(
        &self,
        templates: &TemplateSet,
        name: &str,
        body: String,
        params: Json,
    ) -> Result<String, String> {
        let ctx = minijinja::context! {
            input => Value::from_object(Input::new(body, params)),
            context => Value::from(minijinja::value::Serde(&self.context)),
            stageVariables => Value::from(minijinja::value::Serde(&self.stage_variables)),
            stage_variables => Value::from(minijinja::value::Serde(&self.stage_variables)),
        };
        templates.render(name, ctx).map_err(|e| {
            format!(
                "template `{name}`: {} (line {})",
                crate::transform::template::describe(&e),
                e.line().unwrap_or(0)
            )
        })
    }

    /// The function's input: the rendered `request_template`, or the body
    /// passed through (`{}` when empty).
    pub fn request_payload(
        &self,
        mapping: &Mapping,
        templates: &TemplateSet,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, GatewayError> {
        match &mapping.request_template {
            Some(t) => {
                let text = String::from_utf8_lossy(&body).into_owned();
                self.render(templates, t, text, self.params.clone())
                    .map(String::into_bytes)
                    .map_err(|e| {
                        tracing::error!(error = %e, "request mapping template failed");
                        GatewayError::Internal(e)
                    })
            }
            None if body.is_empty() => Ok(b"{}".to_vec()),
            None => Ok(body),
        }
    }

    /// Maps the function's result to HTTP through the selected integration
    /// response. A function error no `pattern` selects is a 502: an error is
    /// never passed off as a success.
    pub fn response(
        &self,
        mapping: &Mapping,
        templates: &TemplateSet,
        output: &[u8],
        function_error: Option<&str>,
    ) -> Result<Response<Body>, GatewayError> {
        let selected: Option<&IntegrationResponse> = match function_error {
            Some(kind) => {
                let message = error_message(output);
                match mapping
                    .responses
                    .iter()
                    .find(|r| r.pattern.as_ref().is_some_and(|p| p.is_match(&message)))
                {
                    Some(r) => Some(r),
                    None => {
                        return Err(GatewayError::Integration(format!(
                            "function failed ({kind}) and no response pattern matches its error message: {}",
                            truncate(&message, 512)
                        )));
                    }
                }
            }
            None => mapping.responses.iter().find(|r| r.pattern.is_none()),
        };
        let text = String::from_utf8_lossy(output).into_owned();
        let Some(r) = selected else {
            // No default response: the output passes through as JSON.
            return Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(output.to_vec()))
                .map_err(|e| GatewayError::Internal(e.to_string()));
        };
        // Response templates see the function's output as `input`, as in API Gateway.
        let no_params = serde_json::json!({"path": {}, "querystring": {}, "header": {}});
        let fail = |e: String| {
            tracing::error!(error = %e, "response mapping template failed");
            GatewayError::Integration(e)
        };
        let offer = &r.offers[crate::transform::negotiate_offers(
            &r.offers,
            r.default,
            self.accept.iter().map(String::as_str),
        )];
        let body = match &offer.template {
            Some(t) => self
                .render(templates, t, text.clone(), no_params.clone())
                .map_err(fail)?
                .into_bytes(),
            None => output.to_vec(),
        };
        let body =
            binary::response_body(body, r.content_handling).map_err(GatewayError::Integration)?;
        let mut res = Response::new(Body::from(body));
        *res.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
        let h = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&offer.media_type) {
            h.insert(header::CONTENT_TYPE, v);
        }
        for (name, t) in &r.headers {
            let value = self
                .render(templates, t, text.clone(), no_params.clone())
                .map_err(fail)?;
            let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value.trim()),
            ) else {
                return Err(GatewayError::Integration(format!(
                    "response header `{name}` has an invalid value"
                )));
            };
            h.insert(n, v);
        }
        Ok(res)
    }
}

/// Every `Accept` header value of a payload 1.0 event (any case).
fn accept_values(event: &Json) -> Vec<String> {
    let pick = |section: &str| -> Option<Vec<String>> {
        let Json::Object(h) = event.get(section)? else {
            return None;
        };
        let (_, v) = h.iter().find(|(k, _)| k.eq_ignore_ascii_case("accept"))?;
        Some(match v {
            Json::Array(vs) => vs
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Json::String(s) => vec![s.clone()],
            _ => Vec::new(),
        })
    };
    pick("multiValueHeaders")
        .or_else(|| pick("headers"))
        .unwrap_or_default()
}

/// A function error's `errorMessage` (the whole payload if it has none).
fn error_message(output: &[u8]) -> String {
    match serde_json::from_slice::<Json>(output) {
        Ok(Json::Object(m)) => match m.get("errorMessage") {
            Some(Json::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::from_utf8_lossy(output).into_owned(),
        },
        Ok(Json::String(s)) => s,
        _ => String::from_utf8_lossy(output).into_owned(),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_paths() {
        let j = json!({"a": {"b": [10, {"c": "x"}]}, "k-1": 2});
        assert_eq!(json_path(&j, "$").unwrap(), Some(j.clone()));
        assert_eq!(json_path(&j, "$.a.b[0]").unwrap(), Some(json!(10)));
        assert_eq!(json_path(&j, "$.a.b[1].c").unwrap(), Some(json!("x")));
        assert_eq!(json_path(&j, "$['k-1']").unwrap(), Some(json!(2)));
        assert_eq!(json_path(&j, "$.nope").unwrap(), None);
        assert!(json_path(&j, "a.b").is_err());
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(br#"{"errorMessage":"Bad: x","errorType":"E"}"#),
            "Bad: x"
        );
        assert_eq!(error_message(b"plain"), "plain");
    }
}
