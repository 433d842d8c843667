//! A fake Lambda service speaking the Invoke API over a real socket, for
//! driving the gateway's `lambda` backend: it records each invocation,
//! verifies its SigV4 signature with `aws-sigv4`, and answers with whatever
//! the test scripts.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{GatewayProcess, TestServer, serve_router, spawn_binary};

pub const ACCESS_KEY: &str = "AKIDLAMBDAGATETEST01";
pub const SECRET_KEY: &str = "lambdagate-test-secret-key/0123456789abcd";
pub const REGION: &str = "us-east-1";

#[derive(Debug, Clone)]
pub struct Invocation {
    pub function: String,
    pub qualifier: Option<String>,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub payload: Bytes,
    /// Whether the SigV4 signature recomputed with the shared secret matched.
    pub signature_valid: bool,
}

impl Invocation {
    pub fn event(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).expect("the event is JSON")
    }
}

/// What the fake function answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub function_error: Option<String>,
    pub error_type: Option<String>,
    pub delay: Duration,
}

impl Reply {
    pub fn json(v: serde_json::Value) -> Self {
        Self::raw(serde_json::to_vec(&v).unwrap())
    }
    pub fn raw(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            body: body.into(),
            function_error: None,
            error_type: None,
            delay: Duration::ZERO,
        }
    }
}

type Responder = Arc<dyn Fn(&Invocation) -> Reply + Send + Sync>;

#[derive(Clone)]
struct Shared {
    calls: Arc<Mutex<Vec<Invocation>>>,
    responder: Responder,
}

pub struct FakeLambda {
    pub server: TestServer,
    calls: Arc<Mutex<Vec<Invocation>>>,
}

impl FakeLambda {
    pub async fn start(responder: impl Fn(&Invocation) -> Reply + Send + Sync + 'static) -> Self {
        let shared = Shared {
            calls: Arc::default(),
            responder: Arc::new(responder),
        };
        let calls = shared.calls.clone();
        let router = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .with_state(shared);
        Self {
            server: serve_router(router).await,
            calls,
        }
    }

    pub fn calls(&self) -> Vec<Invocation> {
        self.calls.lock().unwrap().clone()
    }

    pub fn last(&self) -> Invocation {
        self.calls().pop().expect("the function was invoked")
    }

    pub fn url(&self) -> String {
        self.server.url("")
    }
}

async fn invoke(
    State(shared): State<Shared>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature_valid = verify_sigv4(&method, &uri, &headers, &body);
    let inv = Invocation {
        function: name,
        qualifier: q.get("Qualifier").cloned(),
        uri,
        headers,
        payload: body,
        signature_valid,
    };
    shared.calls.lock().unwrap().push(inv.clone());
    let reply = (shared.responder)(&inv);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut res = (
        StatusCode::from_u16(reply.status).unwrap(),
        reply.body.clone(),
    )
        .into_response();
    if let Some(fe) = &reply.function_error {
        res.headers_mut()
            .insert("x-amz-function-error", fe.parse().unwrap());
    }
    if let Some(t) = &reply.error_type {
        res.headers_mut()
            .insert("x-amzn-errortype", t.parse().unwrap());
    }
    res.headers_mut()
        .insert("x-amz-executed-version", "$LATEST".parse().unwrap());
    res
}

/// Recomputes the request's SigV4 signature from the headers it says it
/// signed and compares.
pub fn verify_sigv4(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> bool {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;

    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return false;
    };
    let mut credential = "";
    let mut signed_headers = "";
    let mut signature = "";
    for part in rest.split(", ") {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = v;
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = v;
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = v;
        }
    }
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[0] != ACCESS_KEY || scope[2] != REGION || scope[3] != "lambda" {
        return false;
    }
    let Some(amz_date) = headers.get("x-amz-date").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Ok(time) = time::PrimitiveDateTime::parse(
        amz_date,
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    ) else {
        return false;
    };
    let time: SystemTime = time.assume_utc().into();
    let names: Vec<&str> = signed_headers.split(';').collect();
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| names.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("")))
        .collect();
    let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test").into();
    let params = match v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("lambda")
        .time(time)
        .settings(SigningSettings::default())
        .build()
    {
        Ok(p) => p.into(),
        Err(_) => return false,
    };
    let full_uri = format!(
        "http://{}{}",
        headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost"),
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let Ok(signable) = SignableRequest::new(
        method.as_str(),
        &full_uri,
        pairs.into_iter(),
        SignableBody::Bytes(body),
    ) else {
        return false;
    };
    match sign(signable, &params) {
        Ok(out) => out.signature() == signature,
        Err(_) => false,
    }
}

/// Environment for a gateway process whose `lambda` backend talks to a fake.
pub fn aws_env(home: &Path) -> HashMap<String, String> {
    HashMap::from([
        ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
        ("AWS_REGION".into(), REGION.into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        (
            "AWS_CONFIG_FILE".into(),
            home.join("aws-config").display().to_string(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            home.join("aws-credentials").display().to_string(),
        ),
        ("RUST_LOG".into(), "info".into()),
    ])
}

/// A gateway process serving `routes` (appended after a `[backends.aws]`
/// lambda backend pointed at `fake`, the stage's backend).
pub struct LambdaGateway {
    pub process: GatewayProcess,
    pub dir: tempfile::TempDir,
}

impl LambdaGateway {
    pub fn url(&self, path: &str) -> String {
        self.process.url(path)
    }
}

pub async fn gateway_on(fake: &FakeLambda, gateway_table: &str, rest: &str) -> LambdaGateway {
    let dir = tempfile::tempdir().unwrap();
    let stages = if rest.contains("[stages.") {
        String::new()
    } else {
        "[stages.dev]\nbackend = \"aws\"\nvariables = { alias = \"dev\", color = \"blue\" }\n"
            .to_string()
    };
    let config = format!(
        r#"[gateway]
{gateway_table}

{stages}

[backends.aws]
kind = "lambda"
endpoint_url = "{}"

{rest}
"#,
        fake.url()
    );
    let path = dir.path().join("routes.toml");
    std::fs::write(&path, config).unwrap();
    let process = spawn_binary(&path, &[], &aws_env(dir.path())).await;
    LambdaGateway { process, dir }
}
