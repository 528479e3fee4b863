//! Generates the C header from `src/ffi.rs` into `OUT_DIR`; `tests/examples.rs` checks that
//! the committed `include/tessera_client.h` is the same.

use std::env;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=src/ffi.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))?;
    let out = PathBuf::from(env::var("OUT_DIR")?).join("tessera_client.h");
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/ffi.rs"))
        .generate()?
        .write_to_file(out);
    Ok(())
}
