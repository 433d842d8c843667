//! `Gateway`: turns a validated config into the running API — backends
//! created, routes resolved for one stage, the pipeline assembled into an
//! axum `Router` — and serves it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::auth::{Authorizer, RouteAuth};
use crate::backend::FunctionBackend;
use crate::backend::http::HttpUpstream;
use crate::backend::lambda::LambdaBackend;
use crate::backend::local::{LocalBackend, LocalSettings};
use crate::backend::mock::MockResponse;
use crate::config::substitute;
use crate::config::{
    AuthKind, BackendConfig, Config, FunctionConfig, IntegrationConfig, RouteConfig, StageConfig,
};
use crate::integration::RouteIntegration;
use crate::routing::{RouteRuntime, RouteTable};

/// What the integration, the admin API and the Invoke API read; immutable
/// once built. The phases hold their own state (see `pipeline`).
pub struct GatewayState {
    pub config: Arc<Config>,
    pub stage: StageConfig,
    pub routes: Vec<Arc<RouteRuntime>>,
    pub function_backends: BTreeMap<String, Arc<dyn FunctionBackend>>,
    /// Authorizers in use (by a route or the Invoke API), by `[auth.NAME]`.
    pub authorizers: BTreeMap<String, Arc<Authorizer>>,
    /// The response cache, when any route caches (its statistics are
    /// read beside the cache phases that share it).
    pub cache: Option<Arc<crate::cache::ResponseCache>>,
    /// Every function with the backend it runs on in this stage, by
    /// `[functions.NAME]`; filled only when `[invoke_api]` serves them.
    pub invocable: BTreeMap<String, InvocableFunction>,
    /// API keys and plans over the store; None when neither a route nor the
    /// admin API needs the store.
    pub api_keys: Option<Arc<crate::auth::api_key::ApiKeys>>,
    /// Throttles and quotas of the serving stage.
    pub throttles: crate::throttle::Throttles,
}

/// A function the Invoke API can call.
#[derive(Clone)]
pub struct InvocableFunction {
    pub backend: Arc<dyn FunctionBackend>,
    pub function: Arc<FunctionConfig>,
}

/// Why a config could not be turned into a running gateway.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// Options chosen at start-up rather than in the routes file.
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    /// Serve this stage instead of `[gateway] stage`.
    pub stage: Option<String>,
}

/// The gateway as a library: build it from a config, take its `Router`, or
/// let it serve a listener.
#[derive(Clone)]
pub struct Gateway {
    state: Arc<GatewayState>,
    /// Every phase, built from the state and the parts only phases use.
    pipeline: crate::pipeline::Pipeline,
    /// Set when `[admin]` is configured (its token was read at build time).
    admin_token: Option<Arc<crate::admin::AdminToken>>,
}

impl Gateway {
    pub async fn new(config: Arc<Config>, options: GatewayOptions) -> Result<Self, BuildError> {
        let stage_name = options
            .stage
            .clone()
            .unwrap_or_else(|| config.gateway.stage.clone());
        let stage = config.stages.get(&stage_name).cloned().ok_or_else(|| {
            BuildError(format!(
                "stage `{stage_name}` is not defined in {}; known stages: {}",
                config.source.display(),
                config.stages.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let admin_token = match &config.admin {
            Some(a) => Some(Arc::new(crate::admin::AdminToken::from_config(a)?)),
            None => None,
        };

        // Function hosts, created only when a route needs them.
        let mut function_backends: BTreeMap<String, Arc<dyn FunctionBackend>> = BTreeMap::new();
        let authorizers = build_authorizers(&config, &stage, &mut function_backends).await?;
        let mut http_upstreams: BTreeMap<String, Arc<HttpUpstream>> = BTreeMap::new();
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut table = RouteTable::new();
        for rc in &config.routes {
            let integration = match &rc.integration {
                IntegrationConfig::Mock(m) => {
                    RouteIntegration::Mock(MockResponse::new(m).map_err(BuildError)?)
                }
                IntegrationConfig::Http { backend } if http_upstreams.contains_key(backend) => {
                    // Routes on one backend share its connection pool.
                    RouteIntegration::Http(http_upstreams[backend].clone())
                }
                IntegrationConfig::Http { backend } => {
                    let Some(BackendConfig::Http {
                        url,
                        timeout,
                        headers,
                    }) = config.backends.get(backend)
                    else {
                        return Err(BuildError(format!(
                            "backend `{backend}` is not an http backend"
                        )));
                    };
                    let url = substitute(url, &stage.variables);
                    let headers = headers
                        .iter()
                        .map(|(k, v)| (k.clone(), substitute(v, &stage.variables)))
                        .collect();
                    let upstream = Arc::new(
                        HttpUpstream::new(
                            backend,
                            &url,
                            timeout.unwrap_or(config.gateway.timeout),
                            &headers,
                            config.gateway.trusted_proxies.as_slice().into(),
                        )
                        .map_err(BuildError)?,
                    );
                    http_upstreams.insert(backend.clone(), upstream.clone());
                    RouteIntegration::Http(upstream)
                }
                IntegrationConfig::Function { function, backend } => {
                    let f = config.functions.get(function).ok_or_else(|| {
                        BuildError(format!("function `{function}` is not defined"))
                    })?;
                    let backend_name = choose_backend(&config, &stage, f, backend.as_deref())?;
                    let host = match function_backends.get(&backend_name) {
                        Some(b) => b.clone(),
                        None => {
                            let b = create_function_backend(&config, &backend_name).await?;
                            function_backends.insert(backend_name.clone(), b.clone());
                            b
                        }
                    };
                    RouteIntegration::Proxy {
                        backend: host,
                        backend_name,
                        function: Arc::new(resolve_function(f, &stage)),
                    }
                }
            };
            let mut binary = config.gateway.binary_media_types.clone();
            binary.extend(rc.binary_media_types.iter().cloned());
            table
                .insert(&rc.method, &rc.template, routes.len())
                .map_err(|c| BuildError(format!("route conflict: {c:?}")))?;
            let auth = rc.auth.as_ref().and_then(|name| {
                authorizers.get(name).map(|a| RouteAuth {
                    name: name.clone(),
                    authorizer: a.clone(),
                    scopes: rc.scopes.clone(),
                })
            });
            let timeout = integration_timeout(rc, &integration, &config);
            let route_key = rc.route_key();
            routes.push(Arc::new(RouteRuntime {
                metrics: crate::metrics::RouteMetrics::new(&route_key),
                route_key,
                config: rc.clone(),
                integration,
                auth,
                timeout,
                binary_media_types: binary,
            }));
        }
        let openapi = crate::openapi::ServedSpec::build(&config, &stage.name)
            .map_err(|e| BuildError(format!("OpenAPI document: {e}")))?
            .map(Arc::new);
        let cache = if config.routes.iter().any(|r| r.cache.is_some()) {
            let mut c = crate::cache::ResponseCache::new(&config.cache, config.routes.len());
            if config.cache.shared
                && let Some(cluster) = &config.cluster
            {
                let shared = crate::cache::shared::SharedCache::connect(
                    &cluster.redis_url,
                    &config.gateway.api_id,
                    &stage.name,
                )
                .await
                .map_err(|e| BuildError(format!("[cache] shared: {e}")))?;
                c = c.with_shared(shared);
            }
            Some(Arc::new(c))
        } else {
            None
        };
        let mut invocable = BTreeMap::new();
        if config.invoke_api.is_some() {
            for f in config.functions.values() {
                let backend_name = choose_backend(&config, &stage, f, None)?;
                let backend = match function_backends.get(&backend_name) {
                    Some(b) => b.clone(),
                    None => {
                        let b = create_function_backend(&config, &backend_name).await?;
                        function_backends.insert(backend_name.clone(), b.clone());
                        b
                    }
                };
                let function = Arc::new(resolve_function(f, &stage));
                invocable.insert(f.key.clone(), InvocableFunction { backend, function });
            }
        }
        // The store opens (created and migrated on first use) only when a
        // route needs API keys or the admin API is configured.
        let needs_keys = config.routes.iter().any(|r| {
            r.api_key
                || r.auth
                    .as_ref()
                    .and_then(|a| config.auth.get(a))
                    .is_some_and(|a| a.kind == AuthKind::ApiKey)
        });
        let api_keys = if needs_keys || config.admin.is_some() {
            let store = crate::store::Store::open(&config.store)
                .await
                .map_err(|e| BuildError(format!("cannot open the store: {e}")))?;
            Some(Arc::new(
                crate::auth::api_key::ApiKeys::new(config.clone(), store).map_err(BuildError)?,
            ))
        } else {
            None
        };
        let throttles = crate::throttle::Throttles::new(
            &config,
            &stage,
            api_keys.as_ref().map(|k| k.store().clone()),
        )
        .map_err(BuildError)?;
        let state = Arc::new(GatewayState {
            config,
            stage,
            routes,
            function_backends,
            authorizers,
            cache,
            invocable,
            api_keys,
            throttles,
        });
        // Built once: every listener and `router()` share the phases.
        let pipeline = crate::pipeline::Pipeline::new(state.clone(), table, openapi);
        Ok(Self {
            state,
            pipeline,
            admin_token,
        })
    }

    pub fn state(&self) -> &Arc<GatewayState> {
        &self.state
    }

    /// The whole API as an axum `Router`, ready to nest or serve.
    pub fn router(&self) -> Router {
        Router::new().fallback_service(self.pipeline.clone())
    }

    /// The pipeline as a tower service, as the listener calls it.
    pub fn pipeline(&self) -> &crate::pipeline::Pipeline {
        &self.pipeline
    }

    /// The admin API's `Router`, when `[admin]` is configured.
    pub fn admin_router(&self) -> Option<Router> {
        let token = self.admin_token.clone()?;
        Some(crate::admin::router(crate::admin::AdminState {
            gateway: self.state.clone(),
            token,
        }))
    }

    /// Serves on `listener` until `shutdown` completes, then drains in-flight
    /// requests and stops the backends.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // The listener in `server/` (TLS, timeouts, connection cap, drain);
        // `Server` also allows hot reload, which the binary uses.
        crate::server::Server::new(self.clone())
            .serve(listener, shutdown)
            .await
    }

    /// Stops every backend (local function processes, pools).
    pub async fn shutdown(&self) {
        self.state.throttles.shutdown().await;
        for b in self.state.function_backends.values() {
            b.shutdown().await;
        }
    }

    /// One-line summary: routes, stage and backends.
    pub fn summary(&self) -> String {
        let s = &self.state;
        let mut kinds: Vec<String> = s
            .function_backends
            .keys()
            .map(|k| {
                format!(
                    "{k} ({})",
                    s.config.backends.get(k).map_or("local", |b| b.kind())
                )
            })
            .collect();
        for r in &s.routes {
            if let RouteIntegration::Http(_) = r.integration
                && let IntegrationConfig::Http { backend } = &r.config.integration
            {
                let k = format!("{backend} (http)");
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
        }
        format!(
            "stage `{}`, {} routes, backends: {}",
            s.stage.name,
            s.routes.len(),
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(", ")
            }
        )
    }
}

/// Builds every authorizer a route or the Invoke API names; a Lambda
/// authorizer's function runs on the stage's function backend, like a route's.
async fn build_authorizers(
    config: &Arc<Config>,
    stage: &StageConfig,
    function_backends: &mut BTreeMap<String, Arc<dyn FunctionBackend>>,
) -> Result<BTreeMap<String, Arc<Authorizer>>, BuildError> {
    let mut used: Vec<&String> = config
        .routes
        .iter()
        .filter_map(|r| r.auth.as_ref())
        .collect();
    used.extend(config.invoke_api.as_ref().and_then(|i| i.auth.as_ref()));
    let mut out = BTreeMap::new();
    for name in used {
        if out.contains_key(name) {
            continue;
        }
        let cfg = config
            .auth
            .get(name)
            .ok_or_else(|| BuildError(format!("authorizer `{name}` is not defined")))?;
        let authorizer = match cfg.kind {
            AuthKind::Jwt => Authorizer::Jwt(Box::new(
                crate::auth::jwt::JwtAuthorizer::new(cfg).map_err(BuildError)?,
            )),
            AuthKind::Sigv4 => Authorizer::Sigv4(
                crate::auth::sigv4::Sigv4Authorizer::new(cfg, &config.gateway.region)
                    .map_err(BuildError)?,
            ),
            AuthKind::Lambda => {
                let function = cfg.function.as_deref().unwrap_or_default();
                let f = config.functions.get(function).ok_or_else(|| {
                    BuildError(format!(
                        "[auth.{name}]: function `{function}` is not defined"
                    ))
                })?;
                let backend_name = choose_backend(config, stage, f, None)?;
                let host = match function_backends.get(&backend_name) {
                    Some(b) => b.clone(),
                    None => {
                        let b = create_function_backend(config, &backend_name).await?;
                        function_backends.insert(backend_name.clone(), b.clone());
                        b
                    }
                };
                Authorizer::Lambda(
                    crate::auth::lambda_authorizer::LambdaAuthorizer::new(
                        cfg,
                        Arc::clone(config),
                        Arc::new(stage.clone()),
                        host,
                        Arc::new(resolve_function(f, stage)),
                    )
                    .map_err(BuildError)?,
                )
            }
            // API keys are their own phase (the keys/plans feature).
            AuthKind::ApiKey => continue,
        };
        out.insert(name.clone(), Arc::new(authorizer));
    }
    Ok(out)
}

/// The route's timeout (else the gateway's): how long a client waits.
/// On a `lambda` backend it is shortened to the function's own timeout when
/// the routes file sets one (Lambda ends the invocation there). On the
/// `local` backend it is not: an invocation may wait in the function's
/// queue, bounded by this timeout, and its `timeout` counts from when a
/// process takes it, as Lambda counts execution only.
fn integration_timeout(
    rc: &RouteConfig,
    integration: &RouteIntegration,
    config: &Config,
) -> Duration {
    let route = rc.timeout.unwrap_or(config.gateway.timeout);
    match integration {
        RouteIntegration::Proxy {
            function,
            backend_name,
            ..
        } if function.timeout_configured
            && !matches!(
                config.backends.get(backend_name),
                Some(BackendConfig::Local { .. })
            ) =>
        {
            route.min(function.timeout)
        }
        _ => route,
    }
}

/// Route > function pin > stage > the only function host defined.
fn choose_backend(
    config: &Config,
    stage: &StageConfig,
    f: &FunctionConfig,
    route_backend: Option<&str>,
) -> Result<String, BuildError> {
    if let Some(b) = route_backend
        .or(f.backend.as_deref())
        .or(stage.backend.as_deref())
    {
        return Ok(b.to_string());
    }
    let hosts: Vec<&String> = config
        .backends
        .iter()
        .filter(|(_, b)| !matches!(b, BackendConfig::Http { .. }))
        .map(|(k, _)| k)
        .collect();
    match hosts.as_slice() {
        [only] => Ok((*only).clone()),
        [] => Err(BuildError(format!(
            "function `{}` has no backend to run on: add [backends.local] kind = \"local\" or a `lambda` backend, and name it in [stages.{}] backend",
            f.key, stage.name
        ))),
        _ => Err(BuildError(format!(
            "function `{}` could run on several backends; set `backend` in [stages.{}]",
            f.key, stage.name
        ))),
    }
}

async fn create_function_backend(
    config: &Config,
    name: &str,
) -> Result<Arc<dyn FunctionBackend>, BuildError> {
    match config.backends.get(name) {
        Some(BackendConfig::Lambda {
            region,
            endpoint_url,
            profile,
        }) => Ok(Arc::new(
            LambdaBackend::new(
                name,
                region.as_deref(),
                endpoint_url.as_deref(),
                profile.as_deref(),
            )
            .await,
        )),
        Some(BackendConfig::Local { max_queue }) => {
            Ok(Arc::new(LocalBackend::new(LocalSettings {
                name: name.to_string(),
                base_dir: config.base_dir.clone(),
                region: config.gateway.region.clone(),
                account_id: config.gateway.account_id.clone(),
                max_queue: *max_queue,
                limits: config.gateway.limits,
            })))
        }
        Some(BackendConfig::Http { .. }) => Err(BuildError(format!(
            "backend `{name}` is an http backend and cannot run functions"
        ))),
        None => Err(BuildError(format!("backend `{name}` is not defined"))),
    }
}

/// The function with the stage's variables filled in.
fn resolve_function(f: &FunctionConfig, stage: &StageConfig) -> FunctionConfig {
    let mut f = f.clone();
    f.name = substitute(&f.name, &stage.variables);
    for v in f.env.values_mut() {
        *v = substitute(v, &stage.variables);
    }
    f
}
