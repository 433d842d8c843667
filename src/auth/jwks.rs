//! Auth phase, JWT keys: the issuer's JSON Web Key Set, fetched from
//! `jwks_url` or found through the OIDC discovery document of `issuer`.
//! Fetched lazily with a 1.5 s timeout (as API Gateway does), cached, refreshed
//! when old or when a token names an unknown `kid` (at most once per
//! [`UNKNOWN_KID_REFRESH`], so a flood of bogus kids cannot hammer the
//! issuer), and served stale while the issuer is down. Symmetric (`oct`) and
//! encryption keys in a JWKS are ignored: a JWKS never yields an HMAC secret.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use aws_lc_rs::signature::{self, ParsedPublicKey};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use serde_json::Value;

/// How long one JWKS fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(1500);
/// Keys older than this are refreshed on the next request.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// A token with an unknown `kid` triggers at most one refresh per this.
pub const UNKNOWN_KID_REFRESH: Duration = Duration::from_secs(30);
/// After a failed fetch, wait this long before trying again for stale keys.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// One verification key from the set.
pub struct JwksKey {
    pub key: DecodingKey,
    /// The key's `alg`, when the JWKS pins one.
    pub alg: Option<Algorithm>,
    /// The key parsed by aws-lc-rs once per algorithm it verifies, so a
    /// signature check does not rebuild the public key (and its Montgomery
    /// context) for every token.
    parsed: [OnceLock<Option<ParsedPublicKey>>; ASYMMETRIC.len()],
}

/// The asymmetric algorithms a JWKS key can verify, with aws-lc-rs's
/// verification parameters (JWS signatures: PKCS#1 v1.5 or PSS for RSA,
/// fixed-length `r || s` for ECDSA).
pub(crate) const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn rsa_params(alg: Algorithm) -> Option<&'static signature::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

impl JwksKey {
    pub fn new(key: DecodingKey, alg: Option<Algorithm>) -> Self {
        Self {
            key,
            alg,
            parsed: Default::default(),
        }
    }

    /// Verifies a JWS signature (`signature` already base64-decoded) over
    /// `message` (`header.payload`) with this key for `alg`. False when the
    /// key cannot verify `alg` (another family) or the signature is wrong.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        let Some(i) = ASYMMETRIC.iter().position(|a| *a == alg) else {
            return false;
        };
        let parsed = self.parsed[i].get_or_init(|| self.parse(alg));
        parsed
            .as_ref()
            .is_some_and(|k| k.verify_sig(message, signature).is_ok())
    }

    fn parse(&self, alg: Algorithm) -> Option<ParsedPublicKey> {
        let family_ok = match alg {
            Algorithm::ES256 | Algorithm::ES384 => self.key.family() == AlgorithmFamily::Ec,
            Algorithm::EdDSA => self.key.family() == AlgorithmFamily::Ed,
            _ => self.key.family() == AlgorithmFamily::Rsa,
        };
        if !family_ok {
            return None;
        }
        match (self.key.kind(), rsa_params(alg)) {
            (DecodingKeyKind::RsaModulusExponent { n, e }, Some(params)) => {
                signature::RsaPublicKeyComponents { n, e }
                    .to_parsed_public_key(params)
                    .ok()
            }
            (DecodingKeyKind::SecretOrDer(bytes), params) => {
                let algorithm: &'static dyn signature::VerificationAlgorithm = match (alg, params) {
                    (_, Some(p)) => p,
                    (Algorithm::ES256, _) => &signature::ECDSA_P256_SHA256_FIXED,
                    (Algorithm::ES384, _) => &signature::ECDSA_P384_SHA384_FIXED,
                    (Algorithm::EdDSA, _) => &signature::ED25519,
                    _ => return None,
                };
                ParsedPublicKey::new(algorithm, bytes).ok()
            }
            _ => None,
        }
    }
}

struct KeySet {
    by_kid: HashMap<String, Arc<JwksKey>, foldhash::fast::RandomState>,
    /// Keys without a `kid`: usable only by a token without one, when alone.
    all: Vec<Arc<JwksKey>>,
    fetched_at: Instant,
}

#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    last_failed: bool,
    last_unknown_kid_refresh: Option<Instant>,
    /// The JWKS url found through discovery.
    discovered_url: Option<String>,
}

/// Why no key was found for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The issuer could not be reached and no keys are cached.
    Unavailable(String),
    /// The set has no key with this `kid` (or none for a token without one).
    UnknownKid(Option<String>),
}

pub struct JwksCache {
    client: reqwest::Client,
    jwks_url: Option<String>,
    issuer: Option<String>,
    keys: ArcSwapOption<KeySet>,
    refresh: tokio::sync::Mutex<RefreshState>,
}

impl JwksCache {
    /// Keys from `jwks_url`, or from `issuer`'s discovery document.
    pub fn new(jwks_url: Option<String>, issuer: Option<String>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build the JWKS client: {e}"))?;
        Ok(Self {
            client,
            jwks_url,
            issuer,
            keys: ArcSwapOption::empty(),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        })
    }

    /// What [`Self::key`] answers without fetching: the key for `kid` when
    /// the cached set is fresh and has it. `None` when only a fetch can tell.
    pub fn key_now(&self, kid: Option<&str>) -> Option<Arc<JwksKey>> {
        let current = self.keys.load();
        let set = current.as_ref()?;
        if set.fetched_at.elapsed() > MAX_AGE {
            return None;
        }
        find(set, kid)
    }

    /// The key to verify a token with this `kid`.
    pub async fn key(&self, kid: Option<&str>) -> Result<Arc<JwksKey>, KeyError> {
        let current = self.keys.load_full();
        let stale = current
            .as_ref()
            .is_none_or(|k| k.fetched_at.elapsed() > MAX_AGE);
        if stale {
            // Never fetched, or the last try is old enough to retry.
            self.refresh_if(false, |s| {
                s.last_attempt
                    .is_none_or(|t| !s.last_failed || t.elapsed() > RETRY_AFTER_FAILURE)
            })
            .await;
        }
        let Some(set) = self.keys.load_full() else {
            return Err(KeyError::Unavailable(
                "the issuer's JWKS could not be fetched".into(),
            ));
        };
        if let Some(k) = find(&set, kid) {
            return Ok(k);
        }
        // Unknown kid: maybe the issuer rotated keys. Refresh, rate-limited.
        let refreshed = self
            .refresh_if(true, |s| {
                s.last_unknown_kid_refresh
                    .is_none_or(|t| t.elapsed() > UNKNOWN_KID_REFRESH)
            })
            .await;
        if refreshed
            && let Some(set) = self.keys.load_full()
            && let Some(k) = find(&set, kid)
        {
            return Ok(k);
        }
        Err(KeyError::UnknownKid(kid.map(str::to_string)))
    }

    /// Fetches the set when `should` says so (checked under the refresh lock,
    /// so concurrent callers fetch once). Returns whether a fetch happened.
    async fn refresh_if(&self, unknown_kid: bool, should: impl Fn(&RefreshState) -> bool) -> bool {
        let started = Instant::now();
        let mut state = self.refresh.lock().await;
        // Someone else fetched while we waited for the lock: use theirs.
        if state.last_attempt.is_some_and(|t| t >= started) {
            return true;
        }
        if !should(&state) {
            return false;
        }
        state.last_attempt = Some(Instant::now());
        if unknown_kid {
            state.last_unknown_kid_refresh = state.last_attempt;
        }
        match self.fetch(&mut state).await {
            Ok(set) => {
                state.last_failed = false;
                self.keys.store(Some(Arc::new(set)));
            }
            Err(e) => {
                state.last_failed = true;
                // Stale-if-down: keep whatever keys we had.
                tracing::warn!(target: "lambdagate::auth", error = %e, "JWKS fetch failed; keeping cached keys");
            }
        }
        true
    }

    async fn fetch(&self, state: &mut RefreshState) -> Result<KeySet, String> {
        let url = match (&self.jwks_url, &state.discovered_url) {
            (Some(u), _) => u.clone(),
            (None, Some(u)) => u.clone(),
            (None, None) => {
                let issuer = self
                    .issuer
                    .as_deref()
                    .ok_or("no jwks_url and no issuer to discover it from")?;
                let doc_url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let doc = self.get_json(&doc_url).await?;
                let url = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{doc_url} has no jwks_uri"))?
                    .to_string();
                state.discovered_url = Some(url.clone());
                url
            }
        };
        let doc = self.get_json(&url).await?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{url} is not a JWKS (no `keys` array)"))?;
        let mut set = KeySet {
            by_kid: HashMap::default(),
            all: Vec::new(),
            fetched_at: Instant::now(),
        };
        for k in keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else {
                continue; // A key type we cannot use; others may still be fine.
            };
            if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_))
                || matches!(
                    jwk.common.public_key_use,
                    Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
                )
            {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| Algorithm::from_str(&format!("{a:?}")).ok());
            let entry = Arc::new(JwksKey::new(key, alg));
            if let Some(kid) = &jwk.common.key_id {
                set.by_kid.insert(kid.clone(), entry.clone());
            }
            set.all.push(entry);
        }
        Ok(set)
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let res = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("GET {url}: status {}", res.status()));
        }
        res.json::<Value>()
            .await
            .map_err(|e| format!("GET {url}: not JSON: {e}"))
    }
}

fn find(set: &KeySet, kid: Option<&str>) -> Option<Arc<JwksKey>> {
    match kid {
        Some(kid) => set.by_kid.get(kid).cloned(),
        None if set.all.len() == 1 => set.all.first().cloned(),
        None => None,
    }
}
