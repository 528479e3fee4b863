//! SDK for writing Tessera policy plugins in Rust (wasm32-unknown-unknown).
