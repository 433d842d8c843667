//! The invoker against aws-sdk-lambda, the reference: for generated
//! invocations (function names, ARNs, qualifiers, payload sizes, session
//! tokens, log tails, client contexts) the SDK's request is captured on a
//! socket, and the invoker's request for the same call at the same time
//! must have the same target, body and headers (but the SDK's telemetry
//! headers) and the same signature over them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const ACCESS: &str = "AKIDINVOKERTEST00001";
const SECRET: &str = "invoker-test-secret/0123456789abcdefghijk";

/// Headers the SDK adds for its own telemetry; the invoker does not send them.
const SDK_ONLY: [&str; 4] = [
    "x-amz-user-agent",
    "user-agent",
    "amz-sdk-invocation-id",
    "amz-sdk-request",
];

#[derive(Debug)]
struct Captured {
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Captured {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Accepts one connection, reads one request, answers `200 {}`.
async fn capture_one(listener: TcpListener) -> Captured {
    let (mut sock, _) = listener.accept().await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the client closed before a whole request");
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(len) = req.parse(&buf).unwrap() {
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8(h.value.to_vec()).unwrap(),
                    )
                })
                .collect();
            let target = req.path.unwrap().to_string();
            let want: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            if buf.len() >= len + want {
                let body = buf[len..len + want].to_vec();
                sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-amz-executed-version: $LATEST\r\n\r\n{}")
                    .await
                    .unwrap();
                return Captured {
                    target,
                    headers,
                    body,
                };
            }
        }
    }
}

#[derive(Debug)]
struct FixedTime(SystemTime);

impl aws_smithy_async::time::TimeSource for FixedTime {
    fn now(&self) -> SystemTime {
        self.0
    }
}

struct Case {
    function: String,
    qualifier: Option<String>,
    payload: Vec<u8>,
    token: Option<String>,
    log_tail: bool,
    client_context: Option<String>,
}

fn cases() -> Vec<Case> {
    let functions = [
        "hello",
        "my-function_v2",
        "arn:aws:lambda:eu-west-1:123456789012:function:orders",
        "arn:aws:lambda:eu-west-1:123456789012:function:orders:live",
        "123456789012:function:partial",
        "ünïcode-näme",
    ];
    let qualifiers = [None, Some("$LATEST"), Some("live"), Some("7")];
    let sizes = [0usize, 1, 1000, 70_000];
    let mut out = Vec::new();
    let mut n = 0usize;
    for f in functions {
        for q in qualifiers {
            for size in sizes {
                n += 1;
                out.push(Case {
                    function: f.to_string(),
                    qualifier: q.map(str::to_string),
                    payload: (0..size)
                        .map(|i| b"{\"k\": [1,2]} "[(i + n) % 13])
                        .collect(),
                    token: (n.is_multiple_of(3)).then(|| format!("session/token+{n}==")),
                    log_tail: n.is_multiple_of(2),
                    // Inner runs of spaces are collapsed when signed.
                    client_context: n.is_multiple_of(5).then(|| {
                        let cc = if n.is_multiple_of(10) {
                            "eyJj  dXN0b20i   Ont9fQ=="
                        } else {
                            "eyJjdXN0b20iOnt9fQ=="
                        };
                        cc.to_string()
                    }),
                });
            }
        }
    }
    out
}

fn credentials(token: Option<&str>) -> Credentials {
    Credentials::new(ACCESS, SECRET, token.map(str::to_string), None, "test")
}

async fn sdk_request(case: &Case, time: SystemTime) -> Captured {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(capture_one(listener));
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(credentials(case.token.as_deref()))
        .endpoint_url(&endpoint)
        .time_source(FixedTime(time))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let client = aws_sdk_lambda::Client::from_conf(conf);
    let mut op = client
        .invoke()
        .function_name(&case.function)
        .invocation_type(aws_sdk_lambda::types::InvocationType::RequestResponse)
        .payload(aws_sdk_lambda::primitives::Blob::new(case.payload.clone()));
    if let Some(q) = &case.qualifier {
        op = op.qualifier(q);
    }
    if case.log_tail {
        op = op.log_type(aws_sdk_lambda::types::LogType::Tail);
    }
    if let Some(cc) = &case.client_context {
        op = op.client_context(cc);
    }
    op.send().await.expect("the SDK's call goes through");
    server.await.unwrap()
}

fn invoker_request(case: &Case, endpoint: &str, time: SystemTime) -> Captured {
    let invoker = Invoker::new(endpoint, "eu-west-1", None).unwrap();
    let call = Call {
        function: &case.function,
        qualifier: case.qualifier.as_deref(),
        payload: Bytes::from(case.payload.clone()),
        log_tail: case.log_tail,
        client_context: case.client_context.as_deref(),
    };
    let req = invoker
        .request(&call, &credentials(case.token.as_deref()), time)
        .unwrap();
    // `host` is the HTTP client's to send (from the URI), not a header of
    // the request.
    assert!(!req.headers().contains_key("host"));
    let host = req.uri().authority().unwrap().to_string();
    let mut headers = vec![("host".to_string(), host)];
    headers.extend(
        req.headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string())),
    );
    Captured {
        target: req.uri().path_and_query().unwrap().to_string(),
        headers,
        body: case.payload.clone(),
    }
}

/// The `Authorization` value for `captured`, signed over only `names`.
fn resign(captured: &Captured, names: &[&str], token: Option<&str>, time: SystemTime) -> String {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(&captured.target);
    for (k, v) in &captured.headers {
        if names.contains(&k.as_str())
            && !matches!(k.as_str(), "host" | "x-amz-date" | "x-amz-security-token")
        {
            req = req.header(k, v);
        }
    }
    let mut req = req.body(()).unwrap();
    sign(
        &mut req,
        captured.header("host").unwrap(),
        &captured.body,
        &credentials(token),
        "eu-west-1",
        time,
    )
    .unwrap();
    req.headers()["authorization"].to_str().unwrap().to_string()
}

fn signed_headers(authorization: &str) -> Vec<&str> {
    authorization
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap()
        .split(';')
        .collect()
}

#[tokio::test]
async fn the_invokers_requests_are_the_sdks_with_the_same_signatures() {
    let time = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
    let all = cases();
    assert!(all.len() >= 90);
    for case in &all {
        let sdk = sdk_request(case, time).await;
        let endpoint = format!("http://{}", sdk.header("host").unwrap());
        let ours = invoker_request(case, &endpoint, time);
        let what = format!(
            "{} {:?} {} bytes",
            case.function,
            case.qualifier,
            case.payload.len()
        );
        assert_eq!(ours.target, sdk.target, "{what}");
        assert_eq!(ours.body, sdk.body, "{what}");
        for (name, value) in &ours.headers {
            if name != "authorization" {
                assert_eq!(
                    sdk.header(name),
                    Some(value.as_str()),
                    "{what}: header {name}"
                );
            }
        }
        for (name, _) in &sdk.headers {
            assert!(
                ours.header(name).is_some()
                    || SDK_ONLY.contains(&name.as_str())
                    || name == "authorization",
                "{what}: the SDK sends {name}, the invoker does not"
            );
        }
        let sdk_auth = sdk.header("authorization").unwrap();
        let our_auth = ours.header("authorization").unwrap();
        let sdk_signed = signed_headers(sdk_auth);
        // The capture is read right: re-signing it gives the SDK's own signature.
        assert_eq!(
            resign(&sdk, &sdk_signed, case.token.as_deref(), time),
            sdk_auth,
            "{what}"
        );
        // The same request less the SDK's telemetry headers is the invoker's, signature and all.
        let shared: Vec<&str> = sdk_signed
            .iter()
            .copied()
            .filter(|h| !SDK_ONLY.contains(h))
            .collect();
        assert_eq!(signed_headers(our_auth), shared, "{what}");
        assert_eq!(
            resign(&sdk, &shared, case.token.as_deref(), time),
            our_auth,
            "{what}"
        );
    }
}

#[test]
fn the_signed_host_is_the_one_the_http_client_sends() {
    let host = |url| Invoker::new(url, "us-east-1", None).unwrap().host;
    assert_eq!(
        host("https://lambda.us-east-1.amazonaws.com"),
        "lambda.us-east-1.amazonaws.com"
    );
    assert_eq!(
        host("https://lambda.us-east-1.amazonaws.com:443/"),
        "lambda.us-east-1.amazonaws.com"
    );
    assert_eq!(host("http://localhost:80"), "localhost");
    assert_eq!(host("http://127.0.0.1:4566"), "127.0.0.1:4566");
    assert_eq!(host("https://localhost:8443"), "localhost:8443");
}

#[test]
fn targets_encode_names_and_qualifiers_as_the_sdk() {
    assert_eq!(
        invoke_target("arn:aws:lambda:us-east-1:1:function:f", Some("$LATEST")),
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af/invocations?Qualifier=%24LATEST"
    );
    assert_eq!(
        invoke_target("a b/c", None),
        "/2015-03-31/functions/a%20b%2Fc/invocations"
    );
}

#[tokio::test]
async fn credentials_are_cached_and_refreshed_before_they_expire() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let fetched = Arc::new(AtomicUsize::new(0));
    let counter = fetched.clone();
    // Each fetch hands out credentials expiring `lifetime` from now.
    let lifetime = Arc::new(std::sync::Mutex::new(Duration::from_secs(3600)));
    let life = lifetime.clone();
    let chain = aws_credential_types::credential_fn::provide_credentials_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let expires = SystemTime::now() + *life.lock().unwrap();
        async move {
            Ok(Credentials::new(
                ACCESS,
                SECRET,
                Some(format!("t{n}")),
                Some(expires),
                "fn",
            ))
        }
    });
    let cache = CredentialCache::new(Some(SharedCredentialsProvider::new(chain)));
    let first = cache.get().await.unwrap();
    let again = cache.get().await.unwrap();
    assert_eq!(fetched.load(Ordering::SeqCst), 1, "cached");
    assert_eq!(first.session_token(), again.session_token());
    // Credentials within five minutes of expiry are renewed before use.
    *lifetime.lock().unwrap() = Duration::from_secs(60);
    cache.current.store(Some(Arc::new(Credentials::new(
        ACCESS,
        SECRET,
        Some("old".into()),
        Some(SystemTime::now() + Duration::from_secs(120)),
        "fn",
    ))));
    let renewed = cache.get().await.unwrap();
    assert_eq!(fetched.load(Ordering::SeqCst), 2);
    assert_eq!(renewed.session_token(), Some("t1"));
}

#[tokio::test]
async fn without_credentials_the_call_fails_with_why() {
    let invoker = Invoker::new("http://127.0.0.1:9", "us-east-1", None).unwrap();
    let call = Call {
        function: "f",
        qualifier: None,
        payload: Bytes::new(),
        log_tail: false,
        client_context: None,
    };
    match invoker.invoke(&call).await {
        Err(CallError::Credentials(m)) => assert!(m.contains("no AWS credentials"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
}

/// The reference signer: aws-sigv4 over the request's headers and `host`,
/// as the SDK signs.
fn sign<B>(
    request: &mut Request<B>,
    host: &str,
    payload: &[u8],
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<(), String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("lambda")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign: {e}"))?
        .into();
    let headers = std::iter::once(("host", host)).chain(
        request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
    );
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let signable = SignableRequest::new(
        request.method().as_str(),
        &target,
        headers,
        SignableBody::Bytes(payload),
    )
    .map_err(|e| format!("cannot sign: {e}"))?;
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
        .map_err(|e| format!("cannot sign: {e}"))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

#[test]
fn the_signing_key_is_derived_once_per_day_and_credentials() {
    let keys = SigningKeys::default();
    let day1 = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
    let later = day1 + Duration::from_secs(3600);
    let next_day = day1 + Duration::from_secs(86_400);
    let a = credentials(None);
    let k1 = keys.get(&a, "20261123", day1, "eu-west-1");
    let k2 = keys.get(&a, "20261123", later, "eu-west-1");
    assert!(
        Arc::ptr_eq(&k1, &k2),
        "same day, same credentials: the same key"
    );
    let k3 = keys.get(&a, "20261124", next_day, "eu-west-1");
    assert!(!Arc::ptr_eq(&k1, &k3));
    assert_ne!(&*k1, &*k3);
    let rotated = Credentials::new(ACCESS, "another-secret", None, None, "test");
    let k4 = keys.get(&rotated, "20261124", next_day, "eu-west-1");
    assert_ne!(&*k3, &*k4, "a renewed secret gets its own key");
    let expected = aws_sigv4::sign::v4::generate_signing_key(
        "another-secret",
        next_day,
        "eu-west-1",
        "lambda",
    );
    assert_eq!(&*k4, expected.as_ref());
}

#[test]
fn header_values_are_canonicalised_as_sigv4_asks() {
    let canon = |v: &str| {
        let mut out = String::new();
        push_canonical_value(&mut out, v);
        out
    };
    assert_eq!(canon("  a   b  c "), "a b c");
    assert_eq!(canon("plain"), "plain");
    assert_eq!(canon("\ttab\t"), "\ttab\t", "only spaces are trimmed");
    assert_eq!(canon(""), "");
}
