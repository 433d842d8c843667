//! The validated config model: what every layer reads. Built once by
//! `check`, then shared immutably as `Arc<Config>`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::raw::RawMock;
pub use crate::config::shaping::{
    CacheKeyPart, CacheSettings, ContentHandling, CorsConfig, IntegrationResponse, Invalidation,
    JsonSchema, Mapping, ResponseOffer, RouteCache, RouteRequest, RouteResponse,
};
use crate::routing::RouteTemplate;
use crate::transform::template::TemplateSet;

/// The API flavor: which AWS product lambdagate imitates at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// HTTP API: payload 2.0 by default, `404 Not Found` for unknown routes.
    Http,
    /// REST API: payload 1.0 by default, `403 Missing Authentication Token`.
    Rest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadVersion {
    V1,
    V2,
}

impl PayloadVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadVersion::V1 => "1.0",
            PayloadVersion::V2 => "2.0",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The routes file this was loaded from.
    pub source: PathBuf,
    /// The folder relative paths are resolved against.
    pub base_dir: PathBuf,
    pub gateway: GatewaySettings,
    pub stages: BTreeMap<String, StageConfig>,
    pub backends: BTreeMap<String, BackendConfig>,
    pub functions: BTreeMap<String, FunctionConfig>,
    pub auth: BTreeMap<String, AuthConfig>,
    pub plans: BTreeMap<String, PlanConfig>,
    pub store: StoreConfig,
    pub api_keys: ApiKeySettings,
    pub cluster: Option<ClusterConfig>,
    pub admin: Option<AdminConfig>,
    pub invoke_api: Option<InvokeApiConfig>,
    pub cors: Option<CorsConfig>,
    /// `[cache]`: the shared response cache's bounds.
    pub cache: CacheSettings,
    /// Every response and mapping template, compiled.
    pub templates: std::sync::Arc<TemplateSet>,
    pub openapi: OpenApiSettings,
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub listen: SocketAddr,
    pub flavor: Flavor,
    pub stage: String,
    pub binary_media_types: Vec<String>,
    pub api_id: String,
    pub account_id: String,
    pub region: String,
    pub stage_prefix: bool,
    pub timeout: Duration,
    pub throttle: Option<ThrottleConfig>,
    pub limits: Limits,
    /// HTTPS on `listen` (HTTP/2 and HTTP/1.1 via ALPN); plain HTTP when `None`.
    pub tls: Option<crate::tls::TlsSettings>,
    /// How long shutdown waits for in-flight requests before cutting them.
    pub drain_timeout: Duration,
    /// Peers whose `Forwarded`, `X-Forwarded-*` and `X-Real-IP` headers
    /// reach `http` upstreams; from any other peer they are dropped (and
    /// `X-Forwarded-For` restarts at the peer's address).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_body: usize,
    pub max_function_payload: usize,
    /// A client that has not sent a request's headers in this time is cut off
    /// (also bounds how long an idle HTTP/1 keep-alive connection waits).
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// A request's whole body must have arrived this long after its head
    /// (`408` and, on HTTP/1, the connection closed otherwise).
    pub body_timeout: Duration,
    /// Client connections open at once; more are closed on accept.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 10_240,
            max_body: 10 * 1024 * 1024,
            max_function_payload: 6 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(20),
            max_connections: 10_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StageConfig {
    pub name: String,
    /// The backend functions run on in this stage.
    pub backend: Option<String>,
    pub variables: BTreeMap<String, String>,
    pub throttle: Option<ThrottleConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleConfig {
    /// Steady-state requests per second.
    pub rate: f64,
    /// Bucket size.
    pub burst: u32,
}

#[derive(Debug, Clone)]
pub enum BackendConfig {
    Lambda {
        region: Option<String>,
        endpoint_url: Option<String>,
        profile: Option<String>,
    },
    Http {
        /// May contain `${stageVariables.X}` (resolved per stage).
        url: String,
        timeout: Option<Duration>,
        headers: BTreeMap<String, String>,
    },
    Local {
        /// Invocations allowed to wait for a busy function, all functions together.
        max_queue: Option<usize>,
    },
}

impl BackendConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Lambda { .. } => "lambda",
            BackendConfig::Http { .. } => "http",
            BackendConfig::Local { .. } => "local",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub key: String,
    pub command: Option<Vec<String>>,
    /// Name on Lambda; `${stageVariables.X}` templates allowed. Defaults to the key.
    pub name: String,
    pub env: BTreeMap<String, String>,
    /// The function's own timeout (default 3s, Lambda's default).
    pub timeout: Duration,
    /// Whether `timeout` was written in the file; only then does it also
    /// bound invocations on the `lambda` backend, where the real timeout is
    /// configured in AWS.
    pub timeout_configured: bool,
    pub concurrency: usize,
    pub memory_size: u32,
    pub handler: Option<String>,
    pub cwd: PathBuf,
    pub runtime: Option<String>,
    pub backend: Option<String>,
    pub queue: usize,
}

/// An authorizer as configured; the `auth` module interprets the fields.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub name: String,
    pub kind: AuthKind,
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    pub jwks_url: Option<String>,
    pub algorithms: Vec<String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub leeway: Duration,
    /// jwt: keep verified tokens (bounded, until `exp`).
    pub token_cache: bool,
    pub function: Option<String>,
    pub authorizer_type: Option<String>,
    pub identity_sources: Vec<String>,
    pub response: Option<String>,
    pub payload_version: Option<PayloadVersion>,
    pub ttl: Duration,
    pub header: Option<String>,
    pub service: Option<String>,
    pub credentials_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    Jwt,
    ApiKey,
    Sigv4,
    Lambda,
}

#[derive(Debug, Clone)]
pub struct PlanConfig {
    pub name: String,
    pub throttle: Option<ThrottleConfig>,
    /// Per-route throttles within the plan, by route key.
    pub route_throttles: BTreeMap<String, ThrottleConfig>,
    pub quota: Option<QuotaConfig>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    Day,
    Week,
    Month,
}

#[derive(Debug, Clone, Copy)]
pub struct QuotaConfig {
    pub limit: u64,
    pub period: QuotaPeriod,
}

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Sqlite {
        path: PathBuf,
    },
    Postgres {
        url: String,
        /// Schema for lambdagate's tables (None: the server's search_path).
        schema: Option<String>,
    },
}

/// Where API keys come from and how long nodes cache them.
#[derive(Debug, Clone)]
pub struct ApiKeySettings {
    pub source: ApiKeySource,
    /// Lower-case header name.
    pub header: String,
    pub cache_ttl: Duration,
    /// How often buffered per-day usage counts are written to the store
    /// (they are also written on shutdown).
    pub usage_flush_interval: Duration,
}

impl Default for ApiKeySettings {
    fn default() -> Self {
        Self {
            source: ApiKeySource::Header,
            header: "x-api-key".to_string(),
            cache_ttl: Duration::from_secs(5),
            usage_flush_interval: Duration::from_secs(1),
        }
    }
}

/// API Gateway's `apiKeySource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeySource {
    Header,
    /// The `usageIdentifierKey` a Lambda authorizer returns.
    Authorizer,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub redis_url: String,
    pub fail_closed: bool,
    pub key_prefix: String,
    /// How much of a throttle's rate one Redis step may lease to a node (at
    /// most a tenth of the burst), and how long unspent leased cells live.
    pub lease: Duration,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct InvokeApiConfig {
    pub listen: SocketAddr,
    pub auth: Option<String>,
}

#[derive(Debug, Clone)]
pub struct OpenApiSettings {
    /// Where the running gateway serves its spec (None: not served).
    pub path: Option<String>,
    /// Where the running gateway serves the HTML docs page (None: not served).
    pub docs_path: Option<String>,
    pub title: String,
    pub version: String,
    pub description: Option<String>,
}

/// What answers a route.
#[derive(Debug, Clone)]
pub enum IntegrationConfig {
    /// A Lambda proxy integration: the function runs on `backend` if set,
    /// else on the function's pinned backend, else on the stage's backend.
    Function {
        function: String,
        backend: Option<String>,
    },
    /// An HTTP proxy to an `http` backend.
    Http { backend: String },
    /// A static response.
    Mock(RawMock),
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Position in the file, for stable ids and messages.
    pub index: usize,
    /// `GET`, `POST`, ... or `ANY`.
    pub method: String,
    pub template: RouteTemplate,
    pub integration: IntegrationConfig,
    pub payload_version: PayloadVersion,
    pub timeout: Option<Duration>,
    pub auth: Option<String>,
    pub scopes: Vec<String>,
    pub api_key: bool,
    pub throttle: Option<ThrottleConfig>,
    pub binary_media_types: Vec<String>,
    /// Response cache (`cache = {...}`).
    pub cache: Option<RouteCache>,
    /// Response templates and content negotiation (`response = {...}`).
    pub response: Option<RouteResponse>,
    /// Request validation (`request = {...}`).
    pub request: Option<RouteRequest>,
    /// Non-proxy integration (`request_template`, `responses`, `content_handling`).
    pub mapping: Option<Mapping>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub operation_id: Option<String>,
    /// JSON Schema of the successful response body, documented in OpenAPI.
    pub response_schema: Option<PathBuf>,
    /// More documented responses (`method_responses`), by status.
    pub method_responses: Vec<crate::openapi::MethodResponse>,
}

impl RouteConfig {
    /// API Gateway's route key: `GET /items/{id}`, or `$default`.
    pub fn route_key(&self) -> String {
        if self.template.is_default() {
            "$default".to_string()
        } else {
            format!("{} {}", self.method, self.template.as_str())
        }
    }
}
