//! Conformance against AWS-published sample events (`../shared/fixtures/
//! aws-events/`, read from there, never copied): each request a fixture
//! describes is replayed through the gateway byte for byte over a raw
//! socket, and the event the gateway builds must equal the fixture except
//! ids, times, IPs and what each fixture below says it cannot share.

use std::path::PathBuf;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::fake_lambda::{FakeLambda, Reply, gateway_on};

fn fixtures_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/aws-events");
    dir.is_dir().then_some(dir)
}

/// Fields that never match: per-request ids, clocks, addresses, and the
/// parts a request cannot carry (authorizers are configured separately and
/// covered by the auth tests; mTLS is not part of this gateway).
const ALWAYS_IGNORED: &[&str] = &[
    "/requestContext/requestId",
    "/requestContext/extendedRequestId",
    "/requestContext/time",
    "/requestContext/timeEpoch",
    "/requestContext/requestTime",
    "/requestContext/requestTimeEpoch",
    "/requestContext/http/sourceIp",
    "/requestContext/identity",
    "/requestContext/authorizer",
    "/requestContext/authentication",
    "/requestContext/resourceId",
    "/requestContext/domainName",
    "/requestContext/domainPrefix",
    "/headers/content-length",
    "/multiValueHeaders/content-length",
];

const PREDATES_B64: &str =
    "this fixture predates the `isBase64Encoded` field AWS sends in every 1.0 event now";

const NO_HOST: &str = "synthetic: no host header, which every HTTP/1.1 request carries (RFC 9112 §3.2), so the replay sends one";

struct Case {
    file: &'static str,
    /// Extra JSON pointers not compared, each with the reason.
    ignore: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        file: "example-apigw-request.json",
        ignore: &[("/isBase64Encoded", PREDATES_B64)],
    },
    Case {
        file: "apigw_multi_value_proxy_request.json",
        ignore: &[
            (
                "/requestContext/path",
                "this fixture omits requestContext.path",
            ),
            (
                "/requestContext/protocol",
                "this fixture omits requestContext.protocol",
            ),
        ],
    },
    Case {
        file: "example-apigw-request-multi-value-parameters.json",
        ignore: &[
            (
                "/queryStringParameters",
                "this fixture keeps the first of repeated values; AWS documents (and apigw_multi_value_proxy_request.json shows) the last",
            ),
            ("/isBase64Encoded", PREDATES_B64),
        ],
    },
    Case {
        file: "go-apigw-request.json",
        ignore: &[("/isBase64Encoded", PREDATES_B64)],
    },
    Case {
        file: "example-apigw-v2-request-no-authorizer.json",
        ignore: &[],
    },
    Case {
        file: "example-apigw-v2-request-multi-value-parameters.json",
        ignore: &[
            (
                "/pathParameters",
                "synthetic: the fixture's path parameters do not come from its path",
            ),
            (
                "/requestContext/http/userAgent",
                "synthetic: a userAgent without any user-agent header",
            ),
            ("/headers/host", NO_HOST),
        ],
    },
    Case {
        file: "example-apigw-v2-request-jwt-authorizer.json",
        ignore: &[
            (
                "/pathParameters",
                "synthetic: the fixture's path parameters do not come from its path",
            ),
            (
                "/requestContext/http/userAgent",
                "synthetic: a userAgent without any user-agent header",
            ),
            ("/headers/host", NO_HOST),
        ],
    },
    Case {
        file: "lambda_function_url_request.json",
        ignore: &[
            (
                "/headers/cookie",
                "Function URLs keep the cookie header; API Gateway HTTP APIs move it to `cookies` only",
            ),
            (
                "/queryStringParameters",
                "this fixture has a query string but omits its parsed map",
            ),
        ],
    },
    Case {
        file: "go-function-url-request-with-headers-and-cookies-and-text-body.json",
        ignore: &[(
            "/headers/cookie",
            "Function URLs keep the cookie header; API Gateway HTTP APIs move it to `cookies` only",
        )],
    },
    Case {
        file: "go-function-url-domain-only-request-with-base64-encoded-body.json",
        ignore: &[],
    },
];

/// The request a fixture describes, as wire parts.
struct Replay {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    gateway: String,
    routes: String,
}

fn toml_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn stage_table(fixture: &Value, stage: &str) -> String {
    let mut vars = String::new();
    if let Some(Value::Object(sv)) = fixture.get("stageVariables") {
        let items: Vec<String> = sv
            .iter()
            .map(|(k, v)| format!("{} = {}", k, toml_str(v.as_str().unwrap_or_default())))
            .collect();
        vars = format!("variables = {{ {} }}", items.join(", "));
    }
    format!("[stages.{}]\nbackend = \"aws\"\n{vars}\n", toml_str(stage))
}

fn replay_of(f: &Value) -> Replay {
    let ctx = &f["requestContext"];
    let gateway_ids = format!(
        "api_id = {}\naccount_id = {}\n",
        toml_str(ctx["apiId"].as_str().unwrap_or("local")),
        toml_str(ctx["accountId"].as_str().unwrap_or("123456789012"))
    );
    let body_of = |f: &Value| -> Vec<u8> {
        match f.get("body").and_then(Value::as_str) {
            None => Vec::new(),
            Some(b) if f["isBase64Encoded"] == json!(true) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(b).unwrap()
            }
            Some(b) => b.as_bytes().to_vec(),
        }
    };
    if f.get("version").and_then(Value::as_str) == Some("2.0") {
        let method = ctx["http"]["method"].as_str().unwrap().to_string();
        let raw_path = f["rawPath"].as_str().unwrap();
        let raw_query = f["rawQueryString"].as_str().unwrap_or_default();
        let mut headers: Vec<(String, String)> = f["headers"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.as_str() != "cookie")
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        if let Some(Value::Array(c)) = f.get("cookies") {
            let jar: Vec<&str> = c.iter().filter_map(Value::as_str).collect();
            headers.push(("cookie".into(), jar.join("; ")));
        }
        let stage = ctx["stage"].as_str().unwrap_or("$default");
        let route_key = f["routeKey"].as_str().unwrap();
        let (rm, rp) = route_key.split_once(' ').unwrap_or(("ANY", route_key));
        Replay {
            target: if raw_query.is_empty() {
                raw_path.to_string()
            } else {
                format!("{raw_path}?{raw_query}")
            },
            method,
            headers,
            body: body_of(f),
            gateway: format!("{gateway_ids}stage = {}\n", toml_str(stage)),
            routes: format!(
                "{}\n[functions.f]\n\n[[routes]]\nmethod = \"{rm}\"\npath = {}\nfunction = \"f\"\n",
                stage_table(f, stage),
                toml_str(rp)
            ),
        }
    } else {
        let method = f["httpMethod"].as_str().unwrap().to_string();
        let path = f["path"].as_str().unwrap();
        let mut query = Vec::new();
        if let Some(Value::Object(mv)) = f.get("multiValueQueryStringParameters") {
            for (k, vs) in mv {
                for v in vs.as_array().unwrap() {
                    query.push(format!(
                        "{}={}",
                        utf8_percent_encode(k, NON_ALPHANUMERIC),
                        utf8_percent_encode(v.as_str().unwrap(), NON_ALPHANUMERIC)
                    ));
                }
            }
        }
        let mut headers = Vec::new();
        if let Some(Value::Object(mv)) = f.get("multiValueHeaders") {
            for (k, vs) in mv {
                for v in vs.as_array().unwrap() {
                    headers.push((k.clone(), v.as_str().unwrap().to_string()));
                }
            }
        }
        let stage = ctx["stage"].as_str().unwrap();
        Replay {
            target: if query.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", query.join("&"))
            },
            method: method.clone(),
            headers,
            body: body_of(f),
            gateway: format!(
                "{gateway_ids}flavor = \"rest\"\nstage = {}\n",
                toml_str(stage)
            ),
            routes: format!(
                "{}\n[functions.f]\n\n[[routes]]\nmethod = \"{method}\"\npath = {}\nfunction = \"f\"\n",
                stage_table(f, stage),
                toml_str(f["resource"].as_str().unwrap())
            ),
        }
    }
}

/// Sends the request exactly as listed (names, order, values) and waits
/// for the response head.
async fn send_raw(addr: std::net::SocketAddr, r: &Replay) {
    let mut req = format!("{} {} HTTP/1.1\r\n", r.method, r.target).into_bytes();
    if !r
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("host"))
    {
        req.extend_from_slice(b"host: replay.example\r\n");
    }
    for (k, v) in &r.headers {
        if k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if !r.body.is_empty() {
        req.extend_from_slice(format!("content-length: {}\r\n", r.body.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(&r.body);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&req).await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a response");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
}

/// Header maps compare by lower-case name: HTTP names are case-insensitive
/// and HTTP/2 sends them lower-case.
fn lowercase_keys(v: &mut Value, key: &str) {
    if let Some(Value::Object(m)) = v.get_mut(key) {
        let lowered: Map<String, Value> = std::mem::take(m)
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        *m = lowered;
    }
}

fn normalise(v: &mut Value, ignore: &[&str]) {
    lowercase_keys(v, "headers");
    lowercase_keys(v, "multiValueHeaders");
    for p in ignore {
        let (parent, last) = p.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            Some(&mut *v)
        } else {
            v.pointer_mut(parent)
        };
        if let Some(Value::Object(m)) = target {
            m.remove(last);
        }
    }
}

#[tokio::test]
async fn built_events_match_aws_fixtures() {
    let Some(dir) = fixtures_dir() else {
        println!(
            "SKIPPED: ../shared/fixtures/aws-events not found; conformance runs where it exists (CI)"
        );
        return;
    };
    let mut failures = Vec::new();
    for case in CASES {
        let text = std::fs::read_to_string(dir.join(case.file)).unwrap();
        let fixture: Value = serde_json::from_str(&text).unwrap();
        let replay = replay_of(&fixture);
        let fake =
            FakeLambda::start(|_| Reply::json(json!({"statusCode": 200, "body": "ok"}))).await;
        let gw = gateway_on(&fake, &replay.gateway, &replay.routes).await;
        send_raw(gw.process.addr, &replay).await;
        let mut built = fake.last().event();
        let mut expected = fixture.clone();
        let mut ignore: Vec<&str> = ALWAYS_IGNORED.to_vec();
        ignore.extend(case.ignore.iter().map(|(p, _)| *p));
        normalise(&mut built, &ignore);
        normalise(&mut expected, &ignore);
        if built != expected {
            failures.push(format!(
                "{}:\n  expected {}\n  built    {}",
                case.file,
                serde_json::to_string(&expected).unwrap(),
                serde_json::to_string(&built).unwrap()
            ));
        }
        // Whatever else, the typed AWS event types read what we built.
        let raw = fake.last().event();
        if raw.get("version").and_then(Value::as_str) == Some("2.0") {
            serde_json::from_value::<aws_lambda_events::apigw::ApiGatewayV2httpRequest>(raw)
                .unwrap_or_else(|e| panic!("{}: {e}", case.file));
        } else {
            serde_json::from_value::<aws_lambda_events::apigw::ApiGatewayProxyRequest>(raw)
                .unwrap_or_else(|e| panic!("{}: {e}", case.file));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
