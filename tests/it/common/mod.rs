//! Test helpers: start the real gateway on a free port, in-process or as
//! the real binary, and talk to it over a socket.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

pub mod fake_lambda;
pub mod raw;
pub mod services;

use lambdagate::{Gateway, GatewayOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;

/// A gateway served in this process on 127.0.0.1:0.
pub struct TestGateway {
    pub addr: SocketAddr,
    /// The admin API's address, when the config has `[admin]`.
    pub admin_addr: Option<SocketAddr>,
    pub gateway: Gateway,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A URL on the admin listener (panics if `[admin]` is not configured).
    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.admin_addr.expect("[admin] configured"),
            path
        )
    }

    /// Stops accepting, drains, stops backends.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Writes `routes` as routes.toml in a fresh folder and serves it.
pub async fn start(routes: &str) -> TestGateway {
    start_with(routes, &[], GatewayOptions::default()).await
}

/// Like [`start`], with extra files (relative path, contents) beside the routes file.
pub async fn start_with(
    routes: &str,
    files: &[(&str, &[u8])],
    options: GatewayOptions,
) -> TestGateway {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, contents) in files {
        let p = dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, contents).unwrap();
    }
    let path = dir.path().join("routes.toml");
    std::fs::write(&path, routes).unwrap();
    let config = match lambdagate::config::load(&path) {
        Ok(c) => c,
        Err(e) => panic!("test config does not load:\n{e}"),
    };
    let gateway = match Gateway::new(config, options).await {
        Ok(g) => g,
        Err(e) => panic!("test gateway does not build: {e}"),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    // The admin API, when configured, on the address the config names
    // (tests use 127.0.0.1:0); it stops with the gateway.
    let (admin_addr, admin_stop) = match (&gateway.state().config.admin, gateway.admin_router()) {
        (Some(a), Some(router)) => {
            let l = tokio::net::TcpListener::bind(a.listen).await.unwrap();
            let admin_addr = l.local_addr().unwrap();
            let (atx, arx) = oneshot::channel::<()>();
            let policy = lambdagate::server::ListenerPolicy::of(&gateway.state().config.gateway);
            tokio::spawn(lambdagate::admin::serve(l, router, policy, async {
                let _ = arx.await;
            }));
            (Some(admin_addr), Some(atx))
        }
        _ => (None, None),
    };
    let g = gateway.clone();
    let task = tokio::spawn(async move {
        let _ = g
            .serve(listener, async {
                let _ = rx.await;
            })
            .await;
        drop(admin_stop);
    });
    TestGateway {
        addr,
        admin_addr,
        gateway,
        dir,
        shutdown: Some(tx),
        task: Some(task),
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// The `lambdagate` binary, run as a child process.
pub struct GatewayProcess {
    pub addr: SocketAddr,
    /// The admin API's address, when the config has `[admin]`.
    pub admin_addr: Option<SocketAddr>,
    /// The Lambda Invoke API's address, when the config has `[invoke_api]`.
    pub invoke_addr: Option<SocketAddr>,
    pub child: tokio::process::Child,
    pub stderr_lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl GatewayProcess {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A URL on the admin listener (panics if `[admin]` is not configured).
    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.admin_addr.expect("[admin] configured"),
            path
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or_default()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The binary under test; `LAMBDAGATE_BIN` overrides it (useful when several
/// checkouts share one target folder and overwrite `target/debug/lambdagate`).
pub fn binary() -> PathBuf {
    std::env::var_os("LAMBDAGATE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lambdagate")))
}

/// Runs `lambdagate serve --config CONFIG --listen 127.0.0.1:0 ARGS...` and
/// waits for its "listening on" line.
pub async fn spawn_binary(
    config: &Path,
    args: &[&str],
    env: &HashMap<String, String>,
) -> GatewayProcess {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .args(args)
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn lambdagate");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let stderr_lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = stderr_lines.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            sink.lock().unwrap().push(l);
        }
    });
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .expect("gateway did not start within 60s")
        .expect("read stdout");
    let Some(first) = first else {
        let _ = child.wait().await;
        panic!(
            "gateway exited before listening:\n{}",
            stderr_lines.lock().unwrap().join("\n")
        );
    };
    // `http://ADDR` or, with `[gateway] tls`, `https://ADDR`.
    let addr = first
        .split("://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"));
    let admin_addr = first
        .split("admin API on http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok());
    let invoke_addr = first
        .split("invoke API on http://")
        .nth(1)
        .and_then(|s| s.split([' ', ';']).next())
        .and_then(|s| s.parse().ok());
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    GatewayProcess {
        addr,
        admin_addr,
        invoke_addr,
        child,
        stderr_lines,
    }
}

/// A free-standing HTTP server for tests (an upstream, a fake Lambda API):
/// serves `router` on 127.0.0.1:0 until dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    _shutdown: oneshot::Sender<()>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

pub async fn serve_router(router: axum::Router) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await;
    });
    TestServer {
        addr,
        _shutdown: tx,
    }
}

pub type Headers = HashMap<String, String>;

/// What a fake function returns: its result, or a function error payload.
pub enum FakeResult {
    Ok(serde_json::Value),
    /// Sent with `X-Amz-Function-Error: Unhandled`.
    Error(serde_json::Value),
}

/// A [`fake_lambda::FakeLambda`] whose function is `handler(function name,
/// payload)`.
pub async fn fake_function<F>(handler: F) -> fake_lambda::FakeLambda
where
    F: Fn(&str, serde_json::Value) -> FakeResult + Send + Sync + 'static,
{
    fake_lambda::FakeLambda::start(move |inv| {
        let payload = serde_json::from_slice(&inv.payload).unwrap_or(serde_json::Value::Null);
        match handler(&inv.function, payload) {
            FakeResult::Ok(v) => fake_lambda::Reply::json(v),
            FakeResult::Error(v) => {
                let mut r = fake_lambda::Reply::json(v);
                r.function_error = Some("Unhandled".to_string());
                r
            }
        }
    })
    .await
}

/// Writes `routes` (and files beside it) into a fresh folder; returns the
/// folder and the routes file's path, for [`spawn_binary`].
pub fn write_config(routes: &str, files: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, contents) in files {
        let p = dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, contents).unwrap();
    }
    let path = dir.path().join("routes.toml");
    std::fs::write(&path, routes).unwrap();
    (dir, path)
}
