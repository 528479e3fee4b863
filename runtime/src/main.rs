//! The `tessera` binary.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use mimalloc::MiMalloc;

/// mimalloc: the heartbeat path allocates small, short-lived objects on many threads, where
/// glibc's allocator cost about a quarter of the server's CPU (see `bench/README.md`).
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tessera::cli::run(tessera::cli::Cli::parse()).await
}
