//! The `lambda` backend against a service speaking the Invoke API over a
//! socket: SigV4-signed by the SDK, qualifiers from stage variables, Lambda
//! errors mapped as API Gateway maps them, throttles never retried.

use std::time::Duration;

use serde_json::json;

use crate::common::client;
use std::collections::HashMap;

use crate::common::fake_lambda::{
    ACCESS_KEY, FakeLambda, Reply, aws_env, gateway_on, verify_sigv4,
};
use crate::common::spawn_binary;

const HELLO: &str = r#"
[functions.hello]
name = "hello:${stageVariables.alias}"

[[routes]]
method = "GET"
path = "/items/{id}"
function = "hello"
"#;

#[tokio::test]
async fn invokes_with_a_valid_sigv4_signature_and_the_stage_qualifier() {
    let fake = FakeLambda::start(|_| {
        Reply::json(
            json!({"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "hi"}),
        )
    })
    .await;
    let gw = gateway_on(&fake, "", HELLO).await;
    let res = client().get(gw.url("/items/7")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hi");
    let call = fake.last();
    assert_eq!(call.function, "hello");
    assert_eq!(call.qualifier.as_deref(), Some("dev"));
    let auth = call.headers["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")),
        "{auth}"
    );
    assert!(auth.contains("/us-east-1/lambda/aws4_request"), "{auth}");
    assert!(
        call.signature_valid,
        "the signature must verify with the shared secret"
    );
    // The check is real: the same signature does not cover another body.
    assert!(!verify_sigv4(
        &axum::http::Method::POST,
        &call.uri,
        &call.headers,
        b"{\"tampered\":true}"
    ));
}

#[tokio::test]
async fn throttled_function_is_429_and_not_retried() {
    let fake = FakeLambda::start(|_| Reply {
        status: 429,
        error_type: Some("TooManyRequestsException".into()),
        ..Reply::json(json!({"Type": "User", "message": "Rate Exceeded.", "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}))
    })
    .await;
    let gw = gateway_on(&fake, "", HELLO).await;
    let res = client().get(gw.url("/items/1")).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"message":"Too Many Requests"}"#
    );
    assert_eq!(fake.calls().len(), 1, "a throttle is never retried blindly");
}

#[tokio::test]
async fn missing_function_is_502_and_logged() {
    let fake = FakeLambda::start(|inv| Reply {
        status: 404,
        error_type: Some("ResourceNotFoundException".into()),
        ..Reply::json(
            json!({"Type": "User", "Message": format!("Function not found: {}", inv.function)}),
        )
    })
    .await;
    let gw = gateway_on(&fake, "", HELLO).await;
    let res = client().get(gw.url("/items/1")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"message":"Internal server error"}"#
    );
    let logged = || {
        gw.process
            .stderr_lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("does not exist") && l.contains("hello"))
    };
    for _ in 0..100 {
        if logged() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(logged(), "a log line names the missing function");
}

#[tokio::test]
async fn function_error_is_502_never_200() {
    let fake = FakeLambda::start(|_| Reply {
        function_error: Some("Unhandled".into()),
        ..Reply::json(json!({"errorMessage": "boom", "errorType": "Error"}))
    })
    .await;
    let gw = gateway_on(&fake, "flavor = \"rest\"", HELLO).await;
    let res = client().get(gw.url("/items/1")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(
        res.headers()["x-amzn-errortype"],
        "InternalServerErrorException"
    );
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"message":"Internal server error"}"#
    );
}

#[tokio::test]
async fn slow_function_is_504() {
    let fake = FakeLambda::start(|_| Reply {
        delay: Duration::from_secs(5),
        ..Reply::json(json!({"statusCode": 200}))
    })
    .await;
    let routes = r#"
[functions.hello]

[[routes]]
method = "GET"
path = "/slow"
function = "hello"
timeout = "300ms"
"#;
    let gw = gateway_on(&fake, "", routes).await;
    let started = std::time::Instant::now();
    let res = client().get(gw.url("/slow")).send().await.unwrap();
    assert_eq!(res.status(), 504);
    assert_eq!(
        res.text().await.unwrap(),
        r#"{"message":"Endpoint request timed out"}"#
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_function_timeout_in_the_routes_file_bounds_the_invocation() {
    let fake = FakeLambda::start(|_| Reply {
        delay: Duration::from_secs(5),
        ..Reply::json(json!({"statusCode": 200}))
    })
    .await;
    let routes = r#"
[functions.hello]
timeout = "300ms"

[[routes]]
method = "GET"
path = "/slow"
function = "hello"
"#;
    let gw = gateway_on(&fake, "", routes).await;
    let started = std::time::Instant::now();
    let res = client().get(gw.url("/slow")).send().await.unwrap();
    assert_eq!(res.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_six_megabyte_response_comes_through_whole() {
    let body = "x".repeat(6_000_000);
    let reply = body.clone();
    let fake = FakeLambda::start(move |_| {
        Reply::json(
            json!({"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": reply}),
        )
    })
    .await;
    let gw = gateway_on(&fake, "", HELLO).await;
    let res = client().get(gw.url("/items/1")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), body);
}

#[tokio::test]
async fn an_endpoint_that_resets_the_connection_is_502() {
    // Reads each request, then closes without an answer (RST: unread data).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 16];
                let _ = sock.read(&mut buf).await;
                drop(sock);
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(
        &path,
        format!(
            "[stages.dev]\nbackend = \"aws\"\nvariables = {{ alias = \"dev\" }}\n\n[backends.aws]\nkind = \"lambda\"\nendpoint_url = \"http://{addr}\"\n{HELLO}"
        ),
    )
    .unwrap();
    let gw = spawn_binary(&path, &[], &aws_env(dir.path())).await;
    for _ in 0..3 {
        let res = client().get(gw.url("/items/1")).send().await.unwrap();
        assert_eq!(res.status(), 502);
        assert_eq!(
            res.text().await.unwrap(),
            r#"{"message":"Internal server error"}"#
        );
    }
}

#[tokio::test]
async fn invokes_an_https_endpoint_trusted_through_ssl_cert_file() {
    // The endpoint: a gateway serving TLS whose mock route answers the
    // Invoke API's path with a proxy response.
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let endpoint_routes = dir.path().join("endpoint.toml");
    std::fs::write(
        &endpoint_routes,
        r#"[gateway]
tls = { cert = "cert.pem", key = "key.pem" }

[[routes]]
method = "POST"
path = "/2015-03-31/functions/{name}/invocations"
mock = { status = 200, body = '{"statusCode":200,"body":"over tls"}' }
"#,
    )
    .unwrap();
    let endpoint = spawn_binary(&endpoint_routes, &[], &HashMap::new()).await;
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        format!(
            "[stages.dev]\nbackend = \"aws\"\nvariables = {{ alias = \"dev\" }}\n\n[backends.aws]\nkind = \"lambda\"\nendpoint_url = \"https://localhost:{}\"\n{HELLO}",
            endpoint.addr.port()
        ),
    )
    .unwrap();
    let mut env = aws_env(dir.path());
    env.insert(
        "SSL_CERT_FILE".into(),
        dir.path().join("cert.pem").display().to_string(),
    );
    let gw = spawn_binary(&routes, &[], &env).await;
    let res = client().get(gw.url("/items/1")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "over tls");
    // Without the CA the same endpoint is refused.
    let untrusted = spawn_binary(&routes, &[], &aws_env(dir.path())).await;
    let res = client()
        .get(untrusted.url("/items/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
}
