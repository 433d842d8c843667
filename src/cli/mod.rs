//! The command line: parses arguments and calls the library. Each
//! subcommand lives in its own file.

mod health;
mod import;
mod keys;
mod openapi;
mod serve;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "lambdagate",
    version,
    about = "A self-hosted, API-Gateway-compatible HTTP gateway for AWS Lambda",
    propagate_version = true,
    after_help = EXAMPLES
)]
pub struct Cli {
    /// The routes file.
    #[arg(
        long,
        short = 'c',
        global = true,
        default_value = "routes.toml",
        env = "LAMBDAGATE_CONFIG"
    )]
    pub config: PathBuf,
    /// Log format: `pretty` (human-readable lines) or `json` (one JSON
    /// object per line). RUST_LOG filters either.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Option<Command>,
}

const EXAMPLES: &str = "\
Examples:
  lambdagate                                   serve ./routes.toml (same as `lambdagate serve`)
  lambdagate serve -c api/routes.toml --stage prod --listen 0.0.0.0:8080
  lambdagate validate -c api/routes.toml       check a routes file, exit 1 on errors
  lambdagate --log-format json serve           one JSON object per log line

Logging: RUST_LOG filters log lines (e.g. RUST_LOG=info,lambdagate::access=off);
access-log lines have the target `lambdagate::access`.";

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default when no subcommand is given).
    ///
    /// Prints `lambdagate listening on http://ADDR (stage, routes, backends)`
    /// first. Reloads the routes file on SIGHUP and when it changes (unless
    /// --no-watch); an invalid file keeps the running config. SIGTERM/SIGINT
    /// drain in-flight requests for up to `[gateway] drain_timeout`.
    ///
    /// Example: lambdagate serve --config routes.toml --stage prod --listen 0.0.0.0:8080
    /// Example: kill -HUP $(pidof lambdagate)   (reload routes.toml now)
    Serve(serve::ServeArgs),
    /// Check a routes file and print a one-line summary; exit 1 on errors.
    ///
    /// Example: lambdagate validate --config routes.toml
    Validate,
    /// Write the OpenAPI 3.1 document of the routes file.
    ///
    /// Example: lambdagate openapi --config routes.toml --out openapi/openapi.json
    /// Example: lambdagate openapi --aws --format yaml   (for API Gateway import)
    Openapi(openapi::OpenApiArgs),
    /// Convert an API Gateway OpenAPI/Swagger export into a routes file.
    ///
    /// Example: lambdagate import api-export.json --out routes.toml
    Import(import::ImportArgs),
    /// Probe a running gateway: exit 0 if it answers HTTP, 1 if not (for
    /// container HEALTHCHECKs).
    ///
    /// Example: lambdagate health --addr 127.0.0.1:8080
    /// Example: lambdagate health --url http://127.0.0.1:9081/healthz
    Health(health::HealthArgs),
    /// Issue and manage API keys (in the store, or via --admin-url).
    ///
    /// Example: lambdagate keys create --name acme --plan gold --expires 30d
    Keys(keys::KeysArgs),
}

/// Examples for nested subcommands, whose definitions live beside their
/// code: (path, example lines).
const NESTED_EXAMPLES: &[(&str, &str, &str)] = &[
    (
        "keys",
        "create",
        "lambdagate keys create --name acme --plan gold --expires 30d\n  \
         lambdagate keys create --name ci --admin-url http://127.0.0.1:9081   (via a running gateway)",
    ),
    (
        "keys",
        "list",
        "lambdagate keys list\n  lambdagate keys list --json",
    ),
    ("keys", "revoke", "lambdagate keys revoke k3x9a0b1c2"),
    (
        "keys",
        "usage",
        "lambdagate keys usage k3x9a0b1c2 --days 7\n  \
         lambdagate keys usage k3x9a0b1c2 --admin-url http://127.0.0.1:9081",
    ),
];

/// The command line definition, with examples on every nested subcommand.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    for (parent, child, example) in NESTED_EXAMPLES {
        cmd = cmd.mut_subcommand(parent, |p| {
            p.mut_subcommand(child, |c| c.after_help(format!("Examples:\n  {example}")))
        });
    }
    cmd
}

/// Runs the CLI; returns the process exit code.
pub fn run() -> ExitCode {
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    crate::telemetry::init_logging(matches!(cli.log_format, LogFormat::Json));
    let code = match cli.command {
        Some(Command::Validate) => validate::run(&cli.config),
        Some(Command::Import(args)) => import::run(args),
        Some(Command::Health(args)) => health::run(&cli.config, args),
        Some(Command::Openapi(args)) => openapi::run(&cli.config, args),
        Some(Command::Keys(args)) => keys::run(&cli.config, args),
        Some(Command::Serve(args)) => serve::run(&cli.config, args),
        None => serve::run(&cli.config, serve::ServeArgs::default()),
    };
    // Access-log lines of the last requests may still be batched.
    crate::telemetry::flush_logs();
    code
}
