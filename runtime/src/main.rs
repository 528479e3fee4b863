//! The `tessera` binary.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    tessera::cli::run(tessera::cli::Cli::parse()).await
}
