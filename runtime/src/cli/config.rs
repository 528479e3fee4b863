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

/// `tessera config check`'s options.
#[derive(Debug, Clone, Default, Args)]
pub struct CheckArgs {
    /// The file to check.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Also compare it with the server running on its `store.data_dir` (over the control
    /// socket): which settings a reload would apply and which need a restart. Exits 3 when
    /// some need a restart.
    #[arg(long)]
    pub against_running: bool,
}

/// What `config check --against-running` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Comparison {
    /// The file differs from the running server only in settings a reload applies.
    Reloadable(String),
    /// Some settings differ that only a restart applies.
    NeedsRestart(String),
}

/// Compares the config at `path` with the server running on its data directory.
///
/// # Errors
/// The file is invalid (the report, as `config check` prints it) or the server cannot be
/// reached.
pub async fn check_against_running(path: Option<&Path>) -> Result<Comparison, String> {
    let config = tessera_config::load(path).map_err(|e| e.to_string())?;
    let socket = crate::control::socket_path(&config);
    let reply = crate::control::request(&socket, &crate::control::ControlRequest::RunningConfig)
        .await
        .map_err(|e| format!("{e:#} (is `tessera serve` running on this store.data_dir?)"))?;
    let running = match reply {
        crate::control::ControlReply::Settings(s) => s,
        crate::control::ControlReply::Error(e) => {
            return Err(format!("the running server refused: {e}"));
        }
        other => return Err(format!("unexpected reply from the server: {other:?}")),
    };
    let ctx = crate::reload::settings::Context::default();
    let file = crate::reload::settings::settings(&config, ctx);
    Ok(compare(
        &running,
        &file,
        &path.map_or_else(|| "(defaults)".to_owned(), |p| p.display().to_string()),
    ))
}

fn compare(
    running: &crate::reload::settings::Settings,
    file: &crate::reload::settings::Settings,
    name: &str,
) -> Comparison {
    use crate::reload::settings::{Class, diff};
    use std::fmt::Write as _;
    let changes = diff(running, file);
    let mut out = format!("OK: {name}\n");
    if changes.is_empty() {
        out.push_str("the running server already runs every setting of this file\n");
        return Comparison::Reloadable(out);
    }
    let (reload, restart): (Vec<_>, Vec<_>) =
        changes.iter().partition(|c| c.class == Class::Reload);
    if !reload.is_empty() {
        out.push_str("applied by a reload (SIGHUP, or saving the file):\n");
        for c in &reload {
            let _ = writeln!(out, "  {c}");
        }
    }
    if restart.is_empty() {
        return Comparison::Reloadable(out);
    }
    out.push_str("need a restart (a reload keeps the running value):\n");
    for c in &restart {
        let _ = writeln!(out, "  {c}");
    }
    Comparison::NeedsRestart(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reload::settings::{Context, settings};

    #[test]
    fn the_comparison_sorts_changes_by_what_applies_them() {
        let running = tessera_config::Config::default();
        let same = settings(&running, Context::default());
        assert!(
            matches!(compare(&same, &same, "f"), Comparison::Reloadable(s) if s.contains("already runs"))
        );

        let mut file = running.clone();
        file.rate_limit.api_per_minute = 5;
        let c = compare(&same, &settings(&file, Context::default()), "f");
        assert!(
            matches!(&c, Comparison::Reloadable(s) if s.contains("rate_limit.api_per_minute: 100 -> 5")),
            "{c:?}"
        );

        file.server.listen_addr = "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable!());
        match compare(&same, &settings(&file, Context::default()), "f") {
            Comparison::NeedsRestart(s) => {
                assert!(s.contains("need a restart"), "{s}");
                assert!(s.contains("server.listen_addr"), "{s}");
                assert!(s.contains("rate_limit.api_per_minute"), "{s}");
            }
            other => panic!("{other:?}"),
        }
    }
}
