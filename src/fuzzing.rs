//! Fuzzing entry points. Not a pipeline phase: each function takes arbitrary
//! bytes, drives one input-facing part of the gateway with them, and must
//! never panic. The `cargo fuzz` targets under `fuzz/` call these, and so
//! does the bounded random-input test in `tests/it/fuzz.rs` that CI runs on
//! stable, so both exercise exactly the same code. A crash found by either
//! becomes a regression case in that test.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use bytes::Bytes;

use crate::event::EventInput;
use crate::routing::{RouteMatch, RouteTable, RouteTemplate};

/// Splits fuzz input into lossy UTF-8 lines.
fn lines(data: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(data)
        .split('\n')
        .map(str::to_string)
        .collect()
}

/// `routes.toml` parsing and validation: any text gives a config or
/// positioned errors, never a panic. Relative files resolve in a folder that
/// does not exist, so nothing on disk is read.
pub fn routes_toml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/nonexistent/lambdagate-fuzz/routes.toml");
    match crate::config::parse(path, &text) {
        Ok(config) => {
            // A valid config also has a valid route table.
            let mut table = RouteTable::new();
            for (i, r) in config.routes.iter().enumerate() {
                let _ = table.insert(&r.method, &r.template, i);
            }
        }
        Err(errors) => {
            let _ = errors.to_string();
        }
    }
}

/// Path matching: every line but the last is `METHOD template`; the last is
/// `METHOD path`. Matching and the path policy must not panic, and a match
/// names a route that exists.
pub fn path_matching(data: &[u8]) {
    let mut lines = lines(data);
    let request = lines.pop().unwrap_or_default();
    let mut table = RouteTable::new();
    let mut count = 0;
    for l in &lines {
        let (method, template) = l.split_once(' ').unwrap_or(("ANY", l.as_str()));
        if let Ok(t) = RouteTemplate::parse(template)
            && table.insert(method, &t, count).is_ok()
        {
            count += 1;
        }
    }
    let (method, path) = request.split_once(' ').unwrap_or(("GET", request.as_str()));
    let _ = crate::limits::check_path(path);
    if let RouteMatch::Found { route, .. } = table.find(method, path) {
        assert!(route < count, "matched a route that was never inserted");
    }
}

/// Event building: line 1 is `METHOD path?query`, then `name: value`
/// headers until an empty line, then the body. Both payload versions must
/// serialise.
pub fn event_building(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut head_lines = head.split('\n');
    let request_line = head_lines.next().unwrap_or_default();
    let (method, target) = request_line
        .split_once(' ')
        .unwrap_or(("GET", request_line));
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = HeaderMap::new();
    for l in head_lines {
        if let Some((k, v)) = l.split_once(':')
            && let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.trim().as_bytes()),
                HeaderValue::from_str(v.trim()),
            )
        {
            headers.append(k, v);
        }
    }
    let body = Bytes::from(body.as_bytes().to_vec());
    let params: Vec<(String, String)> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, s)| (format!("p{i}"), s.to_string()))
        .collect();
    let variables = BTreeMap::from([("alias".to_string(), "fuzz".to_string())]);
    let binary = vec![
        "application/octet-stream".to_string(),
        "image/*".to_string(),
    ];
    let input = EventInput {
        method: &method,
        headers: &headers,
        raw_path: path,
        path,
        raw_query: query,
        body: &body,
        route_key: "ANY /{proxy+}",
        resource: "/{proxy+}",
        path_params: &params,
        stage: "fuzz",
        stage_variables: &variables,
        request_id: "fuzz-request",
        received_at: SystemTime::UNIX_EPOCH,
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        protocol: "HTTP/1.1",
        api_id: "fuzz",
        account_id: "123456789012",
        binary_media_types: &binary,
        auth: None,
        // Both flavors' path handling, chosen by the input.
        decode_path: path.len() % 2 == 0,
    };
    for event in [
        crate::event::v1::to_event(&input),
        crate::event::v2::to_event(&input),
    ] {
        let json = serde_json::to_vec(&event);
        assert!(json.is_ok(), "an event did not serialise");
    }
}

/// Proxy-response parsing: any function output becomes a response or
/// API Gateway's 502, in both payload versions.
pub fn proxy_response(data: &[u8]) {
    for result in [
        crate::event::v1::from_response(data),
        crate::event::v2::from_response(data),
    ] {
        if let Err(e) = result {
            assert_eq!(
                e.status(),
                axum::http::StatusCode::BAD_GATEWAY,
                "a bad function response must be a 502, got {e:?}"
            );
        }
    }
}

/// An upstream's HTTP/1.1 response as the `http` integration reads it: the
/// head parsed (any framing it declares), then the rest decoded as a
/// chunked body; errors are reported, never a panic.
pub fn upstream_response(data: &[u8]) {
    crate::http1::client::fuzz_response(data);
}

/// A client's HTTP/1.1 requests as the listener reads them: heads parsed
/// one after another (pipelined), with the bodies they frame, under a tiny
/// and a normal head-size limit; errors are refusals, never a panic.
pub fn client_request(data: &[u8]) {
    crate::http1::fuzz_request(data);
}

/// Template rendering: line 1 is a template, the rest a JSON context (or a
/// plain string). Compiling and rendering report errors, never panic.
pub fn template_rendering(data: &[u8]) {
    use crate::transform::template::TemplateSetBuilder;
    let text = String::from_utf8_lossy(data);
    let (template, context) = text.split_once('\n').unwrap_or((&text, ""));
    let source = format!("template = {template:?}\n");
    let mut d =
        crate::config::error::Diagnostics::new(Path::new("/nonexistent/fuzz.toml"), &source);
    let mut builder = TemplateSetBuilder::new(Path::new("/nonexistent/lambdagate-fuzz"));
    let spanned = toml::Spanned::new(11..source.len().saturating_sub(1), template.to_string());
    let Some(name) = builder.add_inline(&spanned, "fuzz.toml", &mut d) else {
        return;
    };
    let set = builder.finish(&mut d);
    let context: serde_json::Value = serde_json::from_str(context)
        .unwrap_or_else(|_| serde_json::Value::String(context.to_string()));
    let _ = set.render(
        &name,
        minijinja::Value::from(minijinja::value::Serde(&context)),
    );
}
