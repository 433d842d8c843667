//! Operations: access log, metrics, reload, graceful shutdown, TLS, CLI,
//! Dockerfile. Hardening tests live in `hardening.rs`.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::{client, spawn_binary};

const MOCK_ROUTES: &str = r#"
[[routes]]
method = "GET"
path = "/ping"
mock = { status = 200, body = "pong", headers = { content-type = "text/plain" } }
"#;

fn write_routes(dir: &tempfile::TempDir, routes: &str) -> std::path::PathBuf {
    let p = dir.path().join("routes.toml");
    std::fs::write(&p, routes).unwrap();
    p
}

/// Waits (bounded) until `pred` holds for the captured stderr lines.
async fn wait_for_log(
    lines: &std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(l) = lines.lock().unwrap().iter().find(|l| pred(l)) {
            return l.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "log line not seen; got:\n{}",
            lines.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn access_log_is_one_json_line_per_request_with_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let routes = write_routes(&dir, MOCK_ROUTES);
    let gw = spawn_binary(&routes, &["--log-format", "json"], &HashMap::new()).await;
    let res = client()
        .get(gw.url("/ping"))
        .header("x-amzn-requestid", "ops-access-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["apigw-requestid"], "ops-access-1");
    let line = wait_for_log(&gw.stderr_lines, |l| l.contains("ops-access-1")).await;
    let v: serde_json::Value = serde_json::from_str(&line).expect("access log is JSON");
    assert_eq!(v["target"], "lambdagate::access");
    let f = &v["fields"];
    assert_eq!(f["request_id"], "ops-access-1");
    assert_eq!(f["route"], "GET /ping");
    assert_eq!(f["status"], 200);
    assert_eq!(f["bytes_out"], 4);
    assert_eq!(f["bytes_in"], 0);
    assert_eq!(f["key_id"], "-");
    assert_eq!(f["principal"], "-");
    assert!(f["latency_us"].as_u64().is_some());
    assert!(f["integration_latency_us"].as_i64().unwrap() >= 0);
    assert!(v["timestamp"].as_str().is_some());
    let n = gw
        .stderr_lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("ops-access-1"))
        .count();
    assert_eq!(n, 1, "exactly one access-log line per request");
}
