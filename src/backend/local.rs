//! `local` backend: runs each `[functions.X]` `command` as child processes
//! against the built-in Runtime API (`crate::runtime_api`) — no AWS account,
//! no Docker.
//!
//! Per function, a warm pool of at most `concurrency` processes (reserved
//! concurrency): an invocation takes an idle process or starts one (a cold
//! start, counted and logged); when all are busy it waits, at most `queue`
//! invocations wait (and at most the backend's `max_queue` in all), the rest
//! get 429. A process that exits mid-invoke fails that invocation the way
//! Lambda does (`Unhandled`, `Runtime.ExitError`) and the next one gets a
//! fresh process; one that overruns the function's `timeout` is killed (504),
//! and so is one whose resident memory goes past its `memory_size` (the
//! invocation then fails as the crash above, `signal: killed`).
//! A function that keeps failing at start-up is restarted with an
//! exponential back-off, answering 502 meanwhile.
//! `shutdown` stops every process group; nothing outlives the gateway.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::{BackendError, FunctionBackend, InvokeRequest, InvokeResponse};
use crate::config::FunctionConfig;
use crate::runtime_api::process::{FunctionProcess, SpawnSpec};
use crate::runtime_api::queue::{Invocation, Outcome};
use crate::runtime_api::{EnvironmentState, RuntimeApiServer};

/// How long a process gets between SIGTERM and SIGKILL on shutdown.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Settings of one `local` backend.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    pub name: String,
    /// Relative commands are resolved against this folder (the routes file's).
    pub base_dir: PathBuf,
    pub region: String,
    pub account_id: String,
    /// Invocations allowed to wait across all functions of this backend.
    pub max_queue: Option<usize>,
    /// `[gateway.limits]`, which each Runtime API listener applies too.
    pub limits: crate::config::Limits,
}

/// Counters of one function's pool (also exported as metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub cold_starts: u64,
    pub invocations: u64,
    /// Processes alive now (idle or busy).
    pub processes: usize,
    pub idle: usize,
}

pub struct LocalBackend {
    settings: LocalSettings,
    pools: Mutex<HashMap<String, Arc<FunctionPool>>>,
    waiting: Arc<AtomicUsize>,
    closed: AtomicBool,
}

impl LocalBackend {
    pub fn new(settings: LocalSettings) -> Self {
        Self {
            settings,
            pools: Mutex::new(HashMap::new()),
            waiting: Arc::new(AtomicUsize::new(0)),
            closed: AtomicBool::new(false),
        }
    }

    fn pool(&self, f: &Arc<FunctionConfig>) -> Arc<FunctionPool> {
        lock(&self.pools)
            .entry(f.key.clone())
            .or_insert_with(|| Arc::new(FunctionPool::new(f.clone(), &self.settings)))
            .clone()
    }

    /// Counters of one function's pool, if it ever ran.
    pub fn stats(&self, function: &str) -> Option<PoolStats> {
        lock(&self.pools).get(function).map(|p| p.stats())
    }

    /// Process ids of every live function process (for tests and diagnostics).
    pub fn pids(&self) -> Vec<u32> {
        let pools: Vec<_> = lock(&self.pools).values().cloned().collect();
        pools
            .iter()
            .flat_map(|p| {
                lock(&p.live)
                    .values()
                    .map(|e| e.process.pid())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    async fn call(&self, req: InvokeRequest) -> Result<InvokeResponse, BackendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(BackendError::Failed("the gateway is shutting down".into()));
        }
        let Some(command) = req.function.command.clone().filter(|c| !c.is_empty()) else {
            return Err(BackendError::NotFound(format!(
                "{} (it has no `command` to run on the local backend)",
                req.function.key
            )));
        };
        // The caller waits at most `req.timeout` in all: in the queue, for a
        // cold start, and for the answer. The function's own `timeout` is
        // counted from when its process takes the invocation (`run`).
        let waits = req.timeout;
        let deadline = tokio::time::Instant::now() + waits;
        let pool = self.pool(&req.function);
        let permit = pool
            .admit(&self.waiting, self.settings.max_queue, req.timeout)
            .await?;
        let (env, cold) = match pool.take_idle() {
            Some(env) => (env, false),
            None => {
                pool.startup_allowed()?;
                (pool.cold_start(&command).await?, true)
            }
        };
        // Pool metrics (src/metrics.rs): cold starts, processes, waiters.
        let key = req.function.key.clone();
        if cold {
            crate::metrics::cold_start(&key);
        }
        pool.record_gauges(&key);
        let (tx, rx) = oneshot::channel();
        // The invocation runs to the function's own deadline even when the
        // caller stops waiting earlier, as on Lambda; then the process goes
        // back to the pool or is killed.
        let run_pool = pool.clone();
        tokio::spawn(async move {
            let (result, reusable) = run_pool.run(&env, &req, cold).await;
            let _ = tx.send(result);
            run_pool.release(env, reusable);
            drop(permit);
            run_pool.record_gauges(&key);
        });
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(BackendError::Failed("the invocation was abandoned".into())),
            Err(_) => Err(BackendError::Timeout(waits)),
        }
    }

    async fn stop_all(&self) {
        self.closed.store(true, Ordering::Release);
        let pools: Vec<_> = lock(&self.pools).values().cloned().collect();
        let mut stops = Vec::new();
        for pool in pools {
            let envs: Vec<_> = lock(&pool.live).drain().map(|(_, e)| e).collect();
            lock(&pool.idle).clear();
            for env in envs {
                stops.push(async move { env.process.stop(STOP_GRACE).await });
            }
        }
        futures::future::join_all(stops).await;
    }
}

impl FunctionBackend for LocalBackend {
    fn invoke(&self, req: InvokeRequest) -> BoxFuture<'_, Result<InvokeResponse, BackendError>> {
        Box::pin(self.call(req))
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.stop_all())
    }
}

/// One function process and its Runtime API endpoint.
struct Environment {
    id: u64,
    state: Arc<EnvironmentState>,
    process: FunctionProcess,
    started: Instant,
    _server: RuntimeApiServer,
}

/// The warm pool of one function.
struct FunctionPool {
    function: Arc<FunctionConfig>,
    arn: String,
    base_dir: PathBuf,
    region: String,
    limits: crate::config::Limits,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    idle: Mutex<Vec<Arc<Environment>>>,
    live: Mutex<HashMap<u64, Arc<Environment>>>,
    next_id: AtomicU64,
    cold_starts: AtomicU64,
    invocations: AtomicU64,
    /// Processes in a row that ended before taking their first invocation
    /// (exited at start-up, or reported an init error), and until when no
    /// new one is started.
    startup: Mutex<StartupFailures>,
}

/// A function that keeps failing at start-up is not restarted in a tight
/// loop: after each failure the next start waits [`STARTUP_BACKOFF`]
/// doubled per failure in a row, at most [`MAX_STARTUP_BACKOFF`]; requests
/// meanwhile get `502` at once. A process that takes an invocation ends
/// the run.
#[derive(Default)]
struct StartupFailures {
    in_a_row: u32,
    retry_at: Option<Instant>,
}

/// The first back-off after a start-up failure.
const STARTUP_BACKOFF: Duration = Duration::from_millis(250);
/// The longest back-off.
const MAX_STARTUP_BACKOFF: Duration = Duration::from_secs(30);

/// Decrements a waiting counter when an admitted or abandoned wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl FunctionPool {
    fn new(function: Arc<FunctionConfig>, s: &LocalSettings) -> Self {
        Self {
            arn: format!(
                "arn:aws:lambda:{}:{}:function:{}",
                s.region, s.account_id, function.key
            ),
            base_dir: s.base_dir.clone(),
            region: s.region.clone(),
            limits: s.limits,
            permits: Arc::new(Semaphore::new(function.concurrency.max(1))),
            waiting: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            cold_starts: AtomicU64::new(0),
            invocations: AtomicU64::new(0),
            startup: Mutex::new(StartupFailures::default()),
            function,
        }
    }

    /// Updates the pool-size and queue-depth gauges for this function.
    fn record_gauges(&self, function: &str) {
        crate::metrics::pool_size(function, lock(&self.live).len());
        crate::metrics::queue_depth(function, self.waiting.load(Ordering::Relaxed));
    }

    fn stats(&self) -> PoolStats {
        PoolStats {
            cold_starts: self.cold_starts.load(Ordering::Relaxed),
            invocations: self.invocations.load(Ordering::Relaxed),
            processes: lock(&self.live).len(),
            idle: lock(&self.idle).len(),
        }
    }

    /// A concurrency slot: at once when one is free, else after waiting in
    /// the bounded queue; 429 when the queue is full.
    async fn admit(
        &self,
        backend_waiting: &Arc<AtomicUsize>,
        backend_max: Option<usize>,
        wait_at_most: Duration,
    ) -> Result<OwnedSemaphorePermit, BackendError> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        let throttled = || {
            metrics::counter!("lambdagate_local_throttles_total", "function" => self.function.key.clone())
                .increment(1);
            BackendError::Throttled(format!(
                "function `{}` is at its concurrency limit ({}) and its queue is full",
                self.function.key, self.function.concurrency
            ))
        };
        let _mine = Waiting(&self.waiting);
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.function.queue {
            return Err(throttled());
        }
        let _all = Waiting(backend_waiting);
        if backend_waiting.fetch_add(1, Ordering::AcqRel) >= backend_max.unwrap_or(usize::MAX) {
            return Err(throttled());
        }
        match tokio::time::timeout(wait_at_most, self.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(BackendError::Failed("the pool is closed".into())),
            Err(_) => Err(BackendError::Timeout(wait_at_most)),
        }
    }

    /// Whether a new process may start now, or the function is backing off
    /// after failing at start-up.
    fn startup_allowed(&self) -> Result<(), BackendError> {
        let s = lock(&self.startup);
        match s.retry_at {
            Some(at) if Instant::now() < at => Err(BackendError::Failed(format!(
                "function `{}` failed at start-up {} times in a row; not restarted for another {} ms",
                self.function.key,
                s.in_a_row,
                at.saturating_duration_since(Instant::now()).as_millis()
            ))),
            _ => Ok(()),
        }
    }

    /// Records how a process's first invocation went: `started` if it took
    /// the invocation, else it ended before (at start-up).
    fn record_startup(&self, env: &Environment, started: bool) {
        let mut s = lock(&self.startup);
        if started {
            *s = StartupFailures::default();
            return;
        }
        s.in_a_row = s.in_a_row.saturating_add(1);
        let backoff = STARTUP_BACKOFF
            .saturating_mul(1 << (s.in_a_row - 1).min(16))
            .min(MAX_STARTUP_BACKOFF);
        s.retry_at = Some(Instant::now() + backoff);
        tracing::warn!(
            function = %self.function.key,
            pid = env.process.pid(),
            failures_in_a_row = s.in_a_row,
            backoff_ms = backoff.as_millis() as u64,
            "function process failed at start-up; backing off before the next start"
        );
    }

    fn take_idle(&self) -> Option<Arc<Environment>> {
        let mut idle = lock(&self.idle);
        while let Some(env) = idle.pop() {
            if env.process.exit_status().is_none() {
                return Some(env);
            }
            lock(&self.live).remove(&env.id);
        }
        None
    }

    /// Starts a new process for this function.
    async fn cold_start(&self, command: &[String]) -> Result<Arc<Environment>, BackendError> {
        let f = &self.function;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(EnvironmentState::new(&f.key));
        let server = RuntimeApiServer::start(state.clone(), self.limits)
            .await
            .map_err(|e| {
                BackendError::Failed(format!("cannot open a Runtime API listener: {e}"))
            })?;
        let spec = self.spawn_spec(command, &server.addr().to_string(), id);
        let process = FunctionProcess::spawn(&spec, &state.log).map_err(|e| {
            tracing::error!(
                function = %f.key,
                command = ?command,
                cwd = %f.cwd.display(),
                error = %e,
                "cannot start the function process"
            );
            BackendError::Failed(format!(
                "cannot start function `{}` ({}): {e}",
                f.key,
                spec.program.display()
            ))
        })?;
        self.cold_starts.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("lambdagate_local_cold_starts_total", "function" => f.key.clone())
            .increment(1);
        tracing::info!(function = %f.key, pid = process.pid(), runtime_api = %server.addr(), "cold start: function process started");
        let env = Arc::new(Environment {
            id,
            state,
            process,
            started: Instant::now(),
            _server: server,
        });
        lock(&self.live).insert(id, env.clone());
        Ok(env)
    }

    fn spawn_spec(&self, command: &[String], runtime_api: &str, id: u64) -> SpawnSpec {
        let f = &self.function;
        let program = resolve_program(&self.base_dir, &command[0]);
        let day = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!("[year]/[month]/[day]"))
            .unwrap_or_default();
        let mut env: Vec<(String, String)> = vec![
            ("AWS_LAMBDA_RUNTIME_API".into(), runtime_api.into()),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), f.key.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
                f.memory_size.to_string(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME".into(),
                format!("/aws/lambda/{}", f.key),
            ),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME".into(),
                format!("{day}/[$LATEST]{id:032x}"),
            ),
            ("AWS_REGION".into(), self.region.clone()),
            ("AWS_DEFAULT_REGION".into(), self.region.clone()),
            ("LAMBDA_TASK_ROOT".into(), f.cwd.display().to_string()),
            ("LAMBDA_RUNTIME_DIR".into(), f.cwd.display().to_string()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
        ];
        if let Some(h) = &f.handler {
            env.push(("_HANDLER".into(), h.clone()));
        }
        if let Some(r) = &f.runtime {
            env.push(("AWS_EXECUTION_ENV".into(), format!("AWS_Lambda_{r}")));
        }
        env.extend(f.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        SpawnSpec {
            function: f.key.clone(),
            program,
            args: command[1..].to_vec(),
            cwd: f.cwd.clone(),
            env,
            memory_limit: Some(u64::from(f.memory_size) << 20),
        }
    }

    /// Runs one invocation on `env` until it answers, dies, or overruns the
    /// function's timeout; also says whether the process may serve again.
    async fn run(
        &self,
        env: &Environment,
        req: &InvokeRequest,
        cold: bool,
    ) -> (Result<InvokeResponse, BackendError>, bool) {
        let f = &self.function;
        self.invocations.fetch_add(1, Ordering::Relaxed);
        let timeout = f.timeout;
        env.process.reset_peak_memory();
        let started = Instant::now();
        let deadline_ms = SystemTime::now()
            .checked_add(timeout)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        let client_context = req.client_context.as_deref().map(decode_client_context);
        let invocation = Invocation {
            request_id: req.request_id.clone(),
            payload: req.payload.clone(),
            deadline_ms,
            function_arn: self.arn.clone(),
            trace_id: trace_id(),
            client_context,
        };
        let Ok(reply) = env.state.queue.submit(invocation) else {
            let busy = BackendError::Failed("the function process is busy".into());
            return (Err(busy), false);
        };
        let outcome = tokio::select! {
            biased;
            r = reply => r.ok(),
            status = env.process.exited() => {
                tracing::warn!(function = %f.key, request_id = %req.request_id, %status, "function process exited mid-invocation");
                if cold {
                    self.record_startup(env, env.state.first_next.get().is_some());
                }
                let doc = serde_json::json!({
                    "errorType": "Runtime.ExitError",
                    "errorMessage": format!("RequestId: {} Error: Runtime exited with error: {status}", req.request_id),
                });
                env.state.queue.forget(&req.request_id);
                let _ = env.state.log.end("");
                let crashed = InvokeResponse {
                    payload: Bytes::from(doc.to_string()),
                    function_error: Some("Unhandled".into()),
                    executed_version: Some("$LATEST".into()),
                    log_result: None,
                };
                return (Ok(crashed), false);
            }
            _ = tokio::time::sleep(timeout) => {
                env.state.queue.forget(&req.request_id);
                tracing::warn!(function = %f.key, request_id = %req.request_id, ?timeout, pid = env.process.pid(), "function timed out; killing its process");
                env.process.kill();
                return (Err(BackendError::Timeout(timeout)), false);
            }
        };
        let elapsed = started.elapsed();
        if cold && let Some(first) = env.state.first_next.get() {
            let init = first.duration_since(env.started);
            metrics::histogram!("lambdagate_local_init_seconds", "function" => f.key.clone())
                .record(init.as_secs_f64());
            tracing::info!(function = %f.key, init_ms = init.as_secs_f64() * 1000.0, "cold start: function initialised");
        }
        let tail = if req.log_tail {
            env.state.log.flush().await;
            let report = format!(
                "Duration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
                elapsed.as_secs_f64() * 1000.0,
                elapsed.as_millis().max(1),
                f.memory_size,
                env.process.peak_memory().div_ceil(1 << 20)
            );
            Some(env.state.log.end(&report))
        } else {
            env.state.log.end("");
            None
        };
        let log_result = tail.map(|t| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(t)
        });
        let response = |payload: Bytes, error: Option<&str>| InvokeResponse {
            payload,
            function_error: error.map(str::to_string),
            executed_version: Some("$LATEST".into()),
            log_result: log_result.clone(),
        };
        if cold {
            // An init error: the process never took the invocation.
            let started = !matches!(outcome, Some(Outcome::InitError(_)));
            self.record_startup(env, started);
        }
        match outcome {
            Some(Outcome::Response(body)) => (Ok(response(body, None)), true),
            Some(Outcome::FunctionError(doc)) => (Ok(response(doc, Some("Unhandled"))), true),
            // Lambda starts a fresh environment after a failed init.
            Some(Outcome::InitError(doc)) => (Ok(response(doc, Some("Unhandled"))), false),
            Some(Outcome::ResponseTooLarge) => {
                let doc = serde_json::json!({
                    "errorType": "Function.ResponseSizeTooLarge",
                    "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
                });
                let r = response(Bytes::from(doc.to_string()), Some("Unhandled"));
                (Ok(r), true)
            }
            None => {
                let dropped = BackendError::Failed("the invocation was dropped".into());
                (Err(dropped), false)
            }
        }
    }

    /// Returns a process to the idle pool, or discards it.
    fn release(&self, env: Arc<Environment>, reusable: bool) {
        if reusable && env.process.exit_status().is_none() {
            lock(&self.idle).push(env);
        } else {
            env.process.kill();
            lock(&self.live).remove(&env.id);
        }
    }
}

/// A command with a `/` in it is a path relative to the routes file's folder;
/// a bare name is looked up on `PATH`.
fn resolve_program(base_dir: &Path, program: &str) -> PathBuf {
    let p = Path::new(program);
    if p.is_relative() && program.contains('/') {
        base_dir.join(p)
    } else {
        p.to_path_buf()
    }
}

/// The Invoke API's base64 client context, as the JSON the Runtime API passes on.
fn decode_client_context(b64: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| b64.to_string())
}

/// An X-Ray style trace header.
fn trace_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let r = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{now:08x}-{};Parent={};Sampled=0",
        &r[..24],
        &r[16..32]
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_resolve_against_the_routes_folder() {
        let base = Path::new("/srv/api");
        assert_eq!(
            resolve_program(base, "target/debug/hello"),
            PathBuf::from("/srv/api/target/debug/hello")
        );
        assert_eq!(resolve_program(base, "python3"), PathBuf::from("python3"));
        assert_eq!(resolve_program(base, "/bin/sh"), PathBuf::from("/bin/sh"));
    }

    #[test]
    fn trace_ids_look_like_xray() {
        let t = trace_id();
        assert!(t.starts_with("Root=1-"), "{t}");
        assert!(t.ends_with(";Sampled=0"));
    }
}
