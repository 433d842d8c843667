//! `x-amazon-apigateway-integration` → a route's function, HTTP backend or
//! mock.

use std::time::Duration;

use serde_json::Value;

use super::Importer;
use super::out::{OutBackend, OutMock, OutRoute};
use crate::routing::RouteTemplate;

/// Integration and authorizer fields the importer understands; anything
/// else is reported.
const KNOWN_INTEGRATION_KEYS: &[&str] = &[
    "type",
    "uri",
    "httpMethod",
    "payloadFormatVersion",
    "passthroughBehavior",
    "timeoutInMillis",
    "requestParameters",
    "requestTemplates",
    "responses",
    "connectionType",
];

impl Importer {
    /// Fills the route's integration; false when the route cannot be imported.
    pub(super) fn integration(&mut self, key: &str, route: &mut OutRoute, i: &Value) -> bool {
        let kind = i
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if let Some(o) = i.as_object() {
            for k in o.keys() {
                if !KNOWN_INTEGRATION_KEYS.contains(&k.as_str()) {
                    self.warn(format!(
                        "route `{key}`: integration `{k}` is not supported and was not imported"
                    ));
                }
            }
        }
        let uri = i.get("uri").and_then(|u| u.as_str()).unwrap_or_default();
        let default_payload = if self.rest { "1.0" } else { "2.0" };
        match kind.as_str() {
            "aws_proxy" | "aws" => {
                let Some(function) = self.function_from_uri(uri, &format!("route `{key}`")) else {
                    self.warn(format!(
                        "route `{key}`: integration has no function URI; not imported"
                    ));
                    return false;
                };
                route.function = Some(function);
                if kind == "aws" {
                    let mut parts = Vec::new();
                    for k in ["requestTemplates", "responses", "requestParameters"] {
                        if i.get(k).is_some() {
                            parts.push(k);
                        }
                    }
                    self.warn(format!(
                        "route `{key}`: non-proxy Lambda integration (type aws) imported as a proxy integration; its {} are not converted, so the function now receives the proxy event",
                        if parts.is_empty() {
                            "settings".to_string()
                        } else {
                            parts.join(", ")
                        }
                    ));
                } else {
                    for k in ["requestTemplates", "responses", "requestParameters"] {
                        if i.get(k).is_some() {
                            self.warn(format!(
                                "route `{key}`: integration `{k}` is not supported on a proxy integration and was not imported"
                            ));
                        }
                    }
                }
                if let Some(p) = i.get("payloadFormatVersion").and_then(|p| p.as_str())
                    && p != default_payload
                {
                    if self.rest {
                        self.warn(format!(
                            "route `{key}`: payload {p} does not exist in REST APIs; 1.0 is used"
                        ));
                    } else {
                        route.payload_version = Some(p.to_string());
                    }
                }
            }
            "http_proxy" | "http" => {
                let Some((url, fixed)) = upstream_base(uri, &route.path) else {
                    self.warn(format!(
                        "route `{key}`: HTTP integration has no URI; not imported"
                    ));
                    return false;
                };
                if !fixed {
                    self.warn(format!(
                        "route `{key}`: upstream URI `{uri}` does not end with the route's path; the gateway forwards the request path after it"
                    ));
                }
                let n = self.upstreams.len();
                let name = self
                    .upstreams
                    .entry(url.clone())
                    .or_insert_with(|| {
                        if n == 0 {
                            "upstream".to_string()
                        } else {
                            format!("upstream{}", n + 1)
                        }
                    })
                    .clone();
                self.out.backends.insert(
                    name.clone(),
                    OutBackend {
                        kind: "http".into(),
                        region: None,
                        url: Some(url),
                    },
                );
                route.backend = Some(name);
                if kind == "http" {
                    self.warn(format!(
                        "route `{key}`: non-proxy HTTP integration imported as an HTTP proxy; its mappings are not converted"
                    ));
                }
                if let Some(params) = i.get("requestParameters").and_then(|p| p.as_object()) {
                    for (k, v) in params {
                        let plain = k
                            .strip_prefix("integration.request.path.")
                            .is_some_and(|p| {
                                v.as_str() == Some(&format!("method.request.path.{p}"))
                            });
                        if !plain {
                            self.warn(format!(
                                "route `{key}`: request parameter mapping `{k}` is not supported and was not imported"
                            ));
                        }
                    }
                }
            }
            "mock" => {
                let default = i.pointer("/responses/default");
                let status = default
                    .and_then(|d| d.get("statusCode"))
                    .and_then(|s| {
                        s.as_str()
                            .and_then(|s| s.parse::<u16>().ok())
                            .or_else(|| s.as_u64().map(|n| n as u16))
                    })
                    .or_else(|| {
                        i.pointer("/requestTemplates/application~1json")
                            .and_then(|t| t.as_str())
                            .and_then(|t| serde_json::from_str::<Value>(t).ok())
                            .and_then(|v| v.get("statusCode").and_then(|s| s.as_u64()))
                            .map(|n| n as u16)
                    })
                    .unwrap_or(200);
                let mut mock = OutMock {
                    status,
                    ..Default::default()
                };
                if let Some(params) = default
                    .and_then(|d| d.get("responseParameters"))
                    .and_then(|p| p.as_object())
                {
                    for (k, v) in params {
                        let literal = v
                            .as_str()
                            .and_then(|s| s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')));
                        match (k.strip_prefix("method.response.header."), literal) {
                            (Some(h), Some(val)) => {
                                mock.headers.insert(h.to_string(), val.replace("\\'", "'"));
                            }
                            _ => self.warn(format!(
                                "route `{key}`: mock response parameter `{k}` is not a literal header; not imported"
                            )),
                        }
                    }
                }
                if let Some(templates) = default
                    .and_then(|d| d.get("responseTemplates"))
                    .and_then(|t| t.as_object())
                    && let Some((ct, body)) = templates.iter().next()
                {
                    let body = body.as_str().unwrap_or_default().to_string();
                    if body.contains("$input") || body.contains("$context") || body.contains("#set")
                    {
                        self.warn(format!(
                            "route `{key}`: the mock's response template uses VTL; it is served as literal text"
                        ));
                    }
                    if templates.len() > 1 {
                        self.warn(format!(
                            "route `{key}`: only the `{ct}` mock response template is imported"
                        ));
                    }
                    if ct != "application/json"
                        && !mock
                            .headers
                            .keys()
                            .any(|h| h.eq_ignore_ascii_case("content-type"))
                    {
                        mock.headers.insert("content-type".into(), ct.clone());
                    }
                    mock.body = body;
                }
                if let Some(responses) = i.get("responses").and_then(|r| r.as_object())
                    && responses.len() > 1
                {
                    self.warn(format!(
                        "route `{key}`: only the default mock response is imported"
                    ));
                }
                route.mock = Some(mock);
            }
            other => {
                self.warn(format!(
                    "route `{key}`: integration type `{other}` is not supported; not imported"
                ));
                return false;
            }
        }
        if let Some(ms) = i.get("timeoutInMillis").and_then(|t| t.as_u64()) {
            let default_ms = if self.rest { 29_000 } else { 30_000 };
            if ms != default_ms {
                route.timeout = Some(format_duration(Duration::from_millis(ms)));
            }
        }
        if let Some(p) = i.get("passthroughBehavior").and_then(|p| p.as_str())
            && !p.eq_ignore_ascii_case("when_no_match")
            && kind != "aws"
        {
            self.warn(format!(
                "route `{key}`: passthroughBehavior `{p}` is not supported"
            ));
        }
        true
    }
}

/// The backend URL of an HTTP integration: its URI less the route's path
/// (or, on a greedy route, less `/{proxy}`). The bool says whether the
/// URI ended as expected.
fn upstream_base(uri: &str, route_path: &str) -> Option<(String, bool)> {
    if uri.is_empty() {
        return None;
    }
    let template = RouteTemplate::parse(route_path).ok();
    let greedy = template
        .as_ref()
        .and_then(|t| t.greedy_param().map(|p| format!("/{{{p}}}")));
    let suffixes: Vec<String> = match greedy {
        Some(g) => vec![g, route_path.to_string()],
        None => vec![route_path.to_string()],
    };
    for s in suffixes {
        if let Some(base) = uri.strip_suffix(&s) {
            return Some((base.to_string(), true));
        }
    }
    Some((uri.to_string(), false))
}

fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_url_drops_the_route_path() {
        assert_eq!(
            upstream_base("http://h:3000/{proxy}", "/legacy/{proxy+}"),
            Some(("http://h:3000".to_string(), true))
        );
        assert_eq!(
            upstream_base("http://h/items/{id}", "/items/{id}"),
            Some(("http://h".to_string(), true))
        );
        assert_eq!(
            upstream_base("http://h/other", "/items"),
            Some(("http://h/other".to_string(), false))
        );
    }
}
