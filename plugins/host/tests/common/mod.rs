//! Locating the example plugins built by `plugins/examples/build.sh`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `plugins/examples`.
pub(crate) fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Path of a built example plugin (`ban-threshold`, `ip-reputation`).
///
/// Runs `plugins/examples/build.sh` once per test process so the `.wasm` files are never
/// stale (a no-op build takes about a second). Set `TESSERA_PLUGINS_PREBUILT=1` to use
/// `plugins/examples/dist/` as it is (e.g. when CI has just run build.sh).
pub(crate) fn example_wasm(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if std::env::var_os("TESSERA_PLUGINS_PREBUILT").is_some() {
            return;
        }
        let status = Command::new("bash")
            .arg(examples_dir().join("build.sh"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .status()
            .expect("run plugins/examples/build.sh");
        assert!(status.success(), "plugins/examples/build.sh failed");
    });
    let path = examples_dir().join("dist").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run plugins/examples/build.sh",
        path.display()
    );
    path
}
