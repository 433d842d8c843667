//! Where shared state lives: `[store]` (API keys, plans, quota counters),
//! `[api_keys]` (how keys are read and cached) and `[cluster]` (the Redis
//! the nodes share).

use std::path::Path;
use std::time::Duration;

use crate::config::error::Diagnostics;
use crate::config::model::{ApiKeySettings, ApiKeySource, ClusterConfig, StoreConfig};
use crate::config::raw::{RawApiKeys, RawCluster, RawStore};
use crate::config::values::{duration, file_path, header_name};

pub(super) fn check_store(
    raw: Option<&RawStore>,
    base_dir: &Path,
    d: &mut Diagnostics<'_>,
) -> StoreConfig {
    let Some(s) = raw else {
        return StoreConfig::Sqlite {
            path: file_path(base_dir, "lambdagate.db"),
        };
    };
    match s.kind.get_ref().as_str() {
        "sqlite" => StoreConfig::Sqlite {
            path: file_path(
                base_dir,
                s.path
                    .as_ref()
                    .map(|p| p.get_ref().as_str())
                    .unwrap_or("lambdagate.db"),
            ),
        },
        "postgres" => {
            let url = match (&s.url, &s.url_env) {
                (Some(u), _) => u.get_ref().clone(),
                (None, Some(env)) => std::env::var(env.get_ref()).unwrap_or_else(|_| {
                    d.at(
                        env.span(),
                        format!("environment variable `{}` is not set", env.get_ref()),
                    );
                    String::new()
                }),
                (None, None) => {
                    d.at(s.kind.span(), "a postgres store needs `url` or `url_env`");
                    String::new()
                }
            };
            let schema = s.schema.as_ref().and_then(|sc| {
                let v = sc.get_ref();
                let ok = !v.is_empty()
                    && v.len() <= 63
                    && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && !v.starts_with(|c: char| c.is_ascii_digit());
                if !ok {
                    d.at(
                        sc.span(),
                        format!("schema `{v}` must be a lower-case SQL identifier (a-z, 0-9, _; at most 63)"),
                    );
                }
                ok.then(|| v.clone())
            });
            StoreConfig::Postgres { url, schema }
        }
        other => {
            d.at(
                s.kind.span(),
                format!("store kind `{other}` is not one of \"sqlite\" or \"postgres\""),
            );
            StoreConfig::Sqlite {
                path: file_path(base_dir, "lambdagate.db"),
            }
        }
    }
}

pub(super) fn check_api_keys(raw: Option<&RawApiKeys>, d: &mut Diagnostics<'_>) -> ApiKeySettings {
    let mut out = ApiKeySettings::default();
    let Some(k) = raw else {
        return out;
    };
    if let Some(src) = &k.source {
        out.source = match src.get_ref().as_str() {
            "header" => ApiKeySource::Header,
            "authorizer" => ApiKeySource::Authorizer,
            other => {
                d.at(
                    src.span(),
                    format!("api key source `{other}` is not one of \"header\" or \"authorizer\""),
                );
                ApiKeySource::Header
            }
        };
    }
    if let Some(h) = &k.header
        && let Some(name) = header_name(h.get_ref(), h.span(), d)
    {
        out.header = name.as_str().to_string();
    }
    if let Some(t) = &k.cache_ttl
        && let Some(ttl) = duration(t, d)
    {
        if ttl > Duration::from_secs(300) {
            d.at(
                t.span(),
                "`cache_ttl` is at most 300s (revocation waits this long to reach every node)",
            );
        }
        out.cache_ttl = ttl;
    }
    if let Some(t) = &k.usage_flush_interval
        && let Some(every) = duration(t, d)
    {
        if every.is_zero() || every > Duration::from_secs(24 * 3600) {
            d.at(
                t.span(),
                "`usage_flush_interval` is more than 0s and at most 24h",
            );
        } else {
            out.usage_flush_interval = every;
        }
    }
    out
}

/// `[cluster] lease` by default: one Redis step per 5 ms of a throttle's
/// rate (and per request below 200 requests/s).
const DEFAULT_LEASE: Duration = Duration::from_millis(5);
const MAX_LEASE: Duration = Duration::from_secs(1);

pub(super) fn check_cluster(c: &RawCluster, d: &mut Diagnostics<'_>) -> Option<ClusterConfig> {
    let url = c.redis_url.as_ref()?;
    if !url.get_ref().starts_with("redis://") && !url.get_ref().starts_with("rediss://") {
        d.at(
            url.span(),
            "`redis_url` must start with redis:// or rediss://",
        );
    }
    let key_prefix = match &c.key_prefix {
        Some(p) if p.get_ref().is_empty() || p.get_ref().contains(char::is_whitespace) => {
            d.at(
                p.span(),
                "`key_prefix` must be non-empty and without spaces",
            );
            String::new()
        }
        Some(p) => p.get_ref().clone(),
        None => "lambdagate".to_string(),
    };
    let mut lease = DEFAULT_LEASE;
    if let Some(l) = &c.lease
        && let Some(v) = duration(l, d)
    {
        if v > MAX_LEASE {
            d.at(
                l.span(),
                "`lease` is at most 1s (leased cells left unspent are out of the other nodes' reach that long)",
            );
        }
        lease = v;
    }
    Some(ClusterConfig {
        redis_url: url.get_ref().clone(),
        fail_closed: c.fail_closed.unwrap_or(false),
        key_prefix,
        lease,
    })
}
