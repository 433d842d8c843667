//! Local backend benchmark: cold start of the `hello` example function and
//! the warm latency the local backend adds over driving the function's
//! Runtime API loop directly. Run with `bench/local-backend.sh`.
//!
//! Baseline: the function process talks to one Runtime API endpoint and the
//! bench hands invocations straight to its queue (no pool, no permits, no
//! tasks). Measured: `LocalBackend::invoke` on a warm pool of the same
//! function. Blocks of both alternate so machine noise hits both alike.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use lambdagate::backend::local::{LocalBackend, LocalSettings};
use lambdagate::backend::{FunctionBackend, InvokeRequest};
use lambdagate::config::FunctionConfig;
use lambdagate::runtime_api::process::{FunctionProcess, SpawnSpec};
use lambdagate::runtime_api::queue::{Invocation, Outcome};
use lambdagate::runtime_api::{EnvironmentState, RuntimeApiServer};

const PAYLOAD: &[u8] = br#"{"name":"bench"}"#;

fn function(bin: &str) -> Arc<FunctionConfig> {
    Arc::new(FunctionConfig {
        key: "hello".into(),
        command: Some(vec![bin.to_string()]),
        name: "hello".into(),
        env: Default::default(),
        timeout: Duration::from_secs(3),
        timeout_configured: true,
        concurrency: 1,
        memory_size: 128,
        handler: None,
        cwd: std::env::temp_dir(),
        runtime: None,
        backend: None,
        queue: 10,
    })
}

fn backend() -> LocalBackend {
    LocalBackend::new(LocalSettings {
        name: "local".into(),
        base_dir: std::env::temp_dir(),
        region: "us-east-1".into(),
        account_id: "123456789012".into(),
        max_queue: None,
        limits: Default::default(),
    })
}

fn request(f: &Arc<FunctionConfig>, i: usize) -> InvokeRequest {
    InvokeRequest {
        function: f.clone(),
        payload: Bytes::from_static(PAYLOAD),
        timeout: Duration::from_secs(10),
        request_id: format!("bench-{i}"),
        client_context: None,
        log_tail: false,
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// The function's own Runtime API loop, driven directly.
struct Direct {
    env: Arc<EnvironmentState>,
    _server: RuntimeApiServer,
    process: FunctionProcess,
}

impl Direct {
    async fn start(bin: &str) -> Self {
        let env = Arc::new(EnvironmentState::new("hello"));
        let server = RuntimeApiServer::start(env.clone(), Default::default())
            .await
            .unwrap();
        let spec = SpawnSpec {
            function: "hello".into(),
            program: bin.into(),
            args: vec![],
            cwd: std::env::temp_dir(),
            env: vec![
                ("AWS_LAMBDA_RUNTIME_API".into(), server.addr().to_string()),
                ("AWS_LAMBDA_FUNCTION_NAME".into(), "hello".into()),
                ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "128".into()),
            ],
            memory_limit: Some(128 << 20),
        };
        let process = FunctionProcess::spawn(&spec, &env.log).unwrap();
        Self {
            env,
            _server: server,
            process,
        }
    }

    async fn invoke(&self, i: usize) -> Bytes {
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + 3000;
        let rx = self
            .env
            .queue
            .submit(Invocation {
                request_id: format!("direct-{i}"),
                payload: Bytes::from_static(PAYLOAD),
                deadline_ms,
                function_arn: "arn:aws:lambda:us-east-1:123456789012:function:hello".into(),
                trace_id: "Root=1-00000000-000000000000000000000000".into(),
                client_context: None,
            })
            .unwrap();
        match rx.await.unwrap() {
            Outcome::Response(b) => b,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs this without a function to measure.
    let Some(bin) = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .or_else(|| std::env::var("HELLO_BIN").ok())
    else {
        println!("skipped: run bench/local-backend.sh (needs a release build of `hello`)");
        return;
    };
    let f = function(&bin);

    // Cold start: a fresh pool each time, first invocation end to end.
    let mut cold = Vec::new();
    for i in 0..20 {
        let b = backend();
        let t = Instant::now();
        let r = b.invoke(request(&f, i)).await.unwrap();
        cold.push(t.elapsed());
        assert!(r.function_error.is_none());
        b.shutdown().await;
    }
    cold.sort();

    // Warm: alternate blocks of direct and backend invocations.
    let direct = Direct::start(&bin).await;
    let b = backend();
    for i in 0..200 {
        direct.invoke(i).await;
        b.invoke(request(&f, i)).await.unwrap();
    }
    let (mut d, mut l) = (Vec::new(), Vec::new());
    let mut n = 0;
    for _block in 0..20 {
        for _ in 0..250 {
            n += 1;
            let t = Instant::now();
            direct.invoke(n).await;
            d.push(t.elapsed());
        }
        for _ in 0..250 {
            n += 1;
            let t = Instant::now();
            b.invoke(request(&f, n)).await.unwrap();
            l.push(t.elapsed());
        }
    }
    d.sort();
    l.sort();
    println!(
        "cold start (spawn → first response), n={}: p50 {:.0} µs, p99 {:.0} µs",
        cold.len(),
        pct(&cold, 0.5),
        pct(&cold, 0.99)
    );
    println!(
        "warm direct Runtime API loop, n={}: p50 {:.0} µs, p99 {:.0} µs",
        d.len(),
        pct(&d, 0.5),
        pct(&d, 0.99)
    );
    println!(
        "warm local backend,           n={}: p50 {:.0} µs, p99 {:.0} µs",
        l.len(),
        pct(&l, 0.5),
        pct(&l, 0.99)
    );
    println!(
        "added by the local backend: p50 {:+.0} µs, p99 {:+.0} µs (ratio p50 {:.2}, p99 {:.2})",
        pct(&l, 0.5) - pct(&d, 0.5),
        pct(&l, 0.99) - pct(&d, 0.99),
        pct(&l, 0.5) / pct(&d, 0.5),
        pct(&l, 0.99) / pct(&d, 0.99)
    );
    b.shutdown().await;
    direct.process.stop(Duration::from_secs(1)).await;
}
