//! WebAssembly policy plugin host for Tessera (wasmtime).
