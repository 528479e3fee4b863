//! Stand-in for `tessera plugin check|run` built on the same library functions.
//!
//! ```sh
//! cargo run -p tessera-plugins --example plugin_tool -- check FILE.wasm
//! cargo run -p tessera-plugins --example plugin_tool -- run FILE.wasm --hook on_heartbeat \
//!     --event event.json [--config plugin.toml|plugin.json]
//! ```
#![allow(missing_docs)]

use std::process::ExitCode;

use tessera_plugins::{Hook, check_module, run_once};

fn usage() -> ExitCode {
    eprintln!(
        "usage: plugin_tool check FILE.wasm\n       plugin_tool run FILE.wasm --hook HOOK --event EVENT.json [--config CONFIG.toml|.json]"
    );
    ExitCode::from(2)
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{path}: {e}"))
}

fn config(path: Option<&str>) -> Result<serde_json::Value, String> {
    let Some(path) = path else {
        return Ok(serde_json::json!({}));
    };
    let text = String::from_utf8(read(path)?).map_err(|e| format!("{path}: {e}"))?;
    if path.ends_with(".json") {
        serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
    } else {
        toml::from_str::<serde_json::Value>(&text).map_err(|e| format!("{path}: {e}"))
    }
}

fn run(args: &[String]) -> Result<(), String> {
    match args {
        [cmd, file] if cmd == "check" => {
            let info = check_module(&read(file)?).map_err(|e| e.to_string())?;
            println!("{file}: ABI v{}", info.abi_version);
            for h in &info.hooks {
                println!("  hook   {h}");
            }
            for i in &info.imports {
                println!("  import tessera.{i}");
            }
            for x in &info.ignored_exports {
                println!("  ignored export {x} (not a hook of this ABI)");
            }
            Ok(())
        }
        [cmd, file, rest @ ..] if cmd == "run" => {
            let opt = |name: &str| {
                rest.iter()
                    .position(|a| a == name)
                    .and_then(|i| rest.get(i + 1))
                    .map(String::as_str)
            };
            let hook: Hook = opt("--hook")
                .ok_or("--hook is required")?
                .parse()
                .map_err(|e| format!("{e}"))?;
            let event_path = opt("--event").ok_or("--event is required")?;
            let event =
                String::from_utf8(read(event_path)?).map_err(|e| format!("{event_path}: {e}"))?;
            let decision = run_once(&read(file)?, hook, &event, &config(opt("--config"))?)
                .map_err(|e| e.to_string())?;
            println!(
                "{}",
                serde_json::to_string(&decision).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        _ => Err(String::new()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_empty() => usage(),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
