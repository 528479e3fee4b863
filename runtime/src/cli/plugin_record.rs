//! `tessera plugin record`: captures the hook events of a running server into an events
//! file, to develop and test a plugin against real traffic (`tessera plugin run --events`).
//! The client of `GET /api/admin/plugins/record`; the server removes the secrets.
//!
//! The admin key comes from `TESSERA_ADMIN_KEY` or a file, never from the command line
//! (where `ps` shows it to every user of the machine).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use super::config::ConfigArgs;

/// `tessera plugin record [--url URL] [--hooks H,...] [--limit N] [--seconds S] [--out FILE]`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The server's base URL; default: the configured `server.listen_addr` over HTTP.
    #[arg(long)]
    pub url: Option<String>,
    /// A file holding an admin key with `security:read` (or set `TESSERA_ADMIN_KEY`).
    #[arg(long)]
    pub admin_key_file: Option<PathBuf>,
    /// Hooks to record, comma-separated (`on_activate,on_session_start`); default: all.
    #[arg(long)]
    pub hooks: Option<String>,
    /// Stop after this many events (the server allows at most 100000).
    #[arg(long, default_value_t = 1000)]
    pub limit: u32,
    /// Stop after this many seconds (the server allows at most 3600).
    #[arg(long, default_value_t = 60)]
    pub seconds: u32,
    /// Write the events here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Config file (for the default URL).
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs `tessera plugin record`.
pub async fn run(args: RecordArgs) -> ExitCode {
    match record(&args).await {
        Ok(n) => {
            eprintln!("recorded {n} event(s)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn admin_key(args: &RecordArgs) -> anyhow::Result<String> {
    let key = match &args.admin_key_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the admin key from {}", path.display()))?,
        None => std::env::var("TESSERA_ADMIN_KEY").map_err(|_| {
            anyhow::anyhow!(
                "no admin key: set TESSERA_ADMIN_KEY or pass --admin-key-file \
                 (make one with `tessera admin-key create --name NAME --scopes security:read`)"
            )
        })?,
    };
    let key = key.trim().to_owned();
    if key.is_empty() {
        bail!("the admin key is empty");
    }
    Ok(key)
}

fn base_url(args: &RecordArgs) -> anyhow::Result<String> {
    if let Some(url) = &args.url {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let config =
        tessera_config::load(args.config.path().as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut addr = config.server.listen_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Ok(format!("http://{addr}"))
}

async fn record(args: &RecordArgs) -> anyhow::Result<usize> {
    let key = admin_key(args)?;
    let mut url = reqwest::Url::parse(&format!("{}/api/admin/plugins/record", base_url(args)?))
        .context("invalid --url")?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(hooks) = &args.hooks {
            q.append_pair("hooks", hooks);
        }
        q.append_pair("limit", &args.limit.to_string());
        q.append_pair("seconds", &args.seconds.to_string());
    }
    let mut resp = reqwest::Client::new()
        .get(url.clone())
        .bearer_auth(key)
        .send()
        .await
        .with_context(|| format!("cannot reach {}", url.origin().ascii_serialization()))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let why = body["error"].as_str().unwrap_or("no explanation");
        bail!("the server answered {status}: {why}");
    }
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let mut lines = 0;
    while let Some(chunk) = resp.chunk().await.context("the recording broke off")? {
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        out.write_all(&chunk)?;
        out.flush()?;
    }
    Ok(lines)
}
