//! Payload format 2.0 (HTTP API): `to_event` builds the request event,
//! `from_response` maps the function's response — structured, or the
//! inferred format where a bare JSON value becomes a 200 JSON body.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value, json};

use super::v1::{header_name, header_value, is_hop_by_hop, status_code};
use super::{EventInput, decode_base64_body};
use crate::auth::AuthorizerOutput;
use crate::config::PayloadVersion;
use crate::error::GatewayError;

/// Builds the payload 2.0 event for a request.
pub fn to_event(input: &EventInput<'_>) -> Value {
    let mut cookies: Vec<String> = Vec::new();
    let mut headers = Map::new();
    for (name, values) in input.header_values() {
        if name == "cookie" {
            for v in &values {
                cookies.extend(
                    v.split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_string),
                );
            }
            continue;
        }
        headers.insert(name, json!(values.join(",")));
    }
    let query: Map<String, Value> = input
        .query_values()
        .into_iter()
        .map(|(k, vs)| (k, json!(vs.join(","))))
        .collect();

    let mut ctx = json!({
        "accountId": input.account_id,
        "apiId": input.api_id,
        "domainName": input.domain_name(),
        "domainPrefix": input.domain_prefix(),
        "http": {
            "method": input.method.as_str(),
            "path": input.shown_path(input.raw_path),
            "protocol": input.protocol,
            "sourceIp": input.source_ip.to_string(),
            "userAgent": input.user_agent().unwrap_or_default(),
        },
        "requestId": input.request_id,
        "routeKey": input.route_key,
        "stage": input.stage,
        "time": input.request_time(),
        "timeEpoch": input.epoch_millis(),
    });
    if let Some(auth) = input.auth {
        let authorizer = match &auth.authorizer {
            Some(AuthorizerOutput::Jwt { claims, scopes }) => Some(json!({
                "jwt": {
                    "claims": crate::auth::jwt::claims_as_strings(claims),
                    "scopes": if scopes.is_empty() { Value::Null } else { json!(scopes.as_slice()) },
                }
            })),
            Some(AuthorizerOutput::Lambda { context, .. }) => Some(json!({ "lambda": &**context })),
            Some(AuthorizerOutput::Iam(iam)) => Some(json!({
                "iam": {
                    "accessKey": iam.access_key,
                    "accountId": iam.account_id,
                    "callerId": iam.caller_id,
                    "cognitoIdentity": null,
                    "principalOrgId": iam.principal_org_id,
                    "userArn": iam.user_arn,
                    "userId": iam.user_id,
                }
            })),
            None => None,
        };
        if let Some(a) = authorizer {
            ctx["authorizer"] = a;
        }
    }

    let mut event = json!({
        "version": "2.0",
        "routeKey": input.route_key,
        "rawPath": input.shown_path(input.raw_path),
        "rawQueryString": input.raw_query,
        "headers": headers,
        "requestContext": ctx,
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !input.path_params.is_empty() {
        event["pathParameters"] = input
            .path_params
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<Map<_, _>>()
            .into();
    }
    if !input.stage_variables.is_empty() {
        event["stageVariables"] = input
            .stage_variables
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<Map<_, _>>()
            .into();
    }
    if let Some((body, b64)) = input.body(PayloadVersion::V2) {
        event["body"] = json!(body);
        event["isBase64Encoded"] = json!(b64);
    }
    event
}

/// Maps a payload 2.0 response to HTTP.
pub fn from_response(payload: &[u8]) -> Result<Response<Body>, GatewayError> {
    let malformed =
        |why: &str| GatewayError::Integration(format!("malformed Lambda proxy response: {why}"));
    let value: Value = serde_json::from_slice(payload).map_err(|_| malformed("not JSON"))?;
    let obj = match value {
        Value::Object(obj) if obj.contains_key("statusCode") => obj,
        // Inferred format: any other JSON value is the body of a 200.
        _ => {
            return Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(payload.to_vec()))
                .map_err(|e| malformed(&e.to_string()));
        }
    };
    let status =
        status_code(obj.get("statusCode")).ok_or_else(|| malformed("statusCode is invalid"))?;
    let mut res = Response::builder().status(status);
    let headers = res.headers_mut().expect("builder is valid");
    if let Some(h) = obj.get("headers").filter(|v| !v.is_null()) {
        let Value::Object(h) = h else {
            return Err(malformed("headers is not an object"));
        };
        for (name, v) in h {
            let hn = header_name(name).ok_or_else(|| malformed("bad header name"))?;
            if is_hop_by_hop(&hn) {
                continue;
            }
            headers.insert(
                hn,
                header_value(v).ok_or_else(|| malformed("bad header value"))?,
            );
        }
    }
    if let Some(c) = obj.get("cookies").filter(|v| !v.is_null()) {
        let Value::Array(cookies) = c else {
            return Err(malformed("cookies is not an array"));
        };
        for cookie in cookies {
            let Value::String(s) = cookie else {
                return Err(malformed("a cookie is not a string"));
            };
            headers.append(
                header::SET_COOKIE,
                HeaderValue::from_str(s).map_err(|_| malformed("bad cookie"))?,
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
        // A structured response with a JSON (non-string) body: serialise it.
        Some(other) => other.to_string().into_bytes(),
    };
    if !headers.contains_key(header::CONTENT_TYPE) && !body.is_empty() {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    res.body(Body::from(body))
        .map_err(|e| malformed(&e.to_string()))
}
