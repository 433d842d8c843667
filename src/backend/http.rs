//! `http` integration: forwards the request to an upstream over a pooled
//! hyper client (API Gateway's HTTP proxy integration). Hop-by-hop headers
//! are stripped both ways and `X-Forwarded-*` added. A connect failure is a
//! 502, an upstream that does not answer in time a 504.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::GatewayError;

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// One upstream, resolved for the serving stage.
#[derive(Clone)]
pub struct HttpUpstream {
    name: String,
    base: Uri,
    timeout: Duration,
    headers: Vec<(HeaderName, HeaderValue)>,
    client: Client<HttpConnector, Body>,
}

/// What the forwarder needs to know about the request beyond its parts.
pub struct ForwardInfo<'a> {
    /// The path the upstream receives (already decided by the route).
    pub path: &'a str,
    pub query: &'a str,
    pub source_ip: IpAddr,
    pub request_id: &'a str,
}

impl HttpUpstream {
    pub fn new(
        name: &str,
        url: &str,
        timeout: Duration,
        headers: &BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let base: Uri = url
            .parse()
            .map_err(|_| format!("backend `{name}`: `{url}` is not a URL"))?;
        if base.scheme_str() != Some("http") {
            return Err(format!(
                "backend `{name}`: only http:// upstreams are supported (got `{url}`)"
            ));
        }
        let mut hs = Vec::new();
        for (k, v) in headers {
            hs.push((
                HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| format!("backend `{name}`: bad header name `{k}`"))?,
                HeaderValue::from_str(v)
                    .map_err(|_| format!("backend `{name}`: bad value for header `{k}`"))?,
            ));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout.min(Duration::from_secs(10))));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Ok(Self {
            name: name.to_string(),
            base,
            timeout,
            headers: hs,
            client,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The upstream URI for a request path: the base URL's path joined with it.
    pub fn target(&self, path: &str, query: &str) -> Result<Uri, GatewayError> {
        let base_path = self.base.path().trim_end_matches('/');
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let mut pq = format!("{base_path}{path}");
        if let Some(bq) = self.base.query() {
            pq.push('?');
            pq.push_str(bq);
            if !query.is_empty() {
                pq.push('&');
                pq.push_str(query);
            }
        } else if !query.is_empty() {
            pq.push('?');
            pq.push_str(query);
        }
        let authority = self
            .base
            .authority()
            .ok_or_else(|| GatewayError::Internal("upstream has no authority".into()))?;
        Uri::builder()
            .scheme("http")
            .authority(authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| GatewayError::BadRequest(format!("bad upstream path: {e}")))
    }

    pub async fn forward(
        &self,
        req: Request<Body>,
        info: ForwardInfo<'_>,
        timeout: Duration,
    ) -> Result<Response<Body>, GatewayError> {
        let (mut parts, body) = req.into_parts();
        parts.uri = self.target(info.path, info.query)?;
        parts.version = http::Version::HTTP_11;
        let original_host = parts.headers.get(header::HOST).cloned();
        strip_hop_by_hop(&mut parts.headers);
        add_forwarded(&mut parts.headers, &info, original_host.as_ref());
        if let Some(auth) = self.base.authority()
            && let Ok(v) = HeaderValue::from_str(auth.as_str())
        {
            parts.headers.insert(header::HOST, v);
        }
        for (k, v) in &self.headers {
            parts.headers.insert(k.clone(), v.clone());
        }
        let upstream = Request::from_parts(parts, body);
        let res = match tokio::time::timeout(timeout, self.client.request(upstream)).await {
            Err(_) => return Err(GatewayError::IntegrationTimeout),
            Ok(Err(e)) => {
                tracing::warn!(backend = %self.name, error = %e, "upstream request failed");
                return Err(GatewayError::Integration(format!(
                    "upstream `{}` failed: {e}",
                    self.name
                )));
            }
            Ok(Ok(res)) => res,
        };
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, Body::new(body)))
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
}

fn add_forwarded(headers: &mut HeaderMap, info: &ForwardInfo<'_>, host: Option<&HeaderValue>) {
    let ip = info.source_ip.to_string();
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(h) = host {
        headers.insert("x-forwarded-host", h.clone());
    }
    if let Ok(v) = HeaderValue::from_str(info.request_id) {
        headers.insert("x-amzn-requestid", v);
    }
}
