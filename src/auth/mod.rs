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
pub mod ttl_cache;

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::error::GatewayError;
use crate::pipeline::phase::{Next, Phase, PhaseFuture, answer};
use crate::routing::RouteContext;

/// Who the caller is, as later phases and the events see it.
#[derive(Debug, Clone, Default)]
pub struct AuthContext {
    pub authorizer: Option<AuthorizerOutput>,
    pub api_key: Option<ApiKeyIdentity>,
    /// A Lambda authorizer's `usageIdentifierKey`: the API key to meter the
    /// request against (REST APIs with an `AUTHORIZER` key source).
    pub usage_identifier_key: Option<String>,
    /// An accepted API key's plan, for the throttle & quota phase (carried
    /// here rather than as its own extension: one insert per request).
    pub key_grant: Option<api_key::KeyGrant>,
}

#[derive(Debug, Clone)]
pub enum AuthorizerOutput {
    /// Shared with the verified-token cache: a cache hit copies nothing.
    Jwt {
        claims: Arc<Map<String, Value>>,
        scopes: Arc<Vec<String>>,
    },
    /// The context is shared with the result cache.
    Lambda {
        principal_id: Option<String>,
        context: Arc<Map<String, Value>>,
    },
    /// Shared with the access key it was made from: copies nothing.
    Iam(Arc<IamIdentity>),
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
            Some(AuthorizerOutput::Iam(i)) => Some(i.as_ref()),
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

    fn decisions(&self) -> &DecisionCounters {
        match self {
            Authorizer::Jwt(a) => &a.decisions,
            Authorizer::Sigv4(a) => &a.decisions,
            Authorizer::Lambda(a) => &a.decisions,
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

/// Auth phase for one route: its authorizer and required scopes. Every decision that needs nothing awaited
/// is made here, synchronously, and the phase returns the rest of the
/// pipeline's future (or its refusal) with no future of its own: a JWT
/// from the verified-token cache, an HS or an asymmetric JWT whose key is in
/// the fetched key set, a SigV4 request without a body, a Lambda
/// authorizer's cached result, and every refusal those lead to. Only what
/// must be awaited goes into a boxed future (`authenticate_later`):
/// fetching the issuer's keys, invoking a Lambda authorizer on a cache miss,
/// reading a signed body.
pub struct Authenticate {
    pub auth: RouteAuth,
    /// The route's key, for the log.
    pub route_key: String,
    /// `[gateway.limits] max_body`, for reading a signed body.
    pub max_body: usize,
}

impl Phase for Authenticate {
    fn call(self: Arc<Self>, req: Request, next: Next) -> PhaseFuture {
        let auth = &self.auth;
        let decided = match &*auth.authorizer {
            Authorizer::Jwt(a) => a.authorize_now(req.headers(), req.uri(), &auth.scopes),
            // The signature covers the body: one already at its end is empty
            // (a GET's), so nothing needs reading.
            Authorizer::Sigv4(a) if req.body().is_end_stream() => {
                let (parts, body) = req.into_parts();
                let d = a.authorize(&parts, &[]);
                let req = Request::from_parts(parts, body);
                return conclude(d, &self, req, next);
            }
            Authorizer::Sigv4(_) => None,
            Authorizer::Lambda(a) => match req.extensions().get::<RouteContext>() {
                Some(ctx) => a.authorize_now(ctx, &req),
                None => Some(Err(GatewayError::Internal("no route context".into()))),
            },
        };
        match decided {
            Some(d) => conclude(d, &self, req, next),
            None => Box::pin(self.authenticate_later(req, next)),
        }
    }
}

impl Authenticate {
    /// The part of the auth phase that waits: JWKS fetches, Lambda
    /// authorizer invocations, signed bodies. Decides as `call` would have.
    async fn authenticate_later(self: Arc<Self>, mut req: Request, next: Next) -> Response {
        let auth = &self.auth;
        let decision = match &*auth.authorizer {
            Authorizer::Jwt(a) => a.authorize(req.headers(), req.uri(), &auth.scopes).await,
            Authorizer::Sigv4(a) => {
                // The signature covers the body: read it (bounded) and put it back.
                let (parts, body) = req.into_parts();
                let (d, body) = match crate::limits::collect_body(body, self.max_body).await {
                    Ok(bytes) => (a.authorize(&parts, &bytes), Body::from(bytes)),
                    Err(e) => (Err(e), Body::empty()),
                };
                req = Request::from_parts(parts, body);
                d
            }
            Authorizer::Lambda(a) => {
                let (parts, body) = req.into_parts();
                let d = match parts.extensions.get::<RouteContext>() {
                    Some(ctx) => a.authorize(ctx, &parts).await,
                    None => Err(GatewayError::Internal("no route context".into())),
                };
                req = Request::from_parts(parts, body);
                d
            }
        };
        conclude(decision, &self, req, next).await
    }
}

/// Counts and logs a decision, then lets the request on with its
/// [`AuthContext`] or answers with the refusal.
fn conclude(decision: Decision, phase: &Authenticate, mut req: Request, next: Next) -> PhaseFuture {
    let (auth, route_key) = (&phase.auth, phase.route_key.as_str());
    let decisions = auth.authorizer.decisions();
    match decision {
        Ok(granted) => {
            decisions.count(Outcome::Allow);
            tracing::info!(
                target: "lambdagate::auth",
                route = route_key,
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
                        key_grant: None,
                    });
                }
            }
            next.run(req)
        }
        Err(e) => {
            let reason = match &e {
                GatewayError::Unauthorized { reason, .. } => reason.clone(),
                GatewayError::Forbidden(r) => r.clone(),
                other => other.to_string(),
            };
            // An authorizer that could not decide (5xx) is an error, not a deny.
            decisions.count(if e.status().is_server_error() {
                Outcome::Error
            } else {
                Outcome::Deny
            });
            tracing::warn!(
                target: "lambdagate::auth",
                route = route_key,
                authorizer = %auth.name,
                kind = auth.authorizer.kind(),
                decision = "deny",
                status = e.status().as_u16(),
                reason = %reason,
            );
            let mut res = e.into_response();
            if let Some(ctx) = req.extensions_mut().remove::<RouteContext>() {
                res.extensions_mut().insert(ctx);
            }
            answer(res)
        }
    }
}

/// How an auth decision is counted in `/metrics`.
#[derive(Clone, Copy)]
enum Outcome {
    Allow,
    Deny,
    Error,
}

/// An authorizer's decision counters (`lambdagate_auth_decisions_total`),
/// made on its first decision and kept, so a request does not look the
/// metric up by its labels.
pub struct DecisionCounters {
    name: String,
    counters: std::sync::OnceLock<[metrics::Counter; 3]>,
}

impl DecisionCounters {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            counters: std::sync::OnceLock::new(),
        }
    }

    fn count(&self, outcome: Outcome) {
        let [allow, deny, error] = self.counters.get_or_init(|| {
            let c = |decision: &'static str| {
                metrics::counter!(
                    crate::metrics::AUTH_DECISIONS,
                    "authorizer" => self.name.clone(),
                    "decision" => decision
                )
            };
            [c("allow"), c("deny"), c("error")]
        });
        match outcome {
            Outcome::Allow => allow,
            Outcome::Deny => deny,
            Outcome::Error => error,
        }
        .increment(1);
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

    /// The value this source names in a request, if present and non-empty
    /// (borrowed when it is one header's value, as it usually is).
    pub fn value<'a>(
        &self,
        headers: &'a HeaderMap,
        query: Option<&str>,
        stage_variables: &'a std::collections::BTreeMap<String, String>,
    ) -> Option<Cow<'a, str>> {
        let v = match self {
            IdentitySource::Header(h) => {
                let mut all = headers.get_all(h.as_str()).iter();
                if let (Some(one), None) = (all.next(), all.next()) {
                    return one
                        .to_str()
                        .ok()
                        .filter(|s| !s.trim().is_empty())
                        .map(Cow::Borrowed);
                }
                let values: Vec<&str> = headers
                    .get_all(h.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                if values.is_empty() {
                    None
                } else {
                    Some(Cow::Owned(values.join(",")))
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
                    Some(Cow::Owned(values.join(",")))
                }
            }
            IdentitySource::StageVariable(v) => {
                stage_variables.get(v).map(|v| Cow::Borrowed(v.as_str()))
            }
        };
        v.filter(|s| !s.trim().is_empty())
    }

    /// The header this source reads, parsed once at start-up for
    /// [`single_header`] lookups; `None` for other sources.
    pub fn header_name(&self) -> Option<HeaderName> {
        match self {
            IdentitySource::Header(h) => HeaderName::from_bytes(h.as_bytes()).ok(),
            _ => None,
        }
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

/// The value of a header the request carries exactly once, as the raw
/// bytes sent, unchecked. Only for looking up a credential in a cache that
/// holds credentials which passed every check (read with
/// [`IdentitySource::value`]): bytes equal to such a key are valid text, and
/// a value that is not misses and takes the checked path.
pub(crate) fn single_header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a [u8]> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (Some(one), None) => Some(one.as_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JWT route's auth phase, built from its `[auth.users]` (a shared
    /// secret, no key set to fetch), with a terminal `Next` that answers
    /// with the token's subject.
    fn jwt_phase(
        dir: &std::path::Path,
    ) -> (Arc<Authenticate>, Next, Arc<std::sync::atomic::AtomicUsize>) {
        std::fs::write(dir.join("secret"), "s3cret-for-tests").unwrap();
        let config = crate::testing::config_in(
            dir,
            r#"
[auth.users]
kind = "jwt"
secret_file = "secret"
audience = ["api"]

[[routes]]
method = "GET"
path = "/items"
mock = { status = 200 }
auth = "users"
scopes = ["items:read"]
"#,
        );
        let authorizer = jwt::JwtAuthorizer::new(&config.auth["users"]).unwrap();
        let phase = Arc::new(Authenticate {
            auth: RouteAuth {
                name: "users".into(),
                authorizer: Arc::new(Authorizer::Jwt(Box::new(authorizer))),
                scopes: config.routes[0].scopes.clone(),
            },
            route_key: "GET /items".into(),
            max_body: 1024,
        });
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let next = Next::terminal(move |req: Request| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let sub = match req.extensions().get::<AuthContext>() {
                Some(AuthContext {
                    authorizer: Some(AuthorizerOutput::Jwt { claims, .. }),
                    ..
                }) => claims["sub"].as_str().unwrap_or_default().to_string(),
                _ => String::new(),
            };
            answer(Response::new(Body::from(sub)))
        });
        (phase, next, calls)
    }

    fn token(scope: &str, secret: &str) -> String {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &serde_json::json!({"sub": "u1", "aud": "api", "exp": exp, "scope": scope}),
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn get(token: Option<&str>) -> Request {
        let mut b = Request::get("/items");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn the_jwt_phase_lets_a_valid_token_on_with_its_claims() {
        let dir = tempfile::tempdir().unwrap();
        let (phase, next, calls) = jwt_phase(dir.path());
        let t = token("items:read", "s3cret-for-tests");
        let res = phase.call(get(Some(&t)), next).await;
        assert_eq!(res.status(), 200);
        let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"u1");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_jwt_phase_refuses_before_the_function() {
        let dir = tempfile::tempdir().unwrap();
        let (phase, next, calls) = jwt_phase(dir.path());
        // No token, another secret's token: 401; a valid token without the
        // route's scope: 403.
        let forged = token("items:read", "another-secret");
        let unscoped = token("items:write", "s3cret-for-tests");
        for (req, status) in [
            (get(None), 401),
            (get(Some(&forged)), 401),
            (get(Some(&unscoped)), 403),
        ] {
            let res = phase.clone().call(req, next.clone()).await;
            assert_eq!(res.status(), status);
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

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
}
