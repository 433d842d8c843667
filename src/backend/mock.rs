//! `mock` integration: a static response from the route's config, like API
//! Gateway's MOCK integration. Nothing is invoked.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};

use crate::config::raw::RawMock;
use crate::error::GatewayError;

/// A mock response, validated once at start-up.
#[derive(Debug, Clone)]
pub struct MockResponse {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: bytes::Bytes,
}

impl MockResponse {
    pub fn new(raw: &RawMock) -> Result<Self, String> {
        let status = StatusCode::from_u16(raw.status)
            .map_err(|_| format!("mock status {} is not an HTTP status", raw.status))?;
        let mut headers = Vec::new();
        for (k, v) in &raw.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("mock header name `{k}` is not valid"))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| format!("mock header `{k}` has a value that is not valid"))?;
            headers.push((name, value));
        }
        Ok(Self {
            status,
            headers,
            body: bytes::Bytes::from(raw.body.clone()),
        })
    }

    pub fn respond(&self) -> Result<Response<Body>, GatewayError> {
        let mut res = Response::new(Body::from(self.body.clone()));
        *res.status_mut() = self.status;
        for (k, v) in &self.headers {
            res.headers_mut().append(k.clone(), v.clone());
        }
        Ok(res)
    }
}
