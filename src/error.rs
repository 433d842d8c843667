//! Every refusal and failure the gateway answers itself, rendered once,
//! the way API Gateway renders it: `{"message": ...}` with AWS's status and
//! an `x-amzn-ErrorType` header. Modules return these; nothing else writes an
//! error body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::config::Flavor;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// No route for this path and method (body depends on the flavor).
    #[error("no route matches the request")]
    RouteNotFound(Flavor),
    #[error("unauthorized: {reason}")]
    Unauthorized {
        /// Logged, never sent.
        reason: String,
        /// `WWW-Authenticate` value, as the HTTP API JWT authorizer sends.
        www_authenticate: Option<String>,
    },
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A Lambda authorizer's explicit deny.
    #[error("access denied by the authorizer's policy")]
    ExplicitDeny,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("quota exhausted")]
    LimitExceeded { retry_after_secs: u64 },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("request headers too large")]
    HeadersTooLarge,
    /// The request's body did not arrive within `body_timeout`.
    #[error("request body timed out")]
    RequestTimeout,
    /// A request line longer than the head's byte budget: `414`.
    #[error("request line too long")]
    UriTooLong,
    /// A transfer coding the gateway cannot decode (only `chunked` is): `501`.
    #[error("transfer coding not implemented")]
    NotImplemented,
    /// An HTTP version other than 1.x in an HTTP/1 request line: `505`.
    #[error("HTTP version not supported")]
    HttpVersionNotSupported,
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Request validation failed; the message lists the problems.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The body does not match the route's JSON Schema; the first problems.
    #[error("invalid request body: {}", .0.join("; "))]
    InvalidBody(Vec<String>),
    /// A function error, a malformed function response, a failed upstream.
    #[error("integration failed: {0}")]
    Integration(String),
    #[error("integration timed out")]
    IntegrationTimeout,
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::RouteNotFound(Flavor::Rest) => StatusCode::FORBIDDEN,
            GatewayError::RouteNotFound(Flavor::Http) => StatusCode::NOT_FOUND,
            GatewayError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            GatewayError::Forbidden(_) | GatewayError::ExplicitDeny => StatusCode::FORBIDDEN,
            GatewayError::TooManyRequests { .. } | GatewayError::LimitExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            GatewayError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            GatewayError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            GatewayError::UriTooLong => StatusCode::URI_TOO_LONG,
            GatewayError::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            GatewayError::HttpVersionNotSupported => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            GatewayError::BadRequest(_)
            | GatewayError::InvalidRequest(_)
            | GatewayError::InvalidBody(_) => StatusCode::BAD_REQUEST,
            GatewayError::Integration(_) => StatusCode::BAD_GATEWAY,
            GatewayError::IntegrationTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `x-amzn-ErrorType` API Gateway sends with this response.
    pub fn error_type(&self) -> &'static str {
        match self {
            GatewayError::RouteNotFound(Flavor::Rest) => "MissingAuthenticationTokenException",
            GatewayError::RouteNotFound(Flavor::Http) => "NotFoundException",
            GatewayError::Unauthorized { .. } => "UnauthorizedException",
            GatewayError::Forbidden(_) => "ForbiddenException",
            GatewayError::ExplicitDeny => "AccessDeniedException",
            GatewayError::TooManyRequests { .. } => "TooManyRequestsException",
            GatewayError::LimitExceeded { .. } => "LimitExceededException",
            GatewayError::PayloadTooLarge => "RequestEntityTooLargeException",
            GatewayError::HeadersTooLarge => "RequestHeaderFieldsTooLargeException",
            GatewayError::RequestTimeout => "RequestTimeoutException",
            GatewayError::UriTooLong => "RequestUriTooLongException",
            GatewayError::NotImplemented => "NotImplementedException",
            GatewayError::HttpVersionNotSupported => "HttpVersionNotSupportedException",
            GatewayError::BadRequest(_)
            | GatewayError::InvalidRequest(_)
            | GatewayError::InvalidBody(_) => "BadRequestException",
            GatewayError::Integration(_) => "InternalServerErrorException",
            GatewayError::IntegrationTimeout => "IntegrationTimeoutException",
            GatewayError::Unavailable(_) => "ServiceUnavailableException",
            GatewayError::Internal(_) => "InternalServerErrorException",
        }
    }

    /// The body's `message`, exactly as API Gateway words it.
    pub fn public_message(&self) -> String {
        match self {
            GatewayError::RouteNotFound(Flavor::Rest) => "Missing Authentication Token".into(),
            GatewayError::RouteNotFound(Flavor::Http) => "Not Found".into(),
            GatewayError::Unauthorized { .. } => "Unauthorized".into(),
            GatewayError::Forbidden(_) => "Forbidden".into(),
            GatewayError::ExplicitDeny => {
                "User is not authorized to access this resource with an explicit deny".into()
            }
            GatewayError::TooManyRequests { .. } => "Too Many Requests".into(),
            GatewayError::LimitExceeded { .. } => "Limit Exceeded".into(),
            GatewayError::PayloadTooLarge => "Request Entity Too Large".into(),
            GatewayError::HeadersTooLarge => "Request Header Fields Too Large".into(),
            GatewayError::RequestTimeout => "Request Timeout".into(),
            GatewayError::UriTooLong => "Request-URI Too Long".into(),
            GatewayError::NotImplemented => "Not Implemented".into(),
            GatewayError::HttpVersionNotSupported => "HTTP Version Not Supported".into(),
            GatewayError::BadRequest(m) => m.clone(),
            GatewayError::InvalidRequest(m) => m.clone(),
            GatewayError::InvalidBody(_) => "Invalid request body".into(),
            GatewayError::Integration(_) | GatewayError::Internal(_) => {
                "Internal server error".into()
            }
            GatewayError::IntegrationTimeout => "Endpoint request timed out".into(),
            GatewayError::Unavailable(_) => "Service Unavailable".into(),
        }
    }
}

impl GatewayError {
    /// The whole body when the message is fixed: such refusals (429s above
    /// all) are answered without building or allocating a body.
    fn static_body(&self) -> Option<&'static str> {
        Some(match self {
            GatewayError::RouteNotFound(Flavor::Rest) => {
                r#"{"message":"Missing Authentication Token"}"#
            }
            GatewayError::RouteNotFound(Flavor::Http) => r#"{"message":"Not Found"}"#,
            GatewayError::Unauthorized { .. } => r#"{"message":"Unauthorized"}"#,
            GatewayError::Forbidden(_) => r#"{"message":"Forbidden"}"#,
            GatewayError::TooManyRequests { .. } => r#"{"message":"Too Many Requests"}"#,
            GatewayError::LimitExceeded { .. } => r#"{"message":"Limit Exceeded"}"#,
            GatewayError::UriTooLong => r#"{"message":"Request-URI Too Long"}"#,
            GatewayError::NotImplemented => r#"{"message":"Not Implemented"}"#,
            GatewayError::HttpVersionNotSupported => r#"{"message":"HTTP Version Not Supported"}"#,
            _ => return None,
        })
    }
}

const ERROR_TYPE: header::HeaderName = header::HeaderName::from_static("x-amzn-errortype");

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match (self.static_body(), &self) {
            (Some(fixed), _) => axum::body::Body::from(fixed),
            // API Gateway's message, plus the problems a client can fix.
            (None, GatewayError::InvalidBody(errors)) => axum::body::Body::from(
                serde_json::json!({ "message": self.public_message(), "errors": errors })
                    .to_string(),
            ),
            (None, _) => axum::body::Body::from(
                serde_json::json!({ "message": self.public_message() }).to_string(),
            ),
        };
        let mut res = Response::new(body);
        *res.status_mut() = status;
        let h = res.headers_mut();
        // Room for every header a refusal carries (429: six), grown once.
        h.reserve(8);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(ERROR_TYPE, HeaderValue::from_static(self.error_type()));
        match &self {
            GatewayError::TooManyRequests { retry_after_secs }
            | GatewayError::LimitExceeded { retry_after_secs } => {
                h.insert(
                    header::RETRY_AFTER,
                    crate::throttle::number(*retry_after_secs),
                );
            }
            GatewayError::Unauthorized {
                www_authenticate: Some(w),
                ..
            } => {
                if let Ok(v) = HeaderValue::from_str(w) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            _ => {}
        }
        res.extensions_mut().insert(ErrorDetail(self));
        res
    }
}

/// The error behind a gateway-made response, kept for the access log.
#[derive(Debug, Clone)]
pub struct ErrorDetail(pub GatewayError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_bodies_are_the_rendered_messages() {
        let fixed = [
            GatewayError::RouteNotFound(Flavor::Rest),
            GatewayError::RouteNotFound(Flavor::Http),
            GatewayError::Unauthorized {
                reason: "r".into(),
                www_authenticate: None,
            },
            GatewayError::Forbidden("r".into()),
            GatewayError::TooManyRequests {
                retry_after_secs: 1,
            },
            GatewayError::LimitExceeded {
                retry_after_secs: 1,
            },
            GatewayError::UriTooLong,
            GatewayError::NotImplemented,
            GatewayError::HttpVersionNotSupported,
        ];
        for e in fixed {
            let rendered = serde_json::json!({ "message": e.public_message() }).to_string();
            assert_eq!(e.static_body(), Some(rendered.as_str()), "{e:?}");
        }
    }
}
