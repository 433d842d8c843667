//! Auth phase, `kind = "lambda"`: a Lambda authorizer run on the stage's
//! function backend. REST-style TOKEN and REQUEST authorizers answering with
//! an IAM policy (`principalId`, `policyDocument`, `context`,
//! `usageIdentifierKey`), and HTTP-API simple responses (`isAuthorized`,
//! `context`), with payload 1.0 or 2.0 events shaped as AWS sends them.
//! Results are cached by the identity sources' values for `ttl` (0 disables);
//! a cached policy is evaluated again against each request's method ARN. A
//! missing identity source is a 401 without invoking anything; an authorizer
//! that fails or answers nonsense is a 500, as API Gateway answers.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderName, Method};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::condition::RequestFacts;
use super::policy::{Statement, Verdict};
use super::{AuthorizerOutput, Decision, DecisionCounters, Granted, IdentitySource};
use crate::backend::{FunctionBackend, InvokeRequest};
use crate::config::{
    AuthConfig, Config, Flavor, FunctionConfig, GatewaySettings, PayloadVersion, StageConfig,
};
use crate::error::GatewayError;
use crate::routing::RouteContext;
use crate::telemetry::RequestInfo;

/// Bytes of cached authorizer results kept at most (per authorizer). Each
/// result weighs its key (the identity sources' values, which clients
/// choose and which may be kilobytes long) plus [`RESULT_OVERHEAD`].
const CACHE_CAPACITY: u64 = 16 * 1024 * 1024;
/// What a cached result costs beyond its key: the decision, its context
/// and policy, and the map's own entry.
const RESULT_OVERHEAD: u64 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizerType {
    Token,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    Iam,
    Simple,
}

/// What the authorizer function answered, parsed once and cached.
#[derive(Debug, Clone)]
pub enum AuthorizerResult {
    Policy {
        principal_id: Option<String>,
        statements: Vec<Statement>,
        /// Shared with every request the result authorizes.
        context: Arc<Map<String, Value>>,
        usage_identifier_key: Option<String>,
    },
    Simple {
        authorized: bool,
        context: Arc<Map<String, Value>>,
    },
}

pub struct LambdaAuthorizer {
    /// `[auth.NAME]`, for the log.
    name: String,
    backend: Arc<dyn FunctionBackend>,
    function: Arc<FunctionConfig>,
    kind: AuthorizerType,
    format: ResponseFormat,
    version: PayloadVersion,
    flavor: Flavor,
    sources: Vec<IdentitySource>,
    /// With exactly one identity source and that a header: its name,
    /// parsed once, for cache lookups by the raw value.
    single_header: Option<HeaderName>,
    cache: Option<ResultCache>,
    pub(super) decisions: DecisionCounters,
    /// The gateway's settings and the serving stage: the method ARN, the
    /// event and the stage variables an identity source may name.
    config: Arc<Config>,
    stage: Arc<StageConfig>,
}

/// Results by the identity sources' values ([`cache_key`]), compared in
/// full on a hit (the hasher is seeded per process). A synchronous cache,
/// so a hit is decided without a future; the invocations under way for
/// values not cached yet are kept beside it, so concurrent misses for one
/// identity invoke the authorizer once.
struct ResultCache {
    results: super::ttl_cache::TtlCache<[u8], AuthorizerResult>,
    ttl: std::time::Duration,
    pending: PendingMap,
}

/// The invocations under way, by cache key.
type PendingMap = Mutex<HashMap<Box<[u8]>, Arc<Pending>, foldhash::fast::RandomState>>;

/// One invocation's outcome, awaited by every request that missed on it.
type Pending = tokio::sync::OnceCell<Result<Arc<AuthorizerResult>, GatewayError>>;

impl ResultCache {
    /// The result for `key`: the one invocation under way for it, or a new
    /// one. `true` with it when another request's invocation supplied it.
    async fn get_or_invoke<F, Fut>(
        &self,
        key: Box<[u8]>,
        invoke: F,
    ) -> Result<(Arc<AuthorizerResult>, bool), GatewayError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AuthorizerResult, GatewayError>>,
    {
        let cell = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.get(&key) {
                Some(cell) => cell.clone(),
                None => {
                    let cell = Arc::new(Pending::new());
                    pending.insert(key.clone(), cell.clone());
                    cell
                }
            }
        };
        let waiting = Waiting {
            pending: &self.pending,
            key,
            cell,
        };
        // The first request to get here invokes; a request that arrives
        // while it runs waits for its outcome (and takes over if the first
        // one is dropped).
        let mut fresh = false;
        let outcome = waiting
            .cell
            .get_or_init(|| async {
                fresh = true;
                invoke().await.map(Arc::new)
            })
            .await
            .clone();
        // Only results are cached; after an error the next miss invokes again.
        if fresh && let Ok(r) = &outcome {
            self.results.insert(
                &waiting.key,
                r.clone(),
                std::time::Instant::now() + self.ttl,
                waiting.key.len() as u64 + RESULT_OVERHEAD,
            );
        }
        outcome.map(|r| (r, !fresh))
    }
}

/// A request waiting on an invocation in [`ResultCache::pending`]. When it
/// is done, or dropped, the entry goes if the invocation has finished (its
/// result is cached by then) or nobody else waits on it, so the map holds
/// only invocations under way.
struct Waiting<'a> {
    pending: &'a PendingMap,
    key: Box<[u8]>,
    cell: Arc<Pending>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        // Two holders: the map and this request.
        let done = self.cell.initialized() || Arc::strong_count(&self.cell) <= 2;
        if done
            && pending
                .get(&self.key)
                .is_some_and(|c| Arc::ptr_eq(c, &self.cell))
        {
            pending.remove(&self.key);
        }
    }
}

/// The cache key for the identity sources' values: one source's value as
/// it is; several, each preceded by its length, so the parts stay apart.
fn cache_key<'a>(identity: &'a [Cow<'_, str>]) -> Cow<'a, [u8]> {
    match identity {
        [one] => Cow::Borrowed(one.as_bytes()),
        many => {
            let mut key = Vec::with_capacity(many.iter().map(|v| v.len() + 8).sum());
            for v in many {
                key.extend_from_slice(&(v.len() as u64).to_le_bytes());
                key.extend_from_slice(v.as_bytes());
            }
            Cow::Owned(key)
        }
    }
}

impl LambdaAuthorizer {
    pub fn new(
        cfg: &AuthConfig,
        config: Arc<Config>,
        stage: Arc<StageConfig>,
        backend: Arc<dyn FunctionBackend>,
        function: Arc<FunctionConfig>,
    ) -> Result<Self, String> {
        let name = &cfg.name;
        let flavor = config.gateway.flavor;
        let kind = match cfg.authorizer_type.as_deref() {
            Some("token") => AuthorizerType::Token,
            None | Some("request") => AuthorizerType::Request,
            Some(other) => return Err(format!("[auth.{name}]: unknown type `{other}`")),
        };
        let format = match cfg.response.as_deref() {
            None | Some("iam") => ResponseFormat::Iam,
            Some("simple") => ResponseFormat::Simple,
            Some(other) => return Err(format!("[auth.{name}]: unknown response `{other}`")),
        };
        let version = cfg.payload_version.unwrap_or(match flavor {
            Flavor::Rest => PayloadVersion::V1,
            Flavor::Http => PayloadVersion::V2,
        });
        if format == ResponseFormat::Simple && version != PayloadVersion::V2 {
            return Err(format!(
                "[auth.{name}]: simple responses need payload_version = \"2.0\""
            ));
        }
        let mut sources: Vec<IdentitySource> = cfg
            .identity_sources
            .iter()
            .map(|s| IdentitySource::parse(s).map_err(|e| format!("[auth.{name}]: {e}")))
            .collect::<Result<_, _>>()?;
        if kind == AuthorizerType::Token {
            match sources.len() {
                0 => sources.push(IdentitySource::Header("authorization".into())),
                1 => {}
                _ => {
                    return Err(format!(
                        "[auth.{name}]: a token authorizer reads one identity source"
                    ));
                }
            }
        }
        // Without identity sources there is nothing to key a cache on.
        let cache = (!cfg.ttl.is_zero() && !sources.is_empty()).then(|| ResultCache {
            results: super::ttl_cache::TtlCache::new(CACHE_CAPACITY),
            ttl: cfg.ttl,
            pending: Mutex::default(),
        });
        let single_header = match sources.as_slice() {
            [one] => one.header_name(),
            _ => None,
        };
        Ok(Self {
            name: name.clone(),
            backend,
            function,
            kind,
            format,
            version,
            flavor,
            sources,
            single_header,
            cache,
            decisions: DecisionCounters::new(name),
            config,
            stage,
        })
    }

    /// Decides without waiting when no invocation is needed: a cached
    /// result (evaluated against this request), or a missing identity
    /// source (401). `None` when the authorizer must be invoked: then
    /// [`Self::authorize`].
    pub fn authorize_now(&self, ctx: &RouteContext, req: &Request) -> Option<Decision> {
        // A value seen before is looked up by the header's bytes as sent,
        // before any check: a hit equals a value that passed them.
        let raw_hit = match (&self.cache, &self.single_header) {
            (Some(cache), Some(name)) => {
                super::single_header(req.headers(), name).and_then(|raw| cache.results.get(raw))
            }
            _ => None,
        };
        let result = match raw_hit {
            Some(result) => result,
            None => {
                let identity = match self.identity(req.headers(), req.uri().query()) {
                    Ok(identity) => identity,
                    Err(e) => return Some(Err(e)),
                };
                self.cache.as_ref()?.results.get(&*cache_key(&identity))?
            }
        };
        Some(self.apply(
            ctx,
            req.method(),
            req.headers(),
            req.extensions(),
            &result,
            true,
        ))
    }

    /// Decides, invoking the authorizer on a cache miss.
    pub async fn authorize(&self, ctx: &RouteContext, parts: &Parts) -> Decision {
        let identity = self.identity(&parts.headers, parts.uri.query())?;
        let invoke = || async {
            let method_arn = method_arn(
                &self.config.gateway,
                &self.stage.name,
                parts.method.as_str(),
                &ctx.path,
            );
            self.invoke(ctx, parts, &identity, &method_arn).await
        };
        let (result, cached) = match &self.cache {
            Some(cache) => {
                let key = cache_key(&identity);
                match cache.results.get(&*key) {
                    Some(r) => (r, true),
                    None => cache.get_or_invoke(key.into(), invoke).await?,
                }
            }
            None => (Arc::new(invoke().await?), false),
        };
        self.apply(
            ctx,
            &parts.method,
            &parts.headers,
            &parts.extensions,
            &result,
            cached,
        )
    }

    /// The identity sources' values; a missing one is a 401.
    fn identity<'a>(
        &'a self,
        headers: &'a HeaderMap,
        query: Option<&str>,
    ) -> Result<Vec<Cow<'a, str>>, GatewayError> {
        let mut identity = Vec::with_capacity(self.sources.len());
        for s in &self.sources {
            match s.value(headers, query, &self.stage.variables) {
                Some(v) => identity.push(v),
                None => {
                    return Err(GatewayError::Unauthorized {
                        reason: format!("identity source missing: {}", s.describe()),
                        www_authenticate: None,
                    });
                }
            }
        }
        Ok(identity)
    }

    /// A (possibly cached) result applied to this request.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        ctx: &RouteContext,
        method: &Method,
        headers: &HeaderMap,
        extensions: &Extensions,
        result: &AuthorizerResult,
        cached: bool,
    ) -> Decision {
        let method_arn = method_arn(
            &self.config.gateway,
            &self.stage.name,
            method.as_str(),
            &ctx.path,
        );
        let info = extensions.get::<RequestInfo>();
        let header = |n| headers.get(n).and_then(|v| v.to_str().ok());
        let facts = RequestFacts {
            source_ip: info.map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |i| i.source_ip),
            now: std::time::SystemTime::now(),
            secure_transport: self.config.gateway.tls.is_some(),
            user_agent: header(axum::http::header::USER_AGENT),
            referer: header(axum::http::header::REFERER),
        };
        decide(result, &method_arn, &facts, cached)
    }

    async fn invoke(
        &self,
        ctx: &RouteContext,
        parts: &Parts,
        identity: &[Cow<'_, str>],
        method_arn: &str,
    ) -> Result<AuthorizerResult, GatewayError> {
        let info = parts
            .extensions
            .get::<RequestInfo>()
            .ok_or_else(|| GatewayError::Internal("no request info".into()))?;
        let event = self.event(ctx, parts, info, identity, method_arn);
        let payload = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
        let out = self
            .backend
            .invoke(InvokeRequest {
                function: self.function.clone(),
                payload,
                timeout: self.function.timeout,
                request_id: info.request_id.clone(),
                client_context: None,
                log_tail: false,
            })
            .await
            .map_err(|e| authorizer_failed(&format!("invocation failed: {e}")))?;
        if out.function_error.is_some() {
            let msg = serde_json::from_slice::<Value>(&out.payload)
                .ok()
                .and_then(|v| {
                    v.get("errorMessage")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
            // `throw new Error("Unauthorized")` / `callback("Unauthorized")`.
            if msg.as_deref() == Some("Unauthorized") {
                return Err(GatewayError::Unauthorized {
                    reason: "the authorizer answered Unauthorized".into(),
                    www_authenticate: None,
                });
            }
            return Err(authorizer_failed(&format!(
                "the authorizer function failed: {}",
                msg.unwrap_or_default()
            )));
        }
        let value: Value = serde_json::from_slice(&out.payload)
            .map_err(|_| authorizer_failed("the authorizer's response is not JSON"))?;
        let mut problems = Vec::new();
        let result = parse_response(&value, self.format, &mut problems)
            .map_err(|e| authorizer_failed(&e))?;
        for problem in problems {
            // The statement fails closed: its Allow grants nothing, its Deny denies.
            tracing::warn!(
                target: "lambdagate::auth",
                authorizer = %self.name,
                problem = %problem,
                "policy condition cannot be evaluated; its statement fails closed"
            );
        }
        Ok(result)
    }

    /// The authorizer's event, shaped like AWS's for this type and version.
    fn event(
        &self,
        ctx: &RouteContext,
        parts: &Parts,
        info: &RequestInfo,
        identity: &[Cow<'_, str>],
        method_arn: &str,
    ) -> Value {
        if self.kind == AuthorizerType::Token {
            return json!({
                "type": "TOKEN",
                "authorizationToken": identity.first(),
                "methodArn": method_arn,
            });
        }
        let mut event = crate::integration::build_event_value(
            &self.config.gateway,
            &self.stage,
            ctx,
            parts,
            &Bytes::new(),
            info,
            None,
            self.version,
        );
        let Some(obj) = event.as_object_mut() else {
            return event;
        };
        obj.remove("body");
        obj.remove("isBase64Encoded");
        obj.insert("type".into(), json!("REQUEST"));
        match self.version {
            PayloadVersion::V1 => {
                obj.insert("methodArn".into(), json!(method_arn));
                if self.flavor == Flavor::Http {
                    let joined = identity.join(",");
                    obj.insert("version".into(), json!("1.0"));
                    obj.insert("identitySource".into(), json!(joined));
                    obj.insert("authorizationToken".into(), json!(joined));
                }
            }
            PayloadVersion::V2 => {
                obj.insert("routeArn".into(), json!(method_arn));
                obj.insert("identitySource".into(), json!(identity));
            }
        }
        event
    }
}

fn authorizer_failed(why: &str) -> GatewayError {
    GatewayError::Internal(format!("authorizer: {why}"))
}

/// `arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/path`
pub fn method_arn(g: &GatewaySettings, stage: &str, method: &str, path: &str) -> String {
    let parts = [
        "arn:aws:execute-api:",
        &g.region,
        ":",
        &g.account_id,
        ":",
        &g.api_id,
        "/",
        stage,
        "/",
        method,
        path,
    ];
    // Built by hand: this runs for every request, cached result or not.
    let mut arn = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        arn.push_str(p);
    }
    arn
}

/// Reads the function's answer as a policy or a simple response.
/// Conditions that cannot be evaluated are noted in `problems` (they fail closed).
pub fn parse_response(
    v: &Value,
    format: ResponseFormat,
    problems: &mut Vec<String>,
) -> Result<AuthorizerResult, String> {
    let obj = v.as_object().ok_or("the response is not a JSON object")?;
    let context = match obj.get("context") {
        None | Some(Value::Null) => Arc::new(Map::new()),
        Some(Value::Object(m)) => Arc::new(m.clone()),
        Some(_) => return Err("`context` is not an object".into()),
    };
    match format {
        ResponseFormat::Simple => {
            let authorized = obj
                .get("isAuthorized")
                .and_then(Value::as_bool)
                .ok_or("a simple response needs a boolean `isAuthorized`")?;
            Ok(AuthorizerResult::Simple {
                authorized,
                context,
            })
        }
        ResponseFormat::Iam => {
            let doc = obj
                .get("policyDocument")
                .and_then(Value::as_object)
                .ok_or("an IAM response needs a `policyDocument` object")?;
            let statements =
                super::policy::parse_statements(&Value::Object(doc.clone()), problems)?;
            let principal_id = match obj.get("principalId") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            Ok(AuthorizerResult::Policy {
                principal_id,
                statements,
                context,
                usage_identifier_key: obj
                    .get("usageIdentifierKey")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
        }
    }
}

/// Applies a (possibly cached) result to this request's method ARN and facts.
pub fn decide(
    result: &AuthorizerResult,
    method_arn: &str,
    facts: &RequestFacts<'_>,
    cached: bool,
) -> Decision {
    let cached_note = if cached { " (cached)" } else { "" };
    // The note is only built when someone reads the auth log.
    let log = tracing::enabled!(target: "lambdagate::auth", tracing::Level::INFO);
    match result {
        AuthorizerResult::Simple {
            authorized,
            context,
        } => {
            if !authorized {
                return Err(GatewayError::Forbidden(format!(
                    "the authorizer answered isAuthorized=false{cached_note}"
                )));
            }
            Ok(Granted {
                output: AuthorizerOutput::Lambda {
                    principal_id: None,
                    context: context.clone(),
                },
                usage_identifier_key: None,
                note: if log {
                    format!("isAuthorized{cached_note}")
                } else {
                    String::new()
                },
            })
        }
        AuthorizerResult::Policy {
            principal_id,
            statements,
            context,
            usage_identifier_key,
        } => {
            match super::policy::evaluate(statements, method_arn, facts) {
                Verdict::Allow => {}
                Verdict::ExplicitDeny => return Err(GatewayError::ExplicitDeny),
                Verdict::ImplicitDeny => {
                    return Err(GatewayError::Forbidden(format!(
                        "the authorizer's policy does not allow {method_arn}{cached_note}"
                    )));
                }
            }
            Ok(Granted {
                output: AuthorizerOutput::Lambda {
                    principal_id: principal_id.clone(),
                    context: context.clone(),
                },
                usage_identifier_key: usage_identifier_key.clone(),
                note: if log {
                    format!(
                        "principal {}{cached_note}",
                        principal_id.as_deref().unwrap_or("-")
                    )
                } else {
                    String::new()
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function that allows the token `allow` (simple responses) and
    /// counts its invocations: no backend, no network.
    struct Authz(std::sync::atomic::AtomicUsize);

    impl FunctionBackend for Authz {
        fn invoke(
            &self,
            req: InvokeRequest,
        ) -> futures::future::BoxFuture<
            '_,
            Result<crate::backend::InvokeResponse, crate::backend::BackendError>,
        > {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let event: Value = serde_json::from_slice(&req.payload).unwrap();
            let allowed = event["headers"]["authorization"] == "allow";
            let answer = json!({"isAuthorized": allowed, "context": {"tenant": "t1"}});
            Box::pin(async move {
                Ok(crate::backend::InvokeResponse {
                    payload: Bytes::from(answer.to_string()),
                    ..Default::default()
                })
            })
        }
    }

    /// The authorizer as a route's auth phase, with a terminal `Next`:
    /// allowed callers go on (the cached result decides the second time
    /// without invoking), a denied one is 403, a missing identity source
    /// 401 without an invocation.
    #[tokio::test]
    async fn the_auth_phase_invokes_once_then_decides_from_the_cache() {
        use crate::auth::{Authenticate, Authorizer, RouteAuth};
        use crate::pipeline::phase::Phase;
        use crate::testing::{config, function, routed};
        let config = config(
            r#"
[gateway]
flavor = "http"

[functions.authz]
command = ["authz"]

[auth.simple]
kind = "lambda"
function = "authz"
type = "request"
identity_sources = ["$request.header.Authorization"]
response = "simple"
ttl = "300s"

[[routes]]
method = "GET"
path = "/items"
mock = { status = 200 }
auth = "simple"
"#,
        );
        let backend = Arc::new(Authz(Default::default()));
        let stage = Arc::new(config.stages[&config.gateway.stage].clone());
        let authorizer = LambdaAuthorizer::new(
            &config.auth["simple"],
            config.clone(),
            stage,
            backend.clone(),
            Arc::new(config.functions["authz"].clone()),
        )
        .unwrap();
        let phase = Arc::new(Authenticate {
            auth: RouteAuth {
                name: "simple".into(),
                authorizer: Arc::new(Authorizer::Lambda(authorizer)),
                scopes: vec![],
            },
            route_key: "GET /items".into(),
            max_body: 1024,
        });
        let f = function(axum::http::StatusCode::OK, "{}");
        let get = |token: Option<&str>| {
            let mut b = Request::get("/items");
            if let Some(t) = token {
                b = b.header("authorization", t);
            }
            let mut req = routed(&config, 0, &[], b.body(axum::body::Body::empty()).unwrap());
            req.extensions_mut().insert(RequestInfo {
                request_id: "r1".into(),
                id_header: None,
                received_at: std::time::SystemTime::now(),
                started: std::time::Instant::now(),
                source_ip: std::net::Ipv4Addr::LOCALHOST.into(),
                record: Default::default(),
            });
            req
        };
        for _ in 0..2 {
            let res = phase.clone().call(get(Some("allow")), f.next.clone()).await;
            assert_eq!(res.status(), 200);
        }
        let invocations = || backend.0.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(invocations(), 1);
        let res = phase.clone().call(get(Some("deny")), f.next.clone()).await;
        assert_eq!(res.status(), 403);
        assert_eq!(invocations(), 2);
        let res = phase.clone().call(get(None), f.next.clone()).await;
        assert_eq!(res.status(), 401);
        assert_eq!(invocations(), 2);
        assert_eq!(f.calls(), 2);
    }

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:api/dev";

    fn policy(statements: Value) -> AuthorizerResult {
        parse_response(
            &json!({"principalId": "u1", "policyDocument": {"Version": "2012-10-17", "Statement": statements}, "context": {"k": "v"}}),
            ResponseFormat::Iam,
            &mut Vec::new(),
        )
        .unwrap()
    }

    fn facts(ip: &str) -> RequestFacts<'static> {
        RequestFacts {
            source_ip: ip.parse().unwrap(),
            now: std::time::SystemTime::now(),
            secure_transport: false,
            user_agent: None,
            referer: None,
        }
    }

    #[test]
    fn cached_policy_is_evaluated_per_method_arn() {
        let p = policy(
            json!([{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": [format!("{ARN}/GET/pets/*")]}]),
        );
        let f = facts("1.2.3.4");
        assert!(decide(&p, &format!("{ARN}/GET/pets/1"), &f, true).is_ok());
        assert!(matches!(
            decide(&p, &format!("{ARN}/DELETE/pets/1"), &f, true),
            Err(GatewayError::Forbidden(_))
        ));
    }

    #[test]
    fn deny_wins_and_conditions_decide_per_request() {
        let p = policy(json!([
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"},
            {"Action": ["execute-api:Invoke"], "Effect": "Deny", "Resource": [format!("{ARN}/DELETE/*")]}
        ]));
        let f = facts("1.2.3.4");
        assert!(decide(&p, &format!("{ARN}/GET/x"), &f, false).is_ok());
        assert_eq!(
            decide(&p, &format!("{ARN}/DELETE/x"), &f, false).err(),
            Some(GatewayError::ExplicitDeny)
        );
        let c = policy(
            json!([{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*", "Condition": {"StringEquals": {"aws:SourceIp": ["1.2.3.4"]}}}]),
        );
        assert!(decide(&c, &format!("{ARN}/GET/x"), &f, false).is_ok());
        assert!(decide(&c, &format!("{ARN}/GET/x"), &facts("1.2.3.5"), false).is_err());
    }

    #[test]
    fn fixture_responses_parse() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/aws-events");
        if !dir.is_dir() {
            eprintln!(
                "SKIPPED: {} not found; the fixture check runs where it exists (CI)",
                dir.display()
            );
            return;
        }
        for f in [
            "example-apigw-custom-auth-response.json",
            "example-apigw-custom-auth-response-with-condition.json",
            "example-apigw-custom-auth-response-with-single-value-action.json",
            "example-apigw-custom-auth-response-with-single-value-resource.json",
        ] {
            let path = dir.join(f);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let v: Value = serde_json::from_str(&text).unwrap();
            let r = parse_response(&v, ResponseFormat::Iam, &mut Vec::new()).unwrap();
            let AuthorizerResult::Policy {
                principal_id,
                statements,
                usage_identifier_key,
                ..
            } = r
            else {
                panic!("not a policy");
            };
            assert_eq!(principal_id.as_deref(), Some("yyyyyyyy"), "{f}");
            assert!(!statements.is_empty(), "{f}");
            assert!(usage_identifier_key.is_some(), "{f}");
        }
    }

    #[test]
    fn simple_responses() {
        let p = &mut Vec::new();
        let f = facts("1.2.3.4");
        let r = parse_response(
            &json!({"isAuthorized": true, "context": {"a": 1}}),
            ResponseFormat::Simple,
            p,
        )
        .unwrap();
        assert!(decide(&r, ARN, &f, false).is_ok());
        let r = parse_response(&json!({"isAuthorized": false}), ResponseFormat::Simple, p).unwrap();
        assert!(decide(&r, ARN, &f, false).is_err());
        assert!(parse_response(&json!({"context": {}}), ResponseFormat::Simple, p).is_err());
    }
}
