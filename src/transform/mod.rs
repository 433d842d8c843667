//! Response mapping phase (around the integration, inside the cache): for a
//! route with `response = {...}`, picks the rendering the client's `Accept`
//! asks for and renders the function's JSON through its template. Only
//! successful answers are rendered; a render error is a 502 with a log line.
//! Non-proxy mapping (`request_template`, `responses`) lives in [`mapping`],
//! called by the integration; `contentHandling` conversions in [`binary`].

pub mod binary;
pub mod mapping;
pub mod template;

use std::sync::Arc;

use crate::pipeline::Next;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Response, header};
use axum::response::IntoResponse;
use minijinja::Value;
use serde_json::json;

use crate::app::GatewayState;
use crate::config::RouteResponse;
use crate::error::{ErrorDetail, GatewayError};
use crate::event::parse_query;
use crate::routing::RouteContext;

/// One `Accept` entry: media range and quality.
fn parse_accept(headers: &HeaderMap) -> Vec<(String, f32)> {
    let mut out: Vec<(String, f32)> = Vec::new();
    for v in headers.get_all(header::ACCEPT).iter() {
        let Ok(v) = v.to_str() else { continue };
        for item in v.split(',') {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            if range.is_empty() {
                continue;
            }
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            out.push((range, q));
        }
    }
    // Highest quality first; among equals, more specific ranges first.
    let specificity = |r: &str| match r {
        "*/*" => 0,
        r if r.ends_with("/*") => 1,
        _ => 2,
    };
    out.sort_by(|a, b| {
        b.1.partial_cmp(&a.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(specificity(&b.0).cmp(&specificity(&a.0)))
    });
    out
}

/// The offer (index) the request's `Accept` picks; the route's default when
/// `Accept` is absent, `*/*`, or names none of the offers.
pub fn negotiate(resp: &RouteResponse, headers: &HeaderMap) -> usize {
    for (range, q) in parse_accept(headers) {
        if q <= 0.0 {
            continue;
        }
        if range == "*/*" {
            return resp.default;
        }
        if let Some(ty) = range.strip_suffix("/*") {
            let matches = |m: &str| m.split('/').next() == Some(ty);
            if matches(&resp.offers[resp.default].media_type) {
                return resp.default;
            }
            if let Some(i) = resp.offers.iter().position(|o| matches(&o.media_type)) {
                return i;
            }
            continue;
        }
        if let Some(i) = resp.offers.iter().position(|o| o.media_type == range) {
            return i;
        }
    }
    resp.default
}

/// What a response template sees about the request.
fn request_view(ctx: &RouteContext, req: &Request) -> serde_json::Value {
    let query: serde_json::Map<String, serde_json::Value> =
        parse_query(req.uri().query().unwrap_or_default())
            .into_iter()
            .map(|(k, vs)| (k, json!(vs.last())))
            .collect();
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                json!(String::from_utf8_lossy(v.as_bytes())),
            )
        })
        .collect();
    let params: serde_json::Map<String, serde_json::Value> = ctx
        .params
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "method": req.method().as_str(),
        "path": ctx.path,
        "resource": ctx.route.resource(),
        "params": params,
        "query": query,
        "headers": headers,
    })
}

/// Response mapping phase.
pub async fn render(
    State(state): State<Arc<GatewayState>>,
    req: Request,
    next: Next,
) -> Response<Body> {
    let Some(ctx) = req.extensions().get::<RouteContext>().cloned() else {
        return next.run(req).await;
    };
    let Some(resp_cfg) = &ctx.route.config.response else {
        return next.run(req).await;
    };
    let chosen = negotiate(resp_cfg, req.headers());
    let offer = &resp_cfg.offers[chosen];
    let request = request_view(&ctx, &req);
    let mut res = next.run(req).await;
    if resp_cfg.offers.len() > 1 {
        res.headers_mut()
            .append(header::VARY, HeaderValue::from_static("Accept"));
    }
    let Some(template) = &offer.template else {
        return res;
    };
    // Gateway-made errors and failed calls pass through unrendered.
    if !res.status().is_success() || res.extensions().get::<ErrorDetail>().is_some() {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let limit = state
        .config
        .gateway
        .limits
        .max_function_payload
        .max(state.config.gateway.limits.max_body);
    let fail = |why: String| {
        tracing::error!(route = %ctx.route.route_key, template = %template, error = %why, "response template failed");
        let mut r = GatewayError::Integration(format!("response template `{template}`: {why}"))
            .into_response();
        r.extensions_mut().insert(ctx.clone());
        r
    };
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) => return fail(format!("response body could not be read: {e}")),
    };
    let body_value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
    });
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                json!(String::from_utf8_lossy(v.as_bytes())),
            )
        })
        .collect();
    let context = minijinja::context! {
        body => Value::from(minijinja::value::Serde(&body_value)),
        status => parts.status.as_u16(),
        headers => Value::from(minijinja::value::Serde(&headers)),
        request => Value::from(minijinja::value::Serde(&request)),
        stage => state.stage.name.clone(),
        stage_variables => Value::from(minijinja::value::Serde(&state.stage.variables)),
    };
    match state.config.templates.render(template, context) {
        Ok(text) => {
            let ct = if offer.media_type.starts_with("text/") || offer.media_type.ends_with("xml") {
                format!("{}; charset=utf-8", offer.media_type)
            } else {
                offer.media_type.clone()
            };
            if let Ok(v) = HeaderValue::from_str(&ct) {
                parts.headers.insert(header::CONTENT_TYPE, v);
            }
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(text))
        }
        Err(e) => fail(format!(
            "{} (line {})",
            template::describe(&e),
            e.line().unwrap_or(0)
        )),
    }
}
