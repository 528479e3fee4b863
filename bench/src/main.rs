//! `tessera-bench`: load generator, baseline server and performance suite for Tessera.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera_bench::{baseline, fleet, heartbeat, memory, procs, smoke, suite};

/// Load generator, bare baseline and performance suite for Tessera.
#[derive(Debug, Parser)]
#[command(name = "tessera-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Tokio worker threads of the generator [default: one per allowed CPU].
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a fleet of clients (activate, start, heartbeat, end; with failure mixes).
    Fleet(fleet::FleetArgs),
    /// Heartbeats only, on live sessions: open loop at --rate, or saturating without it.
    Heartbeat(heartbeat::HeartbeatArgs),
    /// Serve the bare baseline: a minimal hyper server with a constant heartbeat reply.
    Baseline {
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
    },
    /// Measure baseline and Tessera (embedded, Redis) in one run; write the results.
    Suite(suite::SuiteArgs),
    /// Bring up many live sessions and report server RSS per session.
    Memory(memory::MemoryArgs),
    /// A few seconds of every operation; exit non-zero on any 5xx or transport error.
    Smoke(smoke::SmokeArgs),
}

fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n.max(1));
    }
    b.enable_all().build()
}

async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Pin before the runtime exists so every worker thread inherits the affinity.
    let mut pins = (None, None);
    if let Command::Suite(args) = &cli.command {
        pins = suite::pinning(args);
        if let Some(cpus) = &pins.0
            && let Err(e) = procs::pin_self(cpus)
        {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    let rt = match runtime(cli.threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let work = async move {
            match cli.command {
                Command::Fleet(args) => fleet::command(args).await.map(|()| true),
                Command::Heartbeat(args) => heartbeat::command(args).await.map(|()| true),
                Command::Baseline { listen } => baseline::run(listen).await.map(|()| true),
                Command::Suite(args) => suite::command(args, pins.0, pins.1).await.map(|()| true),
                Command::Memory(args) => memory::command(args).await.map(|()| true),
                Command::Smoke(args) => smoke::command(args).await,
            }
        };
        // On SIGINT/SIGTERM, drop the work: servers this process started are killed by
        // their handles' Drop.
        tokio::select! {
            r = work => r,
            () = interrupted() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    // Blocking tasks (the fleet driver) stop on their own schedule; do not wait for them.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
