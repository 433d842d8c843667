//! lambdagate: a self-hosted, API-Gateway-compatible HTTP gateway for AWS
//! Lambda functions.
//!
//! One routes file (`routes.toml`) describes the API. [`config::load`] reads
//! and validates it; [`Gateway`] turns it into an axum `Router` that can be
//! served on its own or nested in another axum app:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = lambdagate::config::load("routes.toml".as_ref())?;
//! let gateway = lambdagate::Gateway::new(config, Default::default()).await?;
//! let app: axum::Router = gateway.router();
//! # let _ = app; Ok(()) }
//! ```
//!
//! The request pipeline is assembled in one place, [`pipeline`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod backend;
pub mod cache;
pub mod cli;
pub mod config;
pub mod cors;
pub mod error;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
mod http1;
pub mod integration;
pub mod invoke_api;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod pipeline;
pub mod reload;
pub mod routing;
pub mod runtime_api;
pub mod server;
pub mod store;
pub mod telemetry;
#[cfg(test)]
mod testing;
pub mod throttle;
pub mod tls;
pub mod transform;
pub mod validation;

pub use app::{BuildError, Gateway, GatewayOptions};
pub use error::GatewayError;
