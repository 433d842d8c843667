//! Auth phase: decides who the caller is before anything reaches a backend.
//! Each authorizer returns the request enriched with an [`AuthContext`]
//! extension, or a refusal; later phases (throttle, cache, events) read it.

use serde_json::{Map, Value};

/// Who the caller is, as later phases and the events see it.
#[derive(Debug, Clone, Default)]
pub struct AuthContext {
    pub authorizer: Option<AuthorizerOutput>,
    pub api_key: Option<ApiKeyIdentity>,
}

#[derive(Debug, Clone)]
pub enum AuthorizerOutput {
    Jwt {
        claims: Map<String, Value>,
        scopes: Vec<String>,
    },
    Lambda {
        principal_id: Option<String>,
        context: Map<String, Value>,
    },
    Iam(IamIdentity),
}

#[derive(Debug, Clone, Default)]
pub struct IamIdentity {
    pub access_key: String,
    pub account_id: Option<String>,
    pub caller_id: Option<String>,
    pub user_arn: Option<String>,
    pub user_id: Option<String>,
    pub principal_org_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ApiKeyIdentity {
    /// The key's public id (`apiKeyId`).
    pub id: String,
    /// The key as the client sent it (`identity.apiKey`, as AWS sends it).
    pub key: String,
}

impl AuthContext {
    pub fn iam(&self) -> Option<&IamIdentity> {
        match &self.authorizer {
            Some(AuthorizerOutput::Iam(i)) => Some(i),
            _ => None,
        }
    }
}
