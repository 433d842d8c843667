//! Raw serde shapes of `routes.toml`: exactly what the file says, with spans
//! on every value that gets a semantic check. Unknown keys are refused here;
//! meaning is checked in `check`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type Str = Spanned<String>;
pub type Map<V> = BTreeMap<Spanned<String>, V>;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub gateway: RawGateway,
    #[serde(default)]
    pub stages: Map<RawStage>,
    #[serde(default)]
    pub backends: Map<RawBackend>,
    #[serde(default)]
    pub functions: Map<RawFunction>,
    #[serde(default)]
    pub auth: Map<RawAuth>,
    #[serde(default)]
    pub plans: Map<RawPlan>,
    pub store: Option<RawStore>,
    pub api_keys: Option<RawApiKeys>,
    pub cluster: Option<RawCluster>,
    pub admin: Option<RawAdmin>,
    pub invoke_api: Option<RawInvokeApi>,
    pub cors: Option<Spanned<RawCors>>,
    /// The response cache shared by every route with `cache = {...}`.
    pub cache: Option<RawCacheSettings>,
    pub openapi: Option<RawOpenApi>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    pub listen: Option<Str>,
    pub flavor: Option<Str>,
    pub stage: Option<Str>,
    pub binary_media_types: Option<Vec<Str>>,
    /// `requestContext.apiId` in events (default "local").
    pub api_id: Option<Str>,
    /// `requestContext.accountId` in events (default "123456789012").
    pub account_id: Option<Str>,
    /// Region used in ARNs (default "us-east-1").
    pub region: Option<Str>,
    /// Accept `/{stage}/...` invoke-URL style paths (default true).
    pub stage_prefix: Option<bool>,
    /// Default integration timeout (29s rest, 30s http).
    pub timeout: Option<Str>,
    pub throttle: Option<Spanned<RawThrottle>>,
    pub limits: Option<RawLimits>,
    /// Serve HTTPS with these PEM files (see `tls.rs`).
    pub tls: Option<Spanned<RawTls>>,
    /// How long shutdown waits for in-flight requests (default "30s").
    pub drain_timeout: Option<Str>,
    /// Peers (CIDRs) whose forwarding headers are believed (default none).
    pub trusted_proxies: Option<Vec<Str>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Str,
    pub key: Str,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Request line + headers, bytes (default 10240).
    pub max_header_bytes: Option<Spanned<toml::Value>>,
    /// Request payload (default "10MB").
    pub max_body: Option<Spanned<toml::Value>>,
    /// Payload into a function and out of it (default "6MB").
    pub max_function_payload: Option<Spanned<toml::Value>>,
    /// Time a client gets to send a request's headers (default "10s").
    pub header_read_timeout: Option<Str>,
    /// A connection with no request in flight this long is closed (default "60s").
    pub idle_timeout: Option<Str>,
    /// Time a request's whole body gets, from the end of its head (default "20s").
    pub body_timeout: Option<Str>,
    /// Client connections open at once; more are closed at once (default 10000).
    pub max_connections: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub backend: Option<Str>,
    #[serde(default)]
    pub variables: BTreeMap<String, Str>,
    pub throttle: Option<Spanned<RawThrottle>>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawThrottle {
    pub rate: Spanned<f64>,
    pub burst: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub kind: Str,
    // lambda
    pub region: Option<Str>,
    pub endpoint_url: Option<Str>,
    pub profile: Option<Str>,
    // http
    pub url: Option<Str>,
    pub timeout: Option<Str>,
    pub headers: Option<BTreeMap<String, Str>>,
    // local
    pub max_queue: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFunction {
    pub command: Option<Spanned<Vec<String>>>,
    /// Function name on the `lambda` backend (may hold `${stageVariables.X}`).
    pub name: Option<Str>,
    #[serde(default)]
    pub env: BTreeMap<String, Str>,
    pub timeout: Option<Str>,
    pub concurrency: Option<Spanned<i64>>,
    pub memory_size: Option<Spanned<i64>>,
    pub handler: Option<Str>,
    pub cwd: Option<Str>,
    pub runtime: Option<Str>,
    /// Pin this function to one backend whatever the stage says.
    pub backend: Option<Str>,
    /// Requests allowed to wait for a busy function before 429.
    pub queue: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub kind: Str,
    // jwt
    pub issuer: Option<Str>,
    pub audience: Option<Vec<Str>>,
    pub jwks_url: Option<Str>,
    pub algorithms: Option<Vec<Str>>,
    pub secret_env: Option<Str>,
    pub secret_file: Option<Str>,
    pub leeway: Option<Str>,
    /// Keep verified tokens until they expire (default true).
    pub token_cache: Option<bool>,
    // lambda authorizer
    pub function: Option<Str>,
    #[serde(rename = "type")]
    pub authorizer_type: Option<Str>,
    pub identity_sources: Option<Vec<Str>>,
    pub response: Option<Str>,
    pub payload_version: Option<Str>,
    pub ttl: Option<Str>,
    // api_key
    pub header: Option<Str>,
    // sigv4
    pub service: Option<Str>,
    pub credentials_file: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    pub throttle: Option<Spanned<RawThrottle>>,
    /// Per-route throttles within the plan, by route key (`"GET /items/{id}"`).
    pub route_throttles: Option<BTreeMap<Spanned<String>, Spanned<RawThrottle>>>,
    pub quota: Option<Spanned<RawQuota>>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawQuota {
    pub limit: Spanned<i64>,
    pub period: Str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub kind: Str,
    pub path: Option<Str>,
    pub url: Option<Str>,
    pub url_env: Option<Str>,
    /// Postgres schema holding lambdagate's tables (created if missing).
    pub schema: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKeys {
    /// `"header"` (default) or `"authorizer"` (a Lambda authorizer's `usageIdentifierKey`).
    pub source: Option<Str>,
    /// The request header carrying the key (default `x-api-key`).
    pub header: Option<Str>,
    /// How long a node trusts its cached copy of a key (default 5s).
    pub cache_ttl: Option<Str>,
    /// How often buffered usage counts are written to the store (default 1s).
    pub usage_flush_interval: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub redis_url: Option<Str>,
    pub fail_closed: Option<bool>,
    /// Prefix of every Redis key lambdagate writes (default "lambdagate").
    pub key_prefix: Option<Str>,
    /// Leased throttle cells: this much of the rate per Redis step, living
    /// this long (default 5ms; "0ms": one Redis step per request).
    pub lease: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<Str>,
    pub token_env: Option<Str>,
    pub token_file: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInvokeApi {
    pub listen: Option<Str>,
    pub auth: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    #[serde(default)]
    pub allow_origins: Vec<Str>,
    #[serde(default)]
    pub allow_methods: Vec<Str>,
    #[serde(default)]
    pub allow_headers: Vec<Str>,
    #[serde(default)]
    pub expose_headers: Vec<Str>,
    pub allow_credentials: Option<Spanned<bool>>,
    pub max_age: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCacheSettings {
    /// Bound on the bytes of all cached responses (default "64MB").
    pub max_size: Option<Spanned<toml::Value>>,
    /// Largest response that is cached (default "1MB").
    pub max_entry_size: Option<Spanned<toml::Value>>,
    /// Also share entries between nodes through `[cluster] redis_url`.
    pub shared: Option<Spanned<bool>>,
}

/// `cache = { ttl = "60s", key = ["path.id", "query.lang"] }` on a route
/// (`"body"` in `key`: a hash of the request body).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteCache {
    pub ttl: Option<Str>,
    pub key: Option<Vec<Str>>,
    /// One entry per API key / caller identity.
    pub per_identity: Option<bool>,
    /// Who may force a refresh with `Cache-Control: max-age=0`:
    /// "nobody" (default), "authorized" or "anyone".
    pub invalidation: Option<Str>,
}

/// `response = { template = "templates/item.html", content_type = "text/html" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteResponse {
    pub template: Option<Str>,
    pub content_type: Option<Str>,
    /// More renderings, chosen by `Accept`: media type → template file.
    pub templates: Option<BTreeMap<String, Str>>,
    /// Also offer the function's own JSON as `application/json`.
    pub json: Option<bool>,
    /// The media type served when `Accept` names none of the offers.
    pub default: Option<Str>,
}

/// `request = { body_schema = "schemas/item.json", required_query = ["lang"] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteRequest {
    pub body_schema: Option<Str>,
    pub required_query: Option<Vec<Str>>,
    pub required_headers: Option<Vec<Str>>,
}

/// One `[[routes.responses]]`: API Gateway's integration response.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIntegrationResponse {
    /// Regex over the function's error message; absent: the default response.
    pub pattern: Option<Str>,
    pub status: Spanned<i64>,
    pub headers: Option<BTreeMap<String, Str>>,
    pub template: Option<Str>,
    pub content_type: Option<Str>,
    /// More renderings, chosen by `Accept` (API Gateway's
    /// `responseTemplates`): media type → inline template.
    pub templates: Option<BTreeMap<String, Str>>,
    /// The media type rendered when `Accept` names none of the templates.
    pub default: Option<Str>,
    pub content_handling: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOpenApi {
    /// Where the running gateway serves its spec ("" turns it off).
    pub path: Option<Str>,
    /// Where it serves the HTML docs page ("" turns it off).
    pub docs_path: Option<Str>,
    pub title: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub method: Str,
    pub path: Str,
    pub function: Option<Str>,
    pub backend: Option<Str>,
    pub mock: Option<Spanned<RawMock>>,
    pub payload_version: Option<Str>,
    pub timeout: Option<Str>,
    pub auth: Option<Str>,
    pub scopes: Option<Vec<Str>>,
    pub api_key: Option<bool>,
    pub throttle: Option<Spanned<RawThrottle>>,
    pub cache: Option<Spanned<RawRouteCache>>,
    pub response: Option<Spanned<RawRouteResponse>>,
    pub request: Option<Spanned<RawRouteRequest>>,
    /// Non-proxy integration: the function's input, as a template.
    pub request_template: Option<Str>,
    /// Non-proxy integration: `CONVERT_TO_TEXT` | `CONVERT_TO_BINARY` for the request body.
    pub content_handling: Option<Str>,
    /// Non-proxy integration responses.
    pub responses: Option<Vec<Spanned<RawIntegrationResponse>>>,
    pub binary_media_types: Option<Vec<Str>>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub operation_id: Option<String>,
    /// JSON Schema file of the successful response body (OpenAPI only).
    pub response_schema: Option<Str>,
    /// More documented responses (OpenAPI only): statuses, schemas, types.
    pub method_responses: Option<Vec<Spanned<RawMethodResponse>>>,
}

/// One `method_responses` entry: a response the route documents.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMethodResponse {
    pub status: Spanned<i64>,
    pub schema: Option<Str>,
    pub content_type: Option<Str>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawMock {
    #[serde(default = "default_mock_status")]
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_mock_status() -> u16 {
    200
}
