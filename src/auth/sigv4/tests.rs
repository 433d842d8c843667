//! The SigV4 authorizer against AWS's published test case, `aws_sigv4`'s
//! own signer on generated requests (the fast path must agree with it),
//! tampered requests, and the signing-key cache.

use super::*;

use aws_sigv4::http_request::SignableBody;
use aws_sigv4::sign::v4;
use sha2::{Digest, Sha256};

use super::keys::SigningKeys;
use super::request::{split_ascii, strip_signing_params};
use cases::{Case, Payload, Rng, client_sign, generate, now_for};

mod cases;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TEMP_SECRET: &str = "temp/secret+0123456789abcdefghijklmnopqr";
const TEMP_TOKEN: &str = "FwoGZXIvYXdzEtemporary//session+token==";

/// AKIDEXAMPLE (the AWS test suite's key) and ASIATEMP, a key with a
/// session token. The same `Arc`s every time, as a real store keeps
/// them, so the signing-key cache is exercised.
struct TestKeys([Arc<AccessKey>; 2]);

impl TestKeys {
    fn new() -> Self {
        let key = |id: &str, secret: &str, token: Option<&str>| {
            Arc::new(AccessKey {
                session_token: token.map(str::to_string),
                ..AccessKey::new(id, secret, "123456789012")
            })
        };
        Self([
            key("AKIDEXAMPLE", SECRET, None),
            key("ASIATEMP", TEMP_SECRET, Some(TEMP_TOKEN)),
        ])
    }
}

impl AccessKeyStore for TestKeys {
    fn lookup(&self, id: &str) -> Option<Arc<AccessKey>> {
        self.0.iter().find(|k| k.access_key_id == id).cloned()
    }
}

fn authorizer() -> Sigv4Authorizer {
    Sigv4Authorizer::with_store(
        "iam",
        Some("service"),
        "us-east-1",
        Arc::new(TestKeys::new()),
    )
}

#[test]
fn empty_payload_hash_is_sha256_of_nothing() {
    assert_eq!(EMPTY_SHA256, hex::encode(Sha256::digest(b"")));
}

/// AWS's published SigV4 test-suite case `get-vanilla`.
#[test]
fn aws_test_suite_get_vanilla_verifies() {
    let req = axum::http::Request::builder()
        .method("GET")
        .uri("/")
        .header("host", "example.amazonaws.com")
        .header("x-amz-date", "20150830T123600Z")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        )
        .body(())
        .unwrap();
    let (parts, ()) = req.into_parts();
    let now = parse_amz_date("20150830T123700Z").unwrap();
    let a = authorizer();
    let (_, how) = a.verify_how(&parts, b"", "service", now).unwrap();
    assert_eq!(how, Verified::FastPath);
    // Six minutes later it is a replay.
    let late = parse_amz_date("20150830T124200Z").unwrap();
    let refused = a.verify_at(&parts, b"", "service", late).err().unwrap();
    assert_eq!(refused.error_type(), "InvalidSignatureException");
    assert_eq!(
        refused.message(),
        "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z (20150830T124200Z - 5 min.)"
    );
    // Signed for another service.
    let refused = a.verify_at(&parts, b"", "lambda", now).err().unwrap();
    assert_eq!(
        refused.message(),
        "Credential should be scoped to correct service: 'lambda'. "
    );
    // Another body under a declared hash is refused.
    let mut parts2 = parts.clone();
    parts2.headers.insert(
        "x-amz-content-sha256",
        hex::encode(Sha256::digest(b"")).parse().unwrap(),
    );
    assert!(a.verify_at(&parts2, b"changed", "service", now).is_err());
}

#[test]
fn amz_dates_parse_as_the_time_crate_parses_them() {
    let reference = |s: &str| {
        time::PrimitiveDateTime::parse(
            s,
            time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
        )
        .ok()
        .map(|t| SystemTime::from(t.assume_utc()))
    };
    for s in [
        "20150830T123600Z",
        "00010101T000000Z",
        "99991231T235959Z",
        "20240229T120000Z",
        "20230229T120000Z",
        "20151301T000000Z",
        "20150001T000000Z",
        "20150132T000000Z",
        "20150431T000000Z",
        "20150830T240000Z",
        "20150830T126000Z",
        "20150830T123660Z",
        "20150830T123600",
        "20150830 123600Z",
        "2015083T123600Z",
        "+2015083T123600Z",
        "2015-08-30T12:36:00Z",
        "20150830t123600z",
        "",
    ] {
        assert_eq!(parse_amz_date(s), reference(s), "{s}");
    }
}

#[test]
fn signatures_compare_whole() {
    let sig = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
    assert!(signatures_equal(sig, sig));
    for i in 0..sig.len() {
        let mut other = sig.as_bytes().to_vec();
        other[i] ^= 1;
        assert!(!signatures_equal(sig, std::str::from_utf8(&other).unwrap()));
    }
    assert!(!signatures_equal(sig, &sig[..63]));
    assert!(!signatures_equal(sig, ""));
    assert!(signatures_equal("abc", "abc"));
    assert!(!signatures_equal("abc", "abd"));
    assert_eq!(
        split_ascii("a/b//c/", b'/').collect::<Vec<_>>(),
        ["a", "b", "", "c", ""]
    );
    assert_eq!(split_ascii("", b'/').collect::<Vec<_>>(), [""]);
}

#[test]
fn presign_params_are_stripped_in_original_encoding() {
    assert_eq!(
        strip_signing_params("a=1%2F2&X-Amz-Signature=ab&X-Amz-Date=x&b=c"),
        "a=1%2F2&b=c"
    );
}

/// The fast path against `aws_sigv4::sign` on thousands of generated
/// requests: wherever it computes a signature it is the client's, and
/// it declines only what it should (invalid UTF-8 in the query).
#[test]
fn fast_path_matches_aws_sigv4_on_generated_requests() {
    let a = authorizer();
    let mut rng = Rng(0x5167_7634);
    let (mut handled, mut declined) = (0, 0);
    for i in 0..4000 {
        let case = generate(&mut rng);
        let (parts, signature) = client_sign(&case);
        let fast = a.fast_path_signature_of(&parts, &case.body, case.service);
        match &fast {
            Some(computed) => {
                assert_eq!(computed, &signature, "case {i}: {case:?}");
                handled += 1;
            }
            None => declined += 1,
        }
        assert_eq!(fast.is_none(), case.declinable, "case {i}: {case:?}");
        let (_, how) = a
            .verify_how(&parts, &case.body, case.service, now_for(&case))
            .unwrap_or_else(|r| panic!("case {i} refused ({}): {case:?}", r.reason()));
        let expected = if fast.is_some() {
            Verified::FastPath
        } else {
            Verified::Crate
        };
        assert_eq!(how, expected, "case {i}: {case:?}");
    }
    assert!(handled >= 3000, "handled {handled}, declined {declined}");
    assert!(declined > 0, "no declinable case generated");
}

/// A query of thousands of parameters (the reused buffers grow, and
/// are given back after).
#[test]
fn a_long_query_verifies_through_the_fast_path() {
    let a = authorizer();
    let query: Vec<String> = (0..3000)
        .map(|i| format!("k{}=v%20{i}", 3000 - i))
        .collect();
    let case = Case::get(format!("/items?{}", query.join("&")));
    for _ in 0..2 {
        let (parts, signature) = client_sign(&case);
        assert_eq!(
            a.fast_path_signature_of(&parts, b"", "service"),
            Some(signature)
        );
    }
}

/// Which part of a signed request a test changes afterwards.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    Method,
    Path,
    Query,
    SignedHeader,
    Body,
}

fn tampered(case: &Case, parts: &Parts, how: Tamper) -> (Parts, Vec<u8>) {
    let mut parts = parts.clone();
    let mut body = case.body.clone();
    let (path, query) = match case.uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (case.uri.as_str(), None),
    };
    let with_uri = |parts: &mut Parts, uri: String| parts.uri = uri.parse().unwrap();
    match how {
        Tamper::Method => {
            parts.method = if parts.method == "GET" { "POST" } else { "GET" }
                .parse()
                .unwrap();
        }
        Tamper::Path => with_uri(
            &mut parts,
            format!(
                "{path}x{}",
                query.map(|q| format!("?{q}")).unwrap_or_default()
            ),
        ),
        Tamper::Query => with_uri(
            &mut parts,
            format!("{path}?{}&tampered=1", query.unwrap_or_default()),
        ),
        Tamper::SignedHeader => {
            let host = parts.headers.get("host").unwrap().to_str().unwrap();
            let changed = format!("{host}x").parse().unwrap();
            parts.headers.insert("host", changed);
        }
        Tamper::Body => body.push(b'x'),
    }
    (parts, body)
}

#[test]
fn requests_changed_after_signing_are_refused() {
    let a = authorizer();
    let mut rng = Rng(0x7a3b);
    let mut checked = 0;
    while checked < 300 {
        let case = generate(&mut rng);
        if case.declinable {
            continue;
        }
        checked += 1;
        let (parts, _) = client_sign(&case);
        let now = now_for(&case);
        let (_, how) = a.verify_how(&parts, &case.body, case.service, now).unwrap();
        assert_eq!(how, Verified::FastPath, "{case:?}");
        for t in [
            Tamper::Method,
            Tamper::Path,
            Tamper::Query,
            Tamper::SignedHeader,
            Tamper::Body,
        ] {
            let (parts, body) = tampered(&case, &parts, t);
            let result = a.verify_at(&parts, &body, case.service, now);
            if matches!(t, Tamper::Body) && case.payload == Payload::Unsigned {
                // UNSIGNED-PAYLOAD: the body is not part of the signature.
                assert!(result.is_ok(), "{case:?}");
                continue;
            }
            let refused = result
                .err()
                .unwrap_or_else(|| panic!("{t:?} accepted: {case:?}"));
            assert_eq!(
                refused.error_type(),
                "InvalidSignatureException",
                "{t:?}: {case:?}"
            );
        }
        // A header the client did not sign may change.
        let mut parts = parts;
        parts
            .headers
            .insert("x-unsigned", "changed".parse().unwrap());
        assert!(a.verify_at(&parts, &case.body, case.service, now).is_ok());
    }
}

/// What the fast path declines, `sign()` still decides: here a
/// `SignedHeaders` list out of order, which the crate sorts.
#[test]
fn a_request_the_fast_path_declines_is_decided_by_sign() {
    let a = authorizer();
    let case = Case::get("/items/1?b=2&a=1".into());
    let (mut parts, _) = client_sign(&case);
    let auth = parts.headers["authorization"].to_str().unwrap();
    let reordered = auth.replace(
        "SignedHeaders=host;x-amz-date",
        "SignedHeaders=x-amz-date;host",
    );
    assert_ne!(auth, reordered);
    parts
        .headers
        .insert("authorization", reordered.parse().unwrap());
    assert_eq!(a.fast_path_signature_of(&parts, b"", "service"), None);
    let (_, how) = a
        .verify_how(&parts, b"", "service", now_for(&case))
        .unwrap();
    assert_eq!(how, Verified::Crate);
    // And refused by it when the request was changed.
    parts.uri = "/items/2?b=2&a=1".parse().unwrap();
    assert!(a.verify_at(&parts, b"", "service", now_for(&case)).is_err());
}

#[test]
fn signing_keys_are_cached_per_day_region_and_service() {
    let keys = SigningKeys::default();
    let day1 = parse_amz_date("20150830T123600Z").unwrap();
    let day2 = parse_amz_date("20150831T000001Z").unwrap();
    let derive =
        |t, r, s| <[u8; 32]>::try_from(v4::generate_signing_key(SECRET, t, r, s).as_ref()).unwrap();
    for _ in 0..3 {
        for (date, t) in [("20150830T123600Z", day1), ("20150831T000001Z", day2)] {
            for service in ["service", "lambda", "execute-api"] {
                let got = keys.get(SECRET, date, t, "us-east-1", service).unwrap();
                assert_eq!(got, derive(t, "us-east-1", service));
            }
        }
    }
}

/// The authorizer as a route's auth phase, with a terminal `Next`: a
/// request signed now goes on (a GET decided at once, a POST once its body
/// is read) with the caller's IAM identity; a tampered one is refused
/// before the function.
#[tokio::test]
async fn the_auth_phase_admits_signed_requests_and_refuses_tampered_ones() {
    use crate::auth::{AuthContext, Authenticate, Authorizer, RouteAuth};
    use crate::pipeline::phase::{Next, Phase, answer};
    use axum::body::Body;
    use axum::extract::Request;
    let phase = Arc::new(Authenticate {
        auth: RouteAuth {
            name: "iam".into(),
            authorizer: Arc::new(Authorizer::Sigv4(authorizer())),
            scopes: vec![],
        },
        route_key: "ANY /items".into(),
        max_body: 1024,
    });
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    // Answers with the access key the auth phase found.
    let next = Next::terminal(move |req: Request| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let key = req
            .extensions()
            .get::<AuthContext>()
            .and_then(|a| a.iam())
            .map(|i| i.access_key.clone())
            .unwrap_or_default();
        answer(axum::response::Response::new(Body::from(key)))
    });
    let mut get = Case::get("/items".into());
    get.time = SystemTime::now();
    let mut post = Case::get("/items".into());
    post.method = "POST";
    post.body = br#"{"a":1}"#.to_vec();
    post.time = SystemTime::now();
    for case in [&get, &post] {
        let (parts, _) = client_sign(case);
        let req = Request::from_parts(parts, Body::from(case.body.clone()));
        let res = phase.clone().call(req, next.clone()).await;
        assert_eq!(res.status(), 200, "{case:?}");
        let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"AKIDEXAMPLE");
    }
    // The same POST with another body: the signature no longer matches.
    let (parts, _) = client_sign(&post);
    let req = Request::from_parts(parts, Body::from(r#"{"a":2}"#));
    let res = phase.clone().call(req, next.clone()).await;
    assert_eq!(res.status(), 403);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}
