//! Recomputing a header-form or presigned signature: the fast path over
//! [`canonical`](super::canonical) and the reference, `aws_sigv4`'s `sign`.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SessionTokenMode, SignableBody, SignableRequest, SignatureLocation, sign,
};
use aws_sigv4::sign::v4;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::canonical::{self, HeaderForm};
use super::keys::AccessKey;
use super::request::{Presented, strip_signing_params};
use super::{EMPTY_SHA256, Sigv4Authorizer, Sigv4Refusal, UNSIGNED_PAYLOAD};

impl Sigv4Authorizer {
    /// The fast path: the header form's signature computed by
    /// [`canonical::signature`] with a cached signing key, or `None` when
    /// it declines the request.
    pub(super) fn fast_path_signature(
        &self,
        parts: &Parts,
        p: &Presented<'_>,
        key: &AccessKey,
        service: &str,
        signed_at: SystemTime,
        payload: &str,
    ) -> Option<String> {
        if !canonical::is_amz_date(p.amz_date) {
            return None;
        }
        let signing_key = key.prepared().signing_keys.get(
            &key.secret_access_key,
            p.amz_date,
            signed_at,
            &self.region,
            service,
        )?;
        let form = HeaderForm {
            method: parts.method.as_str(),
            path_and_query: parts.uri.path_and_query()?.as_str(),
            signed_headers: p.signed_headers,
            amz_date: p.amz_date,
            // What the crate signs: the token of the credentials it is
            // given, which verify() checked equals the header's.
            session_token: key.session_token.as_deref(),
            payload_hash: payload,
            region: &self.region,
            service,
        };
        canonical::signature(&form, &parts.headers, &signing_key)
    }

    /// The reference: `aws_sigv4::http_request::sign` over the request as
    /// received, for the presigned form and whatever the fast path did not
    /// accept.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn crate_signature_matches(
        &self,
        parts: &Parts,
        p: &Presented<'_>,
        key: &AccessKey,
        service: &str,
        signed_at: SystemTime,
        payload: &str,
        second_payload: Option<&str>,
    ) -> Result<(), Sigv4Refusal> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for name in p.signed_headers.split(';') {
            let mut any = false;
            for v in parts.headers.get_all(name) {
                let v = v
                    .to_str()
                    .map_err(|_| Sigv4Refusal::mismatch("a signed header is not text"))?;
                pairs.push((name, v));
                any = true;
            }
            if !any {
                return Err(Sigv4Refusal::mismatch(&format!(
                    "signed header {name} is missing"
                )));
            }
        }
        let query = parts.uri.query().unwrap_or_default();
        let path_and_query: Cow<'_, str> = match p.expires {
            // The signer adds the X-Amz-* parameters itself.
            Some(_) => {
                let kept = strip_signing_params(query);
                if kept.is_empty() {
                    Cow::Borrowed(parts.uri.path())
                } else {
                    Cow::Owned(format!("{}?{kept}", parts.uri.path()))
                }
            }
            None => Cow::Borrowed(parts.uri.path_and_query().map_or("/", |pq| pq.as_str())),
        };
        // The key's own credentials, built once; the session token checked
        // by verify() is the key's. A store that matched another spelling
        // of the id gets credentials with the id as the client sent it.
        let prepared = key.prepared();
        let fresh_identity;
        let identity = if key.access_key_id == p.access_key_id {
            &prepared.identity
        } else {
            fresh_identity = Credentials::new(
                p.access_key_id,
                key.secret_access_key.clone(),
                p.security_token.map(str::to_string),
                None,
                "lambdagate",
            )
            .into();
            &fresh_identity
        };
        let settings = match p.expires {
            Some(secs) => {
                let mut settings = self.header_settings.clone();
                settings.signature_location = SignatureLocation::QueryParams;
                settings.expires_in = Some(Duration::from_secs(secs));
                settings.session_token_mode = SessionTokenMode::Include;
                settings
            }
            None => {
                let mut settings = self.header_settings.clone();
                settings.session_token_mode = if p.signs("x-amz-security-token") {
                    SessionTokenMode::Include
                } else {
                    SessionTokenMode::Exclude
                };
                settings
            }
        };
        let params = v4::SigningParams::builder()
            .identity(identity)
            .region(&self.region)
            .name(service)
            .time(signed_at)
            .settings(settings)
            .build()
            .map_err(|e| Sigv4Refusal::mismatch(&format!("sigv4 parameters: {e}")))?
            .into();
        for payload in std::iter::once(payload).chain(second_payload) {
            let body = match payload {
                UNSIGNED_PAYLOAD => SignableBody::UnsignedPayload,
                hash => SignableBody::Precomputed(hash.to_string()),
            };
            let signable = SignableRequest::new(
                parts.method.as_str(),
                &*path_and_query,
                pairs.iter().copied(),
                body,
            )
            .map_err(|_| Sigv4Refusal::mismatch("the request cannot be canonicalised"))?;
            let out = sign(signable, &params)
                .map_err(|_| Sigv4Refusal::mismatch("the request cannot be canonicalised"))?;
            if signatures_equal(out.signature(), p.signature) {
                return Ok(());
            }
        }
        Err(Sigv4Refusal::mismatch(
            "the signature does not match the request (host, path, query, signed headers or body differ)",
        ))
    }
}

/// Constant-time equality of two hex signatures, eight bytes at a time
/// (`subtle` on `[u8]` puts an optimisation barrier on every byte).
pub(super) fn signatures_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut a8, mut b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let word = |c: &[u8]| u64::from_ne_bytes(<[u8; 8]>::try_from(c).unwrap_or_default());
    let mut equal = a8.remainder().ct_eq(b8.remainder());
    for (x, y) in (&mut a8).zip(&mut b8) {
        equal &= word(x).ct_eq(&word(y));
    }
    bool::from(equal)
}

/// Hex SHA-256 of `body`, written into `out`.
pub(super) fn sha256_hex<'a>(body: &[u8], out: &'a mut [u8; 64]) -> &'a str {
    if body.is_empty() {
        return EMPTY_SHA256;
    }
    // 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(Sha256::digest(body), &mut out[..]);
    std::str::from_utf8(&out[..]).unwrap_or(EMPTY_SHA256)
}
