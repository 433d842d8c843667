//! Auth phase, `kind = "sigv4"` (IAM authorization): verifies an inbound AWS
//! Signature Version 4, in the `Authorization` header or presigned in the
//! query string, against access keys from an [`AccessKeyStore`]. The
//! signature is recomputed from the headers the client says it signed and
//! the body as received, and compared in constant time. Requests older or
//! newer than five minutes, expired presigned URLs, unknown keys, wrong
//! scopes and wrong session tokens are `403 Forbidden`. On success the
//! caller's identity reaches the event (`requestContext.identity` /
//! `authorizer.iam`).
//!
//! Two ways to recompute, one authority. `aws_sigv4::http_request::sign`
//! is the reference, but it allocates, formats and canonicalises inside the
//! crate (which keeps its canonical request private), costing more than a
//! whole unauthenticated request through the gateway. So the header form
//! first takes a fast path (submodule `canonical`): the canonical request
//! written here as the crate writes it, hashed, and signed with the
//! crate's own `calculate_signature` under a signing key from its
//! `generate_signing_key`, cached per access key and day. A match is
//! accepted. Anything else — a mismatch, or a request the fast path
//! declines — goes to `sign()`, whose answer stands, so a divergence in
//! our canonicalisation can only make a refusal slower, never refuse a
//! valid request. Presigned URLs always use `sign()`. The unit tests check
//! the fast path against `sign()` on thousands of generated requests.
//!
//! Files: `keys` (access keys and where they come from), `request` (the
//! signature's parts as sent, and the time checks), `signature` (the fast
//! path and the reference), `canonical` (the fast path's canonical
//! request), `refusal` (what a refusal answers).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignatureLocation, SigningSettings};
use axum::http::header::{AUTHORIZATION, HeaderName};
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::{AuthorizerOutput, Decision, Granted};
use crate::config::AuthConfig;
use crate::error::GatewayError;
use request::{check_time, parse_amz_date, parse_header_form, parse_query_form};
use signature::{sha256_hex, signatures_equal};

pub use keys::{AccessKey, AccessKeyStore, CredentialsFile, PreparedKey};
pub use refusal::Sigv4Refusal;

mod canonical;
mod keys;
mod refusal;
mod request;
mod signature;
#[cfg(test)]
mod tests;

/// How far a signature's time may be from now.
const MAX_SKEW: Duration = Duration::from_secs(300);
/// The longest a presigned URL may live (as AWS: 7 days).
const MAX_PRESIGN_EXPIRES: u64 = 604_800;
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Hex SHA-256 of an empty payload.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");
const X_AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");

pub struct Sigv4Authorizer {
    service: String,
    region: String,
    store: Arc<dyn AccessKeyStore>,
    /// Signing settings for the header form, built once (the default
    /// settings allocate): every header the client signed is signed again.
    header_settings: SigningSettings,
    pub(super) decisions: super::DecisionCounters,
}

/// Which computation accepted a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verified {
    FastPath,
    Crate,
}

impl Sigv4Authorizer {
    pub fn new(cfg: &AuthConfig, region: &str) -> Result<Self, String> {
        let name = &cfg.name;
        let Some(path) = &cfg.credentials_file else {
            return Err(format!(
                "[auth.{name}]: a sigv4 authorizer needs `credentials_file` (the key store is not available yet)"
            ));
        };
        let store = CredentialsFile::load(path).map_err(|e| format!("[auth.{name}]: {e}"))?;
        Ok(Self::with_store(
            name,
            cfg.service.as_deref(),
            region,
            Arc::new(store),
        ))
    }

    /// An authorizer named `name` (its decision counters) over `store`,
    /// verifying `service` (default `execute-api`) in `region`.
    pub fn with_store(
        name: &str,
        service: Option<&str>,
        region: &str,
        store: Arc<dyn AccessKeyStore>,
    ) -> Self {
        let mut header_settings = SigningSettings::default();
        header_settings.excluded_headers = Some(Vec::new());
        header_settings.signature_location = SignatureLocation::Headers;
        Self {
            header_settings,
            service: service.unwrap_or("execute-api").to_string(),
            region: region.to_string(),
            store,
            decisions: super::DecisionCounters::new(name),
        }
    }

    pub fn authorize(&self, parts: &Parts, body: &[u8]) -> Decision {
        self.verify_at(parts, body, &self.service, SystemTime::now())
            .map_err(|r| GatewayError::Forbidden(r.reason().to_string()))
    }

    /// Verifies a request signed for `service` (the Invoke API verifies
    /// `lambda` with the same keys as an `execute-api` route).
    pub fn verify_service(
        &self,
        parts: &Parts,
        body: &[u8],
        service: &str,
    ) -> Result<Granted, Sigv4Refusal> {
        self.verify_at(parts, body, service, SystemTime::now())
    }

    /// [`Self::verify_service`] at a given time (the tests and
    /// benches/sigv4_sign.rs).
    #[doc(hidden)]
    pub fn verify_at(
        &self,
        parts: &Parts,
        body: &[u8],
        service: &str,
        now: SystemTime,
    ) -> Result<Granted, Sigv4Refusal> {
        self.verify_how(parts, body, service, now)
            .map(|(granted, _)| granted)
    }

    /// The fast path alone for a header-form request, none of verify()'s
    /// checks: the signature it computes, or `None` when it declines; for
    /// benches/sigv4_sign.rs and the tests.
    #[doc(hidden)]
    pub fn fast_path_signature_of(
        &self,
        parts: &Parts,
        body: &[u8],
        service: &str,
    ) -> Option<String> {
        let header = |name: &HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let auth = header(&AUTHORIZATION).filter(|a| a.starts_with(ALGORITHM))?;
        let p = parse_header_form(auth, &header).ok()?;
        let key = self.store.lookup(p.access_key_id)?;
        let signed_at = parse_amz_date(p.amz_date)?;
        let mut hex_buf = [0u8; 64];
        let payload = match header(&X_AMZ_CONTENT_SHA256) {
            Some(UNSIGNED_PAYLOAD) => UNSIGNED_PAYLOAD,
            _ => sha256_hex(body, &mut hex_buf),
        };
        self.fast_path_signature(parts, &p, &key, service, signed_at, payload)
    }

    /// verify(), saying which computation accepted the signature.
    fn verify_how(
        &self,
        parts: &Parts,
        body: &[u8],
        service: &str,
        now: SystemTime,
    ) -> Result<(Granted, Verified), Sigv4Refusal> {
        let query = parts.uri.query().unwrap_or_default();
        let header = |name: &HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let auth_header = header(&AUTHORIZATION).filter(|a| a.starts_with(ALGORITHM));
        // The query is only parsed for the presigned form.
        let query_params = if auth_header.is_none() && query.contains("X-Amz-") {
            crate::event::parse_query(query)
        } else {
            Vec::new()
        };
        let qp = |name: &str| {
            query_params
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.last())
                .map(String::as_str)
        };
        let p = match auth_header {
            Some(a) => parse_header_form(a, &header)?,
            None if qp("X-Amz-Algorithm").is_some() => parse_query_form(&qp)?,
            None => return Err(Sigv4Refusal::Missing),
        };
        if p.service != service {
            return Err(Sigv4Refusal::invalid(
                format!(
                    "credential scope names service `{}`, expected `{service}`",
                    p.service
                ),
                format!("Credential should be scoped to correct service: '{service}'. "),
            ));
        }
        if p.region != self.region {
            return Err(Sigv4Refusal::invalid(
                format!(
                    "credential scope names region `{}`, expected `{}`",
                    p.region, self.region
                ),
                "Credential should be scoped to a valid region. ".into(),
            ));
        }
        let signed_at = parse_amz_date(p.amz_date).ok_or_else(|| {
            Sigv4Refusal::Incomplete(format!(
                "X-Amz-Date `{}` is not a yyyyMMddTHHmmssZ time",
                p.amz_date
            ))
        })?;
        if !p.amz_date.starts_with(p.date) || p.date.len() != 8 {
            return Err(Sigv4Refusal::invalid(
                "credential scope date does not match X-Amz-Date".into(),
                format!(
                    "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
                    p.date,
                    p.amz_date.get(..8).unwrap_or_default(),
                    p.amz_date
                ),
            ));
        }
        check_time(p.amz_date, signed_at, now, p.expires)?;
        let key = self.store.lookup(p.access_key_id).ok_or_else(|| {
            Sigv4Refusal::UnrecognizedClient(format!("unknown access key {}", p.access_key_id))
        })?;
        match (&key.session_token, &p.security_token) {
            (None, None) => {}
            (Some(want), Some(got)) if bool::from(want.as_bytes().ct_eq(got.as_bytes())) => {}
            (Some(_), None) => {
                return Err(Sigv4Refusal::UnrecognizedClient(
                    "the access key needs X-Amz-Security-Token".into(),
                ));
            }
            _ => {
                return Err(Sigv4Refusal::UnrecognizedClient(
                    "X-Amz-Security-Token is not valid for the access key".into(),
                ));
            }
        }
        if !p.signs("host") {
            return Err(Sigv4Refusal::mismatch(
                "the signature does not cover the host header",
            ));
        }
        if p.expires.is_none() && !p.signs("x-amz-date") {
            return Err(Sigv4Refusal::mismatch(
                "the signature does not cover x-amz-date",
            ));
        }

        // The payload hash the client committed to: the body's, or
        // UNSIGNED-PAYLOAD; for a presigned URL, when it says nothing,
        // the body's and then UNSIGNED-PAYLOAD.
        let declared = header(&X_AMZ_CONTENT_SHA256).or_else(|| qp("X-Amz-Content-Sha256"));
        let mut hex_buf = [0u8; 64];
        let (payload, second_payload) = match declared {
            Some(UNSIGNED_PAYLOAD) => (UNSIGNED_PAYLOAD, None),
            Some(d) => {
                let hash = sha256_hex(body, &mut hex_buf);
                if !d.eq_ignore_ascii_case(hash) {
                    return Err(Sigv4Refusal::mismatch(
                        "the body does not match X-Amz-Content-Sha256",
                    ));
                }
                (hash, None)
            }
            None if p.expires.is_some() => (sha256_hex(body, &mut hex_buf), Some(UNSIGNED_PAYLOAD)),
            None => (sha256_hex(body, &mut hex_buf), None),
        };

        // `Some(matched)` when the fast path computed a signature.
        let fast = match p.expires {
            None => self
                .fast_path_signature(parts, &p, &key, service, signed_at, payload)
                .map(|s| signatures_equal(&s, p.signature)),
            Some(_) => None,
        };
        let verified = if fast == Some(true) {
            Verified::FastPath
        } else {
            self.crate_signature_matches(
                parts,
                &p,
                &key,
                service,
                signed_at,
                payload,
                second_payload,
            )?;
            if fast == Some(false) {
                // Accepted by the crate, not by the fast path: the two
                // canonicalise this request differently.
                tracing::debug!(
                    target: "lambdagate::auth",
                    "sigv4: aws-sigv4 accepted a signature the fast path computed differently"
                );
            }
            Verified::Crate
        };
        let prepared = key.prepared();
        let note = if tracing::enabled!(target: "lambdagate::auth", tracing::Level::INFO) {
            format!("access key {}", key.access_key_id)
        } else {
            String::new()
        };
        let granted = Granted {
            output: AuthorizerOutput::Iam(prepared.iam.clone()),
            usage_identifier_key: None,
            note,
        };
        Ok((granted, verified))
    }
}
