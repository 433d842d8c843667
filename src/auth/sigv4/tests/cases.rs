//! Requests as SDK clients sign them: a seeded generator of varied
//! requests (paths, queries, headers, bodies, keys) and the client's
//! signing with `aws_sigv4`, for the differential tests.

use super::*;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SessionTokenMode, SignableRequest, sign};
use aws_smithy_runtime_api::client::identity::Identity;

/// SplitMix64: seeded variety without a dependency.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// How the client commits to the body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Payload {
    /// Hashed by the signer; no `x-amz-content-sha256`.
    Hashed,
    /// Hashed, and sent in `x-amz-content-sha256`.
    Declared,
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD`.
    Unsigned,
}

/// A request as a client signs it.
#[derive(Debug, Clone)]
pub(super) struct Case {
    pub(super) method: &'static str,
    pub(super) uri: String,
    /// Headers given to the signer, in the order sent (any case,
    /// repeats allowed).
    pub(super) signed: Vec<(String, String)>,
    /// Headers sent but not signed.
    pub(super) unsigned: Vec<(&'static str, &'static str)>,
    pub(super) body: Vec<u8>,
    pub(super) payload: Payload,
    pub(super) temp_key: bool,
    /// With `temp_key`: whether the signer signs the session token.
    pub(super) sign_token: bool,
    pub(super) service: &'static str,
    pub(super) time: SystemTime,
    /// A query escape that decodes to invalid UTF-8, which the fast
    /// path declines.
    pub(super) declinable: bool,
}

impl Case {
    /// A plain signed GET of `uri` to host `example.amazonaws.com`.
    pub(super) fn get(uri: String) -> Case {
        Case {
            method: "GET",
            uri,
            signed: vec![("host".into(), "example.amazonaws.com".into())],
            unsigned: vec![],
            body: vec![],
            payload: Payload::Hashed,
            temp_key: false,
            sign_token: false,
            service: "service",
            time: parse_amz_date("20150830T123600Z").unwrap(),
            declinable: false,
        }
    }
}

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PURGE",
];
const SEGMENTS: &[&str] = &[
    "items",
    "a",
    "B",
    "",
    ".",
    "..",
    "x.y",
    "...",
    "%2F",
    "%20",
    "a%20b",
    "+",
    "a+b",
    "~user",
    "caf%C3%A9",
    "café",
    "日本",
    "%2E%2E",
    "%25",
    "-_.",
    ":",
    "@",
    "!$&'()*,;=",
    "%7E",
    "%7e",
];
const QUERY_NAMES: &[&str] = &[
    "a",
    "b",
    "A",
    "key",
    "k%20x",
    "k+x",
    "%2B",
    "x-amz-meta",
    "é",
    "",
    "%E2%9C%93",
    "~",
    "a.b",
    "!",
    "%3D",
    "Z",
];
const QUERY_VALUES: &[&str] = &[
    "1", "", "a+b", "a%20b", "%2F", "/", "?", "%3D", "%26", "~", "%zz", "%", "%4", "%C3%A9",
    "%c3%a9", "é", "=", "a=b", "'()*", ":@", "%2B", "+", "x.y-z_w", "0",
];
const INVALID_UTF8: &[&str] = &["%FF", "%C3", "%80abc", "%ED%A0%80"];
const SIGNABLE_NAMES: &[&str] = &[
    "content-type",
    "Content-Type",
    "x-custom",
    "X-Custom",
    "x-multi",
    "X-MULTI",
    "accept",
    "x-amz-meta-a",
    "x-amz-target",
    "a",
    "z",
];
const HEADER_VALUES: &[&str] = &[
    "v",
    "  leading",
    "trailing  ",
    "in   side",
    " a  b  c ",
    "tab\there",
    "",
    "a,b",
    "\"quoted  value\"",
    "x;y=z",
    "application/json",
];
const HOSTS: &[&str] = &["example.amazonaws.com", "127.0.0.1:8080", "api.example.com"];

pub(super) fn generate(rng: &mut Rng) -> Case {
    let mut declinable = false;
    let mut path = String::new();
    for _ in 0..rng.below(5) {
        path.push('/');
        path.push_str(rng.pick(SEGMENTS));
    }
    if path.is_empty() || rng.chance(20) {
        path.push('/');
    }
    let mut uri = path;
    if rng.chance(70) {
        uri.push('?');
        let mut pieces: Vec<String> = Vec::new();
        for _ in 0..rng.below(7) {
            let name = rng.pick(QUERY_NAMES);
            let piece = match rng.below(6) {
                0 => name.to_string(),
                1 => format!("{name}="),
                2 => String::new(),
                3 if !pieces.is_empty() => pieces[rng.below(pieces.len())].clone(),
                _ if rng.chance(4) => {
                    declinable = true;
                    format!(
                        "{name}={}{}",
                        rng.pick(QUERY_VALUES),
                        rng.pick(INVALID_UTF8)
                    )
                }
                _ => format!("{name}={}", rng.pick(QUERY_VALUES)),
            };
            pieces.push(piece);
        }
        uri.push_str(&pieces.join("&"));
    }

    let body: Vec<u8> = match rng.below(3) {
        0 => Vec::new(),
        1 => b"{\"name\":\"widget\"}".to_vec(),
        _ => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
    };
    let payload = rng.pick(&[Payload::Hashed, Payload::Declared, Payload::Unsigned]);

    let mut signed = vec![(
        if rng.chance(50) { "host" } else { "Host" }.to_string(),
        rng.pick(HOSTS).to_string(),
    )];
    for _ in 0..rng.below(5) {
        signed.push((
            rng.pick(SIGNABLE_NAMES).to_string(),
            rng.pick(HEADER_VALUES).to_string(),
        ));
    }
    let mut unsigned = Vec::new();
    let content_sha256 = match payload {
        Payload::Hashed => None,
        Payload::Declared => Some(hex::encode(Sha256::digest(&body))),
        Payload::Unsigned => Some(UNSIGNED_PAYLOAD.to_string()),
    };
    if let Some(v) = content_sha256 {
        if rng.chance(70) {
            signed.push(("x-amz-content-sha256".into(), v));
        } else {
            unsigned.push((
                "x-amz-content-sha256",
                if payload == Payload::Unsigned {
                    UNSIGNED_PAYLOAD
                } else {
                    // Leaked so the case can hold it as 'static.
                    Box::leak(v.into_boxed_str())
                },
            ));
        }
    }
    for (name, value) in [
        ("user-agent", "aws-sdk/1.0"),
        ("x-amzn-trace-id", "Root=1-5759e988"),
        ("x-unsigned", "  anything  "),
    ] {
        if rng.chance(30) {
            unsigned.push((name, value));
        }
    }
    // Signed headers in any order; the signer sorts them.
    for i in (1..signed.len()).rev() {
        signed.swap(i, rng.below(i + 1));
    }

    let temp_key = rng.chance(30);
    let day = 16_677 + rng.below(6) as u64; // 2015-08-30 and after
    let time =
        SystemTime::UNIX_EPOCH + Duration::from_secs(day * 86_400 + rng.below(86_400) as u64);
    Case {
        method: rng.pick(METHODS),
        uri,
        signed,
        unsigned,
        body,
        payload,
        temp_key,
        sign_token: rng.chance(70),
        service: if rng.chance(80) {
            "service"
        } else {
            "execute-api"
        },
        time,
        declinable,
    }
}

/// Signs `case` with `aws_sigv4::sign` as an SDK client would: the
/// request as the gateway receives it, and the signature.
pub(super) fn client_sign(case: &Case) -> (Parts, String) {
    let (id, secret, token) = if case.temp_key {
        ("ASIATEMP", TEMP_SECRET, Some(TEMP_TOKEN.to_string()))
    } else {
        ("AKIDEXAMPLE", SECRET, None)
    };
    let identity: Identity = Credentials::new(id, secret, token, None, "test").into();
    let mut settings = SigningSettings::default();
    if !case.sign_token {
        settings.session_token_mode = SessionTokenMode::Exclude;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(case.service)
        .time(case.time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let body = match case.payload {
        Payload::Hashed => SignableBody::Bytes(&case.body),
        Payload::Declared => SignableBody::Precomputed(hex::encode(Sha256::digest(&case.body))),
        Payload::Unsigned => SignableBody::UnsignedPayload,
    };
    let signable = SignableRequest::new(
        case.method,
        case.uri.as_str(),
        case.signed.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        body,
    )
    .unwrap_or_else(|e| panic!("{case:?}: {e}"));
    let out = sign(signable, &params).unwrap_or_else(|e| panic!("{case:?}: {e}"));
    let mut req = axum::http::Request::builder()
        .method(case.method)
        .uri(&case.uri);
    for (k, v) in &case.signed {
        req = req.header(k.as_str(), v.as_str());
    }
    for (k, v) in &case.unsigned {
        req = req.header(*k, *v);
    }
    let (instructions, signature) = out.into_parts();
    for (k, v) in instructions.headers() {
        req = req.header(k, v);
    }
    (req.body(()).unwrap().into_parts().0, signature)
}

pub(super) fn now_for(case: &Case) -> SystemTime {
    case.time + Duration::from_secs(30)
}
