//! Auth phase, `kind = "sigv4"` (IAM authorization): verifies an inbound AWS
//! Signature Version 4, in the `Authorization` header or presigned in the
//! query string, against access keys from an [`AccessKeyStore`]. The
//! canonical request and signature are computed by `aws-sigv4` from the
//! headers the client says it signed and the body as received; the result is
//! compared in constant time. Requests older or newer than five minutes,
//! expired presigned URLs, unknown keys, wrong scopes and wrong session tokens
//! are `403 Forbidden`. On success the caller's identity reaches the event
//! (`requestContext.identity` / `authorizer.iam`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
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

/// An access key's signing credentials and caller identity, built once.
#[derive(Debug, Clone)]
pub struct PreparedKey {
    /// The key's credentials as `aws-sigv4` signs with them.
    identity: Identity,
    /// Who the caller is, as the event shows it.
    iam: Arc<IamIdentity>,
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
    signed_headers: Vec<&'a str>,
    signature: &'a str,
    amz_date: &'a str,
    security_token: Option<String>,
    /// `Some(seconds)` for a presigned URL.
    expires: Option<u64>,
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
        Ok(Self::with_store(cfg, region, Arc::new(store)))
    }

    pub fn with_store(cfg: &AuthConfig, region: &str, store: Arc<dyn AccessKeyStore>) -> Self {
        let mut header_settings = SigningSettings::default();
        header_settings.excluded_headers = Some(Vec::new());
        header_settings.signature_location = SignatureLocation::Headers;
        Self {
            header_settings,
            service: cfg
                .service
                .clone()
                .unwrap_or_else(|| "execute-api".to_string()),
            region: region.to_string(),
            store,
            decisions: super::DecisionCounters::new(&cfg.name),
        }
    }

    pub fn authorize(&self, parts: &Parts, body: &[u8], _state: &GatewayState) -> Decision {
        self.verify(parts, body, &self.service, SystemTime::now())
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
        self.verify(parts, body, service, SystemTime::now())
    }

    fn verify(
        &self,
        parts: &Parts,
        body: &[u8],
        service: &str,
        now: SystemTime,
    ) -> Result<Granted, Sigv4Refusal> {
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
        if !p.signed_headers.contains(&"host") {
            return Err(Sigv4Refusal::mismatch(
                "the signature does not cover the host header",
            ));
        }
        if p.expires.is_none() && !p.signed_headers.contains(&"x-amz-date") {
            return Err(Sigv4Refusal::mismatch(
                "the signature does not cover x-amz-date",
            ));
        }
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(p.signed_headers.len());
        for name in &p.signed_headers {
            let mut any = false;
            for v in parts.headers.get_all(*name) {
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

        // The payload hash the client committed to.
        let declared = header(&X_AMZ_CONTENT_SHA256).or_else(|| qp("X-Amz-Content-Sha256"));
        let body_hash = || {
            if body.is_empty() {
                EMPTY_SHA256.to_string()
            } else {
                hex::encode(Sha256::digest(body))
            }
        };
        // The payload as signed, and for a presigned URL a second form to
        // try.
        let (first_body, second_body) = match declared {
            Some(d) if d == UNSIGNED_PAYLOAD => (SignableBody::UnsignedPayload, None),
            Some(d) if !d.eq_ignore_ascii_case(&body_hash()) => {
                return Err(Sigv4Refusal::mismatch(
                    "the body does not match X-Amz-Content-Sha256",
                ));
            }
            Some(d) => (SignableBody::Precomputed(d.to_ascii_lowercase()), None),
            // A presigned URL may have been signed without the payload.
            None if p.expires.is_some() => (
                SignableBody::Precomputed(body_hash()),
                Some(SignableBody::UnsignedPayload),
            ),
            // The same as `SignableBody::Bytes(body)`, without hashing an
            // empty body (a GET's) on every request.
            None => (SignableBody::Precomputed(body_hash()), None),
        };

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
        // above is the key's. A store that matched another spelling of the
        // id gets credentials with the id as the client sent it.
        let prepared = key.prepared();
        let fresh_identity;
        let identity = if key.access_key_id == p.access_key_id {
            &prepared.identity
        } else {
            fresh_identity = Credentials::new(
                p.access_key_id,
                key.secret_access_key.clone(),
                p.security_token.clone(),
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
                settings.session_token_mode = if p.signed_headers.contains(&"x-amz-security-token")
                {
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
        let mut matched = false;
        for b in std::iter::once(first_body).chain(second_body) {
            let signable = SignableRequest::new(
                parts.method.as_str(),
                &*path_and_query,
                pairs.iter().copied(),
                b,
            )
            .map_err(|_| Sigv4Refusal::mismatch("the request cannot be canonicalised"))?;
            let out = sign(signable, &params)
                .map_err(|_| Sigv4Refusal::mismatch("the request cannot be canonicalised"))?;
            if bool::from(out.signature().as_bytes().ct_eq(p.signature.as_bytes())) {
                matched = true;
                break;
            }
        }
        if !matched {
            return Err(Sigv4Refusal::mismatch(
                "the signature does not match the request (host, path, query, signed headers or body differ)",
            ));
        }
        let note = if tracing::enabled!(target: "lambdagate::auth", tracing::Level::INFO) {
            format!("access key {}", key.access_key_id)
        } else {
            String::new()
        };
        Ok(Granted {
            output: AuthorizerOutput::Iam(prepared.iam.clone()),
            usage_identifier_key: None,
            note,
        })
    }
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
    for part in rest.split(',') {
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
        signed_headers: signed.split(';').collect(),
        signature,
        amz_date,
        security_token: header(&X_AMZ_SECURITY_TOKEN).map(str::to_string),
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
        signed_headers: need("X-Amz-SignedHeaders")?.split(';').collect(),
        signature: need("X-Amz-Signature")?,
        amz_date: need("X-Amz-Date")?,
        security_token: qp("X-Amz-Security-Token").map(str::to_string),
        expires: Some(expires),
    })
}

/// `AKID/20240101/us-east-1/execute-api/aws4_request`
fn parse_scope(credential: &str) -> Result<(&str, &str, &str, &str), Sigv4Refusal> {
    let mut it = credential.split('/');
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

fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let t = time::PrimitiveDateTime::parse(
        s,
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .ok()?;
    Some(t.assume_utc().into())
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
    use crate::config::{AuthConfig, AuthKind};

    struct OneKey;
    impl AccessKeyStore for OneKey {
        fn lookup(&self, id: &str) -> Option<Arc<AccessKey>> {
            (id == "AKIDEXAMPLE").then(|| {
                Arc::new(AccessKey {
                    access_key_id: id.into(),
                    secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                    session_token: None,
                    account_id: Some("123456789012".into()),
                    user_arn: None,
                    user_id: None,
                    caller_id: None,
                    principal_org_id: None,
                    prepared: OnceLock::new(),
                })
            })
        }
    }

    fn authorizer() -> Sigv4Authorizer {
        let cfg = AuthConfig {
            name: "iam".into(),
            kind: AuthKind::Sigv4,
            issuer: None,
            audience: vec![],
            jwks_url: None,
            algorithms: vec![],
            secret_env: None,
            secret_file: None,
            leeway: Duration::ZERO,
            token_cache: true,
            function: None,
            authorizer_type: None,
            identity_sources: vec![],
            response: None,
            payload_version: None,
            ttl: Duration::ZERO,
            header: None,
            service: Some("service".into()),
            credentials_file: None,
        };
        Sigv4Authorizer::with_store(&cfg, "us-east-1", Arc::new(OneKey))
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
        assert!(a.verify(&parts, b"", "service", now).is_ok());
        // Six minutes later it is a replay.
        let late = parse_amz_date("20150830T124200Z").unwrap();
        let refused = a.verify(&parts, b"", "service", late).err().unwrap();
        assert_eq!(refused.error_type(), "InvalidSignatureException");
        assert_eq!(
            refused.message(),
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z (20150830T124200Z - 5 min.)"
        );
        // Signed for another service.
        let refused = a.verify(&parts, b"", "lambda", now).err().unwrap();
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
        assert!(a.verify(&parts2, b"changed", "service", now).is_err());
    }

    #[test]
    fn presign_params_are_stripped_in_original_encoding() {
        assert_eq!(
            strip_signing_params("a=1%2F2&X-Amz-Signature=ab&X-Amz-Date=x&b=c"),
            "a=1%2F2&b=c"
        );
    }
}
