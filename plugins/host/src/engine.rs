//! The wasmtime engine (pooling allocator, epoch interruption) and its epoch ticker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::error::PluginError;
use crate::spec::HostSettings;

/// Builds the engine every plugin of one host is compiled with.
pub(crate) fn build_engine(settings: &HostSettings, pooling: bool) -> Result<Engine, PluginError> {
    let mut cfg = Config::new();
    cfg.epoch_interruption(true);
    cfg.cranelift_opt_level(OptLevel::Speed);
    cfg.max_wasm_stack(settings.max_wasm_stack_bytes);
    if pooling {
        let n = settings.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(n)
            .total_memories(n)
            .total_tables(n)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .max_memory_size(settings.memory_limit_bytes);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&cfg).map_err(|e| PluginError::Engine(format!("{e:#}")))
}

/// Increments the engine's epoch every `tick` on a background thread until dropped.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    pub(crate) fn start(engine: &Engine, tick: Duration) -> Result<Ticker, PluginError> {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("tessera-plugin-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Ticker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // The thread wakes within one tick; a panic in it has nothing to report.
            let _ = t.join();
        }
    }
}

/// Epoch ticks that cover `timeout` (at least one full tick: the current tick may end at
/// any moment, so one extra tick is added).
pub(crate) fn ticks_for(timeout: Duration, tick: Duration) -> u64 {
    let tick_ns = tick.as_nanos().max(1);
    let n = timeout.as_nanos().div_ceil(tick_ns);
    u64::try_from(n).unwrap_or(u64::MAX / 2).saturating_add(1)
}
