//! `lambdagate serve`: load, build, listen, serve until SIGINT/SIGTERM
//! (then drain); reload the routes file on SIGHUP or when it changes.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use crate::{Gateway, GatewayOptions};

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Serve this stage instead of `[gateway] stage`.
    #[arg(long)]
    pub stage: Option<String>,
    /// Listen here instead of `[gateway] listen` (port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Serve the admin API here instead of `[admin] listen` (port 0 picks a
    /// free port). Only used when `[admin]` is configured.
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
    /// Serve the Lambda Invoke API here instead of `[invoke_api] listen`
    /// (port 0 picks a free port). Only used when `[invoke_api]` is configured.
    #[arg(long)]
    pub invoke_listen: Option<SocketAddr>,
    /// Do not reload when the routes file changes (SIGHUP still reloads).
    #[arg(long)]
    pub no_watch: bool,
}

pub fn run(config_path: &Path, args: ServeArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config_path, args))
}

async fn serve(config_path: &Path, args: ServeArgs) -> ExitCode {
    // Prometheus recorder for `/metrics`; recording is a no-op without it.
    crate::metrics::install();
    let config = match crate::config::load(config_path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let options = GatewayOptions {
        stage: args.stage.clone(),
    };
    let gateway = match Gateway::new(config.clone(), options.clone()).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = args.listen.unwrap_or(config.gateway.listen);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}");
            gateway.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    // The admin API gets its own listener, bound before anything is announced.
    let admin_listener = match &config.admin {
        Some(a) => {
            let admin_addr = args.admin_listen.unwrap_or(a.listen);
            match tokio::net::TcpListener::bind(admin_addr).await {
                Ok(l) => Some(l),
                Err(e) => {
                    eprintln!("error: cannot listen on {admin_addr} (admin API): {e}");
                    gateway.shutdown().await;
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    let invoke_listener = match &config.invoke_api {
        Some(i) => {
            let invoke_addr = args.invoke_listen.unwrap_or(i.listen);
            match tokio::net::TcpListener::bind(invoke_addr).await {
                Ok(l) => Some(l),
                Err(e) => {
                    eprintln!("error: cannot listen on {invoke_addr} (Invoke API): {e}");
                    gateway.shutdown().await;
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    if let Some(i) = &config.invoke_api
        && i.auth.is_none()
    {
        tracing::info!("[invoke_api] has no auth: unsigned Invoke API calls are accepted");
    }
    let invoke_note = invoke_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| format!("; invoke API on http://{a}"))
        .unwrap_or_default();
    let admin_note = admin_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| format!("; admin API on http://{a}"))
        .unwrap_or_default();
    // Hot reload (SIGHUP, file changes) swaps the gateway inside `server`;
    // registered before the announcement so no change is missed.
    let server = crate::server::Server::new(gateway.clone());
    let _reload = match crate::reload::spawn(server.clone(), config_path, options, !args.no_watch) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            gateway.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    let scheme = if config.gateway.tls.is_some() {
        "https"
    } else {
        "http"
    };
    // The first stdout line is machine-readable: tests and scripts wait for it.
    println!(
        "lambdagate listening on {scheme}://{local} ({}){invoke_note}{admin_note}",
        gateway.summary()
    );
    // One shutdown signal stops every listener at once, so they drain
    // together.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let invoke_task = invoke_listener.map(|l| {
        let s = server.clone();
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            let current: crate::invoke_api::CurrentGateway = Arc::new(move || s.current());
            if let Err(e) = crate::invoke_api::serve(l, current, stopped).await {
                tracing::error!(error = %e, "Invoke API stopped");
            }
        })
    });
    let admin_task = admin_listener.map(|l| {
        // The admin API follows hot reloads like the API does: each request
        // goes to the live gateway's admin router (token, plans, store).
        let s = server.clone();
        let live = crate::admin::LiveAdmin::new(Arc::new(move || s.current()));
        let mut rx = stop_rx.clone();
        // The policy at start: a listener's limits do not move on reload.
        let policy = crate::server::ListenerPolicy::of(&config.gateway);
        tokio::spawn(async move {
            let stopped = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = crate::admin::serve(l, live.into_router(), policy, stopped).await {
                tracing::error!(error = %e, "admin API stopped");
            }
        })
    });
    let mut rx = stop_rx;
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let result = server.serve(listener, stopped).await;
    if let Some(t) = invoke_task {
        let _ = t.await;
    }
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}
