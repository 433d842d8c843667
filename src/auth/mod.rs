//! Auth phase: decides who the caller is before anything reaches a backend.
//! Runs after route match (so an unknown path stays 404/403 and never turns
//! into a 401) and before throttling. A route without `auth` passes through
//! untouched. Each authorizer returns the request enriched with an
//! [`AuthContext`] extension, or a refusal (401/403/500) that ends the
//! request here; every decision is logged with route, authorizer and reason,
//! never with the credential itself.

pub mod api_key;
pub mod condition;
pub mod jwks;
pub mod jwt;
pub mod lambda_authorizer;
pub mod policy;
pub mod sigv4;

use std::sync::Arc;

use crate::pipeline::Next;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::app::GatewayState;
use crate::error::GatewayError;
use crate::routing::RouteContext;

/// Who the caller is, as later phases and the events see it.
#[derive(Debug, Clone, Default)]
pub struct AuthContext {
    pub authorizer: Option<AuthorizerOutput>,
    pub api_key: Option<ApiKeyIdentity>,
    /// A Lambda authorizer's `usageIdentifierKey`: the API key to meter the
    /// request against (REST APIs with an `AUTHORIZER` key source).
    pub usage_identifier_key: Option<String>,
}

#[derive(Debug, Clone)]
pub enum AuthorizerOutput {
    /// Shared with the verified-token cache: a cache hit copies nothing.
    Jwt {
        claims: Arc<Map<String, Value>>,
        scopes: Arc<Vec<String>>,
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

/// Shared with the API key cache: attaching it to a request copies nothing.
#[derive(Debug, Clone)]
pub struct ApiKeyIdentity {
    /// The key's public id (`apiKeyId`).
    pub id: Arc<str>,
    /// The key as the client sent it (`identity.apiKey`, as AWS sends it).
    pub key: Arc<str>,
}

impl AuthContext {
    pub fn iam(&self) -> Option<&IamIdentity> {
        match &self.authorizer {
            Some(AuthorizerOutput::Iam(i)) => Some(i),
            _ => None,
        }
    }
}

/// One configured authorizer, ready to run.
pub enum Authorizer {
    Jwt(Box<jwt::JwtAuthorizer>),
    Sigv4(sigv4::Sigv4Authorizer),
    Lambda(lambda_authorizer::LambdaAuthorizer),
}

impl Authorizer {
    pub fn kind(&self) -> &'static str {
        match self {
            Authorizer::Jwt(_) => "jwt",
            Authorizer::Sigv4(_) => "sigv4",
            Authorizer::Lambda(_) => "lambda",
        }
    }
}

/// A route's auth settings, resolved at start-up.
#[derive(Clone)]
pub struct RouteAuth {
    /// The `[auth.NAME]` this route uses.
    pub name: String,
    pub authorizer: Arc<Authorizer>,
    /// Scopes the route requires (any one of them, as API Gateway does).
    pub scopes: Vec<String>,
}

/// What an authorizer decided. `Err` carries the refusal and the reason that
/// goes to the log.
pub type Decision = Result<Granted, GatewayError>;

/// A successful decision.
pub struct Granted {
    pub output: AuthorizerOutput,
    pub usage_identifier_key: Option<String>,
    /// Short note for the log (`"cached"`, the principal, the access key id).
    pub note: String,
}

/// Auth phase.
pub async fn authenticate(
    State(state): State<Arc<GatewayState>>,
    req: Request,
    next: Next,
) -> Response {
    // Cheap check first: routes without auth pass straight through.
    let Some(ctx) = req.extensions().get::<RouteContext>() else {
        return next.run(req).await;
    };
    let Some(auth) = ctx.route.auth.clone() else {
        return next.run(req).await;
    };
    let ctx = ctx.clone();
    let (decision, mut req) = match &*auth.authorizer {
        Authorizer::Jwt(a) => (
            a.authorize(req.headers(), req.uri(), &auth.scopes).await,
            req,
        ),
        Authorizer::Sigv4(a) => {
            // The signature covers the body: read it (bounded) and put it back.
            let (parts, body) = req.into_parts();
            match crate::limits::collect_body(body, state.config.gateway.limits.max_body).await {
                Ok(bytes) => {
                    let d = a.authorize(&parts, &bytes, &state);
                    (d, Request::from_parts(parts, Body::from(bytes)))
                }
                Err(e) => (Err(e), Request::from_parts(parts, Body::empty())),
            }
        }
        Authorizer::Lambda(a) => {
            let (parts, body) = req.into_parts();
            let d = a.authorize(&state, &ctx, &parts).await;
            (d, Request::from_parts(parts, body))
        }
    };
    let route = ctx.route.route_key.as_str();
    match decision {
        Ok(granted) => {
            crate::metrics::auth_decision(&auth.name, "allow");
            tracing::info!(
                target: "lambdagate::auth",
                route,
                authorizer = %auth.name,
                kind = auth.authorizer.kind(),
                decision = "allow",
                reason = %granted.note,
            );
            let ext = req.extensions_mut();
            match ext.get_mut::<AuthContext>() {
                Some(ac) => {
                    ac.authorizer = Some(granted.output);
                    if granted.usage_identifier_key.is_some() {
                        ac.usage_identifier_key = granted.usage_identifier_key;
                    }
                }
                None => {
                    ext.insert(AuthContext {
                        authorizer: Some(granted.output),
                        api_key: None,
                        usage_identifier_key: granted.usage_identifier_key,
                    });
                }
            }
            next.run(req).await
        }
        Err(e) => {
            let reason = match &e {
                GatewayError::Unauthorized { reason, .. } => reason.clone(),
                GatewayError::Forbidden(r) => r.clone(),
                other => other.to_string(),
            };
            // An authorizer that could not decide (5xx) is an error, not a deny.
            crate::metrics::auth_decision(
                &auth.name,
                if e.status().is_server_error() {
                    "error"
                } else {
                    "deny"
                },
            );
            tracing::warn!(
                target: "lambdagate::auth",
                route,
                authorizer = %auth.name,
                kind = auth.authorizer.kind(),
                decision = "deny",
                status = e.status().as_u16(),
                reason = %reason,
            );
            let mut res = e.into_response();
            res.extensions_mut().insert(ctx);
            res
        }
    }
}

/// Where an authorizer reads one piece of the caller's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// `$request.header.NAME` / `method.request.header.NAME` (lower-cased).
    Header(String),
    /// `$request.querystring.NAME` / `method.request.querystring.NAME`.
    Query(String),
    /// `$stageVariables.NAME` / `stageVariables.NAME`.
    StageVariable(String),
}

impl IdentitySource {
    /// Parses API Gateway's identity-source expressions (HTTP API and REST forms).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let rest = s
            .strip_prefix("$request.")
            .or_else(|| s.strip_prefix("method.request."));
        if let Some(rest) = rest {
            if let Some(h) = rest.strip_prefix("header.").filter(|h| !h.is_empty()) {
                return Ok(IdentitySource::Header(h.to_ascii_lowercase()));
            }
            if let Some(q) = rest.strip_prefix("querystring.").filter(|q| !q.is_empty()) {
                return Ok(IdentitySource::Query(q.to_string()));
            }
        }
        if let Some(v) = s
            .strip_prefix("$stageVariables.")
            .or_else(|| s.strip_prefix("stageVariables."))
            .filter(|v| !v.is_empty())
        {
            return Ok(IdentitySource::StageVariable(v.to_string()));
        }
        Err(format!(
            "identity source `{s}` is not `$request.header.NAME`, `$request.querystring.NAME` or `$stageVariables.NAME`"
        ))
    }

    /// The value this source names in a request, if present and non-empty.
    pub fn value(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        stage_variables: &std::collections::BTreeMap<String, String>,
    ) -> Option<String> {
        let v = match self {
            IdentitySource::Header(h) => {
                let values: Vec<&str> = headers
                    .get_all(h.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                if values.is_empty() {
                    None
                } else {
                    Some(values.join(","))
                }
            }
            IdentitySource::Query(q) => {
                let values: Vec<String> = crate::event::parse_query(query.unwrap_or_default())
                    .into_iter()
                    .filter(|(k, _)| k == q)
                    .flat_map(|(_, vs)| vs)
                    .collect();
                if values.is_empty() {
                    None
                } else {
                    Some(values.join(","))
                }
            }
            IdentitySource::StageVariable(v) => stage_variables.get(v).cloned(),
        };
        v.filter(|s| !s.trim().is_empty())
    }

    /// How a log line or `WWW-Authenticate` names the place.
    pub fn describe(&self) -> String {
        match self {
            IdentitySource::Header(h) => format!("the {h} header"),
            IdentitySource::Query(q) => format!("the {q} query parameter"),
            IdentitySource::StageVariable(v) => format!("the {v} stage variable"),
        }
    }
}

/// Hex SHA-256 of a credential: cache keys never hold the credential itself.
pub fn credential_hash(parts: &[&str]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_sources_parse_in_both_forms() {
        assert_eq!(
            IdentitySource::parse("$request.header.Authorization"),
            Ok(IdentitySource::Header("authorization".into()))
        );
        assert_eq!(
            IdentitySource::parse("method.request.querystring.token"),
            Ok(IdentitySource::Query("token".into()))
        );
        assert_eq!(
            IdentitySource::parse("$stageVariables.tenant"),
            Ok(IdentitySource::StageVariable("tenant".into()))
        );
        assert!(IdentitySource::parse("$request.body.x").is_err());
        assert!(IdentitySource::parse("$request.header.").is_err());
    }

    #[test]
    fn identity_values_join_repeats_and_skip_empty() {
        let mut h = HeaderMap::new();
        h.append("x-a", "1".parse().unwrap());
        h.append("x-a", "2".parse().unwrap());
        h.insert("x-empty", " ".parse().unwrap());
        let vars = Default::default();
        let a = IdentitySource::Header("x-a".into());
        assert_eq!(a.value(&h, None, &vars).as_deref(), Some("1,2"));
        let e = IdentitySource::Header("x-empty".into());
        assert_eq!(e.value(&h, None, &vars), None);
        let q = IdentitySource::Query("t".into());
        assert_eq!(
            q.value(&h, Some("t=x%20y&u=1"), &vars).as_deref(),
            Some("x y")
        );
    }

    #[test]
    fn credential_hash_separates_parts() {
        assert_ne!(credential_hash(&["ab", "c"]), credential_hash(&["a", "bc"]));
    }
}
