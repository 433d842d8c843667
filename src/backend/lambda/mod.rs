//! `lambda` backend: invokes real AWS Lambda (or anything that speaks its
//! Invoke API: LocalStack, SAM local, the Runtime Interface Emulator, another
//! lambdagate's Invoke API). Credentials and region come from the standard
//! aws-config chain, the endpoint from aws-sdk-lambda's resolver; each
//! invocation goes out through [`invoke::Invoker`], the same request the
//! SDK's `Invoke` sends, without its per-call orchestration.
//!
//! Invocations are never retried: an invoke is not idempotent, and a
//! throttled function must reach the client as a 429, not as more load.

pub mod invoke;

use aws_config::BehaviorVersion;
use aws_sdk_lambda::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use futures::future::BoxFuture;

use self::invoke::{Answer, Call, CallError, Invoker};
use super::{BackendError, FunctionBackend, InvokeRequest, InvokeResponse};

pub struct LambdaBackend {
    name: String,
    invoker: Result<Invoker, String>,
}

/// Splits `name:qualifier` (not an ARN) into its parts.
pub fn split_qualifier(name: &str) -> (&str, Option<&str>) {
    if name.starts_with("arn:") {
        return (name, None);
    }
    match name.rsplit_once(':') {
        Some((n, q)) if !n.is_empty() && !q.is_empty() => (n, Some(q)),
        _ => (name, None),
    }
}

impl LambdaBackend {
    pub async fn new(
        name: &str,
        region: Option<&str>,
        endpoint_url: Option<&str>,
        profile: Option<&str>,
    ) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_string()));
        }
        if let Some(p) = profile {
            loader = loader.profile_name(p);
        }
        let shared = loader.load().await;
        let region = match shared.region() {
            Some(r) => r.to_string(),
            None => {
                tracing::warn!(backend = name, "no AWS region configured; using us-east-1");
                "us-east-1".to_string()
            }
        };
        let params = Params::builder()
            .region(region.clone())
            .use_fips(shared.use_fips().unwrap_or(false))
            .use_dual_stack(shared.use_dual_stack().unwrap_or(false))
            .set_endpoint(endpoint_url.or(shared.endpoint_url()).map(str::to_string))
            .build();
        let endpoint = match params {
            Ok(p) => DefaultResolver::new()
                .resolve_endpoint(&p)
                .await
                .map(|e| e.url().to_string())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let invoker = endpoint
            .and_then(|url| Invoker::new(&url, &region, shared.credentials_provider()))
            .map_err(|e| format!("backend `{name}`: no Lambda endpoint: {e}"));
        if let Err(e) = &invoker {
            tracing::error!(backend = name, error = %e, "the lambda backend cannot invoke");
        }
        Self {
            name: name.to_string(),
            invoker,
        }
    }

    async fn call(&self, req: InvokeRequest) -> Result<InvokeResponse, BackendError> {
        let invoker = self
            .invoker
            .as_ref()
            .map_err(|e| BackendError::Failed(e.clone()))?;
        let (function, qualifier) = split_qualifier(&req.function.name);
        let call = Call {
            function,
            qualifier,
            payload: req.payload.clone(),
            log_tail: req.log_tail,
            client_context: req.client_context.as_deref(),
        };
        let answer = match tokio::time::timeout(req.timeout, invoker.invoke(&call)).await {
            Err(_) => return Err(BackendError::Timeout(req.timeout)),
            Ok(Err(e)) => return Err(self.call_failed(&req.function.name, e)),
            Ok(Ok(answer)) => answer,
        };
        if !(200..300).contains(&answer.status) {
            return Err(self.service_error(&req.function.name, &answer));
        }
        let header = |name: &str| {
            answer
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(InvokeResponse {
            function_error: header("x-amz-function-error"),
            executed_version: header("x-amz-executed-version"),
            log_result: header("x-amz-log-result"),
            payload: answer.body,
        })
    }

    fn call_failed(&self, function: &str, e: CallError) -> BackendError {
        let message = match e {
            CallError::TooLarge => return BackendError::ResponseTooLarge,
            CallError::Credentials(m) => format!("no AWS credentials: {m}"),
            CallError::Transport(m) => m,
        };
        tracing::error!(backend = %self.name, function, error = %message, "Lambda invoke failed");
        BackendError::Failed(message)
    }

    /// An error answer of the Invoke API, by its error code (the
    /// `X-Amzn-ErrorType` header, else the body's `code` or `__type`).
    fn service_error(&self, function: &str, answer: &Answer) -> BackendError {
        let (code, message) = error_code_and_message(answer);
        match code.as_deref() {
            Some("TooManyRequestsException") => {
                BackendError::Throttled(message.unwrap_or_else(|| "rate exceeded".into()))
            }
            Some("ResourceNotFoundException") => {
                tracing::error!(backend = %self.name, function, "Lambda says the function does not exist");
                BackendError::NotFound(function.to_string())
            }
            Some("RequestTooLargeException") => BackendError::RequestTooLarge,
            _ => {
                let code = code.unwrap_or_else(|| format!("HTTP {}", answer.status));
                let described = match message {
                    Some(m) => format!("{code}: {m}"),
                    None => code,
                };
                tracing::error!(backend = %self.name, function, status = answer.status, error = %described, "Lambda invoke failed");
                BackendError::Failed(described)
            }
        }
    }
}

/// The error code and message of an Invoke API error answer, read as the
/// SDK reads them: the `X-Amzn-ErrorType` header before the body's `code`
/// (then `__type`), each cut to the name (`Name:uri` and `ns#Name` forms).
fn error_code_and_message(answer: &Answer) -> (Option<String>, Option<String>) {
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    let field = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let code = answer
        .headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| field("code"))
        .or_else(|| field("__type"))
        .map(|c| {
            let c = c.split(':').next().unwrap_or_default();
            c.rsplit('#').next().unwrap_or_default().to_string()
        })
        .filter(|c| !c.is_empty());
    let message = field("message")
        .or_else(|| field("Message"))
        .or_else(|| field("errorMessage"));
    (code, message)
}

impl FunctionBackend for LambdaBackend {
    fn invoke(&self, req: InvokeRequest) -> BoxFuture<'_, Result<InvokeResponse, BackendError>> {
        Box::pin(self.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Answer {
            status,
            headers: map,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn error_codes_are_read_as_the_sdk_reads_them() {
        let a = answer(
            429,
            &[(
                "x-amzn-errortype",
                "TooManyRequestsException:http://internal.amazon.com/coral/com.amazonaws.awsgirlambda/",
            )],
            r#"{"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}"#,
        );
        assert_eq!(
            error_code_and_message(&a),
            (
                Some("TooManyRequestsException".into()),
                Some("Rate Exceeded.".into())
            )
        );
        let a = answer(
            404,
            &[],
            r#"{"__type":"com.amazonaws#ResourceNotFoundException","Message":"Function not found"}"#,
        );
        assert_eq!(
            error_code_and_message(&a),
            (
                Some("ResourceNotFoundException".into()),
                Some("Function not found".into())
            )
        );
        let a = answer(500, &[], r#"{"code":"ServiceException","__type":"Other"}"#);
        assert_eq!(
            error_code_and_message(&a).0.as_deref(),
            Some("ServiceException")
        );
        let a = answer(502, &[], "<html>bad gateway</html>");
        assert_eq!(error_code_and_message(&a), (None, None));
    }

    #[test]
    fn each_lambda_error_maps_to_its_backend_error() {
        let backend = LambdaBackend {
            name: "aws".into(),
            invoker: Err("unused".into()),
        };
        let code = |c: &str, status: u16| {
            let body = format!(r#"{{"Type":"User","message":"{c} happened"}}"#);
            backend.service_error("f", &answer(status, &[("x-amzn-errortype", c)], &body))
        };
        assert!(
            matches!(code("TooManyRequestsException", 429), BackendError::Throttled(m) if m == "TooManyRequestsException happened")
        );
        assert!(
            matches!(code("ResourceNotFoundException", 404), BackendError::NotFound(f) if f == "f")
        );
        assert!(matches!(
            code("RequestTooLargeException", 413),
            BackendError::RequestTooLarge
        ));
        for other in [
            "ServiceException",
            "KMSAccessDeniedException",
            "KMSDisabledException",
            "EC2ThrottledException",
            "ENILimitReachedException",
            "InvalidRuntimeException",
            "ResourceNotReadyException",
        ] {
            assert!(
                matches!(code(other, 502), BackendError::Failed(m) if m == format!("{other}: {other} happened")),
                "{other}"
            );
        }
        let err = backend.service_error("f", &answer(503, &[], ""));
        assert!(matches!(err, BackendError::Failed(m) if m == "HTTP 503"));
    }

    #[test]
    fn qualifiers() {
        assert_eq!(split_qualifier("hello:live"), ("hello", Some("live")));
        assert_eq!(split_qualifier("hello"), ("hello", None));
        assert_eq!(
            split_qualifier("arn:aws:lambda:eu-west-1:123:function:hello"),
            ("arn:aws:lambda:eu-west-1:123:function:hello", None)
        );
    }
}
