//! `tessera auth encrypt-password`: seed 001's login encryption for scripts and tests, so a
//! login can be made with curl. Reads the password on stdin.

use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, Subcommand};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Oaep, RsaPublicKey};
use sha2::Sha256;

use super::credentials::read_password;

/// `tessera auth ...`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Print base64 RSA-OAEP (SHA-256) of "{nonce}:{ts}:{password}" for POST /api/auth/login.
    EncryptPassword(EncryptArgs),
}

/// What to encrypt for.
#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// The challenge's `public_key`, saved as a PEM file.
    #[arg(long, value_name = "PEM")]
    pub key_file: std::path::PathBuf,
    /// The challenge's `nonce`.
    #[arg(long)]
    pub nonce: String,
    /// The `challenge_ts` to send (unix seconds, close to now).
    #[arg(long)]
    pub ts: i64,
}

/// Encrypts `"{nonce}:{ts}:{password}"` to the PEM public key.
pub fn encrypt(public_pem: &str, nonce: &str, ts: i64, password: &str) -> anyhow::Result<String> {
    let key = RsaPublicKey::from_public_key_pem(public_pem.trim())
        .map_err(|e| anyhow::anyhow!("not a PEM public key: {e}"))?;
    let plain = format!("{nonce}:{ts}:{password}");
    let mut rng = rsa::rand_core::OsRng;
    let cipher = key
        .encrypt(&mut rng, Oaep::new::<Sha256>(), plain.as_bytes())
        .map_err(|e| anyhow::anyhow!("encryption failed: {e}"))?;
    Ok(STANDARD.encode(cipher))
}

/// Runs `tessera auth ...`.
pub fn run(cmd: AuthCommand) -> ExitCode {
    let AuthCommand::EncryptPassword(args) = cmd;
    let result = std::fs::read_to_string(&args.key_file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.key_file.display()))
        .and_then(|pem| {
            let password = read_password("Password: ")?;
            encrypt(&pem, args.nonce.trim(), args.ts, &password)
        });
    match result {
        Ok(b64) => {
            println!("{b64}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
