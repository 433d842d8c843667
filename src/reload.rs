//! Hot reload of `routes.toml`, on SIGHUP or when the file changes
//! (`notify` watches its folder, so editors that replace the file and
//! Kubernetes ConfigMap symlink swaps are both seen). Not a pipeline phase:
//! a reload builds a complete new gateway beside the running one —
//! parse, validate, resolve routes, load TLS files — and only then swaps it
//! in ([`Server::reload`]). A file that fails any step leaves the running
//! config untouched and logs every error as `file:line:column: message`.
//! The API, the admin API and the Invoke API all follow the swap; only
//! listen addresses need a restart (a reload that changes one says so in a
//! warning and keeps the old address).

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::server::Server;
use crate::{Gateway, GatewayOptions};

/// Why a reload was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Signal,
    FileChanged,
}

/// Keeps the file watcher alive; dropping it stops watching and reloading.
pub struct ReloadHandle {
    _watcher: Option<notify::RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ReloadHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts reloading `path` into `server` on SIGHUP and, when `watch_file`,
/// on changes to the file. Both are registered before this returns.
pub fn spawn(
    server: Server,
    path: &Path,
    options: GatewayOptions,
    watch_file: bool,
) -> Result<ReloadHandle, String> {
    let (tx, rx) = mpsc::channel::<Trigger>(16);
    let watcher = if watch_file {
        Some(watch(path, tx.clone())?)
    } else {
        None
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup =
            signal(SignalKind::hangup()).map_err(|e| format!("cannot watch SIGHUP: {e}"))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if tx.send(Trigger::Signal).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let path = path.to_path_buf();
    let task = tokio::spawn(run(server, path, options, rx));
    Ok(ReloadHandle {
        _watcher: watcher,
        task,
    })
}

fn watch(path: &Path, tx: mpsc::Sender<Trigger>) -> Result<notify::RecommendedWatcher, String> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(e) = event
            && !matches!(e.kind, EventKind::Access(_))
        {
            // A full channel already holds a pending reload.
            let _ = tx.try_send(Trigger::FileChanged);
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", path.display()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    Ok(watcher)
}

async fn run(
    server: Server,
    path: PathBuf,
    options: GatewayOptions,
    mut rx: mpsc::Receiver<Trigger>,
) {
    // The text last tried, so folder events that do not change the file
    // (another file written, a metadata touch) do not rebuild the gateway.
    let mut last_seen = std::fs::read(&path).ok();
    while let Some(first) = rx.recv().await {
        // Editors write in several steps: let them finish, then reload once.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut signal = first == Trigger::Signal;
        while let Ok(t) = rx.try_recv() {
            signal |= t == Trigger::Signal;
        }
        let now = std::fs::read(&path).ok();
        if !signal && now == last_seen {
            continue;
        }
        last_seen = now;
        let ok = reload_once(&server, &path, &options).await;
        crate::metrics::config_reload(ok);
    }
}

/// Builds a gateway from the file and swaps it in; `false` (and the old
/// gateway kept) on any error.
pub async fn reload_once(server: &Server, path: &Path, options: &GatewayOptions) -> bool {
    let config = match crate::config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!(target: "lambdagate::reload", "{e}");
            }
            tracing::error!(
                target: "lambdagate::reload",
                "{}: {} error(s); still serving the previous config",
                path.display(),
                errors.0.len()
            );
            return false;
        }
    };
    let current = server.current();
    for note in restart_only_changes(&current.state().config, &config) {
        tracing::warn!(target: "lambdagate::reload", "{note}");
    }
    match Gateway::new(config, options.clone()).await {
        Ok(g) => {
            let summary = g.summary();
            server.reload(g);
            tracing::info!(target: "lambdagate::reload", "config reloaded: {summary}");
            true
        }
        Err(e) => {
            tracing::error!(
                target: "lambdagate::reload",
                "{}: {e}; still serving the previous config",
                path.display()
            );
            false
        }
    }
}

/// Settings a reload cannot apply, because they are sockets bound once at
/// start: each change becomes a warning, and the running value is kept.
/// Everything else (routes, backends, auth, `[plans.*]`, the admin token,
/// the store, TLS files) takes effect with the reload.
fn restart_only_changes(running: &Config, new: &Config) -> Vec<String> {
    let mut notes = Vec::new();
    if new.gateway.listen != running.gateway.listen {
        notes.push(format!(
            "[gateway] listen changed to {}; the listener stays on the address it started with until a restart",
            new.gateway.listen
        ));
    }
    let listeners = [
        (
            "[admin]",
            "admin API",
            running.admin.as_ref().map(|a| a.listen),
            new.admin.as_ref().map(|a| a.listen),
        ),
        (
            "[invoke_api]",
            "Invoke API",
            running.invoke_api.as_ref().map(|i| i.listen),
            new.invoke_api.as_ref().map(|i| i.listen),
        ),
    ];
    for (section, what, old, now) in listeners {
        match (old, now) {
            (Some(old), Some(now)) if old != now => notes.push(format!(
                "{section} listen changed to {now}; the {what} stays on the address it started with ({old} in the old config) until a restart"
            )),
            (None, Some(_)) => notes.push(format!(
                "{section} was added; its listener opens only at start: restart to serve the {what}"
            )),
            (Some(_), None) => notes.push(format!(
                "{section} was removed; the {what} listener stays open until a restart{}",
                if section == "[admin]" {
                    " and answers 404"
                } else {
                    ""
                }
            )),
            _ => {}
        }
    }
    notes
}
