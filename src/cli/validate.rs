//! `lambdagate validate`: runs exactly the config loader `serve` runs.

use std::path::Path;
use std::process::ExitCode;

pub fn run(config: &Path) -> ExitCode {
    match crate::config::load(config) {
        Ok(c) => {
            let mut kinds: Vec<String> = c
                .backends
                .iter()
                .map(|(n, b)| format!("{n} ({})", b.kind()))
                .collect();
            if kinds.is_empty() {
                kinds.push("none".into());
            }
            println!(
                "{}: ok — {} routes, {} functions, stages: {}, backends: {}",
                config.display(),
                c.routes.len(),
                c.functions.len(),
                c.stages.keys().cloned().collect::<Vec<_>>().join(", "),
                kinds.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} error(s)", config.display(), errors.0.len());
            ExitCode::FAILURE
        }
    }
}
