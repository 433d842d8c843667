//! The SigV4 authorizer's cost per request, for the request
//! `bench/authorizers.sh` signs (a botocore-style GET with `host`,
//! `x-amz-date` and `x-amz-content-sha256` signed). Four lines:
//!
//! 1. one `aws_sigv4::sign` call: what the authorizer paid per request
//!    before the fast path, and still pays for presigned URLs and for
//!    whatever the fast path does not accept;
//! 2. the same signature computed from a cached signing key with the
//!    crate's public pieces (`generate_signing_key` once,
//!    `calculate_signature` per call over a prebuilt string to sign), i.e.
//!    the HMAC that remains when canonicalisation and key derivation are
//!    taken away;
//! 3. the authorizer's fast path alone on the signed request (its
//!    `Authorization` parsed, canonical request, SHA-256, string to sign,
//!    cached key, `calculate_signature`), none of verify()'s checks;
//! 4. the authorizer's whole check of that request (`verify`: parsing,
//!    scope, time, key lookup, payload hash, the fast path, the
//!    constant-time compare).
//!
//! Run: `cargo bench --bench sigv4_sign` (or `bench/authorizers.sh`'s
//! notes in BENCHMARKS.md). Blocks of the four alternate so machine noise
//! hits them alike; medians of the blocks are printed.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use lambdagate::auth::sigv4::{AccessKey, AccessKeyStore, Sigv4Authorizer};

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn main() {
    let identity: Identity = Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        None,
        None,
        "bench",
    )
    .into();
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    let settings = SigningSettings::default();
    let params: aws_sigv4::http_request::SigningParams<'_> = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("execute-api")
        .time(time)
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let headers = [
        ("host", "127.0.0.1:8080"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", "20261109T083320Z"),
    ];
    let crate_sign = || {
        let req = SignableRequest::new(
            "GET",
            "/iam",
            headers.iter().copied(),
            SignableBody::Precomputed(EMPTY_SHA256.to_string()),
        )
        .expect("signable");
        let out = sign(req, &params).expect("sign");
        black_box(out.signature().len())
    };

    let key = v4::generate_signing_key(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        time,
        "us-east-1",
        "execute-api",
    );
    let string_to_sign = "AWS4-HMAC-SHA256\n20261109T083320Z\n20261109/us-east-1/execute-api/aws4_request\n\
                          5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
    let hmac_only = || black_box(v4::calculate_signature(&key, string_to_sign.as_bytes()).len());

    // The same request as the gateway receives it, signed by the crate.
    let signed = sign(
        SignableRequest::new(
            "GET",
            "/iam",
            headers.iter().copied(),
            SignableBody::Precomputed(EMPTY_SHA256.to_string()),
        )
        .expect("signable"),
        &params,
    )
    .expect("sign");
    let mut request = axum::http::Request::builder().method("GET").uri("/iam");
    // The signer writes x-amz-date (its time, not the list's) itself.
    let unsigned_date = headers.iter().copied().filter(|(k, _)| *k != "x-amz-date");
    for (k, v) in unsigned_date.chain(signed.output().headers()) {
        request = request.header(k, v);
    }
    let (parts, ()) = request.body(()).expect("request").into_parts();
    let authorizer = authorizer();
    let now = time + Duration::from_secs(1);
    assert_eq!(
        authorizer
            .fast_path_signature_of(&parts, b"", "execute-api")
            .as_deref(),
        Some(signed.signature()),
        "the fast path computes the crate's signature"
    );
    assert!(
        authorizer
            .verify_at(&parts, b"", "execute-api", now)
            .is_ok()
    );
    let fast_path = || {
        black_box(
            authorizer
                .fast_path_signature_of(black_box(&parts), b"", "execute-api")
                .map(|s| s.len()),
        )
    };
    let verify = || {
        black_box(
            authorizer
                .verify_at(black_box(&parts), b"", "execute-api", now)
                .is_ok(),
        )
    };

    // `cargo bench` passes `--bench`; under `cargo test --all-targets` (a
    // debug build, in CI) the checks above ran and a few calls of each
    // keep the timing code exercised without minutes of unoptimised work.
    let full = std::env::args().any(|a| a == "--bench");
    let (per_block, blocks) = if full { (20_000, 15) } else { (20, 3) };
    if !full {
        println!("smoke run (cargo test): numbers need `cargo bench --bench sigv4_sign`");
    }
    let per_call = |f: &dyn Fn()| {
        let t = Instant::now();
        for _ in 0..per_block {
            f();
        }
        t.elapsed().as_nanos() as f64 / f64::from(per_block)
    };
    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..blocks {
        a.push(per_call(&|| {
            crate_sign();
        }));
        b.push(per_call(&|| {
            hmac_only();
        }));
        c.push(per_call(&|| {
            fast_path();
        }));
        d.push(per_call(&|| {
            verify();
        }));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "aws_sigv4::sign, one call: {:.0} ns (median of {} blocks of {per_block})",
        median(&mut a),
        a.len()
    );
    println!(
        "calculate_signature over a prebuilt string to sign with a cached key: {:.0} ns",
        median(&mut b)
    );
    println!(
        "the authorizer's fast path alone (canonical request, SHA-256, cached key, calculate_signature): {:.0} ns",
        median(&mut c)
    );
    println!(
        "the authorizer's whole verify() of the request, accepted by the fast path: {:.0} ns",
        median(&mut d)
    );
}

/// One key, kept as a store keeps it (its signing-key cache lives on).
struct OneKey(Arc<AccessKey>);

impl AccessKeyStore for OneKey {
    fn lookup(&self, id: &str) -> Option<Arc<AccessKey>> {
        (id == self.0.access_key_id).then(|| self.0.clone())
    }
}

fn authorizer() -> Sigv4Authorizer {
    let key = AccessKey::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "123456789012",
    );
    Sigv4Authorizer::with_store("iam", None, "us-east-1", Arc::new(OneKey(Arc::new(key))))
}
