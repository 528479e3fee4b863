//! Tessera load generator, bare baseline server and micro-benchmarks.
