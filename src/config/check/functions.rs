//! `[functions.*]`: how a function runs (command, env, timeout, memory,
//! concurrency and queue) and on which backend.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::{check_name, unknown_backend};
use crate::config::error::Diagnostics;
use crate::config::model::{BackendConfig, FunctionConfig};
use crate::config::raw::{Map, RawFunction};
use crate::config::values::{count, duration, file_path};

pub(super) fn check_functions(
    raw: &Map<RawFunction>,
    base_dir: &Path,
    backends: &BTreeMap<String, BackendConfig>,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, FunctionConfig> {
    let mut out = BTreeMap::new();
    for (key, f) in raw {
        check_name(key, "function", d);
        if let Some(cmd) = &f.command
            && cmd.get_ref().is_empty()
        {
            d.at(cmd.span(), "`command` must name a program to run");
        }
        if let Some(b) = &f.backend {
            match backends.get(b.get_ref()) {
                None => d.at(b.span(), unknown_backend(b.get_ref())),
                Some(BackendConfig::Http { .. }) => d.at(
                    b.span(),
                    format!(
                        "backend `{}` is an `http` backend; functions run on `lambda` or `local` backends",
                        b.get_ref()
                    ),
                ),
                _ => {}
            }
        }
        let timeout = f
            .timeout
            .as_ref()
            .and_then(|t| duration(t, d))
            .unwrap_or(Duration::from_secs(3));
        if let Some(t) = &f.timeout
            && timeout > Duration::from_secs(900)
        {
            d.at(
                t.span(),
                "a function `timeout` is at most 900s (Lambda's limit)",
            );
        }
        let memory_size = match &f.memory_size {
            Some(m) if !(128..=10_240).contains(m.get_ref()) => {
                d.at(m.span(), "`memory_size` is in MB, from 128 to 10240");
                128
            }
            Some(m) => *m.get_ref() as u32,
            None => 128,
        };
        out.insert(
            key.get_ref().clone(),
            FunctionConfig {
                key: key.get_ref().clone(),
                command: f.command.as_ref().map(|c| c.get_ref().clone()),
                name: f
                    .name
                    .as_ref()
                    .map(|n| n.get_ref().clone())
                    .unwrap_or_else(|| key.get_ref().clone()),
                env: f
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                    .collect(),
                timeout,
                timeout_configured: f.timeout.is_some(),
                concurrency: f
                    .concurrency
                    .as_ref()
                    .and_then(|c| count(c, "concurrency", d))
                    .unwrap_or(4)
                    .max(1),
                memory_size,
                handler: f.handler.as_ref().map(|h| h.get_ref().clone()),
                cwd: f
                    .cwd
                    .as_ref()
                    .map(|c| file_path(base_dir, c.get_ref()))
                    .unwrap_or_else(|| base_dir.to_path_buf()),
                runtime: f.runtime.as_ref().map(|r| r.get_ref().clone()),
                backend: f.backend.as_ref().map(|b| b.get_ref().clone()),
                queue: f
                    .queue
                    .as_ref()
                    .and_then(|q| count(q, "queue", d))
                    .unwrap_or(100),
            },
        );
    }
    out
}
