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
//! is the reference: it costs ~6 µs a request (allocation, formatting and
//! canonicalisation inside the crate, which keeps its canonical request
//! private), more than a whole unauthenticated request through the gateway.
//! So the header form first takes a fast path (submodule `canonical`): the
//! canonical request written here as the crate writes it, hashed, and
//! signed with the crate's own `calculate_signature` under a signing key
//! from its `generate_signing_key`, cached per access key and day. A match
//! is accepted. Anything else — a mismatch, or a request the fast path
//! declines — goes to `sign()`, whose answer stands, so a divergence in
//! our canonicalisation can only make a refusal slower, never refuse a
//! valid request. Presigned URLs always use `sign()`. The unit tests check
//! the fast path against `sign()` on thousands of generated requests.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SessionTokenMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, HeaderName};
use axum::http::request::Parts;
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthorizerOutput, Decision, Granted, IamIdentity};
use crate::app::GatewayState;
use crate::config::AuthConfig;
use crate::error::GatewayError;
use canonical::HeaderForm;

mod canonical;

/// How far a signature's time may be from now.
pub const MAX_SKEW: Duration = Duration::from_secs(300);
/// The longest a presigned URL may live (as AWS: 7 days).
const MAX_PRESIGN_EXPIRES: u64 = 604_800;
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Hex SHA-256 of an empty payload.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");
const X_AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");

/// An access key the gateway accepts, and who it belongs to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// When set, requests must carry this `X-Amz-Security-Token`.
    pub session_token: Option<String>,
    pub account_id: Option<String>,
    pub user_arn: Option<String>,
    pub user_id: Option<String>,
    pub caller_id: Option<String>,
    pub principal_org_id: Option<String>,
    /// What every verification with this key needs, built on its first one
    /// (a store that keeps its keys builds it once).
    #[serde(skip)]
    pub prepared: OnceLock<PreparedKey>,
}

impl AccessKey {
    /// A key with no session token and no identity beyond its account.
    pub fn new(access_key_id: &str, secret_access_key: &str, account_id: &str) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            account_id: Some(account_id.into()),
            user_arn: None,
            user_id: None,
            caller_id: None,
            principal_org_id: None,
            prepared: OnceLock::new(),
        }
    }
}

/// An access key's signing credentials and caller identity, built once.
#[derive(Debug, Clone)]
pub struct PreparedKey {
    /// The key's credentials as `aws-sigv4` signs with them.
    identity: Identity,
    /// Who the caller is, as the event shows it.
    iam: Arc<IamIdentity>,
    /// Signing keys derived from the secret, for the fast path.
    signing_keys: SigningKeys,
}

/// The last few signing keys derived from one secret, each for a day,
/// region and service (`generate_signing_key` is four HMACs and some
/// allocation; a key is good for a whole day, so a gateway derives a
/// handful a day).
#[derive(Default)]
struct SigningKeys(Mutex<[Option<ScopedKey>; SigningKeys::SLOTS]>);

struct ScopedKey {
    /// `yyyyMMdd`.
    date: [u8; 8],
    region: Box<str>,
    service: Box<str>,
    key: [u8; 32],
}

impl SigningKeys {
    /// Two days (around midnight) by two services (a route's
    /// `execute-api` and the Invoke API's `lambda`).
    const SLOTS: usize = 4;

    /// The key for `amz_date`'s day; `None` only if the crate's key is not
    /// 32 bytes (it always is).
    fn get(
        &self,
        secret: &str,
        amz_date: &str,
        signed_at: SystemTime,
        region: &str,
        service: &str,
    ) -> Option<[u8; 32]> {
        let date: [u8; 8] = amz_date.as_bytes().get(..8)?.try_into().ok()?;
        let found =
            |k: &&ScopedKey| k.date == date && &*k.region == region && &*k.service == service;
        {
            let slots = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(k) = slots.iter().flatten().find(found) {
                return Some(k.key);
            }
        }
        let key: [u8; 32] = v4::generate_signing_key(secret, signed_at, region, service)
            .as_ref()
            .try_into()
            .ok()?;
        let mut slots = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Newest first; the oldest falls off the end.
        slots.rotate_right(1);
        slots[0] = Some(ScopedKey {
            date,
            region: region.into(),
            service: service.into(),
            key,
        });
        Some(key)
    }
}

impl Clone for SigningKeys {
    /// A copy starts empty; keys are derived again on demand.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for SigningKeys {
    /// Never prints a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys").finish_non_exhaustive()
    }
}

impl AccessKey {
    fn prepared(&self) -> &PreparedKey {
        self.prepared.get_or_init(|| PreparedKey {
            identity: Credentials::new(
                self.access_key_id.clone(),
                self.secret_access_key.clone(),
                self.session_token.clone(),
                None,
                "lambdagate",
            )
            .into(),
            iam: Arc::new(IamIdentity {
                access_key: self.access_key_id.clone(),
                account_id: self.account_id.clone(),
                caller_id: self.caller_id.clone().or_else(|| self.user_id.clone()),
                user_arn: self.user_arn.clone(),
                user_id: self.user_id.clone(),
                principal_org_id: self.principal_org_id.clone(),
            }),
            signing_keys: SigningKeys::default(),
        })
    }
}

/// Where access keys come from: the credentials file today; the keys/plans
/// store can implement this too.
pub trait AccessKeyStore: Send + Sync + 'static {
    fn lookup(&self, access_key_id: &str) -> Option<Arc<AccessKey>>;
}

/// Access keys from a TOML file of `[[keys]]` tables.
pub struct CredentialsFile {
    keys: HashMap<String, Arc<AccessKey>, foldhash::fast::RandomState>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentialsFile {
    #[serde(default)]
    keys: Vec<AccessKey>,
}

impl CredentialsFile {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let raw: RawCredentialsFile =
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        let mut keys = HashMap::default();
        for k in raw.keys {
            if k.access_key_id.is_empty() || k.secret_access_key.is_empty() {
                return Err(format!(
                    "{}: every key needs access_key_id and secret_access_key",
                    path.display()
                ));
            }
            keys.insert(k.access_key_id.clone(), Arc::new(k));
        }
        Ok(Self { keys })
    }
}

impl AccessKeyStore for CredentialsFile {
    fn lookup(&self, access_key_id: &str) -> Option<Arc<AccessKey>> {
        self.keys.get(access_key_id).cloned()
    }
}

pub struct Sigv4Authorizer {
    service: String,
    region: String,
    store: Arc<dyn AccessKeyStore>,
    /// Signing settings for the header form, built once (the default
    /// settings allocate): every header the client signed is signed again.
    header_settings: SigningSettings,
    pub(super) decisions: super::DecisionCounters,
}

/// The signature's parts as the client sent them.
struct Presented<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    /// `host;x-amz-date;...`, as sent.
    signed_headers: &'a str,
    signature: &'a str,
    amz_date: &'a str,
    security_token: Option<&'a str>,
    /// `Some(seconds)` for a presigned URL.
    expires: Option<u64>,
}

impl Presented<'_> {
    fn signs(&self, header: &str) -> bool {
        split_ascii(self.signed_headers, b';').any(|h| h == header)
    }
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

    pub fn authorize(&self, parts: &Parts, body: &[u8], _state: &GatewayState) -> Decision {
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

    /// The fast path: the header form's signature computed by
    /// [`canonical::signature`] with a cached signing key, or `None` when
    /// it declines the request.
    fn fast_path_signature(
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
    fn crate_signature_matches(
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

/// `s` split at an ASCII byte. For the short strings of a signature,
/// `str::split`'s searcher (a `memchr` per piece) costs more than the scan.
fn split_ascii(s: &str, separator: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == separator) {
            // An ASCII byte is always a character boundary.
            Some(i) => {
                rest = r.get(i + 1..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Constant-time equality of two hex signatures, eight bytes at a time
/// (`subtle` on `[u8]` puts an optimisation barrier on every byte).
fn signatures_equal(a: &str, b: &str) -> bool {
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
fn sha256_hex<'a>(body: &[u8], out: &'a mut [u8; 64]) -> &'a str {
    if body.is_empty() {
        return EMPTY_SHA256;
    }
    // 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(Sha256::digest(body), &mut out[..]);
    std::str::from_utf8(&out[..]).unwrap_or(EMPTY_SHA256)
}

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
    fn invalid(reason: String, message: String) -> Self {
        Sigv4Refusal::InvalidSignature { reason, message }
    }

    fn mismatch(reason: &str) -> Self {
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

/// `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=hex`
fn parse_header_form<'a>(
    auth: &'a str,
    header: &impl Fn(&HeaderName) -> Option<&'a str>,
) -> Result<Presented<'a>, Sigv4Refusal> {
    let rest = auth[ALGORITHM.len()..].trim();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in split_ascii(rest, b',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let missing = |what: &str| {
        Sigv4Refusal::Incomplete(format!(
            "Authorization header requires '{what}' parameter. Authorization={auth_prefix}",
            auth_prefix = ALGORITHM
        ))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let (access_key_id, date, region, service) = parse_scope(credential)?;
    let amz_date = header(&X_AMZ_DATE).ok_or_else(|| {
        Sigv4Refusal::Incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .into(),
        )
    })?;
    Ok(Presented {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed,
        signature,
        amz_date,
        security_token: header(&X_AMZ_SECURITY_TOKEN),
        expires: None,
    })
}

fn parse_query_form<'a>(
    qp: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Presented<'a>, Sigv4Refusal> {
    if qp("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(Sigv4Refusal::Incomplete(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"".into(),
        ));
    }
    let need = |n: &str| {
        qp(n).ok_or_else(|| {
            Sigv4Refusal::Incomplete(format!("AWS query-string parameters must include '{n}'."))
        })
    };
    let (access_key_id, date, region, service) = parse_scope(need("X-Amz-Credential")?)?;
    let expires = need("X-Amz-Expires")?
        .parse::<u64>()
        .ok()
        .filter(|e| *e >= 1 && *e <= MAX_PRESIGN_EXPIRES)
        .ok_or_else(|| {
            Sigv4Refusal::Incomplete("X-Amz-Expires must be 1..604800 seconds".into())
        })?;
    Ok(Presented {
        access_key_id,
        date,
        region,
        service,
        signed_headers: need("X-Amz-SignedHeaders")?,
        signature: need("X-Amz-Signature")?,
        amz_date: need("X-Amz-Date")?,
        security_token: qp("X-Amz-Security-Token"),
        expires: Some(expires),
    })
}

/// `AKID/20240101/us-east-1/execute-api/aws4_request`
fn parse_scope(credential: &str) -> Result<(&str, &str, &str, &str), Sigv4Refusal> {
    let mut it = split_ascii(credential, b'/');
    match (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) {
        (Some(akid), Some(date), Some(region), Some(service), Some("aws4_request"), None)
            if !akid.is_empty() =>
        {
            Ok((akid, date, region, service))
        }
        _ => Err(Sigv4Refusal::Incomplete(format!(
            "Credential should be KEY/DATE/REGION/SERVICE/aws4_request, not `{}`",
            credential.split('/').skip(1).collect::<Vec<_>>().join("/")
        ))),
    }
}

/// `yyyyMMddTHHmmssZ`, read by hand: every request pays for it, and
/// `time`'s format-description parser costs ~150 ns.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    if !canonical::is_amz_date(s) {
        return None;
    }
    let d = s.as_bytes();
    let num = |from: usize, to: usize| {
        d[from..to]
            .iter()
            .fold(0u16, |n, &b| n * 10 + u16::from(b - b'0'))
    };
    let date = time::Date::from_calendar_date(
        i32::from(num(0, 4)),
        time::Month::try_from(u8::try_from(num(4, 6)).ok()?).ok()?,
        u8::try_from(num(6, 8)).ok()?,
    )
    .ok()?;
    let time = time::Time::from_hms(
        u8::try_from(num(9, 11)).ok()?,
        u8::try_from(num(11, 13)).ok()?,
        u8::try_from(num(13, 15)).ok()?,
    )
    .ok()?;
    Some(time::PrimitiveDateTime::new(date, time).assume_utc().into())
}

fn format_amz_date(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default()
}

/// Header form: within five minutes either way. Presigned: not before the
/// signing time (minus skew) and not after it plus `X-Amz-Expires`.
fn check_time(
    amz_date: &str,
    signed_at: SystemTime,
    now: SystemTime,
    expires: Option<u64>,
) -> Result<(), Sigv4Refusal> {
    if signed_at > now + MAX_SKEW {
        return Err(Sigv4Refusal::invalid(
            "the signature's time is more than 5 minutes in the future".into(),
            format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
                format_amz_date(now + MAX_SKEW),
                format_amz_date(now)
            ),
        ));
    }
    match expires {
        None if signed_at + MAX_SKEW < now => Err(Sigv4Refusal::invalid(
            "the signature is more than 5 minutes old (replayed or clock skew)".into(),
            format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
                format_amz_date(now - MAX_SKEW),
                format_amz_date(now)
            ),
        )),
        Some(secs) if signed_at + Duration::from_secs(secs) < now => Err(Sigv4Refusal::invalid(
            "the presigned URL has expired".into(),
            format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - {secs} sec.)",
                format_amz_date(now - Duration::from_secs(secs)),
                format_amz_date(now)
            ),
        )),
        _ => Ok(()),
    }
}

/// The query without the presigning parameters, in its original encoding.
fn strip_signing_params(query: &str) -> String {
    const SIGNING: [&str; 7] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    ];
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let k = p.split('=').next().unwrap_or_default();
            let k = percent_decode_str(k).decode_utf8_lossy();
            !SIGNING.contains(&k.as_ref())
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    use aws_sigv4::http_request::SignableBody;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const TEMP_SECRET: &str = "temp/secret+0123456789abcdefghijklmnopqr";
    const TEMP_TOKEN: &str = "FwoGZXIvYXdzEtemporary//session+token==";

    /// AKIDEXAMPLE (the AWS test suite's key) and ASIATEMP, a key with a
    /// session token. The same `Arc`s every time, as a real store keeps
    /// them, so the signing-key cache is exercised.
    struct TestKeys([Arc<AccessKey>; 2]);

    impl TestKeys {
        fn new() -> Self {
            let key = |id: &str, secret: &str, token: Option<&str>| {
                Arc::new(AccessKey {
                    session_token: token.map(str::to_string),
                    ..AccessKey::new(id, secret, "123456789012")
                })
            };
            Self([
                key("AKIDEXAMPLE", SECRET, None),
                key("ASIATEMP", TEMP_SECRET, Some(TEMP_TOKEN)),
            ])
        }
    }

    impl AccessKeyStore for TestKeys {
        fn lookup(&self, id: &str) -> Option<Arc<AccessKey>> {
            self.0.iter().find(|k| k.access_key_id == id).cloned()
        }
    }

    fn authorizer() -> Sigv4Authorizer {
        Sigv4Authorizer::with_store(
            "iam",
            Some("service"),
            "us-east-1",
            Arc::new(TestKeys::new()),
        )
    }

    /// AWS's published SigV4 test-suite case `get-vanilla`.
    #[test]
    fn empty_payload_hash_is_sha256_of_nothing() {
        assert_eq!(EMPTY_SHA256, hex::encode(Sha256::digest(b"")));
    }

    #[test]
    fn aws_test_suite_get_vanilla_verifies() {
        let req = axum::http::Request::builder()
            .method("GET")
            .uri("/")
            .header("host", "example.amazonaws.com")
            .header("x-amz-date", "20150830T123600Z")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            )
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let now = parse_amz_date("20150830T123700Z").unwrap();
        let a = authorizer();
        let (_, how) = a.verify_how(&parts, b"", "service", now).unwrap();
        assert_eq!(how, Verified::FastPath);
        // Six minutes later it is a replay.
        let late = parse_amz_date("20150830T124200Z").unwrap();
        let refused = a.verify_at(&parts, b"", "service", late).err().unwrap();
        assert_eq!(refused.error_type(), "InvalidSignatureException");
        assert_eq!(
            refused.message(),
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z (20150830T124200Z - 5 min.)"
        );
        // Signed for another service.
        let refused = a.verify_at(&parts, b"", "lambda", now).err().unwrap();
        assert_eq!(
            refused.message(),
            "Credential should be scoped to correct service: 'lambda'. "
        );
        // Another body under a declared hash is refused.
        let mut parts2 = parts.clone();
        parts2.headers.insert(
            "x-amz-content-sha256",
            hex::encode(Sha256::digest(b"")).parse().unwrap(),
        );
        assert!(a.verify_at(&parts2, b"changed", "service", now).is_err());
    }

    #[test]
    fn amz_dates_parse_as_the_time_crate_parses_them() {
        let reference = |s: &str| {
            time::PrimitiveDateTime::parse(
                s,
                time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
            )
            .ok()
            .map(|t| SystemTime::from(t.assume_utc()))
        };
        for s in [
            "20150830T123600Z",
            "00010101T000000Z",
            "99991231T235959Z",
            "20240229T120000Z",
            "20230229T120000Z",
            "20151301T000000Z",
            "20150001T000000Z",
            "20150132T000000Z",
            "20150431T000000Z",
            "20150830T240000Z",
            "20150830T126000Z",
            "20150830T123660Z",
            "20150830T123600",
            "20150830 123600Z",
            "2015083T123600Z",
            "+2015083T123600Z",
            "2015-08-30T12:36:00Z",
            "20150830t123600z",
            "",
        ] {
            assert_eq!(parse_amz_date(s), reference(s), "{s}");
        }
    }

    #[test]
    fn signatures_compare_whole() {
        let sig = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        assert!(signatures_equal(sig, sig));
        for i in 0..sig.len() {
            let mut other = sig.as_bytes().to_vec();
            other[i] ^= 1;
            assert!(!signatures_equal(sig, std::str::from_utf8(&other).unwrap()));
        }
        assert!(!signatures_equal(sig, &sig[..63]));
        assert!(!signatures_equal(sig, ""));
        assert!(signatures_equal("abc", "abc"));
        assert!(!signatures_equal("abc", "abd"));
        assert_eq!(
            split_ascii("a/b//c/", b'/').collect::<Vec<_>>(),
            ["a", "b", "", "c", ""]
        );
        assert_eq!(split_ascii("", b'/').collect::<Vec<_>>(), [""]);
    }

    #[test]
    fn presign_params_are_stripped_in_original_encoding() {
        assert_eq!(
            strip_signing_params("a=1%2F2&X-Amz-Signature=ab&X-Amz-Date=x&b=c"),
            "a=1%2F2&b=c"
        );
    }

    /// SplitMix64: seeded variety without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.next() % 100 < percent
        }
    }

    /// How the client commits to the body.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Payload {
        /// Hashed by the signer; no `x-amz-content-sha256`.
        Hashed,
        /// Hashed, and sent in `x-amz-content-sha256`.
        Declared,
        /// `x-amz-content-sha256: UNSIGNED-PAYLOAD`.
        Unsigned,
    }

    /// A request as a client signs it.
    #[derive(Debug, Clone)]
    struct Case {
        method: &'static str,
        uri: String,
        /// Headers given to the signer, in the order sent (any case,
        /// repeats allowed).
        signed: Vec<(String, String)>,
        /// Headers sent but not signed.
        unsigned: Vec<(&'static str, &'static str)>,
        body: Vec<u8>,
        payload: Payload,
        temp_key: bool,
        /// With `temp_key`: whether the signer signs the session token.
        sign_token: bool,
        service: &'static str,
        time: SystemTime,
        /// A query escape that decodes to invalid UTF-8, which the fast
        /// path declines.
        declinable: bool,
    }

    impl Case {
        /// A plain signed GET of `uri` to host `example.amazonaws.com`.
        fn get(uri: String) -> Case {
            Case {
                method: "GET",
                uri,
                signed: vec![("host".into(), "example.amazonaws.com".into())],
                unsigned: vec![],
                body: vec![],
                payload: Payload::Hashed,
                temp_key: false,
                sign_token: false,
                service: "service",
                time: parse_amz_date("20150830T123600Z").unwrap(),
                declinable: false,
            }
        }
    }

    const METHODS: &[&str] = &[
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PURGE",
    ];
    const SEGMENTS: &[&str] = &[
        "items",
        "a",
        "B",
        "",
        ".",
        "..",
        "x.y",
        "...",
        "%2F",
        "%20",
        "a%20b",
        "+",
        "a+b",
        "~user",
        "caf%C3%A9",
        "café",
        "日本",
        "%2E%2E",
        "%25",
        "-_.",
        ":",
        "@",
        "!$&'()*,;=",
        "%7E",
        "%7e",
    ];
    const QUERY_NAMES: &[&str] = &[
        "a",
        "b",
        "A",
        "key",
        "k%20x",
        "k+x",
        "%2B",
        "x-amz-meta",
        "é",
        "",
        "%E2%9C%93",
        "~",
        "a.b",
        "!",
        "%3D",
        "Z",
    ];
    const QUERY_VALUES: &[&str] = &[
        "1", "", "a+b", "a%20b", "%2F", "/", "?", "%3D", "%26", "~", "%zz", "%", "%4", "%C3%A9",
        "%c3%a9", "é", "=", "a=b", "'()*", ":@", "%2B", "+", "x.y-z_w", "0",
    ];
    const INVALID_UTF8: &[&str] = &["%FF", "%C3", "%80abc", "%ED%A0%80"];
    const SIGNABLE_NAMES: &[&str] = &[
        "content-type",
        "Content-Type",
        "x-custom",
        "X-Custom",
        "x-multi",
        "X-MULTI",
        "accept",
        "x-amz-meta-a",
        "x-amz-target",
        "a",
        "z",
    ];
    const HEADER_VALUES: &[&str] = &[
        "v",
        "  leading",
        "trailing  ",
        "in   side",
        " a  b  c ",
        "tab\there",
        "",
        "a,b",
        "\"quoted  value\"",
        "x;y=z",
        "application/json",
    ];
    const HOSTS: &[&str] = &["example.amazonaws.com", "127.0.0.1:8080", "api.example.com"];

    fn generate(rng: &mut Rng) -> Case {
        let mut declinable = false;
        let mut path = String::new();
        for _ in 0..rng.below(5) {
            path.push('/');
            path.push_str(rng.pick(SEGMENTS));
        }
        if path.is_empty() || rng.chance(20) {
            path.push('/');
        }
        let mut uri = path;
        if rng.chance(70) {
            uri.push('?');
            let mut pieces: Vec<String> = Vec::new();
            for _ in 0..rng.below(7) {
                let name = rng.pick(QUERY_NAMES);
                let piece = match rng.below(6) {
                    0 => name.to_string(),
                    1 => format!("{name}="),
                    2 => String::new(),
                    3 if !pieces.is_empty() => pieces[rng.below(pieces.len())].clone(),
                    _ if rng.chance(4) => {
                        declinable = true;
                        format!(
                            "{name}={}{}",
                            rng.pick(QUERY_VALUES),
                            rng.pick(INVALID_UTF8)
                        )
                    }
                    _ => format!("{name}={}", rng.pick(QUERY_VALUES)),
                };
                pieces.push(piece);
            }
            uri.push_str(&pieces.join("&"));
        }

        let body: Vec<u8> = match rng.below(3) {
            0 => Vec::new(),
            1 => b"{\"name\":\"widget\"}".to_vec(),
            _ => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
        };
        let payload = rng.pick(&[Payload::Hashed, Payload::Declared, Payload::Unsigned]);

        let mut signed = vec![(
            if rng.chance(50) { "host" } else { "Host" }.to_string(),
            rng.pick(HOSTS).to_string(),
        )];
        for _ in 0..rng.below(5) {
            signed.push((
                rng.pick(SIGNABLE_NAMES).to_string(),
                rng.pick(HEADER_VALUES).to_string(),
            ));
        }
        let mut unsigned = Vec::new();
        let content_sha256 = match payload {
            Payload::Hashed => None,
            Payload::Declared => Some(hex::encode(Sha256::digest(&body))),
            Payload::Unsigned => Some(UNSIGNED_PAYLOAD.to_string()),
        };
        if let Some(v) = content_sha256 {
            if rng.chance(70) {
                signed.push(("x-amz-content-sha256".into(), v));
            } else {
                unsigned.push((
                    "x-amz-content-sha256",
                    if payload == Payload::Unsigned {
                        UNSIGNED_PAYLOAD
                    } else {
                        // Leaked so the case can hold it as 'static.
                        Box::leak(v.into_boxed_str())
                    },
                ));
            }
        }
        for (name, value) in [
            ("user-agent", "aws-sdk/1.0"),
            ("x-amzn-trace-id", "Root=1-5759e988"),
            ("x-unsigned", "  anything  "),
        ] {
            if rng.chance(30) {
                unsigned.push((name, value));
            }
        }
        // Signed headers in any order; the signer sorts them.
        for i in (1..signed.len()).rev() {
            signed.swap(i, rng.below(i + 1));
        }

        let temp_key = rng.chance(30);
        let day = 16_677 + rng.below(6) as u64; // 2015-08-30 and after
        let time =
            SystemTime::UNIX_EPOCH + Duration::from_secs(day * 86_400 + rng.below(86_400) as u64);
        Case {
            method: rng.pick(METHODS),
            uri,
            signed,
            unsigned,
            body,
            payload,
            temp_key,
            sign_token: rng.chance(70),
            service: if rng.chance(80) {
                "service"
            } else {
                "execute-api"
            },
            time,
            declinable,
        }
    }

    /// Signs `case` with `aws_sigv4::sign` as an SDK client would: the
    /// request as the gateway receives it, and the signature.
    fn client_sign(case: &Case) -> (Parts, String) {
        let (id, secret, token) = if case.temp_key {
            ("ASIATEMP", TEMP_SECRET, Some(TEMP_TOKEN.to_string()))
        } else {
            ("AKIDEXAMPLE", SECRET, None)
        };
        let identity: Identity = Credentials::new(id, secret, token, None, "test").into();
        let mut settings = SigningSettings::default();
        if !case.sign_token {
            settings.session_token_mode = SessionTokenMode::Exclude;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(case.service)
            .time(case.time)
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let body = match case.payload {
            Payload::Hashed => SignableBody::Bytes(&case.body),
            Payload::Declared => SignableBody::Precomputed(hex::encode(Sha256::digest(&case.body))),
            Payload::Unsigned => SignableBody::UnsignedPayload,
        };
        let signable = SignableRequest::new(
            case.method,
            case.uri.as_str(),
            case.signed.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            body,
        )
        .unwrap_or_else(|e| panic!("{case:?}: {e}"));
        let out = sign(signable, &params).unwrap_or_else(|e| panic!("{case:?}: {e}"));
        let mut req = axum::http::Request::builder()
            .method(case.method)
            .uri(&case.uri);
        for (k, v) in &case.signed {
            req = req.header(k.as_str(), v.as_str());
        }
        for (k, v) in &case.unsigned {
            req = req.header(*k, *v);
        }
        let (instructions, signature) = out.into_parts();
        for (k, v) in instructions.headers() {
            req = req.header(k, v);
        }
        (req.body(()).unwrap().into_parts().0, signature)
    }

    fn now_for(case: &Case) -> SystemTime {
        case.time + Duration::from_secs(30)
    }

    /// The fast path against `aws_sigv4::sign` on thousands of generated
    /// requests: wherever it computes a signature it is the client's, and
    /// it declines only what it should (invalid UTF-8 in the query).
    #[test]
    fn fast_path_matches_aws_sigv4_on_generated_requests() {
        let a = authorizer();
        let mut rng = Rng(0x5167_7634);
        let (mut handled, mut declined) = (0, 0);
        for i in 0..4000 {
            let case = generate(&mut rng);
            let (parts, signature) = client_sign(&case);
            let fast = a.fast_path_signature_of(&parts, &case.body, case.service);
            match &fast {
                Some(computed) => {
                    assert_eq!(computed, &signature, "case {i}: {case:?}");
                    handled += 1;
                }
                None => declined += 1,
            }
            assert_eq!(fast.is_none(), case.declinable, "case {i}: {case:?}");
            let (_, how) = a
                .verify_how(&parts, &case.body, case.service, now_for(&case))
                .unwrap_or_else(|r| panic!("case {i} refused ({}): {case:?}", r.reason()));
            let expected = if fast.is_some() {
                Verified::FastPath
            } else {
                Verified::Crate
            };
            assert_eq!(how, expected, "case {i}: {case:?}");
        }
        assert!(handled >= 3000, "handled {handled}, declined {declined}");
        assert!(declined > 0, "no declinable case generated");
    }

    /// A query of thousands of parameters (the reused buffers grow, and
    /// are given back after).
    #[test]
    fn a_long_query_verifies_through_the_fast_path() {
        let a = authorizer();
        let query: Vec<String> = (0..3000)
            .map(|i| format!("k{}=v%20{i}", 3000 - i))
            .collect();
        let case = Case::get(format!("/items?{}", query.join("&")));
        for _ in 0..2 {
            let (parts, signature) = client_sign(&case);
            assert_eq!(
                a.fast_path_signature_of(&parts, b"", "service"),
                Some(signature)
            );
        }
    }

    /// Which part of a signed request a test changes afterwards.
    #[derive(Debug, Clone, Copy)]
    enum Tamper {
        Method,
        Path,
        Query,
        SignedHeader,
        Body,
    }

    fn tampered(case: &Case, parts: &Parts, how: Tamper) -> (Parts, Vec<u8>) {
        let mut parts = parts.clone();
        let mut body = case.body.clone();
        let (path, query) = match case.uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (case.uri.as_str(), None),
        };
        let with_uri = |parts: &mut Parts, uri: String| parts.uri = uri.parse().unwrap();
        match how {
            Tamper::Method => {
                parts.method = if parts.method == "GET" { "POST" } else { "GET" }
                    .parse()
                    .unwrap();
            }
            Tamper::Path => with_uri(
                &mut parts,
                format!(
                    "{path}x{}",
                    query.map(|q| format!("?{q}")).unwrap_or_default()
                ),
            ),
            Tamper::Query => with_uri(
                &mut parts,
                format!("{path}?{}&tampered=1", query.unwrap_or_default()),
            ),
            Tamper::SignedHeader => {
                let host = parts.headers.get("host").unwrap().to_str().unwrap();
                let changed = format!("{host}x").parse().unwrap();
                parts.headers.insert("host", changed);
            }
            Tamper::Body => body.push(b'x'),
        }
        (parts, body)
    }

    #[test]
    fn requests_changed_after_signing_are_refused() {
        let a = authorizer();
        let mut rng = Rng(0x7a3b);
        let mut checked = 0;
        while checked < 300 {
            let case = generate(&mut rng);
            if case.declinable {
                continue;
            }
            checked += 1;
            let (parts, _) = client_sign(&case);
            let now = now_for(&case);
            let (_, how) = a.verify_how(&parts, &case.body, case.service, now).unwrap();
            assert_eq!(how, Verified::FastPath, "{case:?}");
            for t in [
                Tamper::Method,
                Tamper::Path,
                Tamper::Query,
                Tamper::SignedHeader,
                Tamper::Body,
            ] {
                let (parts, body) = tampered(&case, &parts, t);
                let result = a.verify_at(&parts, &body, case.service, now);
                if matches!(t, Tamper::Body) && case.payload == Payload::Unsigned {
                    // UNSIGNED-PAYLOAD: the body is not part of the signature.
                    assert!(result.is_ok(), "{case:?}");
                    continue;
                }
                let refused = result
                    .err()
                    .unwrap_or_else(|| panic!("{t:?} accepted: {case:?}"));
                assert_eq!(
                    refused.error_type(),
                    "InvalidSignatureException",
                    "{t:?}: {case:?}"
                );
            }
            // A header the client did not sign may change.
            let mut parts = parts;
            parts
                .headers
                .insert("x-unsigned", "changed".parse().unwrap());
            assert!(a.verify_at(&parts, &case.body, case.service, now).is_ok());
        }
    }

    /// What the fast path declines, `sign()` still decides: here a
    /// `SignedHeaders` list out of order, which the crate sorts.
    #[test]
    fn a_request_the_fast_path_declines_is_decided_by_sign() {
        let a = authorizer();
        let case = Case::get("/items/1?b=2&a=1".into());
        let (mut parts, _) = client_sign(&case);
        let auth = parts.headers["authorization"].to_str().unwrap();
        let reordered = auth.replace(
            "SignedHeaders=host;x-amz-date",
            "SignedHeaders=x-amz-date;host",
        );
        assert_ne!(auth, reordered);
        parts
            .headers
            .insert("authorization", reordered.parse().unwrap());
        assert_eq!(a.fast_path_signature_of(&parts, b"", "service"), None);
        let (_, how) = a
            .verify_how(&parts, b"", "service", now_for(&case))
            .unwrap();
        assert_eq!(how, Verified::Crate);
        // And refused by it when the request was changed.
        parts.uri = "/items/2?b=2&a=1".parse().unwrap();
        assert!(a.verify_at(&parts, b"", "service", now_for(&case)).is_err());
    }

    #[test]
    fn signing_keys_are_cached_per_day_region_and_service() {
        let keys = SigningKeys::default();
        let day1 = parse_amz_date("20150830T123600Z").unwrap();
        let day2 = parse_amz_date("20150831T000001Z").unwrap();
        let derive = |t, r, s| {
            <[u8; 32]>::try_from(v4::generate_signing_key(SECRET, t, r, s).as_ref()).unwrap()
        };
        for _ in 0..3 {
            for (date, t) in [("20150830T123600Z", day1), ("20150831T000001Z", day2)] {
                for service in ["service", "lambda", "execute-api"] {
                    let got = keys.get(SECRET, date, t, "us-east-1", service).unwrap();
                    assert_eq!(got, derive(t, "us-east-1", service));
                }
            }
        }
    }
}
