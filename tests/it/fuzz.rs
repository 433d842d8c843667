//! Bounded fuzzing on stable: the same entry points as the `cargo fuzz`
//! targets in `fuzz/` (`lambdagate::fuzzing`), fed a fixed number of
//! mutated seed inputs from a seeded generator, so CI exercises them
//! without nightly and a failure is reproducible. `LAMBDAGATE_FUZZ_ITERS`
//! and `LAMBDAGATE_FUZZ_SEED` run it longer or differently. Inputs that
//! ever crashed are kept in `regressions` below.

use lambdagate::fuzzing;

/// xorshift64*: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    "'",
    "=",
    "\n",
    "\r\n",
    "[[routes]]",
    "[gateway]",
    "%",
    "%2e",
    "%2F",
    "%00",
    "..",
    "/",
    "//",
    "{proxy+}",
    "{id}",
    "$default",
    "\\u0000",
    "\u{1F600}",
    "é",
    "9999999999999999999999",
    "-1",
    "0",
    "1e999",
    "null",
    "true",
    "{{",
    "}}",
    "{%",
    "%}",
    "{% for x in y %}",
    "{% endfor %}",
    "|tojson",
    "${stageVariables.x}",
    "ANY ",
    "GET ",
    "statusCode",
    "isBase64Encoded",
    "multiValueHeaders",
    "cookies",
    "body",
    ": ",
    "\n\n",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(6) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            2 if !v.is_empty() => {
                let a = rng.below(v.len());
                let b = (a + rng.below(16)).min(v.len());
                v.drain(a..b);
            }
            3 if !v.is_empty() => {
                let a = rng.below(v.len());
                let b = (a + rng.below(32)).min(v.len());
                let chunk = v[a..b].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, chunk);
            }
            4 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, t.iter().copied());
            }
            _ => {
                let n = rng.below(24);
                v.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    v
}

/// Runs `target` on the seeds and on mutations of them; a panic fails the
/// test and prints the input to add to `regressions`.
fn fuzz(name: &str, seeds: &[&[u8]], target: fn(&[u8])) {
    let iters: usize = std::env::var("LAMBDAGATE_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let seed: u64 = std::env::var("LAMBDAGATE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_1A3B_DA7A_0001);
    let mut rng = Rng(seed ^ name.len() as u64 ^ 0x9E37_79B9_7F4A_7C15);
    let mut corpus: Vec<Vec<u8>> = seeds.iter().map(|s| s.to_vec()).collect();
    for i in 0..iters + seeds.len() {
        let input = if i < seeds.len() {
            corpus[i].clone()
        } else {
            let base = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, &base)
        };
        if std::panic::catch_unwind(|| target(&input)).is_err() {
            panic!(
                "{name} panicked on input (iteration {i}, seed {seed}):\n{:?}",
                String::from_utf8_lossy(&input)
            );
        }
        // Keep some mutants so mutations stack up.
        if i >= seeds.len() && rng.below(8) == 0 && corpus.len() < 256 {
            corpus.push(input);
        }
    }
}

#[test]
fn fuzz_routes_toml_parsing() {
    fuzz(
        "routes_toml",
        &[
            br#"
[gateway]
listen = "127.0.0.1:8080"
flavor = "rest"
stage = "dev"
binary_media_types = ["image/*"]
timeout = "10s"
[gateway.limits]
max_body = "1MB"
header_read_timeout = "5s"
max_connections = 10
[stages.dev]
backend = "aws"
variables = { alias = "dev" }
[backends.aws]
kind = "lambda"
region = "eu-west-1"
[backends.legacy]
kind = "http"
url = "http://127.0.0.1:3000/${stageVariables.alias}"
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
[[routes]]
method = "GET"
path = "/ping"
mock = { status = 200, body = "pong", headers = { content-type = "text/plain" } }
"#,
            b"[[routes]]\nmethod = \"GET\"\npath = \"$default\"\nmock = { status = 204 }\n",
            b"",
        ],
        fuzzing::routes_toml,
    );
}

#[test]
fn fuzz_path_matching() {
    fuzz(
        "path_matching",
        &[
            b"GET /items/{id}\nGET /items/special\nANY /{proxy+}\nGET /items/7",
            b"ANY $default\nPOST /a/{b}/c\nPOST /a/x%20y/c",
            b"GET /f/{path+}\nGET /f/a/b%2Fc/../d",
        ],
        fuzzing::path_matching,
    );
}

#[test]
fn fuzz_event_building() {
    fuzz(
        "event_building",
        &[
            b"POST /a/b?x=1&y=%20&x=2\ncontent-type: application/json\ncookie: a=b; c=d\nx-multi: 1\nx-multi: 2\n\n{\"k\":1}",
            b"GET /img\ncontent-type: image/png\n\n\x89PNG\x00\xff",
            b"DELETE /\n\n",
        ],
        fuzzing::event_building,
    );
}

#[test]
fn fuzz_proxy_response_parsing() {
    fuzz(
        "proxy_response",
        &[
            br#"{"statusCode":200,"headers":{"a":"b"},"multiValueHeaders":{"x":["1","2"]},"body":"aGk=","isBase64Encoded":true,"cookies":["c=d"]}"#,
            br#"{"statusCode":"404","body":"{\"m\":1}"}"#,
            br#""bare string""#,
            b"[1,2,3]",
            b"null",
        ],
        fuzzing::proxy_response,
    );
}

#[test]
fn fuzz_upstream_response_parsing() {
    fuzz(
        "upstream_response",
        &[
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close, x-a\r\nX-A: 1\r\n\r\nok",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 204 No Content\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 4\r\n\r\n",
        ],
        fuzzing::upstream_response,
    );
}

#[test]
fn fuzz_client_request_parsing() {
    fuzz(
        "client_request",
        &[
            b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n3;e\r\nabc\r\n0\r\nT: 1\r\n\r\n",
            b"GET / HTTP/1.0\r\nContent-Length: 1, 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET http://a.example:8/x?y HTTP/1.7\r\nHost: [::1]:80\r\n\r\nGET / HTTP/2.0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n00a ; n = \"v\\\"\"\r\n0123456789\r\n0\r\nT: 1\r\n\r\n",
        ],
        fuzzing::client_request,
    );
}

#[test]
fn fuzz_template_rendering() {
    fuzz(
        "template_rendering",
        &[
            b"{{ body | tojson }} {% for k in items %}{{ loop.index }}:{{ k }}{% endfor %}\n{\"body\":\"x\",\"items\":[1,2]}",
            b"{{ util.escapeJavaScript(name) }} {{ name | b64encode | b64decode }}\n{\"name\":\"a'b\"}",
            b"{% if a %}{{ a.b.c }}{% else %}none{% endif %}\n{\"a\":{\"b\":{}}}",
        ],
        fuzzing::template_rendering,
    );
}

/// A fuzz entry point and an input for it.
type Case = (fn(&[u8]), &'static [u8]);

/// Inputs that once crashed an entry point (add them here with the target),
/// plus hand-picked edge cases.
#[test]
fn regressions() {
    let cases: &[Case] = &[
        (fuzzing::path_matching, b""),
        (fuzzing::path_matching, b"GET /{proxy+}\nGET /"),
        (fuzzing::proxy_response, b"{\"statusCode\":1e999}"),
        (fuzzing::event_building, b"GET /%ff%fe?%zz\ncookie:\n\n\xff"),
        (
            fuzzing::template_rendering,
            b"{{ range(10000000) | length }}",
        ),
    ];
    for (target, input) in cases {
        target(input);
    }
}

/// The `cargo fuzz` layout (built only with nightly, not here) stays in step
/// with the entry points: every declared target has a file that calls a
/// `lambdagate::fuzzing` function of its own name, and every entry point has
/// a target.
#[test]
fn cargo_fuzz_targets_match_the_entry_points() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap()).unwrap();
    let lib = std::fs::read_to_string(root.join("src/fuzzing.rs")).unwrap();
    let bins = manifest["bin"].as_array().unwrap();
    let mut names = Vec::new();
    for b in bins {
        let name = b["name"].as_str().unwrap();
        let file =
            std::fs::read_to_string(root.join("fuzz").join(b["path"].as_str().unwrap())).unwrap();
        assert!(file.contains("fuzz_target!"), "{name}");
        assert!(
            file.contains(&format!("lambdagate::fuzzing::{name}(data)")),
            "{name} does not call its entry point"
        );
        assert!(
            lib.contains(&format!("pub fn {name}(data: &[u8])")),
            "{name}"
        );
        names.push(name.to_string());
    }
    let entry_points = lib.matches("pub fn ").count();
    assert_eq!(
        names.len(),
        entry_points,
        "an entry point has no fuzz target"
    );
}
