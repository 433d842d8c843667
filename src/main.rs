//! The `lambdagate` binary: a thin CLI over the library.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    lambdagate::cli::run()
}
