//! Every class of routes.toml error names file, line, column and what was
//! expected; one run reports them all.

use std::path::Path;

use lambdagate::config::{ConfigError, parse};

fn errors(src: &str) -> Vec<ConfigError> {
    match parse(Path::new("routes.toml"), src) {
        Ok(_) => panic!("config was accepted:\n{src}"),
        Err(e) => e.0,
    }
}

fn one(src: &str) -> ConfigError {
    let e = errors(src);
    assert_eq!(e.len(), 1, "expected one error, got: {e:#?}");
    e.into_iter().next().unwrap()
}

fn at(e: &ConfigError, line: usize, column: usize, needle: &str) {
    assert_eq!(
        (e.line, e.column),
        (line, column),
        "wrong position for: {e}"
    );
    assert!(
        e.message.contains(needle),
        "message `{}` lacks `{needle}`",
        e.message
    );
    assert!(
        e.to_string()
            .starts_with(&format!("routes.toml:{line}:{column}: "))
    );
}

#[test]
fn unknown_key_is_refused_with_its_position() {
    let e = one("[gateway]\nlisten = \"127.0.0.1:8080\"\nflavour = \"http\"\n");
    at(&e, 3, 1, "unknown field `flavour`");
    assert!(
        e.message.contains("flavor"),
        "lists the expected keys: {}",
        e.message
    );
}

#[test]
fn unknown_key_in_a_route() {
    let e = one(
        "[[routes]]\nmethod = \"GET\"\npath = \"/a\"\nmock = { status = 200 }\nfuntion = \"x\"\n",
    );
    at(&e, 5, 1, "unknown field `funtion`");
}

#[test]
fn unknown_backend_function_and_auth_references() {
    let src = r#"[stages.dev]
backend = "nowhere"

[functions.hello]
command = ["./hello"]

[[routes]]
method = "GET"
path = "/a"
function = "helo"

[[routes]]
method = "GET"
path = "/b"
function = "hello"
auth = "users"
"#;
    let e = errors(src);
    assert_eq!(e.len(), 3, "{e:#?}");
    at(&e[0], 2, 11, "unknown backend `nowhere`");
    at(&e[1], 10, 12, "unknown function `helo`");
    at(&e[2], 16, 8, "unknown authorizer `users`");
}

#[test]
fn duplicate_routes_name_the_earlier_line() {
    let src = r#"[[routes]]
method = "GET"
path = "/items/{id}"
mock = { status = 200 }

[[routes]]
method = "get"
path = "/items/{id}"
mock = { status = 201 }
"#;
    let e = one(src);
    at(&e, 8, 8, "duplicate route `GET /items/{id}`");
    assert!(e.message.contains("line 1"), "{}", e.message);
}

#[test]
fn conflicting_parameter_names_at_one_position() {
    let src = r#"[[routes]]
method = "GET"
path = "/items/{id}"
mock = { status = 200 }

[[routes]]
method = "DELETE"
path = "/items/{itemId}"
mock = { status = 204 }
"#;
    at(
        &one(src),
        8,
        8,
        "names parameter `{itemId}` where another route names it `{id}`",
    );
}

#[test]
fn greedy_parameter_must_be_last() {
    let src =
        "[[routes]]\nmethod = \"GET\"\npath = \"/files/{proxy+}/meta\"\nmock = { status = 200 }\n";
    // Column points into the string at the offending segment.
    at(&one(src), 3, 16, "must be the last segment");
}

#[test]
fn bad_durations_and_sizes() {
    let src = r#"[gateway]
timeout = "29 parsecs"
limits = { max_body = "10 lightyears" }

[functions.f]
command = ["./f"]
timeout = "3"
"#;
    let e = errors(src);
    assert_eq!(e.len(), 3, "{e:#?}");
    at(&e[0], 2, 11, "unknown duration unit `parsecs`");
    at(&e[1], 3, 23, "unknown size unit");
    at(&e[2], 7, 11, "needs a unit");
}

#[test]
fn bad_values_name_what_was_expected() {
    let src = r#"[gateway]
listen = "localhost"
flavor = "graphql"

[[routes]]
method = "FETCH"
path = "/a"
mock = { status = 200 }
"#;
    let e = errors(src);
    assert_eq!(e.len(), 3, "{e:#?}");
    at(&e[0], 2, 10, "is not an address");
    at(&e[1], 3, 10, "is not one of \"http\" or \"rest\"");
    at(&e[2], 6, 10, "method `FETCH` is not one of GET");
}

#[test]
fn undefined_stage_variables_are_errors_per_stage() {
    let src = r#"[stages.dev]
variables = { alias = "dev" }
[stages.prod]
variables = { other = "x" }

[functions.hello]
name = "hello:${stageVariables.alias}"
"#;
    let e = one(src);
    at(
        &e,
        7,
        8,
        "`${stageVariables.alias}` is not defined in stage `prod`",
    );
}

#[test]
fn syntax_errors_have_positions() {
    let e = one("[gateway\nlisten = 1\n");
    assert_eq!(e.line, 1);
    assert!(e.column > 0);
}

#[test]
fn route_needs_exactly_one_integration() {
    let src = "[[routes]]\nmethod = \"GET\"\npath = \"/a\"\n";
    at(
        &one(src),
        1,
        1,
        "needs one of `function`, `backend` or `mock`",
    );
}

#[test]
fn default_route_only_in_http_flavor() {
    let src = "[gateway]\nflavor = \"rest\"\n[[routes]]\nmethod = \"ANY\"\npath = \"$default\"\nmock = { status = 200 }\n";
    at(
        &one(src),
        5,
        8,
        "`$default` routes exist only in the http flavor",
    );
}

#[test]
fn a_valid_file_loads() {
    let src = r#"[gateway]
listen = "127.0.0.1:8080"
flavor = "rest"
stage = "dev"
binary_media_types = ["image/*"]

[stages.dev]
backend = "aws"
variables = { alias = "dev" }

[backends.aws]
kind = "lambda"
region = "eu-west-1"

[backends.legacy]
kind = "http"
url = "http://127.0.0.1:3000"

[functions.hello]
name = "hello:${stageVariables.alias}"
timeout = "3s"

[[routes]]
method = "GET"
path = "/items/{id}"
function = "hello"

[[routes]]
method = "ANY"
path = "/legacy/{proxy+}"
backend = "legacy"
"#;
    let c = parse(Path::new("dir/routes.toml"), src).unwrap();
    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.routes[0].route_key(), "GET /items/{id}");
    assert_eq!(c.base_dir, Path::new("dir"));
}

#[test]
fn a_mock_or_integration_response_cannot_answer_with_an_interim_status() {
    // A 1xx written as the answer would be read as an interim response,
    // and the client would take the next response as this request's.
    let src = "[[routes]]\nmethod = \"GET\"\npath = \"/a\"\nmock = { status = 101 }\n";
    at(&one(src), 4, 8, "final HTTP status (200-599)");
    let src = "[[routes]]\nmethod = \"GET\"\npath = \"/a\"\nmock = { status = 199 }\n";
    at(&one(src), 4, 8, "final HTTP status (200-599)");
}
