//! The `local` backend: real runtime clients (Rust `lambda_runtime` and
//! `lambda_http` example functions, a provided.al2-style bash bootstrap,
//! Python `awslambdaric`) run as child processes behind the gateway; pool
//! behaviour (429, crash, timeout, init error, shutdown without orphans).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lambdagate::GatewayOptions;
use serde_json::Value;

use crate::common::{client, serve_router, spawn_binary, start, start_with};

/// The example functions (examples/functions/), built once per test run
/// with the same cargo and target folder as the tests themselves.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut cmd = std::process::Command::new(cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--message-format=json"]);
        for p in ["hello", "items", "page", "image", "echo"] {
            cmd.args(["-p", p]);
        }
        let out = cmd
            .output()
            .expect("run cargo build for the example functions");
        assert!(
            out.status.success(),
            "building the example functions failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact")
            .filter_map(|m| {
                let exe = m["executable"].as_str()?;
                Some((m["target"]["name"].as_str()?.to_string(), exe.into()))
            })
            .collect()
    });
    built
        .get(name)
        .unwrap_or_else(|| panic!("example function {name} was not built"))
        .clone()
}

fn toml_str(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

fn python() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python").to_string()
}

/// A provided.al2-style bootstrap: loops on the Runtime API with curl. The
/// route's last path segment picks what it does.
const BOOTSTRAP: &str = r#"#!/bin/bash
set -u
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
echo $$ >> "$PWD/pids"
if [ "${INIT_FAIL:-}" = 1 ]; then
    curl -sS -X POST "$API/init/error" -H 'Lambda-Runtime-Function-Error-Type: Runtime.InitError' \
        -d '{"errorMessage":"cannot start: no config","errorType":"InitError"}' > /dev/null
    exit 1
fi
while true; do
    HEADERS="$(mktemp)"
    EVENT="$(curl -sS -D "$HEADERS" "$API/invocation/next")" || exit 1
    ID="$(grep -i '^lambda-runtime-aws-request-id:' "$HEADERS" | cut -d: -f2 | tr -d '[:space:]')"
    DEADLINE="$(grep -i '^lambda-runtime-deadline-ms:' "$HEADERS" | cut -d: -f2 | tr -d '[:space:]')"
    ARN="$(grep -i '^lambda-runtime-invoked-function-arn:' "$HEADERS" | cut -d: -f2- | tr -d '[:space:]')"
    rm -f "$HEADERS"
    echo "handling $ID"
    case "$EVENT" in
        *'"rawPath":"/bash/crash"'*)
            echo "about to crash" >&2
            exit 3 ;;
        *'"rawPath":"/bash/sleep"'*)
            sleep 300 &
            echo $! >> "$PWD/pids"
            wait ;;
        *'"rawPath":"/bash/spawn"'*)
            sleep 300 > /dev/null 2>&1 &
            echo $! >> "$PWD/pids"
            curl -sS -X POST "$API/invocation/$ID/response" -d '{"statusCode":200,"body":"spawned"}' > /dev/null ;;
        *'"rawPath":"/bash/leak"'*)
            python3 -c 'import time; b = b"x" * (300 << 20); time.sleep(300)' &
            echo $! >> "$PWD/pids"
            wait ;;
        *'"rawPath":"/bash/slow"'*)
            sleep 1
            curl -sS -X POST "$API/invocation/$ID/response" -d '{"statusCode":200,"body":"slow"}' > /dev/null ;;
        *'"rawPath":"/bash/fail"'*)
            curl -sS -X POST "$API/invocation/$ID/error" -H 'Lambda-Runtime-Function-Error-Type: Unhandled' \
                -d '{"errorMessage":"it failed","errorType":"TestError"}' > /dev/null ;;
        *)
            BODY="{\"statusCode\":200,\"headers\":{\"content-type\":\"text/plain\"},\"body\":\"bash ok $ARN $AWS_LAMBDA_FUNCTION_NAME $AWS_LAMBDA_FUNCTION_MEMORY_SIZE $DEADLINE\"}"
            curl -sS -X POST "$API/invocation/$ID/response" -d "$BODY" > /dev/null ;;
    esac
done
"#;

fn bash_routes(extra: &str) -> String {
    format!(
        r#"
[backends.local]
kind = "local"

[functions.bash]
command = ["bash", "bootstrap"]
timeout = "2s"
concurrency = 1
queue = 1
memory_size = 256

[functions.bashinit]
command = ["bash", "bootstrap"]
env = {{ INIT_FAIL = "1" }}

[[routes]]
method = "GET"
path = "/bash/{{mode}}"
function = "bash"

[[routes]]
method = "GET"
path = "/init"
function = "bashinit"
{extra}
"#
    )
}

async fn get(url: &str) -> (u16, HashMap<String, String>, String) {
    let res = client().get(url).send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    (status, headers, res.text().await.unwrap())
}

/// Whether a process is gone (or a zombie waiting to be reaped).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Waits up to 10 s for every pid to be dead.
async fn all_dead(pids: &[u32]) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if pids.iter().all(|p| is_dead(*p)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn pids_in(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[tokio::test]
async fn rust_lambda_runtime_function_answers_and_stays_warm() {
    let gw = start(&format!(
        r#"
[stages.dev]
backend = "local"
variables = {{ greeting = "bonjour" }}

[backends.local]
kind = "local"

[functions.hello]
command = [{}]
env = {{ HELLO_GREETING = "${{stageVariables.greeting}}" }}

[[routes]]
method = "GET"
path = "/greet"
function = "hello"
"#,
        toml_str(&example("hello"))
    ))
    .await;
    for _ in 0..3 {
        let (status, headers, body) = get(&gw.url("/greet?name=Ann")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body, r#"{"message":"bonjour Ann"}"#);
    }
    gw.stop().await;
}

#[tokio::test]
async fn lambda_http_function_sees_the_request_as_behind_api_gateway() {
    let gw = start(&format!(
        r#"
[stages.dev]
backend = "local"
variables = {{ table = "items-dev" }}

[backends.local]
kind = "local"

[functions.echo]
command = [{}]

[[routes]]
method = "POST"
path = "/things/{{id}}/{{proxy+}}"
function = "echo"
"#,
        toml_str(&example("echo"))
    ))
    .await;
    let res = client()
        .post(gw.url("/things/42/a/b?color=red&size=9"))
        .header("x-custom", "yes")
        .header("cookie", "session=abc; theme=dark")
        .body(r#"{"hello":"world"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-echo"], "yes");
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    // lambda_http puts the stage in front of the path, as behind API Gateway.
    assert_eq!(seen["path"], "/dev/things/42/a/b");
    assert_eq!(seen["pathParameters"]["id"], "42");
    assert_eq!(seen["pathParameters"]["proxy"], "a/b");
    assert_eq!(seen["queryStringParameters"]["color"], "red");
    assert_eq!(seen["queryStringParameters"]["size"], "9");
    assert_eq!(seen["headers"]["x-custom"], "yes");
    assert_eq!(
        seen["cookies"],
        serde_json::json!(["session=abc", "theme=dark"])
    );
    assert_eq!(seen["body"], r#"{"hello":"world"}"#);
    assert_eq!(seen["stageVariables"]["table"], "items-dev");
    assert_eq!(seen["stage"], "dev");
    assert_eq!(seen["routeKey"], "POST /things/{id}/{proxy+}");
    gw.stop().await;
}

#[tokio::test]
async fn bash_bootstrap_gets_the_runtime_environment() {
    let gw = start_with(
        &bash_routes(""),
        &[("bootstrap", BOOTSTRAP.as_bytes())],
        GatewayOptions::default(),
    )
    .await;
    let (status, _, body) = get(&gw.url("/bash/ok")).await;
    assert_eq!(status, 200, "{body}");
    let parts: Vec<&str> = body.split(' ').collect();
    assert_eq!(parts[..2], ["bash", "ok"]);
    assert_eq!(
        parts[2],
        "arn:aws:lambda:us-east-1:123456789012:function:bash"
    );
    assert_eq!(parts[3], "bash");
    assert_eq!(parts[4], "256");
    let deadline: u128 = parts[5].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(
        deadline > now && deadline <= now + 2_000,
        "{deadline} vs {now}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn function_error_and_init_error_are_502() {
    let gw = start_with(
        &bash_routes(""),
        &[("bootstrap", BOOTSTRAP.as_bytes())],
        GatewayOptions::default(),
    )
    .await;
    let (status, headers, body) = get(&gw.url("/bash/fail")).await;
    assert_eq!(status, 502);
    assert_eq!(body, r#"{"message":"Internal server error"}"#);
    assert_eq!(headers["x-amzn-errortype"], "InternalServerErrorException");
    // The process survives a handled /error and serves the next request.
    let (status, _, _) = get(&gw.url("/bash/ok")).await;
    assert_eq!(status, 200);
    let (status, _, body) = get(&gw.url("/init")).await;
    assert_eq!(status, 502);
    assert_eq!(body, r#"{"message":"Internal server error"}"#);
    gw.stop().await;
}

#[tokio::test]
async fn a_function_that_exits_at_start_up_is_backed_off_not_respawned_per_request() {
    let gw = start_with(
        r#"
[backends.local]
kind = "local"

[functions.dies]
command = ["bash", "-c", "echo $$ >> \"$PWD/pids\"; exit 3"]

[[routes]]
method = "GET"
path = "/dies"
function = "dies"
"#,
        &[],
        GatewayOptions::default(),
    )
    .await;
    let started = Instant::now();
    for n in 0..20 {
        let (status, _, body) = get(&gw.url("/dies")).await;
        assert_eq!(status, 502, "request {n}");
        assert_eq!(body, r#"{"message":"Internal server error"}"#);
    }
    let elapsed = started.elapsed();
    // 250 ms, then 500, 1 s, 2 s...: within the first second at most three
    // starts; allow for a slow machine stretching the twenty requests.
    let spawned = pids_in(gw.dir.path()).len();
    let allowed = (0..8)
        .take_while(|i| Duration::from_millis(250 * ((1 << i) - 1)) <= elapsed)
        .count();
    assert!(
        (1..=allowed).contains(&spawned),
        "{spawned} processes for 20 requests in {elapsed:?} (at most {allowed})"
    );
    assert!(spawned < 20, "one process per request: no back-off");
    gw.stop().await;
}

#[tokio::test]
async fn crash_mid_invoke_is_502_and_the_next_request_gets_a_fresh_process() {
    let gw = start_with(
        &bash_routes(""),
        &[("bootstrap", BOOTSTRAP.as_bytes())],
        GatewayOptions::default(),
    )
    .await;
    let (status, _, _) = get(&gw.url("/bash/ok")).await;
    assert_eq!(status, 200);
    let (status, _, body) = get(&gw.url("/bash/crash")).await;
    assert_eq!(status, 502);
    assert_eq!(body, r#"{"message":"Internal server error"}"#);
    let (status, _, body) = get(&gw.url("/bash/ok")).await;
    assert_eq!(status, 200, "{body}");
    let pids = pids_in(gw.dir.path());
    assert_eq!(pids.len(), 2, "a second process was started: {pids:?}");
    assert!(is_dead(pids[0]));
    gw.stop().await;
}

#[tokio::test]
async fn a_function_past_its_memory_size_is_killed_502_and_replaced() {
    let gw = start_with(
        &bash_routes(""),
        &[("bootstrap", BOOTSTRAP.as_bytes())],
        GatewayOptions::default(),
    )
    .await;
    let (status, _, _) = get(&gw.url("/bash/ok")).await;
    assert_eq!(status, 200);
    // 300 MB in a child of the 256 MB function: the group is killed well
    // before the function's 2 s timeout, which would have answered 504.
    let (status, _, body) = get(&gw.url("/bash/leak")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body, r#"{"message":"Internal server error"}"#);
    let pids = pids_in(gw.dir.path());
    assert!(all_dead(&pids).await, "still alive: {pids:?}");
    let (status, _, body) = get(&gw.url("/bash/ok")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pids_in(gw.dir.path()).len(), 3, "a fresh process serves");
    gw.stop().await;
}

#[tokio::test]
async fn timeout_is_504_and_the_process_group_is_killed() {
    let gw = start_with(
        &bash_routes(""),
        &[("bootstrap", BOOTSTRAP.as_bytes())],
        GatewayOptions::default(),
    )
    .await;
    let started = Instant::now();
    let (status, headers, body) = get(&gw.url("/bash/sleep")).await;
    assert_eq!(status, 504);
    assert_eq!(body, r#"{"message":"Endpoint request timed out"}"#);
    assert_eq!(headers["x-amzn-errortype"], "IntegrationTimeoutException");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The bootstrap and the `sleep` it started (same process group) are gone.
    let pids = pids_in(gw.dir.path());
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(all_dead(&pids).await, "still alive: {pids:?}");
    let (status, _, _) = get(&gw.url("/bash/ok")).await;
    assert_eq!(status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn concurrency_limit_then_queue_bound_then_429() {
    let gw = start_with(
        &bash_routes(""),
        &[("bootstrap", BOOTSTRAP.as_bytes())],
        GatewayOptions::default(),
    )
    .await;
    // concurrency = 1, queue = 1: one runs, one waits, the third is refused.
    let url = gw.url("/bash/slow");
    let calls = (0..3).map(|_| get(&url));
    let results = futures::future::join_all(calls).await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.0).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 429]);
    let refused = results.iter().find(|r| r.0 == 429).unwrap();
    assert_eq!(refused.2, r#"{"message":"Too Many Requests"}"#);
    assert_eq!(refused.1["x-amzn-errortype"], "TooManyRequestsException");
    assert!(refused.1.contains_key("retry-after"));
    // Only one process ever ran (concurrency 1).
    assert_eq!(pids_in(gw.dir.path()).len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn python_awslambdaric_function_answers_and_reports_init_errors() {
    let handler = r#"
import json, os

def handler(event, context):
    print("python handling", context.aws_request_id)
    name = (event.get("queryStringParameters") or {}).get("name", "world")
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({
            "message": "hi " + name,
            "function": context.function_name,
            "memory": context.memory_limit_in_mb,
            "arn": context.invoked_function_arn,
            "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 3000,
        }),
    }
"#;
    let broken = "raise RuntimeError('no database')\n";
    let gw = start_with(
        &format!(
            r#"
[backends.local]
kind = "local"

[functions.py]
command = [{py:?}, "-m", "awslambdaric", "handler.handler"]
handler = "handler.handler"
runtime = "python3.11"

[functions.pybroken]
command = [{py:?}, "-m", "awslambdaric", "broken.handler"]

[[routes]]
method = "GET"
path = "/py"
function = "py"

[[routes]]
method = "GET"
path = "/broken"
function = "pybroken"
"#,
            py = python()
        ),
        &[
            ("handler.py", handler.as_bytes()),
            ("broken.py", broken.as_bytes()),
        ],
        GatewayOptions::default(),
    )
    .await;
    let (status, _, body) = get(&gw.url("/py?name=Zoe")).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["message"], "hi Zoe");
    assert_eq!(v["function"], "py");
    assert_eq!(v["memory"], "128");
    assert_eq!(
        v["arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:py"
    );
    assert_eq!(v["remaining_ok"], true);
    let (status, _, body) = get(&gw.url("/broken")).await;
    assert_eq!(status, 502);
    assert_eq!(body, r#"{"message":"Internal server error"}"#);
    gw.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_leaves_no_orphans() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bootstrap"), BOOTSTRAP).unwrap();
    let routes = dir.path().join("routes.toml");
    let extra = format!(
        r#"
[invoke_api]
listen = "127.0.0.1:0"

[functions.hello]
command = [{}]

[[routes]]
method = "GET"
path = "/greet"
function = "hello"
"#,
        toml_str(&example("hello"))
    );
    std::fs::write(&routes, bash_routes(&extra)).unwrap();
    let mut gw = spawn_binary(&routes, &[], &HashMap::new()).await;
    let (status, _, _) = get(&gw.url("/greet")).await;
    assert_eq!(status, 200);
    // `serve` also runs the Invoke API listener it announced.
    let invoke = gw.invoke_addr.expect("the invoke API address is announced");
    let res = client()
        .post(format!(
            "http://{invoke}/2015-03-31/functions/hello/invocations"
        ))
        .body(r#"{"name":"cli"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["message"], "hello cli");
    // A warm bootstrap that left a child of its own running.
    let (status, _, body) = get(&gw.url("/bash/spawn")).await;
    assert_eq!(status, 200, "{body}");
    let mut pids = pids_in(dir.path());
    assert_eq!(pids.len(), 2, "bootstrap and its sleep: {pids:?}");
    let hello_pids: Vec<u32> = std::process::Command::new("pgrep")
        .args(["-P", &gw.pid().to_string()])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(hello_pids.len() >= 2, "gateway children: {hello_pids:?}");
    pids.extend(hello_pids);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), gw.child.wait())
        .await
        .expect("gateway exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(all_dead(&pids).await, "orphans left: {pids:?}");
}

#[tokio::test]
async fn a_killed_gateway_leaves_no_function_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bootstrap"), BOOTSTRAP).unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(&routes, bash_routes("")).unwrap();
    let mut gw = spawn_binary(&routes, &[], &HashMap::new()).await;
    // A warm bootstrap that left a child of its own running (same group).
    let (status, _, body) = get(&gw.url("/bash/spawn")).await;
    assert_eq!(status, 200, "{body}");
    let pids = pids_in(dir.path());
    assert_eq!(pids.len(), 2, "bootstrap and its sleep: {pids:?}");
    assert!(pids.iter().all(|p| !is_dead(*p)), "{pids:?}");
    let status = std::process::Command::new("kill")
        .args(["-KILL", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = gw.child.wait().await;
    // Within a second of the gateway's death, nothing of the function is left.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until && !pids.iter().all(|p| is_dead(*p)) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        pids.iter().all(|p| is_dead(*p)),
        "alive a second after SIGKILL: {pids:?}"
    );
}

/// Eight concurrent one-second invocations of a function with two
/// processes and a two-second `timeout`: the statuses, sorted.
async fn eight_slow_calls(queue: usize) -> Vec<u16> {
    let routes = format!(
        r#"
[backends.local]
kind = "local"

[functions.bash]
command = ["bash", "bootstrap"]
timeout = "2s"
concurrency = 2
queue = {queue}

[[routes]]
method = "GET"
path = "/bash/{{mode}}"
function = "bash"
"#
    );
    let gw = start_with(
        &routes,
        &[("bootstrap", BOOTSTRAP.as_bytes())],
        GatewayOptions::default(),
    )
    .await;
    // Both processes warm, so every call costs only its one second.
    let ok = gw.url("/bash/ok");
    let warm = futures::future::join_all((0..2).map(|_| get(&ok))).await;
    assert!(warm.iter().all(|r| r.0 == 200), "{warm:?}");
    let url = gw.url("/bash/slow");
    let results = futures::future::join_all((0..8).map(|_| get(&url))).await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.0).collect();
    statuses.sort();
    gw.stop().await;
    statuses
}

#[tokio::test]
async fn a_function_timeout_counts_from_when_a_process_takes_the_invocation() {
    // Calls 5 to 8 wait two to three seconds in the queue, longer than the
    // function's timeout; they run, since only running counts against it.
    assert_eq!(eight_slow_calls(10).await, [200; 8]);
}

#[tokio::test]
async fn queue_zero_throttles_at_once_as_lambda_does() {
    let statuses = eight_slow_calls(0).await;
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= 2,
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// Gateway B: functions on the local backend, its Invoke API served on a free port.
async fn invoke_api_gateway() -> (crate::common::TestGateway, crate::common::TestServer) {
    let extra = format!(
        r#"
[invoke_api]
listen = "127.0.0.1:0"

[functions.hello]
command = [{}]
"#,
        toml_str(&example("hello"))
    );
    let gw = start_with(
        &bash_routes(&extra),
        &[("bootstrap", BOOTSTRAP.as_bytes())],
        GatewayOptions::default(),
    )
    .await;
    let g = gw.gateway.clone();
    let api = serve_router(lambdagate::invoke_api::router(std::sync::Arc::new(
        move || g.clone(),
    )))
    .await;
    (gw, api)
}

fn invocations(api: &crate::common::TestServer, name: &str) -> String {
    api.url(&format!("/2015-03-31/functions/{name}/invocations"))
}

#[tokio::test]
async fn invoke_api_request_response_tail_event_dryrun_and_errors() {
    let (gw, api) = invoke_api_gateway().await;
    let res = client()
        .post(format!(
            "{}?Qualifier=%24LATEST",
            invocations(&api, "hello")
        ))
        .header("x-amz-log-type", "Tail")
        .body(r#"{"name":"Ivy"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-amz-executed-version"], "$LATEST");
    assert!(!res.headers().contains_key("x-amz-function-error"));
    let tail = res.headers()["x-amz-log-result"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["message"], "hello Ivy");
    assert_eq!(body["functionName"], "hello");
    use base64::Engine;
    let tail = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(tail)
            .unwrap(),
    )
    .unwrap();
    let id = body["requestId"].as_str().unwrap();
    assert!(tail.contains(&format!("START RequestId: {id}")), "{tail}");
    assert!(tail.contains("greeting Ivy"), "{tail}");
    assert!(tail.contains(&format!("REPORT RequestId: {id}")), "{tail}");
    let used: u64 = tail
        .split("Max Memory Used: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Max Memory Used in {tail}"));
    assert!((1..128).contains(&used), "{tail}");

    // A function error is a 200 with X-Amz-Function-Error, as on Lambda.
    let res = client()
        .post(invocations(
            &api,
            "arn:aws:lambda:us-east-1:123456789012:function:bash",
        ))
        .body(r#"{"rawPath":"/bash/fail"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-amz-function-error"], "Unhandled");
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["errorType"], "TestError");

    let res = client()
        .post(invocations(&api, "nope"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.headers()["x-amzn-errortype"],
        "ResourceNotFoundException"
    );
    let doc: Value = res.json().await.unwrap();
    assert!(doc["message"].as_str().unwrap().contains("function:nope"));

    let res = client()
        .post(invocations(&api, "hello"))
        .header("x-amz-invocation-type", "DryRun")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = client()
        .post(invocations(&api, "hello"))
        .header("x-amz-invocation-type", "Event")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert!(res.headers().contains_key("x-amzn-requestid"));
    let res = client()
        .post(invocations(&api, "hello"))
        .header("x-amz-invocation-type", "Sometimes")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.headers()["x-amzn-errortype"],
        "InvalidParameterValueException"
    );
    gw.stop().await;
}

#[tokio::test]
async fn lambda_backend_of_one_gateway_invokes_through_another_gateways_invoke_api() {
    let (gw_b, api) = invoke_api_gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        format!(
            r#"
[stages.dev]
backend = "aws"
variables = {{ alias = "live" }}

[backends.aws]
kind = "lambda"
region = "us-east-1"
endpoint_url = "http://{}"

[functions.hello]
name = "hello:${{stageVariables.alias}}"

[functions.bash]

[[routes]]
method = "GET"
path = "/greet"
function = "hello"

[[routes]]
method = "GET"
path = "/bash/{{mode}}"
function = "bash"
"#,
            api.addr
        ),
    )
    .unwrap();
    let env: HashMap<String, String> = [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_REGION", "us-east-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let gw_a = spawn_binary(&routes, &[], &env).await;
    assert_eq!(gw_a.invoke_addr, None);
    let (status, headers, body) = get(&gw_a.url("/greet?name=Kai")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, r#"{"message":"hello Kai"}"#);
    let (status, _, body) = get(&gw_a.url("/bash/ok")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("bash ok"), "{body}");
    // A function error crosses both gateways as API Gateway's 502.
    let (status, _, body) = get(&gw_a.url("/bash/fail")).await;
    assert_eq!(status, 502);
    assert_eq!(body, r#"{"message":"Internal server error"}"#);
    drop(gw_a);
    gw_b.stop().await;
}

#[tokio::test]
async fn boto3_invokes_through_the_invoke_api() {
    let (gw, api) = invoke_api_gateway().await;
    let script = r#"
import base64, json, sys
import boto3
from botocore.config import Config

lam = boto3.client(
    "lambda", endpoint_url=sys.argv[1], region_name="us-east-1",
    aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
    config=Config(retries={"max_attempts": 1}),
)
r = lam.invoke(FunctionName="hello", Payload=json.dumps({"name": "Boto"}), LogType="Tail")
print("status", r["StatusCode"], r["ExecutedVersion"])
print("payload", json.loads(r["Payload"].read())["message"])
print("tail-has-greeting", "greeting Boto" in base64.b64decode(r["LogResult"]).decode())
r = lam.invoke(FunctionName="bash", Payload=json.dumps({"rawPath": "/bash/fail"}, separators=(",", ":")))
print("error", r.get("FunctionError"), json.loads(r["Payload"].read())["errorMessage"])
try:
    lam.invoke(FunctionName="missing", Payload=b"{}")
except lam.exceptions.ResourceNotFoundException as e:
    print("missing", e.response["Error"]["Code"])
r = lam.invoke(FunctionName="hello", InvocationType="Event", Payload=b"{}")
print("event", r["StatusCode"])
"#;
    let file = gw.dir.path().join("invoke.py");
    std::fs::write(&file, script).unwrap();
    let out = tokio::process::Command::new(python())
        .arg(&file)
        .arg(api.url(""))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("status 200 $LATEST"), "{stdout}");
    assert!(stdout.contains("payload hello Boto"), "{stdout}");
    assert!(stdout.contains("tail-has-greeting True"), "{stdout}");
    assert!(stdout.contains("error Unhandled it failed"), "{stdout}");
    assert!(
        stdout.contains("missing ResourceNotFoundException"),
        "{stdout}"
    );
    assert!(stdout.contains("event 202"), "{stdout}");
    gw.stop().await;
}
