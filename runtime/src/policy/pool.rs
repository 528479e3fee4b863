//! The threads plugin hooks run on.
//!
//! A hook call is synchronous WebAssembly bounded only by the plugin's timeout, and a durable
//! KV read on Redis waits on the network. Run on a tokio worker, one slow plugin would stall
//! every other request that worker serves; here it stalls one hook thread. Requests wait for
//! their decision asynchronously, and for room when `hook_queue` calls are already waiting.
//! A fixed set of threads (not `spawn_blocking`) also bounds the plugin instances, which
//! are cached per calling thread.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{Semaphore, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// The hook pool could not run a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The pool is shut down (the server is stopping).
    #[error("the plugin hook pool is shut down")]
    Closed,
    /// The call panicked on its thread.
    #[error("a plugin hook call panicked")]
    Panicked,
}

/// A fixed set of hook threads fed by one queue.
pub struct HookPool {
    tx: parking_lot::Mutex<Option<crossbeam_channel::Sender<Job>>>,
    room: Arc<Semaphore>,
    threads: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    size: usize,
}

impl std::fmt::Debug for HookPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookPool")
            .field("threads", &self.size)
            .finish_non_exhaustive()
    }
}

/// The thread count `hook_threads = 0` stands for: one per CPU, at least 2.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(2)
        .max(2)
}

impl HookPool {
    /// Starts `threads` threads (0: [`default_threads`]) with room for `queue` waiting calls.
    ///
    /// # Errors
    /// The OS refused a thread.
    pub fn start(threads: usize, queue: usize) -> std::io::Result<Self> {
        let size = if threads == 0 {
            default_threads()
        } else {
            threads
        };
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let mut handles = Vec::with_capacity(size);
        for i in 0..size {
            let rx = rx.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("tessera-hook-{i}"))
                    .spawn(move || {
                        while let Ok(job) = rx.recv() {
                            job();
                        }
                    })?,
            );
        }
        metrics::gauge!("tessera_plugin_hook_threads").set(size as f64);
        Ok(Self {
            tx: parking_lot::Mutex::new(Some(tx)),
            room: Arc::new(Semaphore::new(queue.max(1))),
            threads: parking_lot::Mutex::new(handles),
            size,
        })
    }

    /// Number of hook threads.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `f` on a hook thread and waits (asynchronously) for its result.
    ///
    /// # Errors
    /// [`PoolError::Closed`] after [`HookPool::shutdown`]; [`PoolError::Panicked`] when `f`
    /// panicked (the thread survives).
    pub async fn run<T, F>(&self, f: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = Arc::clone(&self.room)
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Closed)?;
        let (done, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _permit = permit;
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = done.send(result.map_err(|_| PoolError::Panicked));
        });
        {
            let tx = self.tx.lock();
            let Some(tx) = tx.as_ref() else {
                return Err(PoolError::Closed);
            };
            tx.send(job).map_err(|_| PoolError::Closed)?;
        }
        answer.await.map_err(|_| PoolError::Closed)?
    }

    /// Stops taking calls; the queued ones finish and the threads exit by themselves.
    pub fn close(&self) {
        self.room.close();
        self.tx.lock().take();
    }

    /// [`HookPool::close`], then waits for the threads (blocking).
    pub fn shutdown(&self) {
        self.close();
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for HookPool {
    fn drop(&mut self) {
        // Threads exit once the sender is gone; nothing to wait for here.
        self.tx.lock().take();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Duration;

    /// A job that waits (at most 10 s) for the test to release it; answers whether it was.
    fn held() -> (
        std::sync::mpsc::Sender<()>,
        impl FnOnce() -> bool + Send + 'static,
    ) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        (release, move || {
            wait.recv_timeout(Duration::from_secs(10)).is_ok()
        })
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_held_hook_thread_does_not_hold_the_runtime() {
        let pool = Arc::new(HookPool::start(2, 16).unwrap());
        let (release, job) = held();
        let slow = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.run(job).await })
        };
        tokio::task::yield_now().await;
        // The only runtime thread serves this call while the other hook thread is held.
        assert_eq!(pool.run(|| 7).await, Ok(7));
        release.send(()).unwrap();
        assert_eq!(slow.await.unwrap(), Ok(true), "released, not timed out");
    }

    #[tokio::test]
    async fn calls_run_on_hook_threads_and_panics_are_contained() {
        let pool = HookPool::start(1, 4).unwrap();
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("tessera-hook-0"));
        let panicked = pool.run(|| -> u8 { panic!("boom") }).await;
        assert_eq!(panicked, Err(PoolError::Panicked));
        assert_eq!(pool.run(|| 1).await, Ok(1), "the thread survived");
    }

    #[tokio::test]
    async fn a_full_queue_makes_callers_wait_and_shutdown_refuses() {
        let pool = Arc::new(HookPool::start(1, 1).unwrap());
        let (release, job) = held();
        let first = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.run(job).await })
        };
        while pool.room.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        // No room until the first call is done.
        let second = tokio::time::timeout(Duration::from_millis(30), pool.run(|| 2)).await;
        assert!(second.is_err(), "waited for room");
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(true));
        assert_eq!(pool.run(|| 3).await, Ok(3));
        pool.shutdown();
        assert_eq!(pool.run(|| 4).await, Err(PoolError::Closed));
    }
}
