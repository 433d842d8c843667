//! Integration tests: one binary, one module per feature. Each test starts
//! the real gateway on a free port and speaks HTTP to it.

mod common;

mod auth;
mod cache;
mod chaos;
mod cli;
mod codec;
mod config_errors;
mod conformance;
mod cors;
mod differential;
mod events;
mod forwarding;
mod fuzz;
mod hardening;
mod http1;
mod http_backend;
mod keys;
mod lambda_backend;
mod listeners;
mod local;
mod openapi;
mod ops;
mod responses;
mod routing;
mod smoke;
mod transform;
mod validation;
