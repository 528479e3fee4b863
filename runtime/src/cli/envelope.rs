//! `tessera envelope encrypt|decrypt`: seed 003's `{key, data}` envelope for client authors.

use std::io::Read;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::api::instance_v2::envelope;

/// `tessera envelope ...` (seed 003's `{key, data}`).
#[derive(Debug, Subcommand)]
pub enum EnvelopeCommand {
    /// Read JSON on stdin, print the `data` value sealed for `--key`.
    Encrypt(EnvelopeArgs),
    /// Read a `data` value on stdin, print the JSON it holds.
    Decrypt(EnvelopeArgs),
}

/// The API key an envelope is sealed for.
#[derive(Debug, Args)]
pub struct EnvelopeArgs {
    /// The system API key (`AF-...`).
    #[arg(long, env = "TESSERA_API_KEY")]
    pub key: String,
}

/// Runs `tessera envelope ...`.
pub fn run(cmd: EnvelopeCommand) -> ExitCode {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("error: cannot read stdin: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cmd {
        EnvelopeCommand::Encrypt(a) => envelope::seal(&a.key, trim(&input)),
        EnvelopeCommand::Decrypt(a) => envelope::open(&a.key, &String::from_utf8_lossy(&input))
            .map(|plain| String::from_utf8_lossy(&plain).into_owned()),
    };
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
}
