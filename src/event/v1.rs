//! Payload format 1.0 (REST API proxy integration, and HTTP API routes set
//! to 1.0): `to_event` builds the request event, `from_response` maps the
//! function's proxy response back to HTTP.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value, json};

use super::{EventInput, decode_base64_body};
use crate::auth::AuthorizerOutput;
use crate::config::PayloadVersion;
use crate::error::GatewayError;

fn map_or_null<I: IntoIterator<Item = (String, Value)>>(it: I) -> Value {
    let m: Map<String, Value> = it.into_iter().collect();
    if m.is_empty() {
        Value::Null
    } else {
        Value::Object(m)
    }
}

/// Builds the payload 1.0 event for a request.
pub fn to_event(input: &EventInput<'_>) -> Value {
    let headers = input.header_values();
    let query = input.query_values();
    let body = input.body(PayloadVersion::V1);
    let auth = input.auth;

    let mut identity = json!({
        "accessKey": null,
        "accountId": null,
        "apiKey": null,
        "apiKeyId": null,
        "caller": null,
        "cognitoAuthenticationProvider": null,
        "cognitoAuthenticationType": null,
        "cognitoIdentityId": null,
        "cognitoIdentityPoolId": null,
        "principalOrgId": null,
        "sourceIp": input.source_ip.to_string(),
        "user": null,
        "userAgent": input.user_agent(),
        "userArn": null,
    });
    if let Some(k) = auth.and_then(|a| a.api_key.as_ref()) {
        identity["apiKey"] = json!(&*k.key);
        identity["apiKeyId"] = json!(&*k.id);
    }
    if let Some(iam) = auth.and_then(|a| a.iam()) {
        identity["accessKey"] = json!(iam.access_key);
        identity["accountId"] = json!(iam.account_id);
        identity["caller"] = json!(iam.caller_id);
        identity["user"] = json!(iam.user_id);
        identity["userArn"] = json!(iam.user_arn);
        identity["principalOrgId"] = json!(iam.principal_org_id);
    }

    let full_path = input.shown_path(input.raw_path);
    let mut ctx = json!({
        "accountId": input.account_id,
        "apiId": input.api_id,
        "domainName": input.domain_name(),
        "domainPrefix": input.domain_prefix(),
        "extendedRequestId": input.request_id,
        "httpMethod": input.method.as_str(),
        "identity": identity,
        "path": full_path,
        "protocol": input.protocol,
        "requestId": input.request_id,
        "requestTime": input.request_time(),
        "requestTimeEpoch": input.epoch_millis(),
        "resourceId": resource_id(input.route_key),
        "resourcePath": input.resource,
        "stage": input.stage,
    });
    if let Some(a) = auth.and_then(|a| a.authorizer.as_ref()) {
        let authorizer = match a {
            AuthorizerOutput::Jwt { claims, scopes } => json!({
                "claims": crate::auth::jwt::claims_as_strings(claims),
                "scopes": if scopes.is_empty() { Value::Null } else { json!(scopes.as_slice()) },
            }),
            AuthorizerOutput::Lambda {
                principal_id,
                context,
            } => {
                let mut m = (**context).clone();
                m.insert("principalId".into(), json!(principal_id));
                m.insert("integrationLatency".into(), json!(0));
                Value::Object(m)
            }
            AuthorizerOutput::Iam(_) => Value::Null,
        };
        if !authorizer.is_null() {
            ctx["authorizer"] = authorizer;
        }
    }

    json!({
        "resource": input.resource,
        "path": input.shown_path(input.path),
        "httpMethod": input.method.as_str(),
        "headers": map_or_null(headers.iter().map(|(k, vs)| (k.clone(), json!(vs.last())))),
        "multiValueHeaders": map_or_null(headers.iter().map(|(k, vs)| (k.clone(), json!(vs)))),
        "queryStringParameters": map_or_null(query.iter().map(|(k, vs)| (k.clone(), json!(vs.last())))),
        "multiValueQueryStringParameters": map_or_null(query.iter().map(|(k, vs)| (k.clone(), json!(vs)))),
        "pathParameters": map_or_null(input.path_params.iter().map(|(k, v)| (k.clone(), json!(v)))),
        "stageVariables": map_or_null(input.stage_variables.iter().map(|(k, v)| (k.clone(), json!(v)))),
        "requestContext": ctx,
        "body": body.as_ref().map(|(b, _)| b.as_str()),
        "isBase64Encoded": body.as_ref().is_some_and(|(_, b64)| *b64),
    })
}

/// A short stable id for a resource, like API Gateway's `resourceId`.
pub(crate) fn resource_id(route_key: &str) -> String {
    // FNV-1a, base36: stable across runs and nodes.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in route_key.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    let mut s = String::new();
    for _ in 0..6 {
        let d = (h % 36) as u8;
        s.push(if d < 10 {
            (b'0' + d) as char
        } else {
            (b'a' + d - 10) as char
        });
        h /= 36;
    }
    s
}

/// Maps a payload 1.0 proxy response to HTTP. Anything malformed is the
/// `502 Internal server error` API Gateway answers.
pub fn from_response(payload: &[u8]) -> Result<Response<Body>, GatewayError> {
    let malformed =
        |why: &str| GatewayError::Integration(format!("malformed Lambda proxy response: {why}"));
    let value: Value = serde_json::from_slice(payload).map_err(|_| malformed("not JSON"))?;
    let Value::Object(obj) = value else {
        return Err(malformed("not a JSON object"));
    };
    let status = status_code(obj.get("statusCode"))
        .ok_or_else(|| malformed("statusCode missing or invalid"))?;
    let mut res = Response::builder().status(status);
    let headers = res.headers_mut().expect("builder is valid");
    // multiValueHeaders first; a `headers` key also present there is dropped,
    // as API Gateway merges them.
    let mut seen = std::collections::HashSet::new();
    if let Some(mv) = obj.get("multiValueHeaders").filter(|v| !v.is_null()) {
        let Value::Object(mv) = mv else {
            return Err(malformed("multiValueHeaders is not an object"));
        };
        for (name, values) in mv {
            let Value::Array(values) = values else {
                return Err(malformed("a multiValueHeaders value is not an array"));
            };
            let hn = header_name(name).ok_or_else(|| malformed("bad header name"))?;
            if is_hop_by_hop(&hn) {
                continue;
            }
            seen.insert(hn.clone());
            for v in values {
                headers.append(
                    hn.clone(),
                    header_value(v).ok_or_else(|| malformed("bad header value"))?,
                );
            }
        }
    }
    if let Some(h) = obj.get("headers").filter(|v| !v.is_null()) {
        let Value::Object(h) = h else {
            return Err(malformed("headers is not an object"));
        };
        for (name, v) in h {
            let hn = header_name(name).ok_or_else(|| malformed("bad header name"))?;
            if seen.contains(&hn) || is_hop_by_hop(&hn) {
                continue;
            }
            headers.insert(
                hn,
                header_value(v).ok_or_else(|| malformed("bad header value"))?,
            );
        }
    }
    let is_b64 = match obj.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(malformed("isBase64Encoded is not a boolean")),
    };
    let body = match obj.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if is_b64 => {
            decode_base64_body(s).ok_or_else(|| malformed("body is not valid base64"))?
        }
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(_) => return Err(malformed("body is not a string")),
    };
    if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    res.body(Body::from(body))
        .map_err(|e| malformed(&e.to_string()))
}

/// A proxy response's `statusCode`: a final status (200-599). A 1xx is
/// refused too: written as the answer, a client would read it as an
/// interim response and take the next response on its connection as this
/// request's.
pub(crate) fn status_code(v: Option<&Value>) -> Option<StatusCode> {
    let n = match v? {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    u16::try_from(n)
        .ok()
        .filter(|n| (200..=599).contains(n))
        .and_then(|n| StatusCode::from_u16(n).ok())
}

/// Whether a header a function returned is hop-by-hop (`Connection`,
/// `Upgrade`, `Keep-Alive`, `TE`, `Trailer`, ...): such headers describe the
/// gateway's own connection to the client and are dropped, as they are from
/// `http` upstreams.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    crate::http1::fields::is_hop_by_hop(name)
}

pub(crate) fn header_name(name: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(name.as_bytes()).ok()
}

pub(crate) fn header_value(v: &Value) -> Option<HeaderValue> {
    match v {
        Value::String(s) => HeaderValue::from_str(s).ok(),
        Value::Number(n) => HeaderValue::from_str(&n.to_string()).ok(),
        Value::Bool(b) => HeaderValue::from_str(&b.to_string()).ok(),
        _ => None,
    }
}
