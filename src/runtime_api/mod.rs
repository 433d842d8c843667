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

/// One environment's Runtime API endpoint, served until dropped.
pub struct RuntimeApiServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl RuntimeApiServer {
    /// Serves the Runtime API for `env` on a free loopback port.
    pub async fn start(env: Arc<EnvironmentState>) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let app = handlers::router(env);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
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
