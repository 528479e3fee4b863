//! The `tessera` binary.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use mimalloc::MiMalloc;

/// mimalloc: the heartbeat path allocates small, short-lived objects on many threads, where
/// glibc's allocator cost about a quarter of the server's CPU (see `bench/README.md`).
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Threads for blocking work (the embedded store's reads and writes). Tokio's default is
/// 512: a burst of store calls then spreads long-lived objects over that many allocator
/// heaps, and their pages stay resident (bench/README.md, "Memory at 1,000,000 live
/// sessions"). Store calls beyond this queue for a thread.
const MAX_BLOCKING_THREADS: usize = 16;

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build();
    match runtime {
        Ok(rt) => rt.block_on(tessera::cli::run(tessera::cli::Cli::parse())),
        Err(e) => {
            eprintln!("tessera: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
