//! Why a signature was refused, and what AWS answers for it.

use axum::http::StatusCode;

/// Why a signature was refused, in the classes AWS's front ends answer with
/// (`x-amzn-ErrorType` and message as the Lambda API sends them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sigv4Refusal {
    /// No signature at all.
    Missing,
    /// An `Authorization` header or presigned query missing one of its parts.
    Incomplete(String),
    /// Unknown access key or wrong session token.
    UnrecognizedClient(String),
    /// Wrong signature, scope or time: `reason` goes to the log, `message`
    /// to the client.
    InvalidSignature { reason: String, message: String },
}

const MISMATCH_MESSAGE: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

impl Sigv4Refusal {
    pub(super) fn invalid(reason: String, message: String) -> Self {
        Sigv4Refusal::InvalidSignature { reason, message }
    }

    pub(super) fn mismatch(reason: &str) -> Self {
        Sigv4Refusal::InvalidSignature {
            reason: reason.to_string(),
            message: MISMATCH_MESSAGE.to_string(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Sigv4Refusal::Incomplete(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::FORBIDDEN,
        }
    }

    /// The `x-amzn-ErrorType` AWS sends.
    pub fn error_type(&self) -> &'static str {
        match self {
            Sigv4Refusal::Missing => "MissingAuthenticationTokenException",
            Sigv4Refusal::Incomplete(_) => "IncompleteSignatureException",
            Sigv4Refusal::UnrecognizedClient(_) => "UnrecognizedClientException",
            Sigv4Refusal::InvalidSignature { .. } => "InvalidSignatureException",
        }
    }

    /// The message AWS sends the client.
    pub fn message(&self) -> &str {
        match self {
            Sigv4Refusal::Missing => "Missing Authentication Token",
            Sigv4Refusal::Incomplete(m) => m,
            Sigv4Refusal::UnrecognizedClient(_) => {
                "The security token included in the request is invalid."
            }
            Sigv4Refusal::InvalidSignature { message, .. } => message,
        }
    }

    /// Why, for the log (never a secret).
    pub fn reason(&self) -> &str {
        match self {
            Sigv4Refusal::Missing => "no SigV4 signature (Authorization or X-Amz-Signature)",
            Sigv4Refusal::Incomplete(r)
            | Sigv4Refusal::UnrecognizedClient(r)
            | Sigv4Refusal::InvalidSignature { reason: r, .. } => r,
        }
    }
}
