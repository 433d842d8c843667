//! One route resolved for the serving stage: what route match hands every
//! later phase in the request's [`RouteContext`](super::RouteContext).

use std::time::Duration;

use crate::auth::RouteAuth;
use crate::config::RouteConfig;
use crate::integration::RouteIntegration;

/// One route, resolved for the serving stage.
pub struct RouteRuntime {
    pub config: RouteConfig,
    /// `GET /items/{id}` or `$default`.
    pub route_key: String,
    pub integration: RouteIntegration,
    /// The route's authorizer and required scopes, if it has `auth`.
    pub auth: Option<RouteAuth>,
    pub timeout: Duration,
    /// The gateway's binary media types plus the route's own.
    pub binary_media_types: Vec<String>,
    /// The route's request metrics, recorded by the access-log phase.
    pub metrics: crate::metrics::RouteMetrics,
}

impl RouteRuntime {
    /// The `resource` of a payload 1.0 event.
    pub fn resource(&self) -> &str {
        self.config.template.as_str()
    }
}
