//! The `sluice` command: see `sluice --help` and the [`sluice::cli`] module.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

/// DataFusion's own CLI runs on mimalloc: query execution allocates and
/// frees large buffers at a rate where glibc's allocator returns them to
/// the kernel and faults them back in (a third of a wide stream's time).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = sluice::cli::Cli::parse();
    match sluice::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
