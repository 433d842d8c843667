//! The built-in Lambda Runtime API the `local` backend runs functions
//! against. Like Lambda, every execution environment (one function process)
//! gets its own Runtime API endpoint: a listener on a free loopback port
//! whose address the process finds in `AWS_LAMBDA_RUNTIME_API`, so the
//! gateway always knows which process took which invocation.
//!
//! - [`handlers`]: the Runtime API routes, declared in one function;
//! - [`queue`]: invocations waiting for `/next` and replies pending by request id;
//! - [`process`]: spawning, log streaming and killing function processes.

pub mod handlers;
pub mod process;
pub mod queue;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Limits;
use crate::server::ListenerPolicy;
use process::ProcessLog;
use queue::InvocationQueue;

/// What the Runtime API routes of one environment share.
pub struct EnvironmentState {
    pub function: String,
    pub queue: InvocationQueue,
    pub log: Arc<ProcessLog>,
    /// When the process first asked for work (its init finished).
    pub first_next: OnceLock<Instant>,
}

impl EnvironmentState {
    pub fn new(function: &str) -> Self {
        Self {
            function: function.to_string(),
            // One invocation at a time per environment, as in Lambda.
            queue: InvocationQueue::new(1),
            log: Arc::new(ProcessLog::new(function)),
            first_next: OnceLock::new(),
        }
    }
}

/// Room past the payload limit on a Runtime API listener's body cap, so
/// an oversized function response is refused by its route, in the Runtime
/// API's words and failing its invocation, rather than cut by the cap.
const BODY_HEADROOM: usize = 64 * 1024;

/// One environment's Runtime API endpoint, served until dropped.
pub struct RuntimeApiServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl RuntimeApiServer {
    /// Serves the Runtime API for `env` on a free loopback port, under the
    /// same listener policy as the API (`limits`, the gateway's
    /// `[gateway.limits]`, see [`crate::server::serve_router`]). A request
    /// being served arms no timer, so a `/next` long poll waits as long as
    /// it takes; the idle timeout runs only between requests.
    pub async fn start(env: Arc<EnvironmentState>, limits: Limits) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let app = handlers::router(env);
        let max_body = limits
            .max_function_payload
            .max(handlers::MAX_RESPONSE_BYTES)
            + BODY_HEADROOM;
        let policy = ListenerPolicy {
            limits,
            ..ListenerPolicy::default()
        }
        .with_max_body(max_body);
        // Stopped by dropping the server (the task is aborted), never drained.
        let forever = std::future::pending::<()>();
        let task = tokio::spawn(async move {
            if let Err(e) = crate::server::serve_router(listener, app, policy, forever).await {
                tracing::warn!(error = %e, "Runtime API listener stopped");
            }
        });
        Ok(Self { addr, task })
    }

    /// The `AWS_LAMBDA_RUNTIME_API` value: `host:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for RuntimeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
