//! Backends run functions: `lambda` (real AWS Lambda through
//! aws-sdk-lambda) and `local` (the built-in Runtime API). `http` forwards to
//! an upstream and `mock` answers from config; those two are route
//! integrations rather than function hosts.
//!
//! All function hosts implement [`FunctionBackend`] on gateway-owned types,
//! so the integration phase never knows which one it is talking to.

pub mod http;
pub mod lambda;
pub mod local;
pub mod mock;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::config::FunctionConfig;
use crate::error::GatewayError;

/// One synchronous (RequestResponse) invocation.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    /// The function, with `${stageVariables.X}` already resolved.
    pub function: Arc<FunctionConfig>,
    pub payload: Bytes,
    /// How long the caller waits.
    pub timeout: Duration,
    pub request_id: String,
    /// Base64 client context (Invoke API `X-Amz-Client-Context`).
    pub client_context: Option<String>,
    /// Return the tail of the function's log (Invoke API `X-Amz-Log-Type: Tail`).
    pub log_tail: bool,
}

/// What a function returned.
#[derive(Debug, Clone, Default)]
pub struct InvokeResponse {
    pub payload: Bytes,
    /// `Unhandled` / `Handled` when the function failed (`X-Amz-Function-Error`).
    pub function_error: Option<String>,
    pub executed_version: Option<String>,
    /// Base64 of the last 4 KB of the log, when asked for.
    pub log_result: Option<String>,
}

/// Why an invocation did not produce a response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("function timed out after {0:?}")]
    Timeout(Duration),
    #[error("function throttled: {0}")]
    Throttled(String),
    #[error("function not found: {0}")]
    NotFound(String),
    #[error("request payload too large for the function")]
    RequestTooLarge,
    #[error("function response too large")]
    ResponseTooLarge,
    #[error("invocation failed: {0}")]
    Failed(String),
}

impl From<BackendError> for GatewayError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Timeout(_) => GatewayError::IntegrationTimeout,
            BackendError::Throttled(_) => GatewayError::TooManyRequests {
                retry_after_secs: 1,
            },
            BackendError::RequestTooLarge => GatewayError::PayloadTooLarge,
            other => GatewayError::Integration(other.to_string()),
        }
    }
}

/// A place functions run.
pub trait FunctionBackend: Send + Sync + 'static {
    fn invoke(&self, req: InvokeRequest) -> BoxFuture<'_, Result<InvokeResponse, BackendError>>;

    /// Stops whatever the backend runs (local processes); called once on shutdown.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
