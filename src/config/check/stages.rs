//! `[stages.*]`: their variables, backends and throttles, and the
//! `${stageVariables.NAME}` references that must resolve in every stage.

use std::collections::BTreeMap;

use super::{check_name, unknown_backend};
use crate::config::error::Diagnostics;
use crate::config::model::{BackendConfig, GatewaySettings, StageConfig};
use crate::config::raw::{RawConfig, Str};
use crate::config::values::throttle;

/// Every stage, or the default stage alone when none is defined; the
/// gateway's `stage` must be one of them.
pub(super) fn check_stages(
    raw: &RawConfig,
    gateway: &GatewaySettings,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, StageConfig> {
    let mut stages = BTreeMap::new();
    for (name, s) in &raw.stages {
        // `$default` is API Gateway's stage served without a path prefix.
        if name.get_ref() != "$default" {
            check_name(name, "stage", d);
        }
        stages.insert(
            name.get_ref().clone(),
            StageConfig {
                name: name.get_ref().clone(),
                backend: s.backend.as_ref().map(|b| b.get_ref().clone()),
                variables: s
                    .variables
                    .iter()
                    .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                    .collect(),
                throttle: s.throttle.as_ref().and_then(|t| throttle(t, d)),
            },
        );
    }
    if stages.is_empty() {
        stages.insert(
            gateway.stage.clone(),
            StageConfig {
                name: gateway.stage.clone(),
                backend: None,
                variables: BTreeMap::new(),
                throttle: None,
            },
        );
    } else if !stages.contains_key(&gateway.stage) {
        let known = stages.keys().cloned().collect::<Vec<_>>().join(", ");
        match &raw.gateway.stage {
            Some(s) => d.at(
                s.span(),
                format!("stage `{}` is not defined; known stages: {known}", s.get_ref()),
            ),
            None => d.whole_file(format!(
                "[gateway] stage defaults to `dev`, which is not defined; set `stage` to one of: {known}"
            )),
        }
    }
    stages
}

/// A stage's `backend` names a backend that runs functions.
pub(super) fn check_stage_backends(
    raw: &RawConfig,
    backends: &BTreeMap<String, BackendConfig>,
    d: &mut Diagnostics<'_>,
) {
    for s in raw.stages.values() {
        if let Some(b) = &s.backend {
            match backends.get(b.get_ref()) {
                None => d.at(b.span(), unknown_backend(b.get_ref())),
                Some(BackendConfig::Http { .. }) => d.at(
                    b.span(),
                    format!(
                        "backend `{}` is an `http` backend; a stage's backend runs functions (`lambda` or `local`)",
                        b.get_ref()
                    ),
                ),
                _ => {}
            }
        }
    }
}

/// `${stageVariables.NAME}` in function names, env values and backend URLs
/// must resolve in every stage.
pub(super) fn check_stage_variables(
    raw: &RawConfig,
    stages: &BTreeMap<String, StageConfig>,
    d: &mut Diagnostics<'_>,
) {
    let mut templates: Vec<&Str> = Vec::new();
    for f in raw.functions.values() {
        templates.extend(f.name.iter());
        templates.extend(f.env.values());
    }
    for b in raw.backends.values() {
        templates.extend(b.url.iter());
        if let Some(h) = &b.headers {
            templates.extend(h.values());
        }
    }
    for t in templates {
        match stage_variable_refs(t.get_ref()) {
            Err(msg) => d.at(t.span(), msg),
            Ok(names) => {
                for name in names {
                    for stage in stages.values() {
                        if !stage.variables.contains_key(&name) {
                            d.at(
                                t.span(),
                                format!(
                                    "`${{stageVariables.{name}}}` is not defined in stage `{}`; add it to [stages.{}] variables",
                                    stage.name, stage.name
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Lists the stage variables a template refers to.
fn stage_variable_refs(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("`${{` in `{text}` is not closed with `}}`"));
        };
        let inner = &after[..end];
        let Some(name) = inner.strip_prefix("stageVariables.") else {
            return Err(format!(
                "`${{{inner}}}` is not a stage variable; write `${{stageVariables.NAME}}`"
            ));
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`{name}` is not a valid stage variable name"));
        }
        out.push(name.to_string());
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// Replaces `${stageVariables.NAME}` with the stage's values (validated at load).
pub(crate) fn substitute(text: &str, variables: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${stageVariables.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "${stageVariables.".len()..];
        match after.find('}') {
            Some(end) => {
                if let Some(v) = variables.get(&after[..end]) {
                    out.push_str(v);
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution() {
        let vars = BTreeMap::from([("alias".to_string(), "live".to_string())]);
        assert_eq!(
            substitute("hello:${stageVariables.alias}", &vars),
            "hello:live"
        );
        assert_eq!(
            stage_variable_refs("a-${stageVariables.x}-${stageVariables.y}").unwrap(),
            vec!["x", "y"]
        );
        assert!(stage_variable_refs("${env.HOME}").is_err());
    }
}
