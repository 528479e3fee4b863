//! `tessera config check`, and the `--config FILE` option every command takes.

use std::path::{Path, PathBuf};

use clap::Args;

/// `tessera config check`: `Ok("OK ...")`, or `Err` with one `FILE:LINE: key: message` per line.
pub fn check_config(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<String, String> {
    match tessera_config::load_with_env(path, env) {
        Ok(_) => Ok(match path {
            Some(p) => format!("OK: {}", p.display()),
            None => "OK: no config file, built-in defaults and TESSERA_* variables".to_owned(),
        }),
        Err(errs) => Err(errs.to_string()),
    }
}

/// `--config FILE`.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// Config file (TOML). Default: ./tessera.toml if it exists, else built-in defaults.
    #[arg(long, short = 'c', env = "TESSERA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ConfigArgs {
    /// The file to read: `--config`, else `./tessera.toml` when present.
    pub fn path(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            let default = PathBuf::from("tessera.toml");
            default.exists().then_some(default)
        })
    }
}
