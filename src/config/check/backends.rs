//! `[backends.*]`: each kind's settings, and no setting of another kind.

use std::collections::BTreeMap;
use std::ops::Range;

use super::check_name;
use crate::config::error::Diagnostics;
use crate::config::model::BackendConfig;
use crate::config::raw::{Map, RawBackend};
use crate::config::values::{count, duration, url};

pub(super) fn check_backends(
    raw: &Map<RawBackend>,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, BackendConfig> {
    let mut out = BTreeMap::new();
    for (name, b) in raw {
        check_name(name, "backend", d);
        let kind = b.kind.get_ref().as_str();
        let misplaced =
            |field: &str, present: bool, d: &mut Diagnostics<'_>, span: Range<usize>| {
                if present {
                    d.at(
                        span,
                        format!("`{field}` is not a setting of a `{kind}` backend"),
                    );
                }
            };
        let cfg = match kind {
            "lambda" => {
                if let Some(u) = &b.url {
                    misplaced("url", true, d, u.span());
                }
                if let Some(e) = &b.endpoint_url {
                    url(e, d);
                }
                BackendConfig::Lambda {
                    region: b.region.as_ref().map(|s| s.get_ref().clone()),
                    endpoint_url: b.endpoint_url.as_ref().map(|s| s.get_ref().clone()),
                    profile: b.profile.as_ref().map(|s| s.get_ref().clone()),
                }
            }
            "http" => {
                for (f, v) in [("region", &b.region), ("endpoint_url", &b.endpoint_url)] {
                    if let Some(v) = v {
                        misplaced(f, true, d, v.span());
                    }
                }
                let Some(u) = &b.url else {
                    d.at(
                        b.kind.span(),
                        format!("backend `{}` of kind `http` needs a `url`", name.get_ref()),
                    );
                    continue;
                };
                // `${stageVariables.X}` is checked per stage; the rest must parse.
                if !u.get_ref().contains("${") {
                    url(u, d);
                }
                BackendConfig::Http {
                    url: u.get_ref().clone(),
                    timeout: b.timeout.as_ref().and_then(|t| duration(t, d)),
                    headers: b
                        .headers
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                        .collect(),
                }
            }
            "local" => {
                for (f, v) in [
                    ("region", &b.region),
                    ("endpoint_url", &b.endpoint_url),
                    ("url", &b.url),
                ] {
                    if let Some(v) = v {
                        misplaced(f, true, d, v.span());
                    }
                }
                BackendConfig::Local {
                    max_queue: b.max_queue.as_ref().and_then(|q| count(q, "max_queue", d)),
                }
            }
            other => {
                d.at(
                    b.kind.span(),
                    format!(
                        "backend kind `{other}` is not one of \"lambda\", \"http\" or \"local\""
                    ),
                );
                continue;
            }
        };
        out.insert(name.get_ref().clone(), cfg);
    }
    out
}
