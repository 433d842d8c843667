//! The `lambdagate` binary: a thin CLI over the library.
#![forbid(unsafe_code)]

/// mimalloc: the gateway allocates small, short-lived buffers per request,
/// which glibc's allocator serves markedly slower.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    lambdagate::cli::run()
}
