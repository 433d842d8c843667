//! Integration phase (innermost): turns the request into what the route's
//! integration takes — a payload 1.0/2.0 event for a function, a forwarded
//! request for an `http` upstream, nothing for a `mock` — calls it, and maps
//! the answer back to HTTP. Function errors and malformed responses become
//! API Gateway's 502; deadlines become its 504.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;

use axum::http::Response;
use axum::response::IntoResponse;
use bytes::Bytes;

use crate::app::GatewayState;
use crate::auth::AuthContext;
use crate::backend::http::ForwardInfo;
use crate::backend::http::HttpUpstream;
use crate::backend::mock::MockResponse;
use crate::backend::{FunctionBackend, InvokeRequest};
use crate::config::{FunctionConfig, GatewaySettings, PayloadVersion, StageConfig};
use crate::error::GatewayError;
use crate::event::{self, EventInput};
use crate::limits::collect_body;
use crate::pipeline::phase::{PhaseFuture, answer};
use crate::routing::RouteContext;
use crate::telemetry::RequestInfo;

/// What answers one route in the serving stage.
pub enum RouteIntegration {
    /// Lambda proxy integration.
    Proxy {
        backend: Arc<dyn FunctionBackend>,
        backend_name: String,
        function: Arc<FunctionConfig>,
    },
    Http(Arc<HttpUpstream>),
    Mock(MockResponse),
}

/// The integration step: a mock answers at once, unboxed; the other
/// integrations run in one boxed future (nothing moved through a wrapper).
pub fn integrate(state: Arc<GatewayState>, mut req: Request) -> PhaseFuture {
    // Taken, not cloned: nothing after this reads it from the request, and
    // it moves on to the response for the phases outside.
    let Some(ctx) = req.extensions_mut().remove::<RouteContext>() else {
        return answer(
            GatewayError::Internal("integration reached without a route".into()).into_response(),
        );
    };
    // Integration time for the access log and the overhead/integration split.
    let record = req
        .extensions()
        .get::<RequestInfo>()
        .map(|i| i.record.clone());
    let started = std::time::Instant::now();
    if let RouteIntegration::Mock(m) = &ctx.route.integration {
        let result = m.respond();
        return answer(finish(result, ctx, record, started));
    }
    Box::pin(async move {
        let result = match &ctx.route.integration {
            RouteIntegration::Http(upstream) => forward(&ctx, upstream, req).await,
            RouteIntegration::Proxy {
                backend, function, ..
            } => invoke(&state, &ctx, backend.as_ref(), function, req).await,
            // Answered above, without a future.
            RouteIntegration::Mock(m) => m.respond(),
        };
        finish(result, ctx, record, started)
    })
}

/// The integration's answer as a response: its time noted, a failure
/// counted and rendered, the route handed back for the access log.
fn finish(
    result: Result<Response<Body>, GatewayError>,
    ctx: RouteContext,
    record: Option<Arc<crate::telemetry::AccessRecord>>,
    started: std::time::Instant,
) -> Response<Body> {
    if let Some(r) = &record {
        r.add_integration_time(started.elapsed());
    }
    let mut res = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(kind) = error_kind(&e) {
                crate::metrics::backend_error(integration_name(&ctx), kind);
            }
            if matches!(e, GatewayError::Integration(_)) {
                tracing::warn!(route = %ctx.route.route_key, error = %e, "integration failed");
            }
            e.into_response()
        }
    };
    // The route goes back to the access-log phase through the request's
    // record when there is one (no extension map for the response to build).
    match record {
        Some(r) => r.set_route(ctx.route),
        None => {
            res.extensions_mut().insert(ctx);
        }
    }
    res
}

/// The backend a route's integration talks to, for metrics labels.
fn integration_name(ctx: &RouteContext) -> &str {
    match &ctx.route.integration {
        RouteIntegration::Proxy { backend_name, .. } => backend_name,
        RouteIntegration::Http(_) => match &ctx.route.config.integration {
            crate::config::IntegrationConfig::Http { backend } => backend,
            _ => "http",
        },
        RouteIntegration::Mock(_) => "mock",
    }
}

/// The `kind` label of `lambdagate_backend_errors_total` for an integration
/// failure; `None` for refusals that are not backend failures.
fn error_kind(e: &GatewayError) -> Option<&'static str> {
    match e {
        GatewayError::Integration(_) => Some("failed"),
        GatewayError::IntegrationTimeout => Some("timeout"),
        GatewayError::TooManyRequests { .. } => Some("throttled"),
        GatewayError::Unavailable(_) => Some("unavailable"),
        GatewayError::Internal(_) => Some("internal"),
        _ => None,
    }
}

/// An `http` route: the request forwarded to its upstream.
async fn forward(
    ctx: &RouteContext,
    upstream: &HttpUpstream,
    req: Request,
) -> Result<Response<Body>, GatewayError> {
    let route = &ctx.route;
    let (parts, body) = req.into_parts();
    let info = parts
        .extensions
        .get::<RequestInfo>()
        .ok_or_else(|| GatewayError::Internal("no request info".into()))?;
    // A greedy route forwards only its remainder; others the whole path.
    let path = match route.config.template.greedy_param() {
        Some(_) => {
            let prefix_len = route.config.template.segments().len().saturating_sub(1);
            greedy_remainder(&ctx.path, prefix_len)
        }
        None => Cow::Borrowed(ctx.path.as_str()),
    };
    let timeout = route.timeout.min(upstream.timeout());
    let info = ForwardInfo {
        path: &path,
        source_ip: info.source_ip,
        request_id: &info.request_id,
    };
    upstream.forward(&parts, body, info, timeout).await
}

/// The path a greedy route forwards: `/` and what follows the route's
/// `prefix_len` literal or `{param}` segments, borrowed from the path.
fn greedy_remainder(path: &str, prefix_len: usize) -> Cow<'_, str> {
    match path
        .trim_start_matches('/')
        .splitn(prefix_len + 1, '/')
        .nth(prefix_len)
    {
        // The remainder as it stands in the path: its tail, after the `/`
        // that split it off (or after the leading slashes trimmed).
        Some(rest) => {
            let at = rest.as_ptr() as usize - path.as_ptr() as usize;
            match at.checked_sub(1) {
                Some(slash) if path.as_bytes()[slash] == b'/' => Cow::Borrowed(&path[slash..]),
                _ => Cow::Owned(format!("/{rest}")),
            }
        }
        None => Cow::Borrowed("/"),
    }
}

/// A function route: the event (or mapped input) invoked on its backend.
async fn invoke(
    state: &GatewayState,
    ctx: &RouteContext,
    backend: &dyn FunctionBackend,
    function: &Arc<FunctionConfig>,
    req: Request,
) -> Result<Response<Body>, GatewayError> {
    let route = &ctx.route;
    let (parts, body) = req.into_parts();
    let limits = state.config.gateway.limits;
    let body = collect_body(body, limits.max_body).await?;
    let info = parts
        .extensions
        .get::<RequestInfo>()
        .ok_or_else(|| GatewayError::Internal("no request info".into()))?;
    let auth = parts.extensions.get::<AuthContext>();
    if let Some(mapping) = &route.config.mapping {
        return call_mapped(state, ctx, &parts, body, info, auth, mapping).await;
    }
    let payload = build_event(state, ctx, &parts, &body, info, auth);
    if payload.len() > limits.max_function_payload {
        return Err(GatewayError::PayloadTooLarge);
    }
    let out = backend
        .invoke(InvokeRequest {
            function: function.clone(),
            payload,
            timeout: route.timeout,
            request_id: info.request_id.clone(),
            client_context: None,
            log_tail: false,
        })
        .await?;
    if let Some(kind) = &out.function_error {
        return Err(GatewayError::Integration(format!(
            "function `{}` failed ({kind}): {}",
            function.key,
            String::from_utf8_lossy(&out.payload[..out.payload.len().min(512)])
        )));
    }
    if out.payload.len() > limits.max_function_payload {
        return Err(GatewayError::Integration(format!(
            "function `{}` returned {} bytes, over the {} byte limit",
            function.key,
            out.payload.len(),
            limits.max_function_payload
        )));
    }
    match route.config.payload_version {
        PayloadVersion::V1 => event::v1::from_response(&out.payload),
        PayloadVersion::V2 => event::v2::from_response(&out.payload),
    }
}

/// A non-proxy (mapping template) call: the input comes from the route's
/// `request_template`, the answer from the integration response selected.
async fn call_mapped(
    state: &GatewayState,
    ctx: &RouteContext,
    parts: &axum::http::request::Parts,
    body: Bytes,
    info: &RequestInfo,
    auth: Option<&AuthContext>,
    mapping: &crate::config::Mapping,
) -> Result<Response<Body>, GatewayError> {
    let route = &ctx.route;
    let RouteIntegration::Proxy {
        backend, function, ..
    } = &route.integration
    else {
        return Err(GatewayError::Internal(
            "mapping on a non-function route".into(),
        ));
    };
    let limits = state.config.gateway.limits;
    // The request as a payload 1.0 event gives `context`, `stageVariables`
    // and the parameters exactly as a proxy function would see them.
    let content_type = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let input_body = crate::transform::binary::request_body(
        &body,
        content_type,
        &route.binary_media_types,
        mapping.content_handling,
    )
    .map_err(GatewayError::BadRequest)?;
    let event = build_event_value(
        &state.config.gateway,
        &state.stage,
        ctx,
        parts,
        &Bytes::new(),
        info,
        auth,
        PayloadVersion::V1,
    );
    let scope = crate::transform::mapping::MappingScope::from_v1_event(&event);
    let templates = &state.config.templates;
    let payload = scope.request_payload(mapping, templates, input_body)?;
    if payload.len() > limits.max_function_payload {
        return Err(GatewayError::PayloadTooLarge);
    }
    let out = backend
        .invoke(InvokeRequest {
            function: function.clone(),
            payload: Bytes::from(payload),
            timeout: route.timeout,
            request_id: info.request_id.clone(),
            client_context: None,
            log_tail: false,
        })
        .await?;
    if let Some(kind) = &out.function_error {
        tracing::info!(route = %route.route_key, function = %function.key, kind = %kind, "function error; selecting a response by its message");
    }
    scope.response(
        mapping,
        templates,
        &out.payload,
        out.function_error.as_deref(),
    )
}

/// Serialises the route's event for a request.
pub fn build_event(
    state: &GatewayState,
    ctx: &RouteContext,
    parts: &axum::http::request::Parts,
    body: &Bytes,
    info: &RequestInfo,
    auth: Option<&AuthContext>,
) -> Bytes {
    let value = build_event_value(
        &state.config.gateway,
        &state.stage,
        ctx,
        parts,
        body,
        info,
        auth,
        ctx.route.config.payload_version,
    );
    Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
}

/// The event of a request in one payload version, for the serving stage.
#[allow(clippy::too_many_arguments)]
pub fn build_event_value(
    g: &GatewaySettings,
    stage: &StageConfig,
    ctx: &RouteContext,
    parts: &axum::http::request::Parts,
    body: &Bytes,
    info: &RequestInfo,
    auth: Option<&AuthContext>,
    version: PayloadVersion,
) -> serde_json::Value {
    let route = &ctx.route;
    let protocol = match parts.version {
        axum::http::Version::HTTP_2 => "HTTP/2.0",
        axum::http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let input = EventInput {
        method: &parts.method,
        headers: &parts.headers,
        raw_path: parts.uri.path(),
        path: &ctx.path,
        raw_query: parts.uri.query().unwrap_or_default(),
        body,
        route_key: &route.route_key,
        resource: route.resource(),
        path_params: &ctx.params,
        stage: &stage.name,
        stage_variables: &stage.variables,
        request_id: &info.request_id,
        received_at: info.received_at,
        source_ip: info.source_ip,
        protocol,
        api_id: &g.api_id,
        account_id: &g.account_id,
        binary_media_types: &route.binary_media_types,
        auth,
        decode_path: g.flavor == crate::config::Flavor::Http,
    };
    match version {
        PayloadVersion::V1 => event::v1::to_event(&input),
        PayloadVersion::V2 => event::v2::to_event(&input),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn greedy_remainder_is_slash_and_the_rest_as_sent() {
        for path in [
            "/", "//", "/a", "/a/", "/a/b", "/a//b", "//a/b", "/a/b/c/", "/http/x", "/a%2Fb/c",
        ] {
            for prefix_len in 0..4 {
                let rest = path
                    .trim_start_matches('/')
                    .splitn(prefix_len + 1, '/')
                    .nth(prefix_len)
                    .unwrap_or_default();
                assert_eq!(
                    super::greedy_remainder(path, prefix_len),
                    format!("/{rest}"),
                    "{path} {prefix_len}"
                );
            }
        }
    }
}
