//! OpenAPI: the document generated from routes.toml, the spec and docs page
//! the running gateway serves, the `openapi` and `import` commands, and the
//! proofs with real tools (openapi-spec-validator, schemathesis,
//! openapi-python-client) from `.venv/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{GatewayProcess, binary, client, spawn_binary, start_with};

const ITEM_SCHEMA: &str = r#"{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "required": ["name"],
  "properties": {
    "name": {"type": "string", "minLength": 1},
    "price": {"type": "number"}
  },
  "additionalProperties": false
}"#;

const ROUTES: &str = r#"
[gateway]
flavor = "http"

[openapi]
title = "Items"
version = "2.1.0"
description = "An example API"

[stages.dev]
backend = "aws"
[stages.prod]
backend = "aws"

[backends.aws]
kind = "lambda"
[backends.legacy]
kind = "http"
url = "http://127.0.0.1:3000"

[functions.hello]
name = "hello-fn"

[auth.users]
kind = "jwt"
issuer = "https://issuer.example"
audience = ["api"]
jwks_url = "https://issuer.example/jwks.json"

[auth.iam]
kind = "sigv4"

[[routes]]
method = "GET"
path = "/items/{id}"
function = "hello"
auth = "users"
scopes = ["items:read"]
api_key = true
summary = "Read one item"
description = "Returns the item."
tags = ["items"]
operation_id = "getItem"
response_schema = "schemas/item.json"
cache = { ttl = "60s", key = ["path.id", "query.lang"] }

[[routes]]
method = "POST"
path = "/items"
function = "hello"
auth = "iam"
request = { body_schema = "schemas/item.json", required_query = ["lang"], required_headers = ["X-Trace"] }

[[routes]]
method = "GET"
path = "/ping"
mock = { status = 200, body = "pong", headers = { content-type = "text/plain" } }

[[routes]]
method = "ANY"
path = "/legacy/{proxy+}"
backend = "legacy"
"#;

fn write_config(dir: &Path, routes: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("schemas")).unwrap();
    std::fs::write(dir.join("schemas/item.json"), ITEM_SCHEMA).unwrap();
    let p = dir.join("routes.toml");
    std::fs::write(&p, routes).unwrap();
    p
}

fn generate(routes: &str, aws: bool) -> (Value, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let config = lambdagate::config::load(&write_config(dir.path(), routes))
        .unwrap_or_else(|e| panic!("config: {e}"));
    let g = lambdagate::openapi::generate(
        &config,
        &lambdagate::openapi::GenerateOptions { stage: None, aws },
    )
    .unwrap();
    (
        lambdagate::openapi::generate::canonical(&g.document),
        g.warnings,
    )
}

#[test]
fn document_describes_every_route() {
    let (doc, _) = generate(ROUTES, false);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Items");
    assert_eq!(doc["info"]["version"], "2.1.0");
    let servers: Vec<&str> = doc["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        servers,
        ["http://127.0.0.1:8080/dev", "http://127.0.0.1:8080/prod"]
    );

    let get = &doc["paths"]["/items/{id}"]["get"];
    assert_eq!(get["operationId"], "getItem");
    assert_eq!(get["summary"], "Read one item");
    assert_eq!(get["description"], "Returns the item.");
    assert_eq!(get["tags"][0], "items");
    let params = get["parameters"].as_array().unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "id" && p["in"] == "path" && p["required"] == true)
    );
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "lang" && p["in"] == "query" && p["required"] == false)
    );
    assert_eq!(
        get["security"][0]["users"],
        serde_json::json!(["items:read"])
    );
    assert_eq!(get["security"][0]["api_key"], serde_json::json!([]));
    assert_eq!(
        get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/item"
    );
    for code in ["401", "403", "413", "429", "502", "504"] {
        assert!(
            get["responses"][code]["$ref"]
                .as_str()
                .is_some_and(|r| r.starts_with("#/components/responses/")),
            "GET /items/{{id}} lacks {code}"
        );
    }
    assert!(get["responses"]["400"].is_null(), "no validation, no 400");

    let post = &doc["paths"]["/items"]["post"];
    assert_eq!(
        post["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/item"
    );
    assert_eq!(post["requestBody"]["required"], true);
    let params = post["parameters"].as_array().unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "lang" && p["in"] == "query" && p["required"] == true)
    );
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "X-Trace" && p["in"] == "header" && p["required"] == true)
    );
    assert_eq!(
        post["responses"]["400"]["$ref"],
        "#/components/responses/BadRequest"
    );
    assert_eq!(post["security"][0]["iam"], serde_json::json!([]));

    // The user's JSON Schema became a component; `$schema` is dropped.
    let item = &doc["components"]["schemas"]["item"];
    assert_eq!(item["required"], serde_json::json!(["name"]));
    assert_eq!(item["properties"]["name"]["minLength"], 1);
    assert_eq!(item["additionalProperties"], false);
    assert!(item["$schema"].is_null());
    let err = &doc["components"]["schemas"]["GatewayError"];
    assert_eq!(err["required"], serde_json::json!(["message"]));

    // Mock: its status, content type and example.
    let ping = &doc["paths"]["/ping"]["get"];
    assert_eq!(
        ping["responses"]["200"]["content"]["text/plain"]["example"],
        "pong"
    );
    assert!(ping["responses"]["502"].is_null(), "a mock never fails");

    // `{proxy+}` is a path parameter `proxy`; ANY is every method.
    let legacy = &doc["paths"]["/legacy/{proxy}"];
    for m in ["get", "post", "put", "patch", "delete"] {
        assert_eq!(legacy[m]["parameters"][0]["name"], "proxy", "{m}");
    }

    // Security schemes: bearer JWT, API key header, SigV4.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["users"]["type"], "http");
    assert_eq!(schemes["users"]["scheme"], "bearer");
    assert_eq!(schemes["users"]["bearerFormat"], "JWT");
    assert_eq!(schemes["api_key"]["type"], "apiKey");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "x-api-key");
    assert_eq!(schemes["iam"]["x-amazon-apigateway-authtype"], "awsSigv4");

    // Nothing AWS-specific without --aws.
    let text = doc.to_string();
    assert!(!text.contains("x-amazon-apigateway-integration"));
}

#[test]
fn aws_document_carries_integrations_and_authorizers() {
    let routes = format!(
        "{}\n{}",
        ROUTES.replace(
            "flavor = \"http\"",
            "flavor = \"http\"\nbinary_media_types = [\"image/png\"]"
        ),
        r#"
[auth.partners]
kind = "lambda"
function = "hello"
type = "request"
identity_sources = ["$request.header.X-Partner"]
response = "simple"
ttl = "60s"

[[routes]]
method = "GET"
path = "/partners"
function = "hello"
auth = "partners"
timeout = "10s"
"#
    );
    let (doc, warnings) = generate(&routes, true);
    let get = &doc["paths"]["/items/{id}"]["get"];
    let i = &get["x-amazon-apigateway-integration"];
    assert_eq!(i["type"], "aws_proxy");
    assert_eq!(i["httpMethod"], "POST");
    assert_eq!(
        i["uri"],
        "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:hello-fn/invocations"
    );
    assert_eq!(i["payloadFormatVersion"], "2.0");
    assert_eq!(
        doc["paths"]["/partners"]["get"]["x-amazon-apigateway-integration"]["timeoutInMillis"],
        10000
    );
    let post = &doc["paths"]["/items"]["post"];
    assert_eq!(post["x-amazon-apigateway-request-validator"], "all");
    assert_eq!(
        doc["x-amazon-apigateway-request-validators"]["all"]["validateRequestBody"],
        true
    );
    let legacy = &doc["paths"]["/legacy/{proxy+}"]["x-amazon-apigateway-any-method"];
    assert_eq!(
        legacy["x-amazon-apigateway-integration"]["type"],
        "http_proxy"
    );
    assert_eq!(
        legacy["x-amazon-apigateway-integration"]["uri"],
        "http://127.0.0.1:3000/{proxy}"
    );
    let mock = &doc["paths"]["/ping"]["get"]["x-amazon-apigateway-integration"];
    assert_eq!(mock["type"], "mock");
    assert_eq!(
        mock["responses"]["default"]["responseTemplates"]["text/plain"],
        "pong"
    );
    assert!(warnings.iter().any(|w| w.contains("no mock integration")));
    assert_eq!(doc["x-amazon-apigateway-api-key-source"], "HEADER");
    assert_eq!(
        doc["x-amazon-apigateway-binary-media-types"],
        serde_json::json!(["image/png"])
    );
    assert_eq!(doc["x-amazon-apigateway-importexport-version"], "1.0");
    let jwt = &doc["components"]["securitySchemes"]["users"]["x-amazon-apigateway-authorizer"];
    assert_eq!(jwt["type"], "jwt");
    assert_eq!(jwt["jwtConfiguration"]["issuer"], "https://issuer.example");
    let lambda = &doc["components"]["securitySchemes"]["partners"];
    assert_eq!(lambda["in"], "header");
    assert_eq!(lambda["name"], "X-Partner");
    assert_eq!(lambda["x-amazon-apigateway-authtype"], "custom");
    let a = &lambda["x-amazon-apigateway-authorizer"];
    assert_eq!(a["type"], "request");
    assert_eq!(a["authorizerResultTtlInSeconds"], 60);
    assert_eq!(a["enableSimpleResponses"], true);
    assert_eq!(
        a["identitySource"],
        serde_json::json!(["$request.header.X-Partner"])
    );
}

#[tokio::test]
async fn gateway_serves_its_spec_and_docs_page() {
    let routes = r#"
[openapi]
title = "Served <API>"

[[routes]]
method = "GET"
path = "/ping"
summary = "Ping it"
mock = { status = 200, body = "pong", headers = { content-type = "text/plain" } }

[[routes]]
method = "ANY"
path = "/{proxy+}"
mock = { status = 200, body = "catch-all" }
"#;
    let gw = start_with(routes, &[], Default::default()).await;
    let c = client();
    let res = c.get(gw.url("/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["info"]["title"], "Served <API>");
    assert_eq!(doc["paths"]["/ping"]["get"]["summary"], "Ping it");
    // The stage-prefixed form works too, as for every route.
    let res = c.get(gw.url("/dev/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    let res = c.get(gw.url("/openapi.html")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("Served &lt;API&gt;"), "title escaped: {html}");
    assert!(html.contains("/ping") && html.contains("Ping it"));

    // Other methods and paths still reach the routes.
    let res = c.post(gw.url("/openapi.json")).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "catch-all");
    let res = c.get(gw.url("/other")).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "catch-all");
    gw.stop().await;
}

#[tokio::test]
async fn spec_path_is_configurable_and_can_be_turned_off() {
    let routes = r#"
[openapi]
path = "/api/spec.json"
docs_path = ""

[[routes]]
method = "GET"
path = "/ping"
mock = { status = 200, body = "pong" }
"#;
    let gw = start_with(routes, &[], Default::default()).await;
    let c = client();
    let res = c.get(gw.url("/api/spec.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(doc["paths"]["/ping"]["get"].is_object());
    for p in ["/openapi.json", "/openapi.html", "/api/spec.html"] {
        let res = c.get(gw.url(p)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{p}");
    }
    gw.stop().await;
}

#[test]
fn a_route_on_the_spec_path_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("routes.toml");
    std::fs::write(
        &p,
        "[[routes]]\nmethod = \"GET\"\npath = \"/openapi.json\"\nmock = { status = 200 }\n",
    )
    .unwrap();
    let err = lambdagate::config::load(&p).unwrap_err().to_string();
    assert!(err.contains("routes.toml:3:8"), "{err}");
    assert!(err.contains("[openapi] path"), "{err}");

    std::fs::write(
        &p,
        "[openapi]\npath = \"/spec.json\"\n[[routes]]\nmethod = \"GET\"\npath = \"/openapi.json\"\nmock = { status = 200 }\n[[routes]]\nmethod = \"GET\"\npath = \"/x\"\nresponse_schema = \"missing.json\"\nmock = { status = 200 }\n",
    )
    .unwrap();
    let err = lambdagate::config::load(&p).unwrap_err().to_string();
    assert!(!err.contains("[openapi] path"), "moved away: {err}");
    assert!(err.contains("cannot read response schema"), "{err}");
}

#[test]
fn cli_writes_json_and_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), ROUTES);
    let out = dir.path().join("out/spec.yaml");
    let status = Command::new(binary())
        .args(["openapi", "--aws", "--stage", "prod", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let yaml: Value = yaml_serde::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(yaml["servers"][0]["url"], "http://127.0.0.1:8080/prod");
    assert_eq!(yaml["servers"].as_array().unwrap().len(), 1);
    assert!(yaml["paths"]["/items/{id}"]["get"]["x-amazon-apigateway-integration"].is_object());

    let json = Command::new(binary())
        .args(["openapi", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(json.status.success());
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Same input, same bytes: the checked-in document can be diffed.
    let again = Command::new(binary())
        .args(["openapi", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(json.stdout, again.stdout);

    let bad = Command::new(binary())
        .args(["openapi", "--stage", "nope", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("stage `nope`"));
}

/// The project's `.venv/bin/python` (scripts/setup-test-deps.sh makes it).
pub fn venv_python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup-test-deps.sh",
        p.display()
    );
    p
}

/// Runs openapi-spec-validator on a document file; panics with its report.
fn validate_with_python(doc: &Path) {
    let out = Command::new(venv_python())
        .args([
            "-c",
            "import sys, json, yaml\n\
             from openapi_spec_validator import validate\n\
             text = open(sys.argv[1]).read()\n\
             validate(json.loads(text) if sys.argv[1].endswith('.json') else yaml.safe_load(text))\n\
             print('valid')",
        ])
        .arg(doc)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("valid"),
        "openapi-spec-validator refused {}:\n{}",
        doc.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn generated_documents_pass_openapi_spec_validator() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), ROUTES);
    for (args, name) in [
        (&["openapi"][..], "plain.json"),
        (&["openapi", "--aws"][..], "aws.json"),
        (&["openapi", "--format", "yaml"][..], "plain.yaml"),
    ] {
        let out = dir.path().join(name);
        let res = Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(&config)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            res.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        validate_with_python(&out);
    }
    // The example API's checked-in document, and its --aws form.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    validate_with_python(&root.join("openapi/openapi.json"));
    let out = dir.path().join("example-aws.json");
    let res = Command::new(binary())
        .args(["openapi", "--aws", "--config"])
        .arg(root.join("routes.toml"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    validate_with_python(&out);
}

// ---- import ----

/// `../shared/fixtures/openapi/NAME` (beside the repo, or beside the
/// worktree folder), or `None` with a printed note.
fn fixture(name: &str) -> Option<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for base in ["../shared", "../../shared"] {
        let p = root.join(base).join("fixtures/openapi").join(name);
        if let Ok(text) = std::fs::read_to_string(&p) {
            return Some(text);
        }
    }
    println!(
        "SKIPPED: ../shared/fixtures/openapi/{name} not found; import tests run where it exists (CI)"
    );
    None
}

/// Imports `text` into `dir` (routes.toml + schema files), checks the
/// result loads, and returns it.
fn import_into(text: &str, dir: &Path) -> lambdagate::openapi::import::Imported {
    let imported = lambdagate::openapi::import::import(text).unwrap();
    for (rel, contents) in &imported.files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }
    let routes = dir.join("routes.toml");
    std::fs::write(&routes, &imported.routes_toml).unwrap();
    if let Err(e) = lambdagate::config::load(&routes) {
        panic!(
            "imported routes.toml does not load:\n{e}\n{}",
            imported.routes_toml
        );
    }
    imported
}

/// import → generate --aws → import: the second import equals the first,
/// byte for byte, schema files included.
fn assert_round_trip(first_dir: &Path, first: &lambdagate::openapi::import::Imported) {
    let config = lambdagate::config::load(&first_dir.join("routes.toml")).unwrap();
    let generated = lambdagate::openapi::generate(
        &config,
        &lambdagate::openapi::GenerateOptions {
            stage: None,
            aws: true,
        },
    )
    .unwrap();
    let doc = lambdagate::openapi::generate::to_json(&generated.document);
    let second_dir = tempfile::tempdir().unwrap();
    let second = import_into(&doc, second_dir.path());
    assert_eq!(
        first.routes_toml, second.routes_toml,
        "round trip changed routes.toml; generated document:\n{doc}"
    );
    assert_eq!(first.files, second.files, "round trip changed schema files");
}

#[test]
fn imports_the_calc_swagger2_export() {
    let Some(text) = fixture("apigw-devguide-calc-lambda-aws-integration.swagger2.json") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let imported = import_into(&text, dir.path());
    let config = lambdagate::config::load(&dir.path().join("routes.toml")).unwrap();
    assert_eq!(config.gateway.flavor, lambdagate::config::Flavor::Rest);
    assert_eq!(config.gateway.region, "us-west-2");
    assert_eq!(config.gateway.stage, "test");
    assert_eq!(config.functions["Calc"].name, "Calc");
    let keys: Vec<String> = config.routes.iter().map(|r| r.route_key()).collect();
    assert_eq!(
        keys,
        [
            "GET /calc",
            "POST /calc",
            "GET /calc/{operand1}/{operand2}/{operator}"
        ]
    );
    // Validators: query parameters on GET /calc, the body on POST /calc.
    let get = config.routes[0].request.as_ref().unwrap();
    assert_eq!(get.required_query.len(), 3, "{get:?}");
    let post = config.routes[1].request.as_ref().unwrap();
    assert_eq!(
        post.body_schema.as_ref().map(|s| s.path.clone()),
        Some(dir.path().join("schemas/Input.json"))
    );
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("schemas/Input.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(input["required"], serde_json::json!(["a", "b", "op"]));
    // The response model, with the models it references inlined.
    let result: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("schemas/Result.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(result["properties"]["input"]["$ref"], "#/$defs/Input");
    assert_eq!(
        result["$defs"]["Output"]["properties"]["c"]["type"],
        "number"
    );
    // What routes.toml cannot hold is reported.
    let w = imported.warnings.join("\n");
    assert!(w.contains("non-proxy Lambda integration (type aws)"), "{w}");
    assert!(w.contains("requestTemplates"), "{w}");
    assert!(w.contains("`credentials`"), "{w}");
    assert!(w.contains("`contentHandling`"), "{w}");
    assert!(w.contains("headers are documentation only"), "{w}");
    assert!(
        w.contains("`host` (\"uojnr9hd57.execute-api.us-east-1.amazonaws.com\") was not imported"),
        "{w}"
    );
    assert!(
        w.contains("`schemes` ([\"https\"]) was not imported"),
        "{w}"
    );
    assert_round_trip(dir.path(), &imported);
}

#[test]
fn imports_the_binary_media_oas30_export() {
    let Some(text) = fixture("apigw-devguide-image-lambda-binary-media.oas30.json") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let imported = import_into(&text, dir.path());
    let config = lambdagate::config::load(&dir.path().join("routes.toml")).unwrap();
    assert_eq!(
        config.gateway.binary_media_types,
        ["application/octet-stream", "image/jpeg"]
    );
    assert_eq!(config.gateway.stage, "v1");
    assert_eq!(config.routes.len(), 2);
    assert!(config.routes.iter().all(|r| matches!(
        &r.integration,
        lambdagate::config::IntegrationConfig::Function { function, .. } if function == "image"
    )));
    let w = imported.warnings.join("\n");
    assert!(w.contains("optional query parameter `key`"), "{w}");
    // The documented 500 is carried over as a method response; the second
    // media type of PUT's 200 cannot be, and is reported.
    for r in &config.routes {
        let statuses: Vec<u16> = r.method_responses.iter().map(|m| m.status).collect();
        assert_eq!(statuses, [500], "{}", imported.routes_toml);
    }
    assert!(
        w.contains(
            "route `PUT /lambda`: response 200 type `application/octet-stream` is not imported"
        ),
        "{w}"
    );
    assert_round_trip(dir.path(), &imported);
}

#[test]
fn imports_a_sam_template_with_cloudformation_tags() {
    let Some(text) = fixture("sam-cli-rest-lambda-authorizers-swagger-api.yaml") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let imported = import_into(&text, dir.path());
    let config = lambdagate::config::load(&dir.path().join("routes.toml")).unwrap();
    assert_eq!(config.routes.len(), 6);
    let token = &config.auth["ApiKeyAuthToken"];
    assert_eq!(token.kind, lambdagate::config::AuthKind::Lambda);
    assert_eq!(token.function.as_deref(), Some("AuthorizerFunction"));
    assert_eq!(token.authorizer_type.as_deref(), Some("token"));
    assert_eq!(token.identity_sources, ["$request.header.header"]);
    let request = &config.auth["ApiKeyAuthRequest"];
    assert_eq!(
        request.identity_sources,
        ["$request.header.header", "$request.querystring.query"]
    );
    let r = config
        .routes
        .iter()
        .find(|r| r.template.as_str() == "/requestauthorizerswaggertoken/{status}")
        .unwrap();
    assert_eq!(r.auth.as_deref(), Some("ApiKeyAuthToken"));
    assert!(matches!(
        &r.integration,
        lambdagate::config::IntegrationConfig::Function { function, .. } if function == "HelloWorldFunction"
    ));
    let w = imported.warnings.join("\n");
    assert!(w.contains("identityValidationExpression"), "{w}");
    assert!(
        w.contains(
            "template resource `HelloWorldFunction` (AWS::Serverless::Function) is not an API"
        ),
        "{w}"
    );
    // The path-level parameter of `/requestauthorizerswaggertoken/{status}`
    // is not a parameter object (its fields sit under `status:`).
    assert!(w.contains("a parameter without `name` and `in`"), "{w}");
    assert!(w.contains("2 APIs"), "{w}");
    assert_round_trip(dir.path(), &imported);
}

/// An HTTP API with what the fixtures lack: JWT, API keys, mock, HTTP
/// proxy, `$default`, CORS, timeouts, operation ids.
#[test]
fn http_api_round_trips_through_the_aws_document() {
    let routes = r#"
[gateway]
flavor = "http"
binary_media_types = ["image/png"]
region = "eu-west-1"
account_id = "111122223333"

[cors]
allow_origins = ["https://app.example"]
allow_methods = ["GET", "POST"]
max_age = "600s"

[stages.dev]
backend = "aws"
[backends.aws]
kind = "lambda"
[backends.legacy]
kind = "http"
url = "http://127.0.0.1:3000"
[functions.hello]
name = "hello-fn:live"

[auth.users]
kind = "jwt"
issuer = "https://issuer.example"
audience = ["api"]

[auth.partners]
kind = "lambda"
function = "hello"
type = "request"
identity_sources = ["$request.header.X-Partner"]
response = "simple"
ttl = "60s"

[[routes]]
method = "GET"
path = "/items/{id}"
function = "hello"
auth = "users"
scopes = ["items:read"]
api_key = true
summary = "Read one item"
operation_id = "getItem"
tags = ["items"]
timeout = "10s"

[[routes]]
method = "POST"
path = "/items"
function = "hello"
auth = "partners"
payload_version = "1.0"

[[routes]]
method = "ANY"
path = "/legacy/{proxy+}"
backend = "legacy"

[[routes]]
method = "GET"
path = "/ping"
mock = { status = 200, body = "pong", headers = { content-type = "text/plain" } }

[[routes]]
method = "ANY"
path = "$default"
function = "hello"
"#;
    let src = tempfile::tempdir().unwrap();
    let config = lambdagate::config::load(&write_config(src.path(), routes)).unwrap();
    let doc = lambdagate::openapi::generate(
        &config,
        &lambdagate::openapi::GenerateOptions {
            stage: None,
            aws: true,
        },
    )
    .unwrap();
    let text = lambdagate::openapi::generate::to_json(&doc.document);
    let dir = tempfile::tempdir().unwrap();
    let imported = import_into(&text, dir.path());
    let back = lambdagate::config::load(&dir.path().join("routes.toml")).unwrap();
    assert_eq!(back.gateway.flavor, lambdagate::config::Flavor::Http);
    assert_eq!(back.gateway.region, "eu-west-1");
    assert_eq!(back.gateway.account_id, "111122223333");
    assert_eq!(back.gateway.binary_media_types, ["image/png"]);
    assert_eq!(back.functions["hello-fn"].name, "hello-fn:live");
    let users = &back.auth["users"];
    assert_eq!(users.kind, lambdagate::config::AuthKind::Jwt);
    assert_eq!(users.issuer.as_deref(), Some("https://issuer.example"));
    assert_eq!(users.audience, ["api"]);
    let partners = &back.auth["partners"];
    assert_eq!(partners.response.as_deref(), Some("simple"));
    assert_eq!(partners.ttl, std::time::Duration::from_secs(60));
    let cors = back.cors.as_ref().unwrap();
    assert_eq!(cors.allow_origins, ["https://app.example"]);
    let find = |key: &str| {
        back.routes
            .iter()
            .find(|r| r.route_key() == key)
            .unwrap_or_else(|| panic!("no route {key}:\n{}", imported.routes_toml))
    };
    let item = find("GET /items/{id}");
    assert_eq!(item.auth.as_deref(), Some("users"));
    assert_eq!(item.scopes, ["items:read"]);
    assert!(item.api_key);
    assert_eq!(item.operation_id.as_deref(), Some("getItem"));
    assert_eq!(item.summary.as_deref(), Some("Read one item"));
    assert_eq!(item.tags, ["items"]);
    assert_eq!(item.timeout, Some(std::time::Duration::from_secs(10)));
    assert_eq!(
        find("POST /items").payload_version,
        lambdagate::config::PayloadVersion::V1
    );
    match &find("ANY /legacy/{proxy+}").integration {
        lambdagate::config::IntegrationConfig::Http { backend } => assert!(matches!(
            &back.backends[backend],
            lambdagate::config::BackendConfig::Http { url, .. } if url == "http://127.0.0.1:3000"
        )),
        other => panic!("{other:?}"),
    }
    match &find("GET /ping").integration {
        lambdagate::config::IntegrationConfig::Mock(m) => {
            assert_eq!(m.body, "pong");
            assert_eq!(m.headers["content-type"], "text/plain");
        }
        other => panic!("{other:?}"),
    }
    assert!(back.routes.iter().any(|r| r.template.is_default()));
    assert_round_trip(dir.path(), &imported);
}

#[test]
fn cli_import_writes_routes_and_schemas() {
    let Some(_) = fixture("apigw-devguide-calc-lambda-aws-integration.swagger2.json") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let export = ["../shared", "../../shared"]
        .iter()
        .map(|b| {
            root.join(b)
                .join("fixtures/openapi/apigw-devguide-calc-lambda-aws-integration.swagger2.json")
        })
        .find(|p| p.exists())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("api/routes.toml");
    let res = Command::new(binary())
        .arg("import")
        .arg(&export)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(res.status.success());
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(stderr.contains("warning: route `GET /calc`"), "{stderr}");
    assert!(dir.path().join("api/schemas/Input.json").exists());
    let validate = Command::new(binary())
        .args(["validate", "--config"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "{}",
        String::from_utf8_lossy(&validate.stderr)
    );
}

// ---- proofs with real OpenAPI tools ----

const STATUS_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["status", "version"],
  "properties": {
    "status": {"type": "string", "enum": ["ok"]},
    "version": {"type": "integer"}
  }
}"#;

/// Runs `.venv/bin/<tool> args...`; panics with its output unless it exits 0.
async fn run_tool(tool: &str, args: &[&str], cwd: &Path) -> String {
    let exe = venv_python().with_file_name(tool);
    let out = tokio::process::Command::new(&exe)
        .args(args)
        .current_dir(cwd)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{tool} {args:?} failed:\n{text}");
    text
}

/// `openapi/openapi.json` is what `lambdagate openapi` writes for the
/// top-level routes.toml today.
#[test]
fn checked_in_openapi_json_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let routes = root.join("routes.toml");
    if !routes.exists() {
        println!("SKIPPED: no top-level routes.toml");
        return;
    }
    let config = lambdagate::config::load(&routes).unwrap_or_else(|e| panic!("{e}"));
    let doc = lambdagate::openapi::generate(&config, &Default::default()).unwrap();
    let fresh = lambdagate::openapi::generate::to_json(&doc.document);
    let checked_in = std::fs::read_to_string(root.join("openapi/openapi.json")).unwrap_or_default();
    assert!(
        fresh == checked_in,
        "openapi/openapi.json is out of date with routes.toml; regenerate it with\n    cargo run -- openapi --config routes.toml --out openapi/openapi.json"
    );
}

/// The schemathesis run on the example API can fail: a mock whose body
/// breaks its documented schema is caught.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_catches_a_response_that_breaks_its_schema() {
    let routes = r#"
[[routes]]
method = "GET"
path = "/broken"
response_schema = "schemas/status.json"
mock = { status = 200, body = '{"status":"nope"}', headers = { content-type = "application/json" } }
"#;
    let gw = start_with(
        routes,
        &[("schemas/status.json", STATUS_SCHEMA.as_bytes())],
        Default::default(),
    )
    .await;
    let exe = venv_python().with_file_name("schemathesis");
    let out = tokio::process::Command::new(&exe)
        .args([
            "run",
            &gw.url("/openapi.json"),
            "--url",
            &gw.url(""),
            "--max-examples",
            "5",
            "--checks",
            "response_schema_conformance",
            "--no-color",
        ])
        .current_dir(gw.dir.path())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("Response violates schema"), "{text}");
    gw.stop().await;
}

#[test]
fn template_offers_and_integration_responses_are_documented() {
    let routes = r#"
[stages.dev]
backend = "aws"
[backends.aws]
kind = "lambda"
[functions.calc]
[functions.page]

[[routes]]
method = "GET"
path = "/calc"
function = "calc"
request_template = '''{"a": {{ input.params('a') }}}'''

[[routes.responses]]
status = 200
headers = { operator = "{{ input.path('$.op') }}" }
template = '''{"result": {{ input.json('$.c') }}}'''

[[routes.responses]]
pattern = "Invalid .*"
status = 422
template = '''{"message": "bad"}'''

[[routes]]
method = "GET"
path = "/page"
function = "page"
response_schema = "schemas/item.json"
response = { template = "templates/page.html", content_type = "text/html", json = true, default = "text/html" }
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::write(dir.path().join("templates/page.html"), "<p>{{ name }}</p>").unwrap();
    let config = lambdagate::config::load(&write_config(dir.path(), routes))
        .unwrap_or_else(|e| panic!("{e}"));
    let plain = lambdagate::openapi::generate(&config, &Default::default()).unwrap();
    let doc = lambdagate::openapi::generate::canonical(&plain.document);
    let calc = &doc["paths"]["/calc"]["get"]["responses"];
    assert!(calc["200"]["headers"]["operator"].is_object(), "{calc}");
    assert!(
        calc["200"]["content"]["application/json"].is_object(),
        "{calc}"
    );
    assert!(
        calc["422"]["description"]
            .as_str()
            .unwrap()
            .contains("Invalid .*")
    );
    let page = &doc["paths"]["/page"]["get"]["responses"]["200"]["content"];
    assert_eq!(page["text/html"]["schema"]["type"], "string");
    assert_eq!(
        page["application/json"]["schema"]["$ref"],
        "#/components/schemas/item"
    );

    let aws = lambdagate::openapi::generate(
        &config,
        &lambdagate::openapi::GenerateOptions {
            stage: None,
            aws: true,
        },
    )
    .unwrap();
    let doc = lambdagate::openapi::generate::canonical(&aws.document);
    let i = &doc["paths"]["/calc"]["get"]["x-amazon-apigateway-integration"];
    assert_eq!(i["type"], "aws");
    assert_eq!(i["responses"]["Invalid .*"]["statusCode"], "422");
    assert!(aws.warnings.iter().any(|w| w.contains("minijinja")));
}

// ---- the example API (top-level routes.toml), as scripts/run.sh serves it ----

/// The example API exactly as `scripts/run.sh` serves it: `lambdagate serve
/// --config routes.toml` on the repository's own file, its functions run by
/// `scripts/function.sh` from the target folder (built here once, with the
/// tests' cargo), on a free port. `EXAMPLE_JWT_SECRET` replaces the demo
/// secret so the test proves the variable is read.
async fn serve_example_api(jwt_secret: &str) -> GatewayProcess {
    for f in ["echo", "hello", "image", "items", "page"] {
        crate::local::example(f);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let env = HashMap::from([("EXAMPLE_JWT_SECRET".to_string(), jwt_secret.to_string())]);
    spawn_binary(&root.join("routes.toml"), &["--no-watch"], &env).await
}

/// SIGTERM, as a user's Ctrl-C: the gateway drains and stops its function
/// processes, so none is left behind.
async fn stop_example_api(mut gw: GatewayProcess) {
    let pid = gw.pid().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let exit = tokio::time::timeout(std::time::Duration::from_secs(20), gw.child.wait())
        .await
        .expect("the example API stops after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// A partner key on the example's `partners` plan, made with the CLI in the
/// store routes.toml names: (id, key). Revoke it with [`revoke_key`].
fn create_partner_key() -> (String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let name = format!("openapi-test-{}", uuid::Uuid::new_v4().simple());
    let out = Command::new(binary())
        .args([
            "keys", "create", "--json", "--plan", "partners", "--name", &name, "--config",
        ])
        .arg(root.join("routes.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["id"].as_str().unwrap().to_string(),
        v["key"].as_str().unwrap().to_string(),
    )
}

fn revoke_key(id: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(binary())
        .args(["keys", "revoke", id, "--config"])
        .arg(root.join("routes.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An HS256 token the example's `users` authorizer accepts (with `scope`).
fn example_token(secret: &str, scope: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "openapi-test", "aud": "lambdagate-example", "exp": exp, "scope": scope}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn random_secret() -> String {
    format!("openapi-test-{}", uuid::Uuid::new_v4().simple())
}

/// schemathesis against the running example API, with a partner key and an
/// editor's JWT so the secured operations are exercised past their 401/403:
/// no 5xx, every status, media type, body and header as documented.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_problem_in_the_example_api() {
    let secret = random_secret();
    let gw = serve_example_api(&secret).await;
    let (key_id, key) = create_partner_key();
    let spec = gw.url("/openapi.json");
    let doc: Value = client()
        .get(&spec)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    let auth_header = format!(
        "Authorization: Bearer {}",
        example_token(&secret, "items:write")
    );
    let key_header = format!("x-api-key: {key}");
    let work = tempfile::tempdir().unwrap();
    let out = run_tool(
        "schemathesis",
        &[
            "run",
            &spec,
            // The server the document names: the stage-prefixed URL.
            "--url",
            &gw.url("/dev"),
            "-H",
            &auth_header,
            "-H",
            &key_header,
            "--max-examples",
            "30",
            "--seed",
            "1",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
            "--no-color",
        ],
        work.path(),
    )
    .await;
    revoke_key(&key_id);
    stop_example_api(gw).await;
    assert!(out.contains("No issues found"), "{out}");
    assert!(
        out.contains(&format!("{operations} selected / {operations} total")),
        "{out}"
    );
}

/// An SDK generated from the checked-in `openapi/openapi.json` with
/// openapi-python-client calls the running example API — open routes, the
/// partner route with an API key, the editor routes with a JWT — and gets
/// typed models back (the README's SDK section does the same).
#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_from_openapi_json_calls_the_example_api() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = root.join("openapi/openapi.json");
    let work = tempfile::tempdir().unwrap();
    // openapi-python-client reads bytes from application/octet-stream only.
    std::fs::write(
        work.path().join("sdk.yaml"),
        "post_hooks: []\ncontent_type_overrides:\n  image/png: application/octet-stream\n",
    )
    .unwrap();
    let spec_arg = spec.to_string_lossy().to_string();
    run_tool(
        "openapi-python-client",
        &[
            "generate",
            "--path",
            &spec_arg,
            "--output-path",
            "example_sdk",
            "--meta",
            "none",
            "--config",
            "sdk.yaml",
        ],
        work.path(),
    )
    .await;
    let secret = random_secret();
    let gw = serve_example_api(&secret).await;
    let (key_id, key) = create_partner_key();
    std::fs::write(work.path().join("use_sdk.py"), EXAMPLE_SDK_SCRIPT).unwrap();
    let out = run_tool(
        "python",
        &["use_sdk.py", &gw.url(""), &secret, &key],
        work.path(),
    )
    .await;
    assert!(
        out.contains("typed: Greeting Item Error ItemList Item 204"),
        "{out}"
    );

    // The README's SDK example, as written there, against the same API.
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme
        .find("```python\nimport time, jwt")
        .expect("README shows the SDK example")
        + "```python\n".len();
    let end = readme[start..].find("```").unwrap() + start;
    let mut example = readme[start..end].to_string();
    std::fs::write(work.path().join("secret.txt"), &secret).unwrap();
    for (shown, here) in [
        ("\"http://127.0.0.1:8080\"", format!("{:?}", gw.url(""))),
        ("\"lg_...\"", format!("{key:?}")),
        (
            "\"examples/auth/demo-jwt-secret.txt\"",
            "\"secret.txt\"".to_string(),
        ),
    ] {
        assert!(example.contains(shown), "the README example lost {shown}");
        example = example.replace(shown, &here);
    }
    std::fs::write(work.path().join("readme_example.py"), example).unwrap();
    let out = run_tool("python", &["readme_example.py"], work.path()).await;
    revoke_key(&key_id);
    stop_example_api(gw).await;
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        lines.len() == 3
            && lines[0].ends_with(" Desk lamp 39.5")
            && lines[1] == "['Desk lamp']"
            && lines[2] == "35",
        "{out}"
    );
}

/// What `python_sdk_from_openapi_json_calls_the_example_api` runs with the
/// generated `example_sdk` package: base URL, JWT secret, partner key.
const EXAMPLE_SDK_SCRIPT: &str = r#"
import sys, time
import jwt
from example_sdk import AuthenticatedClient, Client
from example_sdk.api.default import get_greet, get_image_png
from example_sdk.types import File
from example_sdk.api.items import create_item, delete_item, get_item, replace_item
from example_sdk.api.partners import partner_catalog
from example_sdk.models import Error, GatewayError, Greeting, Item, ItemList, NewItem

base, secret, api_key = sys.argv[1], sys.argv[2], sys.argv[3]

def token(scope):
    claims = {"sub": "sdk", "aud": "lambdagate-example", "exp": int(time.time()) + 300, "scope": scope}
    return jwt.encode(claims, secret, algorithm="HS256")

anyone = Client(base_url=base)
greeting = get_greet.sync(client=anyone)
assert isinstance(greeting, Greeting) and greeting.message == "hello world", greeting
png = get_image_png.sync(client=anyone)
assert isinstance(png, File) and png.payload.read(8) == b"\x89PNG\r\n\x1a\n", png

# Open routes: create and read an item.
created = create_item.sync(client=anyone, body=NewItem(name="Desk lamp", price=39.5))
assert isinstance(created, Item) and created.name == "Desk lamp" and created.price == 39.5, created
item = get_item.sync(client=anyone, id=created.id)
assert isinstance(item, Item) and item.id == created.id, item
missing = get_item.sync(client=anyone, id="999999")
assert isinstance(missing, Error) and missing.message == "no item 999999", missing

# The partner route: refused without a key, typed with one.
refused = partner_catalog.sync_detailed(client=anyone)
assert refused.status_code == 403 and isinstance(refused.parsed, GatewayError), refused
partner = Client(base_url=base, headers={"x-api-key": api_key})
catalog = partner_catalog.sync(client=partner)
assert isinstance(catalog, ItemList), catalog
assert [i.id for i in catalog.items if isinstance(i, Item)] == [created.id], catalog

# Editor routes: a JWT with items:write; no token is a typed 401, a token
# without the scope a typed 403.
editor = AuthenticatedClient(base_url=base, token=token("items:write"))
replaced = replace_item.sync(client=editor, id=created.id, body=NewItem(name="Desk lamp", price=35.0))
assert isinstance(replaced, Item) and replaced.price == 35.0, replaced
reader = AuthenticatedClient(base_url=base, token=token("items:read"))
forbidden = replace_item.sync_detailed(client=reader, id=created.id, body=NewItem(name="x"))
assert forbidden.status_code == 403 and isinstance(forbidden.parsed, GatewayError), forbidden
unauthorized = delete_item.sync_detailed(client=anyone, id=created.id)
assert unauthorized.status_code == 401 and unauthorized.parsed.message == "Unauthorized", unauthorized
deleted = delete_item.sync_detailed(client=editor, id=created.id)
assert deleted.status_code == 204, deleted
assert isinstance(get_item.sync(client=anyone, id=created.id), Error)
print("typed:", type(greeting).__name__, type(created).__name__, type(missing).__name__,
      type(catalog).__name__, type(replaced).__name__, deleted.status_code)
"#;

/// A Swagger 2 export with what routes.toml holds only in part: typed path
/// and query parameters, path-level parameters and summary, `consumes`/
/// `produces` beyond JSON, a `default` response, an error response with a
/// model, the AUTHORIZER key source. What is carried over round-trips; the
/// rest is a warning.
const TYPED_SWAGGER2: &str = r##"{
  "swagger": "2.0",
  "info": {"title": "Things", "version": "1"},
  "basePath": "/v1",
  "consumes": ["application/json", "application/xml"],
  "produces": ["application/json", "text/csv"],
  "x-amazon-apigateway-api-key-source": "AUTHORIZER",
  "paths": {
    "/things/{id}": {
      "summary": "One thing",
      "parameters": [
        {"name": "id", "in": "path", "required": true, "type": "integer", "format": "int64"},
        {"status": {"in": "path"}}
      ],
      "get": {
        "parameters": [{"name": "q", "in": "query", "required": true, "type": "string", "enum": ["a", "b"]}],
        "x-amazon-apigateway-request-validator": "params",
        "responses": {
          "200": {"description": "200 response", "schema": {"$ref": "#/definitions/Thing"}},
          "404": {"description": "No such thing", "schema": {"$ref": "#/definitions/Problem"}},
          "default": {"description": "anything else"}
        },
        "x-amazon-apigateway-integration": {
          "type": "aws_proxy", "httpMethod": "POST",
          "uri": "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:111122223333:function:things/invocations"
        }
      }
    }
  },
  "definitions": {
    "Thing": {"type": "object", "properties": {"id": {"type": "integer"}}},
    "Problem": {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}}
  },
  "x-amazon-apigateway-request-validators": {
    "params": {"validateRequestParameters": true, "validateRequestBody": false}
  }
}"##;

/// The same in OpenAPI 3: several media types for a request body and a
/// response, an HTML success beside a JSON one.
const MEDIA_OAS3: &str = r##"{
  "openapi": "3.0.1",
  "info": {"title": "Pages", "version": "1"},
  "paths": {
    "/pages": {
      "post": {
        "requestBody": {"content": {
          "application/json": {"schema": {"type": "object"}},
          "text/plain": {"schema": {"type": "string"}}
        }},
        "responses": {
          "200": {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}},
          "201": {"description": "201 response", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Made"}},
            "application/xml": {"schema": {"$ref": "#/components/schemas/Made"}}
          }}
        },
        "x-amazon-apigateway-integration": {
          "type": "aws_proxy", "httpMethod": "POST", "payloadFormatVersion": "1.0",
          "uri": "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:111122223333:function:pages/invocations"
        }
      }
    }
  },
  "components": {"schemas": {"Made": {"type": "object", "properties": {"id": {"type": "string"}}}}}
}"##;

#[test]
fn import_carries_or_reports_types_media_types_and_responses() {
    let dir = tempfile::tempdir().unwrap();
    let imported = import_into(TYPED_SWAGGER2, dir.path());
    let config = lambdagate::config::load(&dir.path().join("routes.toml")).unwrap();
    let r = &config.routes[0];
    assert_eq!(r.route_key(), "GET /things/{id}");
    assert_eq!(
        r.summary.as_deref(),
        Some("One thing"),
        "path-level summary"
    );
    assert_eq!(r.request.as_ref().unwrap().required_query, ["q"]);
    assert_eq!(
        r.response_schema.as_deref(),
        Some(dir.path().join("schemas/Thing.json").as_path())
    );
    assert_eq!(
        r.method_responses,
        [lambdagate::openapi::MethodResponse {
            status: 404,
            schema: Some(dir.path().join("schemas/Problem.json")),
            content_type: None,
            description: Some("No such thing".into()),
        }]
    );
    assert_eq!(
        config.api_keys.source,
        lambdagate::config::ApiKeySource::Authorizer
    );
    let w = imported.warnings.join("\n");
    for expected in [
        r#"path parameter `id` is documented with {"format":"int64","type":"integer"}"#,
        r#"query parameter `q` is documented with {"enum":["a","b"]}"#,
        "a parameter without `name` and `in`",
        "request media type `application/xml` (consumes) is not imported",
        "response media type `text/csv` (produces) is not imported",
        "response `default` is not one status",
    ] {
        assert!(w.contains(expected), "no warning `{expected}` in:\n{w}");
    }
    assert_round_trip(dir.path(), &imported);

    let dir = tempfile::tempdir().unwrap();
    let imported = import_into(MEDIA_OAS3, dir.path());
    let config = lambdagate::config::load(&dir.path().join("routes.toml")).unwrap();
    let r = &config.routes[0];
    assert_eq!(
        r.response_schema.as_deref(),
        Some(dir.path().join("schemas/Made.json").as_path())
    );
    let documented: Vec<(u16, Option<&str>, Option<&str>)> = r
        .method_responses
        .iter()
        .map(|m| {
            (
                m.status,
                m.content_type.as_deref(),
                m.description.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        documented,
        [
            (200, Some("text/html"), Some("The page")),
            (201, None, None)
        ]
    );
    let w = imported.warnings.join("\n");
    assert!(
        w.contains("request body type `text/plain` is not imported"),
        "{w}"
    );
    assert!(
        w.contains("response 201 type `application/xml` is not imported"),
        "{w}"
    );
    assert_round_trip(dir.path(), &imported);
}

#[test]
fn method_responses_are_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let routes = r#"
[[routes]]
method = "GET"
path = "/x"
mock = { status = 200 }
method_responses = [
  { status = 42 },
  { status = 404, content_type = "not a type" },
  { status = 404 },
  { status = 500, schema = "missing.json" },
]
"#;
    let p = dir.path().join("routes.toml");
    std::fs::write(&p, routes).unwrap();
    let err = lambdagate::config::load(&p).unwrap_err().to_string();
    for expected in [
        "routes.toml:7:14: status 42 is not an HTTP status",
        "routes.toml:8:34: `not a type` is not a media type",
        "routes.toml:9:14: status 404 is documented twice",
        "routes.toml:10:28: cannot read response schema",
    ] {
        assert!(err.contains(expected), "no `{expected}` in:\n{err}");
    }
}

/// `method_responses` in the document: a success replacing the default
/// 200, a text body, an error with its schema, a 204 without a body; a
/// cached route's successes carry `X-Cache`.
#[test]
fn method_responses_and_cache_headers_are_documented() {
    let routes = r#"
[stages.dev]
backend = "aws"
[backends.aws]
kind = "lambda"
[functions.hello]

[[routes]]
method = "POST"
path = "/items"
function = "hello"
response_schema = "schemas/item.json"
method_responses = [{ status = 201, description = "Created." }, { status = 409, schema = "schemas/item.json" }]

[[routes]]
method = "GET"
path = "/page"
function = "hello"
cache = { ttl = "60s" }
method_responses = [{ status = 200, content_type = "text/html" }, { status = 204 }]

[[routes]]
method = "GET"
path = "/image"
function = "hello"
method_responses = [{ status = 200, content_type = "image/png" }]
"#;
    let (doc, warnings) = generate(routes, false);
    assert!(warnings.is_empty(), "{warnings:?}");
    let post = &doc["paths"]["/items"]["post"]["responses"];
    assert!(
        post["200"].is_null(),
        "201 replaces the default 200: {post}"
    );
    assert_eq!(post["201"]["description"], "Created.");
    assert_eq!(
        post["201"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/item"
    );
    assert_eq!(
        post["409"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/item"
    );
    let page = &doc["paths"]["/page"]["get"]["responses"];
    assert_eq!(
        page["200"]["content"]["text/html"]["schema"]["type"],
        "string"
    );
    assert!(page["200"]["headers"]["X-Cache"].is_object(), "{page}");
    assert!(page["204"]["content"].is_null(), "{page}");
    let image = &doc["paths"]["/image"]["get"]["responses"]["200"]["content"]["image/png"];
    assert_eq!(image["schema"]["format"], "binary");
    let too_many = &doc["components"]["responses"]["TooManyRequests"]["headers"];
    assert!(too_many["Retry-After"].is_object() && too_many["RateLimit-Reset"].is_object());
    assert_eq!(
        doc["components"]["schemas"]["GatewayError"]["properties"]["errors"]["type"],
        "array"
    );
}
