//! The `lambdagate` binary: a thin CLI over the library.
#![forbid(unsafe_code)]

/// mimalloc: the gateway allocates small, short-lived buffers per request;
/// glibc's allocator spent ~9% of a proxied request in malloc/free.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    lambdagate::cli::run()
}
