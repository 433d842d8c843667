//! The validated model of the data-shaping features — route `cache`,
//! `response`, `request`, non-proxy mapping (`request_template`,
//! `responses`, `content_handling`), `[cache]` and `[cors]`. The passes
//! that build it live in `config::check` (`cache`, `cors`, `shaping`,
//! `response`).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// API Gateway's cache TTL bounds.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(3600);

/// `[cache]`: the one response cache all routes share.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Bytes of all entries together.
    pub max_size: u64,
    /// Larger responses are served but not cached.
    pub max_entry_size: usize,
    /// Entries are shared between nodes in `[cluster]`'s Redis.
    pub shared: bool,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_size: 64 * 1024 * 1024,
            max_entry_size: 1024 * 1024,
            shared: false,
        }
    }
}

/// A route's `cache = {...}`.
#[derive(Debug, Clone)]
pub struct RouteCache {
    pub ttl: Duration,
    pub key: Vec<CacheKeyPart>,
    pub per_identity: bool,
    pub invalidation: Invalidation,
}

/// One request parameter that is part of the cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheKeyPart {
    Path(String),
    Query(String),
    /// Lower-case header name.
    Header(String),
    /// A SHA-256 digest of the request body.
    Body,
}

impl RouteCache {
    /// Does the key cover the request body?
    pub fn keys_body(&self) -> bool {
        self.key.contains(&CacheKeyPart::Body)
    }
}

/// Who may refresh an entry with `Cache-Control: max-age=0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// The header is ignored (the default).
    Nobody,
    /// Callers the route's authorizer or API key identified.
    Authorized,
    /// Any caller.
    Anyone,
}

/// A route's `response = {...}`: what the function's JSON may be rendered as.
#[derive(Debug, Clone)]
pub struct RouteResponse {
    /// In the order they were written; `Accept` picks one.
    pub offers: Vec<ResponseOffer>,
    /// Index into `offers` used when `Accept` is absent or names none.
    pub default: usize,
}

#[derive(Debug, Clone)]
pub struct ResponseOffer {
    /// `text/html`, `application/json`, ...
    pub media_type: String,
    /// Template name in the [`TemplateSet`]; `None` passes the function's body through.
    pub template: Option<String>,
}

/// A route's `request = {...}`: API Gateway's request validator.
#[derive(Debug, Clone, Default)]
pub struct RouteRequest {
    pub body_schema: Option<JsonSchema>,
    pub required_query: Vec<String>,
    /// Header names as written (matched case-insensitively).
    pub required_headers: Vec<String>,
}

/// A compiled JSON Schema and the file it came from.
#[derive(Clone)]
pub struct JsonSchema {
    pub path: PathBuf,
    pub validator: Arc<jsonschema::Validator>,
}

impl fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonSchema({})", self.path.display())
    }
}

/// API Gateway's `contentHandling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentHandling {
    /// Binary → base64 text.
    ConvertToText,
    /// Base64 text → binary.
    ConvertToBinary,
}

/// A non-proxy (mapping template) integration: set when a function route
/// has `request_template` or `responses`.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// Template name; `None` passes the request body through.
    pub request_template: Option<String>,
    pub content_handling: Option<ContentHandling>,
    pub responses: Vec<IntegrationResponse>,
}

/// One integration response: when it applies and what it sends.
#[derive(Debug, Clone)]
pub struct IntegrationResponse {
    /// Anchored regex over the function's error message; `None` is the
    /// default response, used for successful invocations.
    pub pattern: Option<regex::Regex>,
    pub status: u16,
    /// Header name → template name.
    pub headers: Vec<(String, String)>,
    /// Its renderings (API Gateway's `responseTemplates`), one per media
    /// type, the request's `Accept` picking one; at least one. A `None`
    /// template passes the function's output through.
    pub offers: Vec<ResponseOffer>,
    /// Index into `offers` used when `Accept` is absent or names none.
    pub default: usize,
    pub content_handling: Option<ContentHandling>,
}

/// `[cors]`, checked so tower-http's `CorsLayer` can never refuse it.
#[derive(Debug, Clone, Default)]
pub struct CorsConfig {
    /// `*` alone means any origin.
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: Option<Duration>,
}
