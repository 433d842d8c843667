//! `lambdagate import`: an API Gateway OpenAPI/Swagger export → routes.toml.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The export: OpenAPI 3 or Swagger 2 (JSON or YAML), or a SAM /
    /// CloudFormation template with the API body inline.
    pub export: PathBuf,
    /// Write the routes file here (schema files go beside it, under
    /// `schemas/`); default: print it, schemas under ./schemas/.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: ImportArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.export) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.export.display());
            return ExitCode::FAILURE;
        }
    };
    let imported = match crate::openapi::import::import(&text) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {}: {e}", args.export.display());
            return ExitCode::FAILURE;
        }
    };
    let dir = args
        .out
        .as_ref()
        .and_then(|o| o.parent())
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    for (rel, contents) in &imported.files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            eprintln!("error: cannot create {}: {e}", parent.display());
            return ExitCode::FAILURE;
        }
        if let Err(e) = std::fs::write(&p, contents) {
            eprintln!("error: cannot write {}: {e}", p.display());
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {}", p.display());
    }
    match &args.out {
        None => print!("{}", imported.routes_toml),
        Some(out) => {
            if let Err(e) = std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(out, &imported.routes_toml))
            {
                eprintln!("error: cannot write {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
            eprintln!("wrote {}", out.display());
        }
    }
    for w in &imported.warnings {
        eprintln!("warning: {w}");
    }
    if !imported.warnings.is_empty() {
        eprintln!(
            "{} warning(s): the export says more than routes.toml can hold; review them",
            imported.warnings.len()
        );
    }
    ExitCode::SUCCESS
}
