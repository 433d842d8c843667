//! Authorizers end to end: JWT with JWKS (tokens minted by PyJWT), Lambda
//! authorizers with result caching, inbound SigV4 signed by boto3 and the
//! npm `aws4` package. Refusals never reach the function.

mod invoke_api;
mod jwt;
mod lambda;
mod sigv4;

use std::path::PathBuf;
use std::process::Stdio;

/// The project folder (for `.venv`, `.npm-test` and the helper scripts).
pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a helper script with the project's Python, `input` on stdin;
/// returns stdout parsed as JSON.
pub fn python_json(script: &str, input: &serde_json::Value) -> serde_json::Value {
    run_json(
        project_dir().join(".venv/bin/python"),
        &[project_dir().join("tests/it/auth").join(script)],
        input,
        &[],
    )
}

/// Runs a Node helper script (with `.npm-test/node_modules` on the path).
pub fn node_json(script: &str, input: &serde_json::Value) -> serde_json::Value {
    run_json(
        PathBuf::from("node"),
        &[project_dir().join("tests/it/auth").join(script)],
        input,
        &[("NODE_PATH", project_dir().join(".npm-test/node_modules"))],
    )
}

fn run_json(
    program: PathBuf,
    args: &[PathBuf],
    input: &serde_json::Value,
    env: &[(&str, PathBuf)],
) -> serde_json::Value {
    use std::io::Write;
    let mut child = std::process::Command::new(&program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (run scripts/setup-test-deps.sh): {e}",
                program.display()
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} {:?} failed:\n{}",
        program.display(),
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "helper output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// CORS preflights are answered before auth (as API Gateway does); the
/// actual request still needs its credential. In-process gateway, HS256.
#[tokio::test]
async fn cors_preflight_is_answered_before_auth() {
    use crate::common::{client, start_with};
    let gw = start_with(
        r#"
[cors]
allow_origins = ["https://app.example.com"]
allow_methods = ["GET"]
allow_headers = ["authorization"]

[auth.users]
kind = "jwt"
secret_file = "secret"

[[routes]]
method = "GET"
path = "/items/{id}"
mock = { status = 200, body = "item" }
auth = "users"
"#,
        &[("secret", b"cors-test-secret-0123456789abcdef")],
        Default::default(),
    )
    .await;
    let r = client()
        .request(reqwest::Method::OPTIONS, gw.url("/items/1"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let r = client()
        .get(gw.url("/items/1"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
