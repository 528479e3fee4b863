//! Tessera load generator, bare baseline server and micro-benchmarks.
//!
//! The `tessera-bench` binary (see `bench/README.md`):
//! - `fleet`: simulated client fleets, open loop, HDR latency per operation;
//! - `heartbeat`: heartbeats only on live sessions, open loop or saturating (profiling);
//! - `baseline`: the bare hyper server every result is compared with;
//! - `suite`: baseline and Tessera (embedded, Redis) measured in one run (saturation with
//!   `wrk`, latency with the open-loop generator), results written to `bench/results/` and
//!   `bench/README.md`;
//! - `memory`: server RSS per live session;
//! - `smoke`: a seconds-long run that fails on any 5xx or transport error (CI).
#![forbid(unsafe_code)]

pub mod api;
pub mod baseline;
pub mod engine;
pub mod fleet;
pub mod heartbeat;
pub mod http;
pub mod memory;
pub mod plot;
pub mod procs;
pub mod rounds;
pub mod smoke;
pub mod stats;
pub mod suite;
pub mod target;
pub mod wrk;
