//! The Lambda Invoke API on its own listener (`[invoke_api]`):
//! `POST /2015-03-31/functions/{name}/invocations`, so `aws lambda invoke
//! --endpoint-url`, boto3, aws-sdk-lambda and another lambdagate's `lambda`
//! backend can call the gateway's functions directly. Not part of the API
//! pipeline: no routes, throttles or events; the payload goes to the
//! function as sent, on the backend the serving stage gives it.
//!
//! What may happen here: `RequestResponse` (200 with the function's payload,
//! `X-Amz-Function-Error` when it failed, `X-Amz-Log-Result` for
//! `X-Amz-Log-Type: Tail`), `Event` (202, run in the background), `DryRun`
//! (204); refusals in AWS's shape — a JSON body and `x-amzn-ErrorType`
//! (`ResourceNotFoundException` 404, `TooManyRequestsException` 429,
//! `RequestTooLargeException` 413, `InvalidParameterValueException` 400).
//!
//! With `[invoke_api] auth` naming a `kind = "sigv4"` authorizer, every
//! call must be signed for service `lambda` with one of its access keys
//! (header or presigned form, 5 minutes of clock skew); refusals are what
//! Lambda answers: 403 `MissingAuthenticationTokenException`,
//! `UnrecognizedClientException` or `InvalidSignatureException` (400
//! `IncompleteSignatureException`) with `{"message": ...}`. Without `auth`
//! calls are accepted unsigned.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use crate::Gateway;
use crate::auth::Authorizer;
use crate::backend::lambda::split_qualifier;
use crate::backend::{BackendError, InvokeRequest};

/// Lambda's synchronous request payload limit.
const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;
/// Headroom past the function's own timeout, so its deadline fires first.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(2);

/// Gives the gateway serving now (it changes on hot reload).
pub type CurrentGateway = Arc<dyn Fn() -> Gateway + Send + Sync>;

/// The Invoke API's routes.
pub fn router(current: CurrentGateway) -> Router {
    Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        // `[invoke_api] auth`: the signature is checked before anything runs.
        .route_layer(axum::middleware::from_fn_with_state(
            current.clone(),
            require_signature,
        ))
        .fallback(unknown_operation)
        .with_state(current)
}

/// Serves the Invoke API on `listener` until `shutdown` completes, under
/// the same listener policy as the API ([`crate::server::serve_router`],
/// the gateway's `[gateway.limits]` at start); a request body is capped at
/// Lambda's payload limit (or `max_function_payload`, if larger), which
/// the route refuses in Lambda's words.
pub async fn serve(
    listener: tokio::net::TcpListener,
    current: CurrentGateway,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let policy = {
        let gateway = current();
        let settings = &gateway.state().config.gateway;
        let max_body = settings.limits.max_function_payload.max(MAX_REQUEST_BYTES);
        crate::server::ListenerPolicy::of(settings).with_max_body(max_body)
    };
    crate::server::serve_router(listener, router(current), policy, shutdown).await
}

/// An AWS-style error: JSON body, `x-amzn-ErrorType`, request id.
fn aws_error(status: StatusCode, error_type: &str, message: &str, request_id: &str) -> Response {
    let body = serde_json::json!({ "Type": "User", "message": message });
    let mut res = (status, body.to_string()).into_response();
    let h = res.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(error_type) {
        h.insert("x-amzn-errortype", v);
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    res
}

/// Verifies the caller's SigV4 signature (service `lambda`) when
/// `[invoke_api] auth` is set; the body is read (bounded) and put back.
async fn require_signature(
    State(current): State<CurrentGateway>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let gateway = current();
    let state = gateway.state();
    let Some(name) = state
        .config
        .invoke_api
        .as_ref()
        .and_then(|i| i.auth.as_deref())
    else {
        return next.run(req).await;
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let Some(Authorizer::Sigv4(verifier)) = state.authorizers.get(name).map(|a| &**a) else {
        // Config validation only lets a sigv4 authorizer through.
        tracing::error!(target: "lambdagate::auth", authorizer = %name, "[invoke_api] auth is not a sigv4 authorizer");
        return aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "the Invoke API's authorizer is not available",
            &request_id,
        );
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REQUEST_BYTES).await else {
        return too_large(&request_id);
    };
    match verifier.verify_service(&parts, &bytes, "lambda") {
        Ok(granted) => {
            crate::metrics::auth_decision(name, "allow");
            tracing::info!(
                target: "lambdagate::auth",
                route = "invoke_api",
                authorizer = %name,
                kind = "sigv4",
                decision = "allow",
                reason = %granted.note,
            );
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(refusal) => {
            crate::metrics::auth_decision(name, "deny");
            tracing::warn!(
                target: "lambdagate::auth",
                route = "invoke_api",
                authorizer = %name,
                kind = "sigv4",
                decision = "deny",
                status = refusal.status().as_u16(),
                reason = %refusal.reason(),
            );
            let body = serde_json::json!({ "message": refusal.message() });
            let mut res = (refusal.status(), body.to_string()).into_response();
            let h = res.headers_mut();
            h.insert("content-type", HeaderValue::from_static("application/json"));
            h.insert(
                "x-amzn-errortype",
                HeaderValue::from_static(refusal.error_type()),
            );
            set_request_id(&mut res, &request_id);
            res
        }
    }
}

fn too_large(request_id: &str) -> Response {
    aws_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestTooLargeException",
        &format!(
            "Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation"
        ),
        request_id,
    )
}

async fn unknown_operation() -> Response {
    aws_error(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        "only POST /2015-03-31/functions/{name}/invocations is served here",
        &uuid::Uuid::new_v4().to_string(),
    )
}

#[derive(Debug, Deserialize)]
struct InvokeQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

/// `name`, `name:qualifier`, `123456789012:function:name[:q]` or a full ARN.
fn function_key(name: &str) -> (&str, Option<&str>) {
    let rest = match name.find(":function:") {
        Some(i) => &name[i + ":function:".len()..],
        None => name,
    };
    split_qualifier(rest)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn invoke(
    State(current): State<CurrentGateway>,
    Path(name): Path<String>,
    Query(query): Query<InvokeQuery>,
    req: Request,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let gateway = current();
    let state = gateway.state();
    let (key, name_qualifier) = function_key(&name);
    let qualifier = query.qualifier.as_deref().or(name_qualifier);
    let Some(target) = state.invocable.get(key) else {
        let arn = format!(
            "arn:aws:lambda:{}:{}:function:{key}",
            state.config.gateway.region, state.config.gateway.account_id
        );
        return aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {arn}"),
            &request_id,
        );
    };
    let headers = req.headers().clone();
    let invocation_type = header(&headers, "x-amz-invocation-type").unwrap_or("RequestResponse");
    let log_tail = match header(&headers, "x-amz-log-type").unwrap_or("None") {
        "Tail" => true,
        "None" => false,
        other => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                &format!("unsupported X-Amz-Log-Type `{other}`: use None or Tail"),
                &request_id,
            );
        }
    };
    let payload = match axum::body::to_bytes(req.into_body(), MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => return too_large(&request_id),
    };
    let invoke_request = InvokeRequest {
        function: target.function.clone(),
        payload,
        timeout: target.function.timeout + TIMEOUT_MARGIN,
        request_id: request_id.clone(),
        client_context: header(&headers, "x-amz-client-context").map(str::to_string),
        log_tail: log_tail && invocation_type == "RequestResponse",
    };
    tracing::debug!(function = key, ?qualifier, invocation_type, %request_id, "Invoke API call");
    let executed = HeaderValue::from_static("$LATEST");
    match invocation_type {
        "DryRun" => {
            let mut res = StatusCode::NO_CONTENT.into_response();
            set_request_id(&mut res, &request_id);
            res
        }
        "Event" => {
            let target = target.clone();
            tokio::spawn(async move {
                let id = invoke_request.request_id.clone();
                match target.backend.invoke(invoke_request).await {
                    Ok(r) if r.function_error.is_some() => {
                        tracing::warn!(function = %target.function.key, request_id = %id, "asynchronous invocation failed")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(function = %target.function.key, request_id = %id, error = %e, "asynchronous invocation failed")
                    }
                }
            });
            let mut res = StatusCode::ACCEPTED.into_response();
            set_request_id(&mut res, &request_id);
            res
        }
        "RequestResponse" => match target.backend.invoke(invoke_request).await {
            Ok(out) => {
                let mut res = (StatusCode::OK, Body::from(out.payload)).into_response();
                let h = res.headers_mut();
                h.insert("content-type", HeaderValue::from_static("application/json"));
                h.insert(
                    "x-amz-executed-version",
                    out.executed_version
                        .as_deref()
                        .and_then(|v| HeaderValue::from_str(v).ok())
                        .unwrap_or(executed),
                );
                if let Some(e) = out.function_error.as_deref()
                    && let Ok(v) = HeaderValue::from_str(e)
                {
                    h.insert("x-amz-function-error", v);
                }
                if log_tail
                    && let Some(l) = out.log_result.as_deref()
                    && let Ok(v) = HeaderValue::from_str(l)
                {
                    h.insert("x-amz-log-result", v);
                }
                set_request_id(&mut res, &request_id);
                res
            }
            Err(e) => backend_error(e, &target.function.timeout, &request_id),
        },
        other => aws_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            &format!(
                "unsupported X-Amz-Invocation-Type `{other}`: use RequestResponse, Event or DryRun"
            ),
            &request_id,
        ),
    }
}

fn set_request_id(res: &mut Response, request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        res.headers_mut().insert("x-amzn-requestid", v);
    }
}

/// A failed invocation, as Lambda reports it.
fn backend_error(e: BackendError, function_timeout: &Duration, request_id: &str) -> Response {
    match e {
        // Lambda answers a timed-out function with 200 and a function error.
        BackendError::Timeout(_) => {
            let doc = serde_json::json!({
                "errorType": "Sandbox.Timedout",
                "errorMessage": format!(
                    "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
                    function_timeout.as_secs_f64()
                ),
            });
            let mut res = (StatusCode::OK, doc.to_string()).into_response();
            let h = res.headers_mut();
            h.insert("content-type", HeaderValue::from_static("application/json"));
            h.insert(
                "x-amz-function-error",
                HeaderValue::from_static("Unhandled"),
            );
            h.insert(
                "x-amz-executed-version",
                HeaderValue::from_static("$LATEST"),
            );
            set_request_id(&mut res, request_id);
            res
        }
        BackendError::Throttled(m) => {
            let body = serde_json::json!({
                "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
                "Type": "User",
                "message": format!("Rate Exceeded. {m}"),
            });
            let mut res = (StatusCode::TOO_MANY_REQUESTS, body.to_string()).into_response();
            let h = res.headers_mut();
            h.insert("content-type", HeaderValue::from_static("application/json"));
            h.insert(
                "x-amzn-errortype",
                HeaderValue::from_static("TooManyRequestsException"),
            );
            h.insert("retry-after", HeaderValue::from_static("1"));
            set_request_id(&mut res, request_id);
            res
        }
        BackendError::NotFound(m) => aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {m}"),
            request_id,
        ),
        BackendError::RequestTooLarge => aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
            request_id,
        ),
        other => {
            tracing::warn!(error = %other, %request_id, "Invoke API call failed");
            aws_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                &other.to_string(),
                request_id,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::function_key;

    #[test]
    fn function_names_arns_and_qualifiers() {
        assert_eq!(function_key("hello"), ("hello", None));
        assert_eq!(function_key("hello:dev"), ("hello", Some("dev")));
        assert_eq!(
            function_key("arn:aws:lambda:eu-west-1:123456789012:function:hello:live"),
            ("hello", Some("live"))
        );
        assert_eq!(function_key("123456789012:function:hello"), ("hello", None));
    }
}
