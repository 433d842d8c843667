//! Auth phase, `kind = "jwt"`: verifies a bearer JWT the way API Gateway's
//! HTTP API JWT authorizer does — signature (JWKS keys for RS/PS/ES/EdDSA, a
//! configured secret for HS), `iss`, `aud` or `client_id`, `exp`, `nbf`,
//! `iat` with leeway — then the route's scopes against `scope`/`scp`.
//! Refusals are `401 Unauthorized` with a `WWW-Authenticate` header saying
//! why, or `403 Forbidden` for missing scopes. Verified tokens are cached
//! (bounded, in a hash map keyed by the token and compared in full on a hit,
//! expiring with its `exp`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, Uri};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::jwks::{JwksCache, JwksKey, KeyError};
use super::{AuthorizerOutput, Decision, DecisionCounters, Granted, IdentitySource};
use crate::config::AuthConfig;
use crate::error::GatewayError;

/// Bytes of verified tokens kept at most (per authorizer). A token is
/// weighed at three times its length (the token itself plus its parsed
/// claims), so the bound holds for large tokens too: about 10,000 tokens
/// of 1 KB, or 1,000 of 10 KB (the largest a header may carry).
const VERIFIED_CACHE_BYTES: u64 = 32 * 1024 * 1024;

const HMAC_ALGS: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

/// A token that passed every check, as cached.
struct Verified {
    claims: Arc<Map<String, Value>>,
    scopes: Arc<Vec<String>>,
    exp: u64,
}

pub struct JwtAuthorizer {
    source: IdentitySource,
    /// The source's header, parsed once, for cache lookups by raw bytes.
    header: Option<HeaderName>,
    algorithms: Vec<Algorithm>,
    secret: Option<DecodingKey>,
    jwks: Option<JwksCache>,
    issuer: Option<String>,
    audience: Vec<String>,
    leeway: u64,
    /// Verified tokens; `None` when `token_cache = false`. Keyed by the
    /// token's bytes, so a hit is an exact match (never another token whose
    /// digest collides); the hasher is seeded per process, and only tokens
    /// that passed every check get in. A synchronous cache: a hit is a plain
    /// lookup, with no future to poll.
    verified: Option<TokenCache>,
    pub(super) decisions: DecisionCounters,
}

type TokenCache = super::ttl_cache::TtlCache<[u8], Verified>;

/// Keeps a verified token until its `exp`, weighed at three times its
/// length against [`VERIFIED_CACHE_BYTES`].
fn remember(cache: &TokenCache, token: &[u8], verified: &Arc<Verified>) {
    let left = Duration::from_secs(verified.exp.saturating_sub(now_secs()));
    let weight = u64::try_from(token.len().saturating_mul(3)).unwrap_or(u64::MAX);
    cache.insert(token, verified.clone(), Instant::now() + left, weight);
}

/// A token whose header passed the checks that need no key.
struct Parsed<'t> {
    alg: Algorithm,
    kid: Option<String>,
    /// `header.payload`, what the signature covers.
    message: &'t str,
    signature_b64: &'t str,
    payload_b64: &'t str,
}

impl JwtAuthorizer {
    pub fn new(cfg: &AuthConfig) -> Result<Self, String> {
        let name = &cfg.name;
        let source = match cfg.identity_sources.as_slice() {
            [] => IdentitySource::Header("authorization".into()),
            [one] => IdentitySource::parse(one).map_err(|e| format!("[auth.{name}]: {e}"))?,
            _ => {
                return Err(format!(
                    "[auth.{name}]: a jwt authorizer reads the token from one identity source"
                ));
            }
        };
        let secret = read_secret(cfg)?.map(|s| DecodingKey::from_secret(&s));
        let jwks = if cfg.jwks_url.is_some() || cfg.issuer.is_some() {
            Some(JwksCache::new(cfg.jwks_url.clone(), cfg.issuer.clone())?)
        } else {
            None
        };
        let algorithms: Vec<Algorithm> = if cfg.algorithms.is_empty() {
            let mut v = Vec::new();
            if secret.is_some() {
                v.extend(HMAC_ALGS);
            }
            if jwks.is_some() {
                v.extend(super::jwks::ASYMMETRIC);
            }
            v
        } else {
            cfg.algorithms
                .iter()
                .map(|a| {
                    Algorithm::from_str(a)
                        .map_err(|_| format!("[auth.{name}]: unknown algorithm `{a}`"))
                })
                .collect::<Result<_, _>>()?
        };
        for a in &algorithms {
            if HMAC_ALGS.contains(a) && secret.is_none() {
                return Err(format!(
                    "[auth.{name}]: {a:?} needs a shared secret (`secret_env` or `secret_file`)"
                ));
            }
            if !HMAC_ALGS.contains(a) && jwks.is_none() {
                return Err(format!(
                    "[auth.{name}]: {a:?} needs public keys (`jwks_url` or `issuer`)"
                ));
            }
        }
        if algorithms.is_empty() {
            return Err(format!("[auth.{name}]: no algorithm can be verified"));
        }
        Ok(Self {
            header: source.header_name(),
            source,
            algorithms,
            secret,
            jwks,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            leeway: cfg.leeway.as_secs(),
            verified: cfg
                .token_cache
                .then(|| TokenCache::new(VERIFIED_CACHE_BYTES)),
            decisions: DecisionCounters::new(name),
        })
    }

    /// Decides without waiting when nothing needs fetching: a token from
    /// the verified-token cache, an HS token, an asymmetric one whose key is
    /// in the fetched (and fresh) key set, and every refusal. `None` when
    /// the issuer's keys must be fetched first: then [`Self::authorize`].
    pub fn authorize_now(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        route_scopes: &[String],
    ) -> Option<Decision> {
        // A token seen before is looked up by the header's bytes as sent,
        // before any check: a hit equals a token that passed them all.
        let mut looked_up = false;
        if let (Some(cache), Some(name)) = (&self.verified, &self.header)
            && let Some(raw) = super::single_header(headers, name)
        {
            if let Some(v) = cache.get(strip_bearer_bytes(raw))
                && v.exp > now_secs()
            {
                return Some(self.grant(&v, true, route_scopes));
            }
            // The checked path below reads the same bytes: no second lookup.
            looked_up = true;
        }
        let raw = match self.token_text(headers, uri) {
            Ok(raw) => raw,
            Err(e) => return Some(Err(e)),
        };
        let token = strip_bearer(&raw);
        if let Some(cache) = &self.verified
            && !looked_up
            && let Some(v) = cache.get(token.as_bytes())
            && v.exp > now_secs()
        {
            return Some(self.grant(&v, true, route_scopes));
        }
        let verified = match self.verify_now(token)? {
            Ok(v) => Arc::new(v),
            Err(e) => return Some(Err(e)),
        };
        if let Some(cache) = &self.verified {
            remember(cache, token.as_bytes(), &verified);
        }
        Some(self.grant(&verified, false, route_scopes))
    }

    /// Decides, fetching the issuer's keys when needed.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        route_scopes: &[String],
    ) -> Decision {
        let raw = self.token_text(headers, uri)?;
        let token = strip_bearer(&raw);
        let (verified, cached) = match &self.verified {
            Some(cache) => match cache.get(token.as_bytes()) {
                Some(v) if v.exp > now_secs() => (v, true),
                _ => {
                    let v = Arc::new(self.verify(token).await?);
                    remember(cache, token.as_bytes(), &v);
                    (v, false)
                }
            },
            None => (Arc::new(self.verify(token).await?), false),
        };
        self.grant(&verified, cached, route_scopes)
    }

    /// The token's identity-source value, checked to be text.
    fn token_text<'h>(
        &self,
        headers: &'h HeaderMap,
        uri: &Uri,
    ) -> Result<std::borrow::Cow<'h, str>, GatewayError> {
        // A JWT authorizer has no stage variables to read.
        static NO_VARIABLES: std::collections::BTreeMap<String, String> =
            std::collections::BTreeMap::new();
        self.source
            .value(headers, uri.query(), &NO_VARIABLES)
            .ok_or_else(|| {
                unauthorized(
                    format!("no token in {}", self.source.describe()),
                    r#"Bearer"#.to_string(),
                )
            })
    }

    /// A verified token against the route's scopes.
    fn grant(&self, verified: &Verified, cached: bool, route_scopes: &[String]) -> Decision {
        if !route_scopes.is_empty() && !route_scopes.iter().any(|s| verified.scopes.contains(s)) {
            return Err(GatewayError::Forbidden(format!(
                "the token has none of the route's scopes ({})",
                route_scopes.join(" ")
            )));
        }
        // The note is only built when someone reads the auth log.
        let note = if tracing::enabled!(target: "lambdagate::auth", tracing::Level::INFO) {
            let sub = verified
                .claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or("-");
            format!("sub {sub}{}", if cached { " (cached)" } else { "" })
        } else {
            String::new()
        };
        Ok(Granted {
            output: AuthorizerOutput::Jwt {
                claims: verified.claims.clone(),
                scopes: verified.scopes.clone(),
            },
            usage_identifier_key: None,
            note,
        })
    }

    /// [`Self::verify`] when it needs nothing fetched; `None` when the
    /// token's key is not in the fetched, fresh key set.
    fn verify_now(&self, token: &str) -> Option<Result<Verified, GatewayError>> {
        let parsed = match self.parse(token) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        if HMAC_ALGS.contains(&parsed.alg) {
            return Some(self.check(&parsed, None));
        }
        let Some(jwks) = &self.jwks else {
            return Some(Err(invalid("the token's algorithm is not accepted")));
        };
        let key = jwks.key_now(parsed.kid.as_deref())?;
        Some(self.check(&parsed, Some(&key)))
    }

    /// Verifies signature and claims, decoding each part of the token once:
    /// the signature with the HS secret (jsonwebtoken) or the JWKS key parsed
    /// once per kid and algorithm (aws-lc-rs), then `exp`, `nbf`, `iss`,
    /// `aud`/`client_id` and `iat` on the claims map the event gets.
    async fn verify(&self, token: &str) -> Result<Verified, GatewayError> {
        let parsed = self.parse(token)?;
        if HMAC_ALGS.contains(&parsed.alg) {
            return self.check(&parsed, None);
        }
        let Some(jwks) = &self.jwks else {
            return Err(invalid("the token's algorithm is not accepted"));
        };
        let key = match jwks.key(parsed.kid.as_deref()).await {
            Ok(k) => k,
            Err(KeyError::UnknownKid(_)) => {
                return Err(invalid("the token's kid is not in the issuer's key set"));
            }
            Err(KeyError::Unavailable(why)) => {
                return Err(unauthorized(
                    why,
                    r#"Bearer scope="" error="invalid_token" error_description="the issuer's keys could not be fetched""#.into(),
                ));
            }
        };
        self.check(&parsed, Some(&key))
    }

    /// The header's checks: decodable, an accepted algorithm, three parts.
    fn parse<'t>(&self, token: &'t str) -> Result<Parsed<'t>, GatewayError> {
        let header = match jsonwebtoken::decode_header(token) {
            Ok(h) => h,
            Err(_) => {
                if raw_alg(token).is_some_and(|a| a.eq_ignore_ascii_case("none")) {
                    return Err(invalid("unsigned tokens (alg none) are not accepted"));
                }
                return Err(invalid("the token is malformed"));
            }
        };
        if !self.algorithms.contains(&header.alg) {
            return Err(invalid(&format!(
                "the token's algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let Some((message, signature_b64)) = token.rsplit_once('.') else {
            return Err(invalid("the token is malformed"));
        };
        let Some((_, payload_b64)) = message.split_once('.') else {
            return Err(invalid("the token is malformed"));
        };
        Ok(Parsed {
            alg: header.alg,
            kid: header.kid,
            message,
            signature_b64,
            payload_b64,
        })
    }

    /// The signature (with the HS secret, or `key` for the asymmetric
    /// algorithms), then the claims.
    fn check(&self, t: &Parsed<'_>, key: Option<&JwksKey>) -> Result<Verified, GatewayError> {
        let signature_ok = if HMAC_ALGS.contains(&t.alg) {
            let Some(secret) = &self.secret else {
                return Err(invalid("the token's algorithm is not accepted"));
            };
            jsonwebtoken::crypto::verify(t.signature_b64, t.message.as_bytes(), secret, t.alg)
                .map_err(|_| invalid("the token is malformed"))?
        } else {
            let Some(key) = key else {
                return Err(invalid("the token's algorithm is not accepted"));
            };
            if key.alg.is_some_and(|a| a != t.alg) || key.key.family() != t.alg.family() {
                return Err(invalid("the token's algorithm does not match its key"));
            }
            let signature = URL_SAFE_NO_PAD
                .decode(t.signature_b64)
                .map_err(|_| invalid("the token is malformed"))?;
            key.verify(t.alg, t.message.as_bytes(), &signature)
        };
        if !signature_ok {
            return Err(invalid("the token signature is invalid"));
        }
        let claims: Map<String, Value> = URL_SAFE_NO_PAD
            .decode(t.payload_b64)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| invalid("the token is malformed"))?;
        let now = now_secs() as f64;
        let leeway = self.leeway as f64;
        let exp = match claims.get("exp") {
            None => return Err(invalid("the token has no exp claim")),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| invalid("the token has an invalid claim"))?,
        };
        if exp < now - leeway {
            return Err(invalid("the token has expired"));
        }
        match claims.get("nbf").map(Value::as_f64) {
            Some(None) => return Err(invalid("the token has an invalid claim")),
            Some(Some(nbf)) if nbf > now + leeway => {
                return Err(invalid("the token is not valid yet"));
            }
            _ => {}
        }
        if let Some(iss) = &self.issuer
            && claims.get("iss").and_then(Value::as_str) != Some(iss.as_str())
        {
            return Err(invalid("the token does not have a valid issuer"));
        }
        if !self.audience.is_empty() && !audience_matches(&claims, &self.audience) {
            return Err(invalid("the token does not have a valid audience"));
        }
        if let Some(iat) = claims.get("iat").and_then(Value::as_f64)
            && iat > now + leeway
        {
            return Err(invalid("the token was issued in the future"));
        }
        let scopes = scopes_of(&claims);
        Ok(Verified {
            claims: Arc::new(claims),
            scopes: Arc::new(scopes),
            exp: exp.max(0.0) as u64,
        })
    }
}

fn read_secret(cfg: &AuthConfig) -> Result<Option<Vec<u8>>, String> {
    let name = &cfg.name;
    if let Some(var) = &cfg.secret_env {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => return Ok(Some(v.into_bytes())),
            // With both, the file is the fallback for an unset variable.
            _ if cfg.secret_file.is_some() => {}
            _ => {
                return Err(format!(
                    "[auth.{name}]: the secret environment variable {var} is not set"
                ));
            }
        }
    }
    if let Some(path) = &cfg.secret_file {
        return match std::fs::read(path) {
            Ok(mut v) => {
                while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    v.pop();
                }
                if v.is_empty() {
                    Err(format!("[auth.{name}]: {} is empty", path.display()))
                } else {
                    Ok(Some(v))
                }
            }
            Err(e) => Err(format!(
                "[auth.{name}]: cannot read the secret file {}: {e}",
                path.display()
            )),
        };
    }
    Ok(None)
}

/// `Bearer x` → `x`; a bare token stays as it is (API Gateway accepts both).
fn strip_bearer(v: &str) -> &str {
    let v = v.trim();
    match v.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => v[7..].trim_start(),
        _ => v,
    }
}

/// [`strip_bearer`] on a header's raw bytes (for cache lookups).
fn strip_bearer_bytes(v: &[u8]) -> &[u8] {
    let v = v.trim_ascii();
    match v.get(..7) {
        Some(p) if p.eq_ignore_ascii_case(b"bearer ") => v[7..].trim_ascii_start(),
        _ => v,
    }
}

/// The `alg` a token's header claims, read without trusting anything.
fn raw_alg(token: &str) -> Option<String> {
    let head = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("alg")?.as_str().map(str::to_string)
}

/// `aud` (string or array) or, as AWS does for access tokens, `client_id`.
fn audience_matches(claims: &Map<String, Value>, audience: &[String]) -> bool {
    let hit = |v: &Value| v.as_str().is_some_and(|s| audience.iter().any(|a| a == s));
    match claims.get("aud") {
        Some(Value::Array(items)) if items.iter().any(hit) => return true,
        Some(v @ Value::String(_)) if hit(v) => return true,
        _ => {}
    }
    claims.get("client_id").is_some_and(hit)
}

/// Scopes from `scope` (space-separated) or `scp` (array or string).
fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => out.extend(s.split_whitespace().map(str::to_string)),
            Some(Value::Array(a)) => {
                out.extend(a.iter().filter_map(Value::as_str).map(str::to_string))
            }
            _ => {}
        }
    }
    out.dedup();
    out
}

/// Claims as API Gateway hands them to functions: every value a string
/// (numbers and booleans as text, arrays as `[a b]`, objects as JSON).
pub fn claims_as_strings(claims: &Map<String, Value>) -> Map<String, Value> {
    fn text(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Array(items) => {
                format!("[{}]", items.iter().map(text).collect::<Vec<_>>().join(" "))
            }
            other => other.to_string(),
        }
    }
    claims
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(text(v))))
        .collect()
}

fn unauthorized(reason: String, www_authenticate: String) -> GatewayError {
    GatewayError::Unauthorized {
        reason,
        www_authenticate: Some(www_authenticate),
    }
}

/// A 401 whose `WWW-Authenticate` says why, as the HTTP API JWT authorizer does.
fn invalid(why: &str) -> GatewayError {
    unauthorized(
        why.to_string(),
        format!(r#"Bearer scope="" error="invalid_token" error_description="{why}""#),
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn bearer_prefix_is_optional_and_case_insensitive() {
        assert_eq!(strip_bearer("Bearer abc"), "abc");
        assert_eq!(strip_bearer("bearer  abc"), "abc");
        assert_eq!(strip_bearer("abc"), "abc");
        for v in ["Bearer abc", "bearer  abc", " BEARER\tabc ", "abc", "\tabc"] {
            assert_eq!(strip_bearer_bytes(v.as_bytes()), strip_bearer(v).as_bytes());
        }
    }

    #[test]
    fn audience_from_aud_or_client_id() {
        let aud = vec!["api".to_string()];
        assert!(audience_matches(&obj(json!({"aud": "api"})), &aud));
        assert!(audience_matches(&obj(json!({"aud": ["x", "api"]})), &aud));
        assert!(audience_matches(&obj(json!({"client_id": "api"})), &aud));
        assert!(!audience_matches(&obj(json!({"aud": "other"})), &aud));
        assert!(!audience_matches(&obj(json!({})), &aud));
    }

    #[test]
    fn scopes_from_scope_and_scp() {
        assert_eq!(
            scopes_of(&obj(json!({"scope": "a b"}))),
            vec!["a".to_string(), "b".to_string()]
        );
        assert_eq!(
            scopes_of(&obj(json!({"scp": ["c"]}))),
            vec!["c".to_string()]
        );
    }

    #[test]
    fn claims_reach_events_as_strings() {
        let c = claims_as_strings(&obj(
            json!({"sub": "u", "exp": 5, "groups": ["a", "b"], "ok": true}),
        ));
        assert_eq!(c["sub"], "u");
        assert_eq!(c["exp"], "5");
        assert_eq!(c["groups"], "[a b]");
        assert_eq!(c["ok"], "true");
    }

    #[test]
    fn alg_none_is_recognised_for_the_message() {
        // {"alg":"none","typ":"JWT"}
        assert_eq!(
            raw_alg("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.e30.").as_deref(),
            Some("none")
        );
    }
}
