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

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, Response, header};
use axum::response::IntoResponse;
use minijinja::Value;
use minijinja::value::{Enumerator, Object};

use crate::config::{ResponseOffer, RouteResponse};
use crate::error::{ErrorDetail, GatewayError};
use crate::event::parse_query;
use crate::pipeline::phase::{Next, Phase, PhaseFuture};
use crate::routing::{RouteContext, RouteRuntime};
use template::TemplateSet;

/// The `Accept` entries (media range, quality), best first.
fn parse_accept<'a>(values: impl Iterator<Item = &'a str>) -> Vec<(String, f32)> {
    let mut out: Vec<(String, f32)> = Vec::new();
    for v in values {
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
    negotiate_by_headers(&resp.offers, resp.default, headers)
}

/// [`negotiate_offers`] over the request's `Accept` headers.
pub fn negotiate_by_headers(
    offers: &[ResponseOffer],
    default: usize,
    headers: &HeaderMap,
) -> usize {
    negotiate_offers(
        offers,
        default,
        headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

/// The offer (index) `Accept` header values pick among `offers`; `default`
/// when there are none, `*/*`, or they name none of the offers. Only the
/// media type counts (parameters other than `q` are ignored), as in API
/// Gateway's mapping template selection.
pub fn negotiate_offers<'a>(
    offers: &[ResponseOffer],
    default: usize,
    accept: impl Iterator<Item = &'a str>,
) -> usize {
    if offers.len() < 2 {
        return default;
    }
    for (range, q) in parse_accept(accept) {
        if q <= 0.0 {
            continue;
        }
        if range == "*/*" {
            return default;
        }
        if let Some(ty) = range.strip_suffix("/*") {
            let matches = |m: &str| m.split('/').next() == Some(ty);
            if offers.get(default).is_some_and(|o| matches(&o.media_type)) {
                return default;
            }
            if let Some(i) = offers.iter().position(|o| matches(&o.media_type)) {
                return i;
            }
            continue;
        }
        if let Some(i) = offers.iter().position(|o| o.media_type == range) {
            return i;
        }
    }
    default
}

/// A header map as a template sees it: lower-case names, the last value
/// of each (lossy UTF-8). Built only if the template reads it.
#[derive(Debug)]
struct HeadersView {
    headers: HeaderMap,
    map: OnceLock<Value>,
}

impl HeadersView {
    fn value(headers: HeaderMap) -> Value {
        Value::from_object(Self {
            headers,
            map: OnceLock::new(),
        })
    }

    fn map(&self) -> &Value {
        self.map.get_or_init(|| {
            let map: BTreeMap<String, String> = self
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            Value::from(map)
        })
    }
}

impl Object for HeadersView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.map().get_item(key).ok().filter(|v| !v.is_undefined())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.map().try_iter() {
            Ok(keys) => Enumerator::Values(keys.collect()),
            Err(_) => Enumerator::Empty,
        }
    }
}

/// What a response template sees about the request (`request.method`,
/// `.path`, `.resource`, `.params`, `.query`, `.headers`); each part is
/// built only when the template reads it.
struct RequestView {
    method: Method,
    path: String,
    route: Arc<RouteRuntime>,
    params: Vec<(String, String)>,
    query: Option<String>,
    headers: Value,
}

impl RequestView {
    fn value(ctx: &RouteContext, req: &Request) -> Value {
        Value::from_object(Self {
            method: req.method().clone(),
            path: ctx.path.clone(),
            route: ctx.route.clone(),
            params: ctx.params.clone(),
            query: req.uri().query().map(str::to_string),
            headers: HeadersView::value(req.headers().clone()),
        })
    }
}

impl std::fmt::Debug for RequestView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Object for RequestView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "method" => Value::from(self.method.as_str()),
            "path" => Value::from(self.path.as_str()),
            "resource" => Value::from(self.route.resource()),
            "params" => Value::from(
                self.params
                    .iter()
                    .cloned()
                    .collect::<BTreeMap<String, String>>(),
            ),
            // The last value of each query parameter.
            "query" => Value::from(
                parse_query(self.query.as_deref().unwrap_or_default())
                    .into_iter()
                    .filter_map(|(k, mut vs)| vs.pop().map(|v| (k, v)))
                    .collect::<BTreeMap<String, String>>(),
            ),
            "headers" => self.headers.clone(),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["method", "path", "resource", "params", "query", "headers"])
    }
}

/// `stage_variables`, read from the serving stage without copying them.
struct StageVariables(Arc<BTreeMap<String, String>>);

impl std::fmt::Debug for StageVariables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl Object for StageVariables {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.get(key.as_str()?).map(Value::from)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.keys().map(|k| Value::from(k.as_str())).collect())
    }
}

/// Response mapping phase for one route: its `response = {...}` and
/// what its templates see of the gateway.
pub struct Render {
    pub response: RouteResponse,
    pub templates: Arc<TemplateSet>,
    /// The serving stage's name and variables.
    pub stage: String,
    pub stage_variables: Arc<BTreeMap<String, String>>,
    /// The most of a function's answer read for rendering.
    pub max_body: usize,
}

impl Phase for Render {
    fn call(self: Arc<Self>, req: Request, next: Next) -> PhaseFuture {
        Box::pin(self.render(req, next))
    }
}

impl Render {
    async fn render(self: Arc<Self>, req: Request, next: Next) -> Response<Body> {
        let Some(ctx) = req.extensions().get::<RouteContext>().cloned() else {
            return next.run(req).await;
        };
        let resp_cfg = &self.response;
        let chosen = negotiate(resp_cfg, req.headers());
        let offer = &resp_cfg.offers[chosen];
        let request = offer
            .template
            .is_some()
            .then(|| RequestView::value(&ctx, &req));
        let mut res = next.run(req).await;
        if resp_cfg.offers.len() > 1 {
            res.headers_mut()
                .append(header::VARY, HeaderValue::from_static("Accept"));
        }
        let (Some(template), Some(request)) = (&offer.template, request) else {
            return res;
        };
        // Gateway-made errors and failed calls pass through unrendered.
        if !res.status().is_success() || res.extensions().get::<ErrorDetail>().is_some() {
            return res;
        }
        let (mut parts, body) = res.into_parts();
        let limit = self.max_body;
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
        // JSON straight into template values; anything else is a string.
        let body_value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(&bytes).into_owned()));
        let context = minijinja::context! {
            body => body_value,
            status => parts.status.as_u16(),
            headers => HeadersView::value(parts.headers.clone()),
            request => request,
            stage => self.stage.as_str(),
            stage_variables => Value::from_object(StageVariables(self.stage_variables.clone())),
        };
        match self.templates.render(template, context) {
            Ok(text) => {
                let ct =
                    if offer.media_type.starts_with("text/") || offer.media_type.ends_with("xml") {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{config_in, function, routed, text};
    use axum::http::StatusCode;

    /// A route rendering the function's JSON as HTML (or passing it
    /// through as JSON when `Accept` asks), as a phase.
    fn phase(dir: &std::path::Path) -> (Arc<Render>, Arc<crate::config::Config>) {
        std::fs::write(
            dir.join("item.html"),
            "<p>{{ body.name }} {{ request.params.id }} {{ stage }} {{ stage_variables.alias }}</p>",
        )
        .unwrap();
        let config = config_in(
            dir,
            r#"
[stages.dev]
variables = { alias = "blue" }

[[routes]]
method = "GET"
path = "/items/{id}"
mock = { status = 200 }
response = { template = "item.html", json = true }
"#,
        );
        let phase = Arc::new(Render {
            response: config.routes[0].response.clone().unwrap(),
            templates: config.templates.clone(),
            stage: "dev".into(),
            stage_variables: Arc::new(config.stages["dev"].variables.clone()),
            max_body: 1024,
        });
        (phase, config)
    }

    fn get(config: &crate::config::Config, accept: &str) -> Request {
        routed(
            config,
            0,
            &[("id", "7")],
            Request::get("/items/7")
                .header("accept", accept)
                .body(Body::empty())
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn the_answer_is_rendered_as_accept_asks() {
        let dir = tempfile::tempdir().unwrap();
        let (phase, config) = phase(dir.path());
        let f = function(StatusCode::OK, r#"{"name":"widget"}"#);
        let res = phase
            .clone()
            .call(get(&config, "text/html"), f.next.clone())
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(res.headers()["vary"], "Accept");
        assert_eq!(text(res).await, "<p>widget 7 dev blue</p>");
        let res = phase
            .call(get(&config, "application/json"), f.next.clone())
            .await;
        assert_eq!(text(res).await, r#"{"name":"widget"}"#);
    }

    #[tokio::test]
    async fn failed_answers_pass_through_unrendered() {
        let dir = tempfile::tempdir().unwrap();
        let (phase, config) = phase(dir.path());
        let f = function(
            StatusCode::BAD_GATEWAY,
            r#"{"message":"Internal server error"}"#,
        );
        let res = phase.call(get(&config, "text/html"), f.next.clone()).await;
        assert_eq!(res.status(), 502);
        assert_eq!(text(res).await, r#"{"message":"Internal server error"}"#);
    }
}
