//! Operations: access log, metrics, reload, graceful shutdown, TLS, CLI,
//! Dockerfile. Hardening tests live in `hardening.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use tokio::sync::{Notify, watch};

use crate::common::{client, serve_router, spawn_binary, start_with};

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

/// `RUST_LOG` turns the access line off by its target: the gateway writes
/// it itself under its own subscriber, so the filter must still hold. A
/// second gateway with the line on shows how long a line takes to appear.
#[tokio::test]
async fn access_log_can_be_turned_off_by_target() {
    let dir = tempfile::tempdir().unwrap();
    let routes = write_routes(&dir, MOCK_ROUTES);
    let env = |filter: &str| HashMap::from([("RUST_LOG".to_string(), filter.to_string())]);
    let off = spawn_binary(&routes, &[], &env("info,lambdagate::access=off")).await;
    let on = spawn_binary(&routes, &[], &env("info")).await;
    for (gw, id) in [(&off, "ops-access-off"), (&on, "ops-access-on")] {
        let res = client()
            .get(gw.url("/ping"))
            .header("x-amzn-requestid", id)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let line = wait_for_log(&on.stderr_lines, |l| l.contains("ops-access-on")).await;
    assert!(
        line.contains(" INFO lambdagate::access: request_id=ops-access-on "),
        "{line}"
    );
    // Three flush intervals more for the other gateway's batch.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = off.stderr_lines.lock().unwrap().clone();
    assert!(
        !lines.iter().any(|l| l.contains("ops-access-off")),
        "access line written despite the filter:\n{}",
        lines.join("\n")
    );
}

/// Sends a Unix signal to a spawned gateway.
fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

/// An upstream whose every request waits until `release()`.
struct SlowUpstream {
    server: crate::common::TestServer,
    arrived: Arc<AtomicUsize>,
    arrivals: Arc<Notify>,
    release: watch::Sender<bool>,
}

impl SlowUpstream {
    async fn start() -> Self {
        let arrived = Arc::new(AtomicUsize::new(0));
        let arrivals = Arc::new(Notify::new());
        let (release, rx) = watch::channel(false);
        let (a, n) = (arrived.clone(), arrivals.clone());
        let router = Router::new().fallback(move || {
            let (a, n, mut rx) = (a.clone(), n.clone(), rx.clone());
            async move {
                a.fetch_add(1, Ordering::SeqCst);
                n.notify_waiters();
                let _ = rx.wait_for(|r| *r).await;
                "slow-ok"
            }
        });
        Self {
            server: serve_router(router).await,
            arrived,
            arrivals,
            release,
        }
    }

    /// Waits until `n` requests are being held.
    async fn wait_for(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let notified = self.arrivals.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.arrived.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::timeout_at(deadline, notified)
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "only {} of {n} requests arrived",
                        self.arrived.load(Ordering::SeqCst)
                    )
                });
        }
    }

    fn release(&self) {
        let _ = self.release.send(true);
    }
}

fn slow_routes(upstream: &SlowUpstream, version: &str, extra_gateway: &str) -> String {
    format!(
        r#"
[gateway]
{extra_gateway}

[backends.slow]
kind = "http"
url = "{}"

[[routes]]
method = "GET"
path = "/slow/{{proxy+}}"
backend = "slow"

[[routes]]
method = "GET"
path = "/version"
mock = {{ status = 200, body = "{version}" }}
"#,
        upstream.server.url("")
    )
}

/// Replaces the routes file the way editors do: write beside it, rename over.
fn replace_file(path: &std::path::Path, contents: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Polls `url` until its body is `want` (bounded).
async fn wait_for_body(url: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client().get(url).send().await
            && r.text().await.is_ok_and(|b| b == want)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} never answered {want}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_thousand_requests_in_flight_across_a_sighup_reload_lose_none() {
    let upstream = SlowUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = write_routes(&dir, &slow_routes(&upstream, "v1", ""));
    let gw = spawn_binary(&routes, &["--no-watch"], &HashMap::new()).await;
    let c = client();
    let mut in_flight = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let c = c.clone();
        let url = gw.url(&format!("/slow/{i}"));
        in_flight.spawn(async move {
            let res = c.get(url).send().await?;
            let status = res.status();
            Ok::<_, reqwest::Error>((status, res.text().await?))
        });
    }
    upstream.wait_for(1000).await;
    // All 1,000 are inside the gateway, on config v1. Reload to v2.
    replace_file(&routes, &slow_routes(&upstream, "v2", ""));
    signal(gw.pid(), "HUP");
    wait_for_body(&gw.url("/version"), "v2").await;
    upstream.release();
    let mut ok = 0;
    while let Some(r) = in_flight.join_next().await {
        let (status, body) = r.unwrap().expect("request lost across the reload");
        assert_eq!(status, 200);
        assert_eq!(body, "slow-ok");
        ok += 1;
    }
    assert_eq!(ok, 1000);
    let logs = gw.stderr_lines.lock().unwrap().join("\n");
    assert!(logs.contains("config reloaded"), "{logs}");
}

#[tokio::test]
async fn a_changed_file_is_reloaded_and_an_invalid_one_keeps_the_old_config() {
    let dir = tempfile::tempdir().unwrap();
    let v = |body: &str| {
        format!(
            "[[routes]]\nmethod = \"GET\"\npath = \"/version\"\nmock = {{ status = 200, body = \"{body}\" }}\n"
        )
    };
    let routes = write_routes(&dir, &v("v1"));
    let gw = spawn_binary(&routes, &[], &HashMap::new()).await;
    wait_for_body(&gw.url("/version"), "v1").await;
    // Line 4 has an unknown key: the reload fails with its position.
    replace_file(
        &routes,
        "[[routes]]\nmethod = \"GET\"\npath = \"/version\"\ncolour = \"red\"\nmock = { status = 200, body = \"bad\" }\n",
    );
    let line = wait_for_log(&gw.stderr_lines, |l| l.contains("routes.toml:4:")).await;
    assert!(line.contains("colour"), "{line}");
    wait_for_log(&gw.stderr_lines, |l| {
        l.contains("still serving the previous config")
    })
    .await;
    let body = client()
        .get(gw.url("/version"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        body, "v1",
        "an invalid file must not replace the running config"
    );
    // A valid file is picked up without a signal.
    replace_file(&routes, &v("v2"));
    wait_for_body(&gw.url("/version"), "v2").await;
}

#[tokio::test]
async fn sigterm_stops_accepting_and_drains_requests_in_flight() {
    let upstream = SlowUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = write_routes(
        &dir,
        &slow_routes(&upstream, "v1", "drain_timeout = \"30s\""),
    );
    let mut gw = spawn_binary(&routes, &[], &HashMap::new()).await;
    let c = client();
    let mut in_flight = tokio::task::JoinSet::new();
    for i in 0..5 {
        let url = gw.url(&format!("/slow/{i}"));
        let c = c.clone();
        in_flight.spawn(async move { c.get(url).send().await?.text().await });
    }
    upstream.wait_for(5).await;
    signal(gw.pid(), "TERM");
    // The listener closes: new connections are refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(gw.addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still accepting after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "exited before draining"
    );
    upstream.release();
    while let Some(r) = in_flight.join_next().await {
        assert_eq!(r.unwrap().expect("in-flight request finished"), "slow-ok");
    }
    let status = tokio::time::timeout(Duration::from_secs(20), gw.child.wait())
        .await
        .expect("gateway exits after draining")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn the_drain_timeout_bounds_shutdown() {
    let upstream = SlowUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = write_routes(
        &dir,
        &slow_routes(&upstream, "v1", "drain_timeout = \"300ms\""),
    );
    let mut gw = spawn_binary(&routes, &[], &HashMap::new()).await;
    let url = gw.url("/slow/never");
    let stuck = tokio::spawn(async move { client().get(url).send().await });
    upstream.wait_for(1).await;
    let sent = std::time::Instant::now();
    signal(gw.pid(), "TERM");
    let status = tokio::time::timeout(Duration::from_secs(20), gw.child.wait())
        .await
        .expect("gateway exits after the drain timeout")
        .unwrap();
    assert!(status.success());
    assert!(sent.elapsed() < Duration::from_secs(10));
    let res = stuck.await.unwrap();
    assert!(res.is_err(), "the stuck request was cut, not answered");
    let logs = gw.stderr_lines.lock().unwrap().join("\n");
    assert!(logs.contains("drain timeout"), "{logs}");
}

#[tokio::test]
async fn metrics_health_and_readiness_on_the_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let routes = write_routes(
        &dir,
        &format!(
            r#"
[admin]
listen = "127.0.0.1:0"

[backends.down]
kind = "http"
url = "http://127.0.0.1:9"
{MOCK_ROUTES}
[[routes]]
method = "GET"
path = "/down"
backend = "down"
"#
        ),
    );
    let env: HashMap<String, String> =
        [("LAMBDAGATE_ADMIN_TOKEN".to_string(), "t0k".to_string())].into();
    let gw = spawn_binary(&routes, &[], &env).await;
    let c = client();
    assert_eq!(c.get(gw.url("/ping")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(gw.url("/nope")).send().await.unwrap().status(), 404);
    assert_eq!(c.get(gw.url("/down")).send().await.unwrap().status(), 502);
    let res = c.get(gw.admin_url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200, "no token needed for /metrics");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    for want in [
        r#"lambdagate_requests_total{route="GET /ping",method="GET",status="200"} 1"#,
        r#"lambdagate_requests_total{route="-",method="GET",status="404"} 1"#,
        r#"lambdagate_backend_errors_total{backend="down",kind="failed"} 1"#,
        r#"lambdagate_request_duration_seconds_bucket{route="GET /ping""#,
        r#"lambdagate_gateway_overhead_seconds_bucket{route="GET /ping""#,
        r#"lambdagate_integration_duration_seconds_bucket{route="GET /down""#,
        "lambdagate_connections_open",
    ] {
        assert!(text.contains(want), "missing {want} in:\n{text}");
    }
    let res = c.get(gw.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = c.get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["status"], "ready");
    assert_eq!(v["routes"], 2);
    // The admin API proper still needs the token.
    let res = c.get(gw.admin_url("/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

fn self_signed() -> (String, String, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (
        ck.cert.pem(),
        ck.signing_key.serialize_pem(),
        ck.cert.der().to_vec(),
    )
}

const TLS_ROUTES: &str = r#"
[gateway]
tls = { cert = "cert.pem", key = "key.pem" }

[[routes]]
method = "GET"
path = "/ping"
mock = { status = 200, body = "pong" }
"#;

async fn h2_get(
    io: impl hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    uri: &str,
) -> (http::Version, u16, String) {
    use http_body_util::BodyExt;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = http::Request::get(uri)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.expect("h2 request");
    let version = res.version();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (version, status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn tls_serves_http2_via_alpn_and_http11() {
    let (cert, key, der) = self_signed();
    let gw = start_with(
        TLS_ROUTES,
        &[("cert.pem", cert.as_bytes()), ("key.pem", key.as_bytes())],
        Default::default(),
    )
    .await;
    // HTTP/1.1 over TLS with an ordinary client.
    let c = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .resolve("localhost", gw.addr)
        .build()
        .unwrap();
    let res = c
        .get(format!("https://localhost:{}/ping", gw.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), http::Version::HTTP_11);
    assert_eq!(res.text().await.unwrap(), "pong");
    // Plain HTTP on the TLS port is not served.
    assert!(client().get(gw.url("/ping")).send().await.is_err());
    // HTTP/2 chosen by ALPN.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(der))
        .unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (version, status, body) =
        h2_get(hyper_util::rt::TokioIo::new(tls), "https://localhost/ping").await;
    assert_eq!(version, http::Version::HTTP_2);
    assert_eq!(status, 200);
    assert_eq!(body, "pong");
}

#[tokio::test]
async fn plain_listener_speaks_h2c_with_prior_knowledge() {
    let gw = crate::common::start(MOCK_ROUTES).await;
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (version, status, body) = h2_get(
        hyper_util::rt::TokioIo::new(tcp),
        &format!("http://{}/ping", gw.addr),
    )
    .await;
    assert_eq!(version, http::Version::HTTP_2);
    assert_eq!(status, 200);
    assert_eq!(body, "pong");
}

#[tokio::test]
async fn a_broken_certificate_is_a_config_error_at_the_tls_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    let routes = write_routes(&dir, TLS_ROUTES);
    let err = lambdagate::config::load(&routes).unwrap_err().to_string();
    assert!(err.contains("routes.toml:3:7"), "{err}");
    assert!(err.contains("cert.pem"), "{err}");
    assert!(
        !err.contains("not a key"),
        "key contents must not be echoed: {err}"
    );
}

#[test]
fn version_and_help_for_every_subcommand_with_examples() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(crate::common::binary())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    };
    let v = run(&["--version"]);
    assert_eq!(
        v.trim(),
        format!("lambdagate {}", env!("CARGO_PKG_VERSION"))
    );
    let help = run(&["--help"]);
    assert!(help.contains("Examples:"), "{help}");
    assert!(help.contains("RUST_LOG"), "{help}");
    // Every subcommand listed under "Commands:" has help with an example.
    let commands: Vec<String> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.contains(&"serve".to_string()), "{commands:?}");
    for c in &commands {
        let h = run(&[c, "--help"]);
        assert!(h.contains("lambdagate "), "{c} --help has no example:\n{h}");
        assert!(
            h.to_lowercase().contains("example"),
            "{c} --help has no example:\n{h}"
        );
    }
    let serve = run(&["serve", "--help"]);
    for want in ["SIGHUP", "--no-watch", "--log-format"] {
        assert!(serve.contains(want), "serve --help lacks {want}:\n{serve}");
    }
}

#[tokio::test]
async fn renewed_certificates_are_picked_up_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a, _) = self_signed();
    std::fs::write(dir.path().join("cert.pem"), &cert_a).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key_a).unwrap();
    let routes = write_routes(&dir, TLS_ROUTES);
    let gw = spawn_binary(&routes, &["--no-watch"], &HashMap::new()).await;
    let trusting = |pem: &str| {
        reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
            .resolve("localhost", gw.addr)
            .build()
            .unwrap()
    };
    let url = format!("https://localhost:{}/ping", gw.addr.port());
    assert_eq!(
        trusting(&cert_a).get(&url).send().await.unwrap().status(),
        200
    );
    let (cert_b, key_b, _) = self_signed();
    std::fs::write(dir.path().join("cert.pem"), &cert_b).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key_b).unwrap();
    signal(gw.pid(), "HUP");
    wait_for_log(&gw.stderr_lines, |l| l.contains("config reloaded")).await;
    // New connections present the renewed certificate.
    let res = trusting(&cert_b).get(&url).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "pong");
    assert!(trusting(&cert_a).get(&url).send().await.is_err());
}

/// Kills a child process when dropped (also when an assertion fails).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CI has no Docker daemon, so the image is not built here. What is
/// checked: the Dockerfile parses (dockerfile-parse) and passes
/// `scripts/check-dockerfile.py` (multi-stage, a dependency layer with every
/// workspace member and declared target, the built binary is the one
/// copied, non-root, EXPOSE = the listeners, HEALTHCHECK, .dockerignore),
/// and the container's own command line and health check work with this
/// binary.
#[test]
fn dockerfile_checks_and_its_entrypoint_and_healthcheck_run() {
    use std::io::BufRead;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("scripts/check-dockerfile.py"))
        .output()
        .expect("run scripts/check-dockerfile.py (scripts/setup-test-deps.sh installs it)");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        out.status.success(),
        "Dockerfile problems: {}",
        report["problems"]
    );
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    // EXPOSE lists exactly the default listeners' ports (the script checks
    // the command opens a listener on each).
    let defaults =
        lambdagate::config::parse(std::path::Path::new("routes.toml"), "[admin]\n").unwrap();
    let mut want = vec![
        defaults.gateway.listen.port().to_string(),
        defaults.admin.as_ref().unwrap().listen.port().to_string(),
    ];
    let mut exposed = strings(&report["exposed"]);
    want.sort();
    exposed.sort();
    assert_eq!(exposed, want, "EXPOSE vs the default listen ports");
    // The container's command, on free ports instead of 8080/9081.
    let argv = strings(&report["argv"]);
    assert_eq!(argv[..2], ["lambdagate", "serve"]);
    let args: Vec<String> = argv[1..]
        .iter()
        .map(|a| {
            if a.starts_with("0.0.0.0:") {
                "127.0.0.1:0".to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let routes = write_routes(&dir, MOCK_ROUTES);
    let child = std::process::Command::new(crate::common::binary())
        .args(&args)
        .env("LAMBDAGATE_CONFIG", &routes)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let first = std::io::BufReader::new(stdout)
        .lines()
        .next()
        .expect("a first line")
        .unwrap();
    let addr = first
        .split("://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    // The HEALTHCHECK command, pointed at that address.
    let health = strings(&report["healthcheck"]);
    let probe = |addr: &str| {
        let args: Vec<String> = health[1..]
            .iter()
            .map(|a| {
                if a.starts_with("127.0.0.1:") {
                    addr.to_string()
                } else {
                    a.clone()
                }
            })
            .collect();
        std::process::Command::new(crate::common::binary())
            .args(&args)
            .env("LAMBDAGATE_CONFIG", &routes)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(probe(&addr), "health check fails against a running gateway");
    drop(child);
    assert!(!probe(&addr), "health check passes with no gateway");
}

#[tokio::test]
async fn auth_decisions_are_counted_and_the_principal_is_logged_never_the_token() {
    const SECRET: &str = "ops-hs-secret-0123456789abcdef0123";
    let dir = tempfile::tempdir().unwrap();
    let routes = write_routes(
        &dir,
        r#"
[admin]
listen = "127.0.0.1:0"

[auth.opsusers]
kind = "jwt"
secret_env = "OPS_HS_SECRET"
issuer = "https://issuer.test"
audience = ["api"]
algorithms = ["HS256"]

[[routes]]
method = "GET"
path = "/me"
auth = "opsusers"
mock = { status = 200, body = "me" }
"#,
    );
    let env: HashMap<String, String> = [
        ("LAMBDAGATE_ADMIN_TOKEN", "t0k"),
        ("OPS_HS_SECRET", SECRET),
        ("RUST_LOG", "debug"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let gw = spawn_binary(&routes, &["--log-format", "json"], &env).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://issuer.test", "aud": "api", "sub": "user-42",
        "iat": now, "exp": now + 3600,
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let c = client();
    let res = c
        .get(gw.url("/me"))
        .bearer_auth(&token)
        .header("x-amzn-requestid", "ops-auth-ok")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = c.get(gw.url("/me")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let text = c
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        r#"lambdagate_auth_decisions_total{authorizer="opsusers",decision="allow"} 1"#,
        r#"lambdagate_auth_decisions_total{authorizer="opsusers",decision="deny"} 1"#,
    ] {
        assert!(text.contains(want), "missing {want} in:\n{text}");
    }
    let line = wait_for_log(&gw.stderr_lines, |l| {
        l.contains("ops-auth-ok") && l.contains("lambdagate::access")
    })
    .await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["fields"]["principal"], "user-42");
    let logs = gw.stderr_lines.lock().unwrap().join("\n");
    assert!(!logs.contains(&token), "the JWT reached the logs");
    assert!(!logs.contains(SECRET), "the HS secret reached the logs");
}

#[tokio::test]
async fn local_backend_cold_starts_and_pool_size_are_metrics() {
    const BOOT: &str = r#"#!/bin/bash
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
    H="$(mktemp)"
    curl -sS -D "$H" "$API/invocation/next" > /dev/null || exit 1
    ID="$(grep -i '^lambda-runtime-aws-request-id:' "$H" | cut -d: -f2 | tr -d '[:space:]')"
    rm -f "$H"
    curl -sS -X POST "$API/invocation/$ID/response" -d '{"statusCode":200,"body":"warm"}' > /dev/null
done
"#;
    assert!(lambdagate::metrics::install().is_some());
    let gw = start_with(
        r#"
[backends.local]
kind = "local"

[functions.opsmetricsfn]
command = ["bash", "bootstrap"]
timeout = "5s"

[[routes]]
method = "GET"
path = "/fn"
function = "opsmetricsfn"
"#,
        &[("bootstrap", BOOT.as_bytes())],
        Default::default(),
    )
    .await;
    for _ in 0..2 {
        let res = client().get(gw.url("/fn")).send().await.unwrap();
        assert_eq!(res.text().await.unwrap(), "warm");
    }
    let text = lambdagate::metrics::render().unwrap();
    assert!(
        text.contains(r#"lambdagate_cold_starts_total{function="opsmetricsfn"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"lambdagate_pool_size{function="opsmetricsfn"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"lambdagate_queue_depth{function="opsmetricsfn"}"#));
    gw.stop().await;
}

/// Waits (bounded) until at least `n` captured stderr lines satisfy `pred`.
async fn wait_for_log_count(
    lines: &std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    n: usize,
    pred: impl Fn(&str) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if lines.lock().unwrap().iter().filter(|l| pred(l)).count() >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} matching log line(s) not seen; got:\n{}",
            lines.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database of its own on the shared PostgreSQL, dropped at the end.
struct FreshDatabase {
    name: String,
    admin: sqlx::PgPool,
}

impl FreshDatabase {
    async fn create() -> Self {
        let name = format!("lgops_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(PG_ADMIN_URL).await.unwrap();
        let db = Self { name, admin };
        db.execute(&format!("CREATE DATABASE \"{}\"", db.name))
            .await;
        db
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    async fn execute(&self, sql: &str) {
        use sqlx::Executor;
        self.admin
            .execute(sqlx::AssertSqlSafe(sql.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Drops it even while the gateway holds connections to it.
    async fn drop_now(&self) {
        self.execute(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .await;
    }
}

async fn readyz(gw: &crate::common::GatewayProcess) -> (u16, serde_json::Value) {
    let res = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// Polls /readyz (bounded) until it answers `want`.
async fn wait_for_readyz(gw: &crate::common::GatewayProcess, want: u16) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = readyz(gw).await;
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never answered {want}; last: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// /readyz follows the store: ready on a reachable PostgreSQL, 503 with the
/// reason once its database is gone, ready again when it is back. Redis (up
/// here) is reported as a check of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_postgres_store_is_unreachable() {
    let db = FreshDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = write_routes(
        &dir,
        &format!(
            r#"
[admin]
listen = "127.0.0.1:0"

[store]
kind = "postgres"
url = "{url}"

[cluster]
redis_url = "redis://127.0.0.1:6379"
key_prefix = "{name}"
{MOCK_ROUTES}"#,
            url = db.url(),
            name = db.name
        ),
    );
    let env: HashMap<String, String> = [
        ("LAMBDAGATE_ADMIN_TOKEN".to_string(), "t0k".to_string()),
        ("RUST_LOG".to_string(), "warn".to_string()),
    ]
    .into();
    let gw = spawn_binary(&routes, &["--no-watch"], &env).await;
    let (status, v) = readyz(&gw).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "ready");
    assert_eq!(v["checks"]["config"]["status"], "ok");
    assert_eq!(v["checks"]["store"]["status"], "ok");
    assert_eq!(v["checks"]["store"]["kind"], "postgres");
    assert_eq!(v["checks"]["cluster"]["status"], "ok");
    assert_eq!(v["reasons"], serde_json::json!([]));

    db.drop_now().await;
    let (status, v) = readyz(&gw).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["status"], "not ready");
    assert_eq!(v["checks"]["store"]["status"], "unreachable");
    let reason = v["reasons"][0].as_str().unwrap();
    assert!(reason.starts_with("store (postgres) unreachable"), "{v}");
    assert!(reason.contains("does not exist"), "{v}");
    // Liveness is not readiness: the process still answers.
    let live = client().get(gw.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200);

    // The database comes back (empty): the pool reconnects by itself.
    db.execute(&format!("CREATE DATABASE \"{}\"", db.name))
        .await;
    let v = wait_for_readyz(&gw, 200).await;
    assert_eq!(v["checks"]["store"]["status"], "ok");
    drop(gw);
    db.drop_now().await;
}

/// Redis unreachable: with fail-open the node stays ready (it serves on
/// local limiters) and says so; with `fail_closed = true` it is not ready.
#[tokio::test]
async fn readyz_reports_an_unreachable_cluster_and_fails_only_when_fail_closed() {
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let env: HashMap<String, String> = [
        ("LAMBDAGATE_ADMIN_TOKEN".to_string(), "t0k".to_string()),
        ("RUST_LOG".to_string(), "warn".to_string()),
    ]
    .into();
    for fail_closed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let routes = write_routes(
            &dir,
            &format!(
                r#"
[admin]
listen = "127.0.0.1:0"

[cluster]
redis_url = "redis://{dead}"
fail_closed = {fail_closed}
{MOCK_ROUTES}"#
            ),
        );
        let gw = spawn_binary(&routes, &["--no-watch"], &env).await;
        let (status, v) = readyz(&gw).await;
        assert_eq!(v["checks"]["cluster"]["status"], "unreachable", "{v}");
        assert_eq!(v["checks"]["cluster"]["fail_closed"], fail_closed, "{v}");
        assert_eq!(v["checks"]["store"]["status"], "ok", "{v}");
        if fail_closed {
            assert_eq!(status, 503, "{v}");
            let reason = v["reasons"][0].as_str().unwrap();
            assert!(reason.contains("cluster Redis unreachable"), "{v}");
        } else {
            assert_eq!(status, 200, "{v}");
            assert_eq!(v["status"], "ready");
        }
    }
}

/// A reload rebuilds the admin API: a new token file and new `[plans.*]`
/// take effect at once; a changed admin listen address cannot, so the
/// reload says so and the admin API stays where it was.
#[tokio::test]
async fn a_reload_applies_the_new_admin_token_and_plans_and_keeps_the_admin_address() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old.token"), "old-admin-token").unwrap();
    std::fs::write(dir.path().join("new.token"), "new-admin-token").unwrap();
    let config = |listen: &str, token_file: &str, plan: &str| {
        format!(
            r#"
[admin]
listen = "{listen}"
token_file = "{token_file}"

[plans.{plan}]
throttle = {{ rate = 5, burst = 10 }}
{MOCK_ROUTES}"#
        )
    };
    let routes = write_routes(&dir, &config("127.0.0.1:0", "old.token", "bronze"));
    let env: HashMap<String, String> = [("RUST_LOG".to_string(), "info".to_string())].into();
    let gw = spawn_binary(&routes, &["--no-watch"], &env).await;
    let plans = |token: &'static str| {
        let url = gw.admin_url("/plans");
        async move {
            let res = client().get(url).bearer_auth(token).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.text().await.unwrap())
        }
    };
    let (status, body) = plans("old-admin-token").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("bronze"), "{body}");
    assert_eq!(plans("new-admin-token").await.0, 401);

    replace_file(&routes, &config("127.0.0.2:9", "new.token", "silver"));
    signal(gw.pid(), "HUP");
    wait_for_log(&gw.stderr_lines, |l| l.contains("config reloaded")).await;
    let (status, body) = plans("new-admin-token").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("silver"), "{body}");
    assert!(!body.contains("bronze"), "{body}");
    assert_eq!(plans("old-admin-token").await.0, 401);
    let logs = gw.stderr_lines.lock().unwrap().join("\n");
    assert!(
        logs.contains("[admin] listen changed to 127.0.0.2:9") && logs.contains("until a restart"),
        "{logs}"
    );

    // An unreadable token file fails the reload: the running admin API
    // (new token) keeps working.
    replace_file(&routes, &config("127.0.0.1:0", "missing.token", "gold"));
    signal(gw.pid(), "HUP");
    wait_for_log(&gw.stderr_lines, |l| {
        l.contains("still serving the previous config")
    })
    .await;
    let logs = gw.stderr_lines.lock().unwrap().join("\n");
    assert!(logs.contains("missing.token"), "{logs}");
    let (status, body) = plans("new-admin-token").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("silver") && !body.contains("gold"), "{body}");

    // [admin] removed: the listener stays (sockets are bound at start) but
    // the admin API is gone, token or not; health probes go with it.
    replace_file(&routes, MOCK_ROUTES);
    signal(gw.pid(), "HUP");
    wait_for_log_count(&gw.stderr_lines, 2, |l| l.contains("config reloaded")).await;
    assert_eq!(plans("new-admin-token").await.0, 404);
    let logs = gw.stderr_lines.lock().unwrap().join("\n");
    assert!(logs.contains("[admin] was removed"), "{logs}");
    assert_eq!(
        client().get(gw.url("/ping")).send().await.unwrap().status(),
        200
    );
}
