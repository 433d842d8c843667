//! `lambdagate health`: a liveness probe for container `HEALTHCHECK`s and
//! scripts. Sends `GET` to the gateway and exits 0 when any HTTP response
//! comes back within the timeout (even a 404: the server is answering), 1
//! otherwise. With `--url` it checks that URL instead and wants a 2xx, e.g.
//! the admin listener's `/healthz`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The gateway's address (default: `[gateway] listen` of the routes file).
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// Check this URL instead and require a 2xx answer.
    #[arg(long, conflicts_with = "addr")]
    pub url: Option<String>,
    /// How long to wait for the answer.
    #[arg(long, default_value = "3s", value_parser = crate::config::values::parse_duration)]
    pub timeout: Duration,
}

pub fn run(config_path: &Path, args: HealthArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(check(config_path, args))
}

async fn check(config_path: &Path, args: HealthArgs) -> ExitCode {
    let (url, need_2xx, tls) = match (&args.url, args.addr) {
        (Some(u), _) => (u.clone(), true, u.starts_with("https:")),
        (None, addr) => {
            // The routes file tells whether TLS is on; an unreadable file
            // still allows probing a given address over plain HTTP.
            let config = crate::config::load(config_path).ok();
            let tls = config.as_ref().is_some_and(|c| c.gateway.tls.is_some());
            let mut addr = addr
                .or_else(|| config.as_ref().map(|c| c.gateway.listen))
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let scheme = if tls { "https" } else { "http" };
            (format!("{scheme}://{addr}/"), false, tls)
        }
    };
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(args.timeout)
        // A probe checks that the server answers, not who signed its certificate.
        .tls_danger_accept_invalid_certs(tls)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("unhealthy: {e}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(res) if !need_2xx || res.status().is_success() => {
            println!("healthy: {url} answered {}", res.status().as_u16());
            ExitCode::SUCCESS
        }
        Ok(res) => {
            eprintln!("unhealthy: {url} answered {}", res.status().as_u16());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}
