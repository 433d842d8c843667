//! `lambda` backend: invokes real AWS Lambda (or anything that speaks its
//! Invoke API: LocalStack, SAM local, the Runtime Interface Emulator, another
//! lambdagate's Invoke API) with aws-sdk-lambda. Credentials and region come
//! from the standard aws-config chain.
//!
//! Invocations are never retried by the SDK: an invoke is not idempotent, and
//! a throttled function must reach the client as a 429, not as more load.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_lambda::Client;
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::operation::invoke::InvokeError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, LogType};
use bytes::Bytes;
use futures::future::BoxFuture;

use super::{BackendError, FunctionBackend, InvokeRequest, InvokeResponse};

pub struct LambdaBackend {
    name: String,
    client: Client,
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
        let mut builder =
            aws_sdk_lambda::config::Builder::from(&shared).retry_config(RetryConfig::disabled());
        if shared.region().is_none() {
            tracing::warn!(backend = name, "no AWS region configured; using us-east-1");
            builder = builder.region(aws_config::Region::new("us-east-1"));
        }
        if let Some(url) = endpoint_url {
            builder = builder.endpoint_url(url);
        }
        Self {
            name: name.to_string(),
            client: Client::from_conf(builder.build()),
        }
    }

    async fn call(&self, req: InvokeRequest) -> Result<InvokeResponse, BackendError> {
        let (function, qualifier) = split_qualifier(&req.function.name);
        let mut op = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(req.payload.to_vec()));
        if let Some(q) = qualifier {
            op = op.qualifier(q);
        }
        if req.log_tail {
            op = op.log_type(LogType::Tail);
        }
        if let Some(cc) = &req.client_context {
            op = op.client_context(cc);
        }
        let out = match tokio::time::timeout(req.timeout, op.send()).await {
            Err(_) => return Err(BackendError::Timeout(req.timeout)),
            Ok(Err(e)) => return Err(self.map_error(&req.function.name, e)),
            Ok(Ok(out)) => out,
        };
        Ok(InvokeResponse {
            payload: out
                .payload()
                .map(|b| Bytes::copy_from_slice(b.as_ref()))
                .unwrap_or_default(),
            function_error: out.function_error().map(str::to_string),
            executed_version: out.executed_version().map(str::to_string),
            log_result: out.log_result().map(str::to_string),
        })
    }

    fn map_error(&self, function: &str, e: SdkError<InvokeError>) -> BackendError {
        if let Some(service) = e.as_service_error() {
            return match service {
                InvokeError::TooManyRequestsException(x) => {
                    BackendError::Throttled(x.message().unwrap_or("rate exceeded").to_string())
                }
                InvokeError::ResourceNotFoundException(_) => {
                    tracing::error!(backend = %self.name, function, "Lambda says the function does not exist");
                    BackendError::NotFound(function.to_string())
                }
                InvokeError::RequestTooLargeException(_) => BackendError::RequestTooLarge,
                other => BackendError::Failed(format!("{other}")),
            };
        }
        if let SdkError::TimeoutError(_) = e {
            return BackendError::Timeout(Duration::ZERO);
        }
        tracing::error!(backend = %self.name, function, error = %aws_smithy_types::error::display::DisplayErrorContext(&e), "Lambda invoke failed");
        BackendError::Failed(e.to_string())
    }
}

impl FunctionBackend for LambdaBackend {
    fn invoke(&self, req: InvokeRequest) -> BoxFuture<'_, Result<InvokeResponse, BackendError>> {
        Box::pin(self.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::split_qualifier;

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
