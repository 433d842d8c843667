//! Access keys the gateway accepts: each key's prepared signing identity
//! and cached signing keys, and the stores keys are looked up in.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use serde::Deserialize;

use crate::auth::IamIdentity;

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
    pub(super) identity: Identity,
    /// Who the caller is, as the event shows it.
    pub(super) iam: Arc<IamIdentity>,
    /// Signing keys derived from the secret, for the fast path.
    pub(super) signing_keys: SigningKeys,
}

/// The last few signing keys derived from one secret, each for a day,
/// region and service (`generate_signing_key` is four HMACs and some
/// allocation; a key is good for a whole day, so a gateway derives a
/// handful a day).
#[derive(Default)]
pub(super) struct SigningKeys(Mutex<[Option<ScopedKey>; SigningKeys::SLOTS]>);

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
    pub(super) fn get(
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
    pub(super) fn prepared(&self) -> &PreparedKey {
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
