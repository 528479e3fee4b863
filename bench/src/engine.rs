//! The request engines: a bounded pool of keep-alive connections fed by an open-loop pacer,
//! a closed-loop saturation runner, and a batch runner for setup work.
//!
//! **Open loop.** A pacer thread assigns every request an intended start time on a fixed
//! schedule (`t0 + i / rate`) and queues it, whether or not earlier requests have been
//! answered. Connection workers take requests from the queue; latency is measured from the
//! intended start, so time spent queued behind a slow server is counted (no coordinated
//! omission). The pacer wakes every `tick` (default 50 µs) and queues every request whose
//! time has come, so a request may leave up to one tick late; that lag is in the numbers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use crate::http::{CallResult, Conn, Target};
use crate::stats::{Op, Recorder, Report};

/// What to send.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The operation (for statistics and expectations).
    pub op: Op,
    /// HTTP method.
    pub method: Method,
    /// Path and query.
    pub path: &'static str,
    /// JSON body (empty for none).
    pub body: Bytes,
}

impl JobSpec {
    /// A `POST` of `body` to `path`.
    pub fn post(op: Op, path: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            op,
            method: Method::POST,
            path,
            body: body.into(),
        }
    }
}

/// A queued request.
#[derive(Debug)]
pub struct Job {
    /// What to send.
    pub spec: JobSpec,
    /// When it should start (its slot in the schedule).
    pub intended: Instant,
    /// Caller's tag (e.g. the simulated client), returned with the result.
    pub tag: u64,
}

/// A completed request.
#[derive(Debug)]
pub struct Done {
    /// Operation.
    pub op: Op,
    /// Caller's tag.
    pub tag: u64,
    /// Intended start.
    pub intended: Instant,
    /// Actual send.
    pub sent: Instant,
    /// Response complete.
    pub done: Instant,
    /// Outcome.
    pub result: CallResult,
}

/// Counters shared by the pool's users.
#[derive(Debug, Default)]
pub struct PoolCounters {
    /// Jobs submitted.
    pub submitted: AtomicU64,
    /// Jobs a worker has taken.
    pub started: AtomicU64,
    /// Jobs completed.
    pub completed: AtomicU64,
}

impl PoolCounters {
    /// Jobs waiting for a free connection.
    pub fn backlog(&self) -> u64 {
        self.submitted
            .load(Ordering::Relaxed)
            .saturating_sub(self.started.load(Ordering::Relaxed))
    }

    /// Jobs taken but not completed.
    pub fn in_flight(&self) -> u64 {
        self.started
            .load(Ordering::Relaxed)
            .saturating_sub(self.completed.load(Ordering::Relaxed))
    }
}

/// Submits jobs to a [`Pool`] (cloneable; usable from any thread).
#[derive(Debug, Clone)]
pub struct Submitter {
    tx: mpsc::UnboundedSender<Job>,
    counters: Arc<PoolCounters>,
}

impl Submitter {
    /// Queues `job`; false if the pool is gone.
    pub fn submit(&self, job: Job) -> bool {
        self.counters.submitted.fetch_add(1, Ordering::Relaxed);
        self.tx.send(job).is_ok()
    }
}

/// A fixed set of keep-alive connections taking jobs from one queue.
pub struct Pool {
    submitter: Submitter,
    /// Completed jobs, in completion order.
    pub done: mpsc::UnboundedReceiver<Done>,
    /// Shared counters.
    pub counters: Arc<PoolCounters>,
    workers: Vec<JoinHandle<u64>>,
}

impl Pool {
    /// Starts `conns` workers against `target`.
    pub fn start(target: &Arc<Target>, conns: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel::<Job>();
        let (done_tx, done) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        let counters = Arc::new(PoolCounters::default());
        let workers = (0..conns.max(1))
            .map(|_| {
                let rx = Arc::clone(&rx);
                let done_tx = done_tx.clone();
                let counters = Arc::clone(&counters);
                let mut conn = Conn::new(Arc::clone(target));
                tokio::spawn(async move {
                    loop {
                        let job = rx.lock().await.recv().await;
                        let Some(job) = job else { break };
                        counters.started.fetch_add(1, Ordering::Relaxed);
                        let sent = Instant::now();
                        let result = conn
                            .call(job.spec.method, job.spec.path, job.spec.body)
                            .await;
                        let done = Instant::now();
                        counters.completed.fetch_add(1, Ordering::Relaxed);
                        let d = Done {
                            op: job.spec.op,
                            tag: job.tag,
                            intended: job.intended,
                            sent,
                            done,
                            result,
                        };
                        if done_tx.send(d).is_err() {
                            break;
                        }
                    }
                    conn.connects
                })
            })
            .collect();
        Self {
            submitter: Submitter {
                tx,
                counters: Arc::clone(&counters),
            },
            done,
            counters,
            workers,
        }
    }

    /// A handle to submit jobs.
    pub fn submitter(&self) -> Submitter {
        self.submitter.clone()
    }

    /// Stops the workers (queued jobs are dropped) and returns how many TCP connections
    /// were opened in total.
    pub async fn stop(self) -> u64 {
        drop(self.submitter);
        let mut connects = 0;
        for w in self.workers {
            w.abort();
            if let Ok(n) = w.await {
                connects += n;
            }
        }
        connects
    }
}

/// Parameters of an open-loop fixed-rate run.
#[derive(Debug, Clone)]
pub struct RateRun {
    /// Requests per second to schedule.
    pub rate: f64,
    /// Warm-up before the measured window (scheduled at the same rate, not reported).
    pub warmup: Duration,
    /// Length of the measured window.
    pub duration: Duration,
    /// Connections.
    pub conns: usize,
    /// Pacer wake-up period.
    pub tick: Duration,
    /// How long to wait for outstanding requests after the last one is scheduled.
    pub drain: Duration,
    /// Print a progress line every second (stderr).
    pub progress: bool,
}

/// Runs `make(i)` for i = 0, 1, ... at `run.rate` requests per second, open loop.
pub async fn run_rate(
    target: &Arc<Target>,
    run: &RateRun,
    make: Arc<dyn Fn(u64) -> JobSpec + Send + Sync>,
) -> Report {
    let mut pool = Pool::start(target, run.conns);
    let submitter = pool.submitter();
    let t0 = Instant::now() + Duration::from_millis(20);
    let window_start = t0 + run.warmup;
    let end = window_start + run.duration;
    let rate = run.rate.max(0.001);
    let tick = run.tick;
    let pacer_done = Arc::new(AtomicBool::new(false));
    let pacer_flag = Arc::clone(&pacer_done);
    let pacer = std::thread::spawn(move || {
        let mut i: u64 = 0;
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let elapsed = now.saturating_duration_since(t0).as_secs_f64();
            let due = if now < t0 {
                0
            } else {
                (elapsed * rate) as u64 + 1
            };
            while i < due {
                let intended = t0 + Duration::from_secs_f64(i as f64 / rate);
                if intended >= end {
                    break;
                }
                let job = Job {
                    spec: make(i),
                    intended,
                    tag: i,
                };
                if !submitter.submit(job) {
                    pacer_flag.store(true, Ordering::Release);
                    return i;
                }
                i += 1;
            }
            // Sleep until the next slot, but at least one tick (batching at high rates)
            // and at most 10 ms (to notice the end).
            let next = t0 + Duration::from_secs_f64(i as f64 / rate);
            let wait = next
                .saturating_duration_since(Instant::now())
                .max(tick)
                .min(Duration::from_millis(10));
            std::thread::sleep(wait);
        }
        pacer_flag.store(true, Ordering::Release);
        i
    });
    let mut rec = Recorder::new(window_start);
    rec.set_window_end(end);
    collect(
        &mut pool,
        &mut rec,
        run.progress,
        &pacer_done,
        end + run.drain,
    )
    .await;
    let scheduled = pacer.join().unwrap_or(0);
    let completed = pool.counters.completed.load(Ordering::Relaxed);
    rec.abandoned = scheduled.saturating_sub(completed);
    pool.stop().await;
    rec.report()
}

/// Receives completions into `rec` until every submitted job completed after the
/// schedule ended, or `deadline`.
async fn collect(
    pool: &mut Pool,
    rec: &mut Recorder,
    progress: bool,
    pacer_done: &AtomicBool,
    deadline: Instant,
) {
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            d = pool.done.recv() => {
                let Some(d) = d else { break };
                rec.record(d.op, d.intended, d.sent, d.done, &d.result);
            }
            _ = ticker.tick() => {
                if progress {
                    let extra = format!(
                        " | in flight {} backlog {}",
                        pool.counters.in_flight(),
                        pool.counters.backlog()
                    );
                    if let Some(line) = rec.progress(&extra) {
                        eprintln!("{line}");
                    }
                }
                let c = &pool.counters;
                let drained = c.submitted.load(Ordering::Relaxed) == c.completed.load(Ordering::Relaxed);
                if Instant::now() >= deadline || (pacer_done.load(Ordering::Acquire) && drained) {
                    break;
                }
            }
        }
    }
    while let Ok(d) = pool.done.try_recv() {
        rec.record(d.op, d.intended, d.sent, d.done, &d.result);
    }
}

/// Runs `make(i)` back to back on `conns` connections (closed loop) for `warmup +
/// duration`, or until `limit` requests were sent: the saturation throughput. Latency here
/// is service time (each connection waits for its answer before sending the next request).
pub async fn run_closed(
    target: &Arc<Target>,
    conns: usize,
    warmup: Duration,
    duration: Duration,
    limit: Option<u64>,
    progress: bool,
    make: Arc<dyn Fn(u64) -> JobSpec + Send + Sync>,
) -> Report {
    let start = Instant::now();
    let window_start = start + warmup;
    let end = window_start + duration;
    let counter = Arc::new(AtomicU64::new(0));
    let counters = Arc::new(PoolCounters::default());
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<JoinHandle<()>> = (0..conns.max(1))
        .map(|_| {
            let mut conn = Conn::new(Arc::clone(target));
            let counter = Arc::clone(&counter);
            let counters = Arc::clone(&counters);
            let make = Arc::clone(&make);
            let done_tx = done_tx.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    if limit.is_some_and(|l| i >= l) {
                        break;
                    }
                    let spec = make(i);
                    counters.submitted.fetch_add(1, Ordering::Relaxed);
                    counters.started.fetch_add(1, Ordering::Relaxed);
                    let sent = Instant::now();
                    let op = spec.op;
                    let result = conn.call(spec.method, spec.path, spec.body).await;
                    let done = Instant::now();
                    counters.completed.fetch_add(1, Ordering::Relaxed);
                    let d = Done {
                        op,
                        tag: i,
                        intended: sent,
                        sent,
                        done,
                        result,
                    };
                    if done_tx.send(d).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(done_tx);
    let mut rec = Recorder::new(window_start);
    let mut last_done = window_start;
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            d = done_rx.recv() => {
                let Some(d) = d else { break };
                // Only requests that completed inside the window count toward throughput.
                if d.done <= end {
                    last_done = last_done.max(d.done);
                    rec.record(d.op, d.intended, d.sent, d.done, &d.result);
                }
            }
            _ = ticker.tick() => {
                if progress && let Some(line) = rec.progress(&format!(" | in flight {}", counters.in_flight())) {
                    eprintln!("{line}");
                }
                if Instant::now() > end + Duration::from_secs(15) {
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
    for w in workers {
        w.abort();
    }
    // A run cut short by `limit` ends with its last completion.
    rec.set_window_end(if limit.is_some() {
        last_done.min(end)
    } else {
        end
    });
    rec.report()
}

/// Runs every spec once, `conns` at a time, and returns their results in order with the
/// report (setup work: issuing licenses, activations, session starts).
pub async fn run_batch(
    target: &Arc<Target>,
    conns: usize,
    specs: Vec<JobSpec>,
    progress: bool,
) -> (Vec<CallResult>, Report) {
    let n = specs.len();
    let specs = Arc::new(specs);
    let counter = Arc::new(AtomicU64::new(0));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let workers: Vec<JoinHandle<()>> = (0..conns.max(1).min(n.max(1)))
        .map(|_| {
            let mut conn = Conn::new(Arc::clone(target));
            let counter = Arc::clone(&counter);
            let specs = Arc::clone(&specs);
            let done_tx = done_tx.clone();
            tokio::spawn(async move {
                loop {
                    let i = counter.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(spec) = specs.get(i) else { break };
                    let sent = Instant::now();
                    let result = conn
                        .call(spec.method.clone(), spec.path, spec.body.clone())
                        .await;
                    let d = Done {
                        op: spec.op,
                        tag: i as u64,
                        intended: sent,
                        sent,
                        done: Instant::now(),
                        result,
                    };
                    if done_tx.send(d).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(done_tx);
    let start = Instant::now();
    let mut rec = Recorder::new(start);
    let mut results: Vec<Option<CallResult>> = vec![None; n];
    let mut got = 0usize;
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    while got < n {
        tokio::select! {
            d = done_rx.recv() => {
                let Some(d) = d else { break };
                rec.record(d.op, d.intended, d.sent, d.done, &d.result);
                if let Some(slot) = results.get_mut(d.tag as usize) {
                    *slot = Some(d.result);
                }
                got += 1;
            }
            _ = ticker.tick() => {
                if progress && let Some(line) = rec.progress(&format!(" | {got}/{n} done")) {
                    eprintln!("{line}");
                }
            }
        }
    }
    rec.set_window_end(Instant::now());
    for w in workers {
        w.abort();
    }
    let results = results
        .into_iter()
        .map(|r| r.unwrap_or(CallResult::Transport("not run")))
        .collect();
    (results, rec.report())
}
