//! The wasmtime engine (pooling allocator, epoch interruption) and its epoch ticker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

/// Increments the engine's epoch every `tick` on a background thread until dropped, but only
/// while guest code runs (a [`Running`] guard is held): an epoch deadline only matters to a
/// running guest, and a server without plugins, or between plugin calls, should not wake up
/// a thousand times a second for nothing (the 1 ms ticker was 1 % of a busy server's CPU).
pub(crate) struct Ticker {
    shared: Arc<TickerShared>,
    thread: Option<JoinHandle<()>>,
}

struct TickerShared {
    stop: AtomicBool,
    /// Guest calls in flight; the thread parks while this is zero.
    running: AtomicUsize,
    /// Epoch increments made so far (what the tests observe).
    ticks: AtomicU64,
}

/// Held while guest code runs, so its epoch deadline advances; see [`Ticker::running`].
pub(crate) struct Running<'t> {
    ticker: &'t Ticker,
}

impl Ticker {
    pub(crate) fn start(engine: &Engine, tick: Duration) -> Result<Ticker, PluginError> {
        let shared = Arc::new(TickerShared {
            stop: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            ticks: AtomicU64::new(0),
        });
        let engine = engine.clone();
        let state = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("tessera-plugin-epoch".into())
            .spawn(move || {
                while !state.stop.load(Ordering::Acquire) {
                    if state.running.load(Ordering::Acquire) == 0 {
                        // `Running::new` and `drop` unpark; an unpark that comes before
                        // the park makes it return at once, so no wake-up is lost.
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                    state.ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
            .map_err(|e| PluginError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Ticker {
            shared,
            thread: Some(thread),
        })
    }

    /// Keeps the epoch advancing until the guard is dropped. Take it before guest code runs
    /// (instantiation with `init`, or a hook call): a deadline set while the thread is
    /// parked still passes, since the first tick comes one `tick` after the unpark and
    /// [`ticks_for`] counts one tick more than the timeout needs.
    pub(crate) fn running(&self) -> Running<'_> {
        if self.shared.running.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(t) = &self.thread
        {
            t.thread().unpark();
        }
        Running { ticker: self }
    }

    #[cfg(test)]
    fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::Relaxed)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.ticker.shared.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::time::Instant;

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn the_epoch_advances_only_while_guest_code_runs() {
        let engine = build_engine(&HostSettings::default(), false).unwrap();
        let ticker = Ticker::start(&engine, Duration::from_millis(1)).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(ticker.ticks(), 0, "ticked with no guest running");

        let outer = ticker.running();
        wait_until("ticks while running", || ticker.ticks() >= 3);
        // A second caller neither stops nor doubles the ticking.
        let inner = ticker.running();
        let at = ticker.ticks();
        wait_until("ticks with two callers", || ticker.ticks() >= at + 3);
        drop(inner);
        let at = ticker.ticks();
        wait_until("ticks after one caller left", || ticker.ticks() >= at + 3);
        drop(outer);

        // The thread may finish the tick it was sleeping through, then parks.
        std::thread::sleep(Duration::from_millis(20));
        let parked_at = ticker.ticks();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            ticker.ticks(),
            parked_at,
            "kept ticking after the last caller left"
        );

        // It wakes again for the next caller, and a drop while parked returns.
        let again = ticker.running();
        wait_until("ticks after waking", || ticker.ticks() > parked_at);
        drop(again);
        drop(ticker);
    }

    #[test]
    fn dropping_a_parked_ticker_stops_its_thread() {
        let engine = build_engine(&HostSettings::default(), false).unwrap();
        let ticker = Ticker::start(&engine, Duration::from_secs(3600)).unwrap();
        let started = Instant::now();
        drop(ticker);
        // A parked thread is woken by the drop rather than by its hour-long tick.
        assert!(started.elapsed() < Duration::from_secs(60));
    }
}
