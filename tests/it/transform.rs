//! Transforms: JSON → HTML templates with content negotiation, binary
//! bodies byte-exact through Lambda proxy events, and non-proxy mapping
//! templates (API Gateway's calc example) with error-pattern responses.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::fake_lambda::aws_env;
use crate::common::{
    FakeResult, client, fake_function, serve_router, spawn_binary, start_with, write_config,
};
use lambdagate::GatewayOptions;

const BASE: &str = r#"<!doctype html>
<html><head><title>{% block title %}{% endblock %}</title></head>
<body>{% block content %}{% endblock %}</body></html>
"#;
const ITEM: &str = r#"{% extends "base.html" %}
{% block title %}{{ body.name }}{% endblock %}
{% block content %}<h1>{{ body.name }}</h1>{% include "partials/price.html" %}<p>{{ request.params.id }} in {{ stage }}</p>{% endblock %}
"#;
const PRICE: &str = "<p class=\"price\">{{ body.price }} EUR</p>";
const CSV: &str = "name,price\n{{ body.name }},{{ body.price }}\n";
const BROKEN_AT_RENDER: &str = "{{ body.name | no_such_filter }}";

async fn item_upstream() -> crate::common::TestServer {
    serve_router(
        Router::new()
            .route(
                "/items/{id}",
                get(|| async {
                    (
                        [("content-type", "application/json")],
                        r#"{"name":"Lamp <b>&</b>","price":12.5}"#,
                    )
                }),
            )
            .route(
                "/missing/{id}",
                get(|| async {
                    (
                        axum::http::StatusCode::NOT_FOUND,
                        r#"{"message":"no such item"}"#,
                    )
                }),
            ),
    )
    .await
}

fn template_routes(upstream: &str) -> String {
    format!(
        r#"
[backends.up]
kind = "http"
url = "{upstream}"

[[routes]]
method = "GET"
path = "/items/{{id}}"
backend = "up"
response = {{ template = "templates/item.html", templates = {{ "text/csv" = "templates/item.csv" }}, json = true, default = "application/json" }}

[[routes]]
method = "GET"
path = "/missing/{{id}}"
backend = "up"
response = {{ template = "templates/item.html" }}

[[routes]]
method = "GET"
path = "/broken/{{id}}"
backend = "up"
response = {{ template = "templates/broken.txt" }}
"#
    )
}

fn template_files() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("templates/base.html", BASE.as_bytes()),
        ("templates/item.html", ITEM.as_bytes()),
        ("templates/partials/price.html", PRICE.as_bytes()),
        ("templates/item.csv", CSV.as_bytes()),
        ("templates/broken.txt", BROKEN_AT_RENDER.as_bytes()),
    ]
}

#[tokio::test]
async fn json_renders_as_html_csv_or_json_by_accept() {
    let up = item_upstream().await;
    // `/broken/{id}` has no upstream route: point it at /items via the same upstream.
    let gw = start_with(
        &template_routes(&up.url("")),
        &template_files(),
        GatewayOptions::default(),
    )
    .await;
    let c = client();

    // A browser's Accept gets the page, escaped, with inheritance and includes.
    let r = c
        .get(gw.url("/items/42"))
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(r.headers()["vary"], "Accept");
    let html = r.text().await.unwrap();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(
        html.contains("<title>Lamp &lt;b&gt;&amp;&lt;&#x2f;b&gt;</title>"),
        "{html}"
    );
    assert!(
        html.contains("<h1>Lamp &lt;b&gt;&amp;&lt;&#x2f;b&gt;</h1>"),
        "{html}"
    );
    assert!(html.contains("<p class=\"price\">12.5 EUR</p>"), "{html}");
    assert!(html.contains("<p>42 in dev</p>"), "{html}");

    // An SDK (`*/*` or no Accept) gets the default: the function's JSON.
    for accept in [Some("*/*"), None] {
        let mut req = c.get(gw.url("/items/42"));
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(
            r.text().await.unwrap(),
            r#"{"name":"Lamp <b>&</b>","price":12.5}"#
        );
    }

    let r = c
        .get(gw.url("/items/42"))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(r.text().await.unwrap(), "name,price\nLamp <b>&</b>,12.5\n");

    // Errors are passed through, not rendered.
    let r = c
        .get(gw.url("/missing/1"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), r#"{"message":"no such item"}"#);
}

#[tokio::test]
async fn render_errors_are_502_and_syntax_errors_fail_the_load() {
    let up = serve_router(Router::new().route("/broken/{id}", get(|| async { r#"{"name":"x"}"# })))
        .await;
    let gw = start_with(
        &template_routes(&up.url("")),
        &template_files(),
        GatewayOptions::default(),
    )
    .await;
    let r = client().get(gw.url("/broken/1")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"message":"Internal server error"}"#
    );

    // A syntax error, in a file included by the referenced one, names file:line.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates/partials")).unwrap();
    std::fs::write(
        dir.path().join("templates/page.html"),
        "{% include \"partials/x.html\" %}",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("templates/partials/x.html"),
        "ok\n{% if %}\n",
    )
    .unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(
        &path,
        r#"
[[routes]]
method = "GET"
path = "/p"
mock = { status = 200, body = "{}" }
response = { template = "templates/page.html" }

[[routes]]
method = "GET"
path = "/q"
mock = { status = 200, body = "{}" }
response = { template = "templates/nope.html" }
"#,
    )
    .unwrap();
    let err = lambdagate::config::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("templates/partials/x.html:2:1: template syntax error"),
        "{err}"
    );
    assert!(err.contains("routes.toml:12:25: template file"), "{err}");
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[tokio::test]
async fn png_and_gzip_round_trip_byte_exact_through_a_function() {
    // The function stores what it receives (decoded) and sends it back.
    // (content type, isBase64Encoded, decoded body) of each invocation.
    type Received = Arc<Mutex<Vec<(String, bool, Vec<u8>)>>>;
    let received: Received = Arc::default();
    let seen = received.clone();
    let lambda = fake_function(move |_name, event: Value| {
        let b64 = event["isBase64Encoded"].as_bool().unwrap_or(false);
        let body = event["body"].as_str().unwrap_or_default();
        let bytes = if b64 {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap()
        } else {
            body.as_bytes().to_vec()
        };
        let ct = event["headers"]["content-type"]
            .as_str()
            .unwrap_or("application/octet-stream")
            .to_string();
        seen.lock().unwrap().push((ct.clone(), b64, bytes.clone()));
        FakeResult::Ok(json!({
            "statusCode": 200,
            "headers": { "content-type": ct },
            "body": base64::engine::general_purpose::STANDARD.encode(&bytes),
            "isBase64Encoded": true,
        }))
    })
    .await;
    let routes = format!(
        r#"
[gateway]
binary_media_types = ["image/*"]

[backends.aws]
kind = "lambda"
endpoint_url = "{}"

[functions.files]
name = "files"

[[routes]]
method = "POST"
path = "/v1/files"
function = "files"
payload_version = "1.0"
binary_media_types = ["application/gzip"]

[[routes]]
method = "POST"
path = "/v2/files"
function = "files"
payload_version = "2.0"
"#,
        lambda.url()
    );
    let (dir, path) = write_config(&routes, &[]);
    let gw = spawn_binary(&path, &[], &aws_env(dir.path())).await;
    let png: &[u8] = include_bytes!("fixtures/gradient.png");
    let gz: &[u8] = include_bytes!("fixtures/hello.txt.gz");
    let c = client();
    for (route, ct, file) in [
        ("/v1/files", "image/png", png),
        ("/v1/files", "application/gzip", gz),
        ("/v2/files", "image/png", png),
        ("/v2/files", "application/gzip", gz),
    ] {
        let r = c
            .post(gw.url(route))
            .header("content-type", ct)
            .body(file.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{route} {ct}");
        assert_eq!(r.headers()["content-type"], ct);
        assert_eq!(
            r.headers()["content-length"],
            file.len().to_string().as_str()
        );
        let back = r.bytes().await.unwrap();
        assert_eq!(sha(&back), sha(file), "{route} {ct}: download differs");
        let (got_ct, b64, bytes) = received.lock().unwrap().pop().unwrap();
        assert_eq!(got_ct, ct);
        assert!(
            b64,
            "{route} {ct}: a binary body reaches the function as base64"
        );
        assert_eq!(sha(&bytes), sha(file), "{route} {ct}: upload differs");
    }
}

/// API Gateway's developer-guide Calc function: `{a, b, op}` → `{a, b, op, c}`,
/// failing with "Invalid operator" for anything else.
fn calc(_name: &str, input: Value) -> FakeResult {
    let num = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    let (Some(a), Some(b)) = (num(&input["a"]), num(&input["b"])) else {
        return FakeResult::Error(
            json!({"errorMessage": "Invalid input: a and b must be numbers", "errorType": "Error"}),
        );
    };
    let op = input["op"].as_str().unwrap_or_default();
    let c = match op {
        "add" | "+" => a + b,
        "sub" | "-" => a - b,
        "mul" | "*" => a * b,
        "div" | "/" => a / b,
        other => {
            return FakeResult::Error(
                json!({"errorMessage": format!("Invalid operator: {other}"), "errorType": "Error"}),
            );
        }
    };
    FakeResult::Ok(json!({"a": a, "b": b, "op": op, "c": c}))
}

#[tokio::test]
async fn mapping_templates_convert_the_calc_example() {
    let lambda = fake_function(calc).await;
    let routes = format!(
        r#"
[backends.aws]
kind = "lambda"
endpoint_url = "{}"

[functions.calc]
name = "Calc"

# GET /calc?operand1=..&operand2=..&operator=..  (the fixture's first method)
[[routes]]
method = "GET"
path = "/calc"
function = "calc"
request_template = '''
{{
    "a":  "{{{{ input.params('operand1') }}}}",
    "b":  "{{{{ input.params('operand2') }}}}",
    "op": "{{{{ input.params('operator') }}}}"
}}'''

[[routes.responses]]
status = 200
headers = {{ operator = "{{{{ input.path('$.op') }}}}", operand_1 = "{{{{ input.path('$.a') }}}}", operand_2 = "{{{{ input.path('$.b') }}}}" }}
template = '''
{{% set res = input.path('$') %}}
{{
  "result": "{{{{ res.a }}}}, {{{{ res.b }}}}, {{{{ res.op }}}} => {{{{ res.c }}}}",
  "c" : "{{{{ res.c }}}}"
}}'''

[[routes.responses]]
pattern = "Invalid .*"
status = 400
template = '''{{"message": "{{{{ util.escapeJavaScript(input.path('$.errorMessage')) }}}}", "requestId": "{{{{ context.requestId }}}}"}}'''

# GET /calc/{{operand1}}/{{operand2}}/{{operator}}  (the fixture's third method)
[[routes]]
method = "GET"
path = "/calc/{{operand1}}/{{operand2}}/{{operator}}"
function = "calc"
content_handling = "CONVERT_TO_TEXT"
request_template = '''
{{
   "a": "{{{{ input.params('operand1') }}}}",
   "b": "{{{{ input.params('operand2') }}}}",
   "op": {{% if input.params('operator') == '%2F' %}}"/"{{% else %}}"{{{{ input.params('operator') }}}}"{{% endif %}}
}}'''

[[routes.responses]]
status = 200
template = '''
{{% set inputRoot = input.path('$') %}}
{{
  "input" : {{ "a" : {{{{ inputRoot.a }}}}, "b" : {{{{ inputRoot.b }}}}, "op" : "{{{{ inputRoot.op }}}}" }},
  "output" : {{ "c" : {{{{ inputRoot.c }}}} }}
}}'''
"#,
        lambda.url()
    );
    let (dir, path) = write_config(&routes, &[]);
    let gw = spawn_binary(&path, &[], &aws_env(dir.path())).await;
    let c = client();

    let r = c
        .get(gw.url("/calc?operand1=3&operand2=4&operator=mul"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["operator"], "mul");
    assert_eq!(r.headers()["operand_1"], "3.0");
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"result": "3.0, 4.0, mul => 12.0", "c": "12.0"})
    );

    // The function's error message selects the 400 response.
    let r = c
        .get(gw.url("/calc?operand1=3&operand2=4&operator=pow"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["message"], "Invalid operator: pow");
    assert!(!body["requestId"].as_str().unwrap().is_empty());

    let r = c.get(gw.url("/calc/1/2/add")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"input": {"a": 1.0, "b": 2.0, "op": "add"}, "output": {"c": 3.0}})
    );

    // `%2F` is `/`, as in the original template.
    let r = c.get(gw.url("/calc/6/3/%2F")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["output"]["c"], 2.0);
}

#[tokio::test]
async fn unmatched_function_errors_are_502_and_content_handling_converts() {
    let lambda = fake_function(|name, input: Value| match name {
        // Receives the upload as base64 text (CONVERT_TO_TEXT) and returns it.
        "store" => FakeResult::Ok(json!(input["data"])),
        _ => FakeResult::Error(json!({"errorMessage": "boom", "errorType": "Error"})),
    })
    .await;
    let routes = format!(
        r#"
[gateway]
binary_media_types = ["image/png"]

[backends.aws]
kind = "lambda"
endpoint_url = "{}"

[functions.store]
name = "store"

[functions.fail]
name = "fail"

[[routes]]
method = "PUT"
path = "/images"
function = "store"
content_handling = "CONVERT_TO_TEXT"
request_template = '{{"data": "{{{{ input.body }}}}"}}'

[[routes.responses]]
status = 200
content_type = "image/png"
content_handling = "CONVERT_TO_BINARY"

[[routes]]
method = "GET"
path = "/fail"
function = "fail"

[[routes.responses]]
pattern = "Invalid.*"
status = 400
"#,
        lambda.url()
    );
    let (dir, path) = write_config(&routes, &[]);
    let gw = spawn_binary(&path, &[], &aws_env(dir.path())).await;
    let png: &[u8] = include_bytes!("fixtures/gradient.png");
    let r = client()
        .put(gw.url("/images"))
        .header("content-type", "image/png")
        .body(png.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(sha(&r.bytes().await.unwrap()), sha(png));

    let r = client().get(gw.url("/fail")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"message":"Internal server error"}"#
    );
}

#[tokio::test]
async fn the_readme_page_renders_as_shown() {
    // The example API's templates, with the item the README creates.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = std::fs::read(root.join("templates/base.html")).unwrap();
    let item = std::fs::read(root.join("templates/item.html")).unwrap();
    let routes = r#"
[[routes]]
method = "GET"
path = "/items/{id}"
mock = { status = 200, body = '{"color":"white","id":"1","name":"Desk lamp <LED>","price":39.5}', headers = { content-type = "application/json" } }
response = { template = "templates/item.html", json = true, default = "application/json" }
cache = { ttl = "60s", key = ["path.id"] }
"#;
    let gw = start_with(
        routes,
        &[
            ("templates/base.html", base.as_slice()),
            ("templates/item.html", item.as_slice()),
        ],
        GatewayOptions::default(),
    )
    .await;
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .find("## One function, JSON for SDKs and a page for browsers")
        .expect("README has the section");
    let start = readme[section..]
        .find("<!doctype html>")
        .expect("README shows the page")
        + section;
    let end = readme[start..].find("</html>").unwrap() + start + "</html>\n".len();
    let page = &readme[start..end];
    let c = client();
    for expect_cache in ["Miss", "Hit"] {
        let r = c
            .get(gw.url("/items/1"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-cache"], expect_cache);
        assert_eq!(r.text().await.unwrap(), page);
    }
    let r = c.get(gw.url("/items/1")).send().await.unwrap();
    assert_eq!(
        r.headers()["x-cache"],
        "Miss",
        "the JSON rendering is its own entry"
    );
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"color":"white","id":"1","name":"Desk lamp <LED>","price":39.5}"#
    );
}

#[tokio::test]
async fn a_render_error_is_logged_by_the_binary() {
    let routes = r#"
[[routes]]
method = "GET"
path = "/broken"
mock = { status = 200, body = '{"name":"x"}' }
response = { template = "templates/broken.txt" }
"#;
    let (_dir, path) = write_config(
        routes,
        &[("templates/broken.txt", BROKEN_AT_RENDER.as_bytes())],
    );
    let gw = spawn_binary(&path, &[], &Default::default()).await;
    let r = client().get(gw.url("/broken")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let logs = gw.stderr_lines.lock().unwrap().join("\n");
        if logs.contains("response template failed") {
            assert!(logs.contains("templates/broken.txt"), "{logs}");
            assert!(logs.contains("no_such_filter"), "{logs}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line:\n{logs}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn integration_responses_render_the_template_accept_picks() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let lambda = fake_function(move |_name, _input: Value| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        FakeResult::Ok(json!({"name": "Desk lamp <LED>", "call": n}))
    })
    .await;
    let routes = format!(
        r#"
[backends.aws]
kind = "lambda"
endpoint_url = "{}"

[functions.item]
name = "item"

[[routes]]
method = "GET"
path = "/item"
function = "item"
request_template = '{{}}'

[[routes.responses]]
status = 200
[routes.responses.templates]
"application/json" = '{{"name": "{{{{ input.path("$.name") }}}}", "call": {{{{ input.path("$.call") }}}}}}'
"application/xml" = '<item call="{{{{ input.path("$.call") }}}}">{{{{ input.path("$.name") | e }}}}</item>'
"text/plain" = '{{{{ input.path("$.name") }}}} (call {{{{ input.path("$.call") }}}})'

# The same offers with XML as the default, cached per rendering.
[[routes]]
method = "GET"
path = "/cached"
function = "item"
request_template = '{{}}'
cache = {{ ttl = "60s" }}

[[routes.responses]]
status = 200
default = "application/xml"
[routes.responses.templates]
"application/json" = '{{"call": {{{{ input.path("$.call") }}}}}}'
"application/xml" = '<call>{{{{ input.path("$.call") }}}}</call>'
"#,
        lambda.url()
    );
    let (dir, path) = write_config(&routes, &[]);
    let gw = spawn_binary(&path, &[], &aws_env(dir.path())).await;
    let c = client();
    let get = |path: &'static str, accept: Option<&'static str>| {
        let mut r = c.get(gw.url(path));
        if let Some(a) = accept {
            r = r.header("accept", a);
        }
        r.send()
    };

    // No Accept, `*/*`, or nothing offered: `application/json`, the default.
    for accept in [None, Some("*/*"), Some("image/png")] {
        let r = get("/item", accept).await.unwrap();
        assert_eq!(r.status(), 200, "{accept:?}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(body["name"], "Desk lamp <LED>", "{accept:?}");
    }
    // Only the media type counts; the highest `q` wins.
    let r = get("/item", Some("application/xml; charset=utf-8"))
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/xml");
    let text = r.text().await.unwrap();
    assert!(
        text.starts_with("<item call=\"") && text.ends_with("\">Desk lamp &lt;LED&gt;</item>"),
        "{text}"
    );
    let r = get("/item", Some("application/json;q=0.5, text/plain"))
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert!(
        r.text()
            .await
            .unwrap()
            .starts_with("Desk lamp <LED> (call ")
    );

    // Each rendering is its own cache entry; `default` picks XML.
    let before = calls.load(std::sync::atomic::Ordering::SeqCst);
    let r = get("/cached", None).await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Miss");
    assert_eq!(r.headers()["content-type"], "application/xml");
    let xml = r.text().await.unwrap();
    assert_eq!(xml, format!("<call>{}</call>", before + 1));
    let r = get("/cached", Some("application/json")).await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Miss");
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(
        r.text().await.unwrap(),
        format!(r#"{{"call": {}}}"#, before + 2)
    );
    let r = get("/cached", Some("application/xml")).await.unwrap();
    assert_eq!(r.headers()["x-cache"], "Hit");
    assert_eq!(r.text().await.unwrap(), xml);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), before + 2);
}

#[tokio::test]
async fn integration_response_template_errors_point_at_the_value() {
    let path = std::path::Path::new("routes.toml");
    let src = r#"
[backends.aws]
kind = "lambda"

[functions.item]
name = "item"

[[routes]]
method = "GET"
path = "/item"
function = "item"

[[routes.responses]]
status = 200
default = "text/csv"
templates = { "application/json" = '{}', "text/html" = '{{ oops' }
"#;
    let err = lambdagate::config::parse(path, src)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "routes.toml:15:11: `default` `text/csv` is not one of this response's media types: application/json, text/html"
        ),
        "{err}"
    );
    assert!(
        err.contains("routes.toml:16:"),
        "syntax error located: {err}"
    );
}

#[tokio::test]
async fn templates_see_the_request_response_headers_and_stage_variables() {
    const VIEW: &str = "{{ request.method }} {{ request.path }} {{ request.resource }}\n\
params={% for k, v in request.params | items %}{{ k }}:{{ v }};{% endfor %} n={{ request.params | length }}\n\
q={{ request.query.b }} last={{ request.query.a }} missing=[{{ request.query.nope }}]\n\
h={{ request.headers['x-test'] }} {{ 'x-test' in request.headers }} {{ 'x-nope' in request.headers }}\n\
ct={{ headers['content-type'] }} status={{ status }}\n\
stage={{ stage }} alias={{ stage_variables.alias }} keys={{ stage_variables | list | join(',') }}\n\
body={{ body.n + 1 }} {{ body.list | join('-') }}\n";
    let gw = start_with(
        r#"
[stages.dev]
variables = { alias = "live", region = "eu" }

[[routes]]
method = "GET"
path = "/view/{id}/{kind}"
mock = { status = 201, body = '{"n": 41, "list": [1, 2]}', headers = { content-type = "application/json" } }
response = { template = "view.txt" }
"#,
        &[("view.txt", VIEW.as_bytes())],
        GatewayOptions::default(),
    )
    .await;
    let r = client()
        .get(gw.url("/view/7/x?a=1&b=two&a=3"))
        .header("x-test", "yes")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        r.text().await.unwrap(),
        "GET /view/7/x /view/{id}/{kind}\n\
params=id:7;kind:x; n=2\n\
q=two last=3 missing=[]\n\
h=yes True False\n\
ct=application/json status=201\n\
stage=dev alias=live keys=alias,region\n\
body=42 1-2\n"
    );
}
