//! `lambdagate openapi`: writes the OpenAPI document of a routes file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::openapi::generate::{self, GenerateOptions};

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    #[default]
    Json,
    Yaml,
}

#[derive(Debug, Args, Default)]
pub struct OpenApiArgs {
    /// Document only this stage's server (default: every stage).
    #[arg(long)]
    pub stage: Option<String>,
    /// Output format (default: from --out's extension, else JSON).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Add the x-amazon-apigateway-* extensions API Gateway imports.
    #[arg(long)]
    pub aws: bool,
}

pub fn run(config_path: &Path, args: OpenApiArgs) -> ExitCode {
    let config = match crate::config::load(config_path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let generated = match generate::generate(
        &config,
        &GenerateOptions {
            stage: args.stage,
            aws: args.aws,
        },
    ) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &generated.warnings {
        eprintln!("warning: {w}");
    }
    let format = args.format.unwrap_or_else(|| {
        match args
            .out
            .as_ref()
            .and_then(|o| o.extension())
            .and_then(|e| e.to_str())
        {
            Some("yaml" | "yml") => Format::Yaml,
            _ => Format::Json,
        }
    });
    let text = match format {
        Format::Json => generate::to_json(&generated.document),
        Format::Yaml => match generate::to_yaml(&generated.document) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot write YAML: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    match &args.out {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(out) => {
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty())
                && let Err(e) = std::fs::create_dir_all(parent)
            {
                eprintln!("error: cannot create {}: {e}", parent.display());
                return ExitCode::FAILURE;
            }
            match std::fs::write(out, text) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write {}: {e}", out.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}
