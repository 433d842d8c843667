//! The floor under the SigV4 authorizer: what one `aws_sigv4::sign` call
//! costs on this machine, for the request `bench/authorizers.sh` signs (a
//! botocore-style GET with `host`, `x-amz-date` and
//! `x-amz-content-sha256` signed). The authorizer recomputes the signature
//! with the crate for every request, so no SigV4 route can cost less than
//! this on top of the same route without auth. Printed beside it: the
//! same signature computed from a cached signing key with the crate's
//! public pieces (`generate_signing_key` once, `calculate_signature` per
//! call over a prebuilt string to sign), i.e. the HMAC that remains when
//! canonicalisation and key derivation are taken away.
//!
//! Run: `cargo bench --bench sigv4_sign` (or `bench/authorizers.sh`'s
//! notes in BENCHMARKS.md). Blocks of the two alternate so machine noise
//! hits both alike; medians of the blocks are printed.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

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

    const PER_BLOCK: u32 = 20_000;
    let mut a = Vec::new();
    let mut b = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        for _ in 0..PER_BLOCK {
            crate_sign();
        }
        a.push(t.elapsed().as_nanos() as f64 / f64::from(PER_BLOCK));
        let t = Instant::now();
        for _ in 0..PER_BLOCK {
            hmac_only();
        }
        b.push(t.elapsed().as_nanos() as f64 / f64::from(PER_BLOCK));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "aws_sigv4::sign, one call: {:.0} ns (median of {} blocks of {PER_BLOCK})",
        median(&mut a),
        a.len()
    );
    println!(
        "calculate_signature over a prebuilt string to sign with a cached key: {:.0} ns",
        median(&mut b)
    );
}
