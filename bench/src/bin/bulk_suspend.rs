//! A bulk suspend of many licenses while heartbeats run (issue 14): does it end exactly the
//! suspended licenses' sessions, and what does it do to the other clients' latency?
//!
//! One run, one server (release build, embedded store, rate limits off, pinned to CPU 1;
//! this generator on CPU 0): `--targets` licenses to suspend and as many bystanders, one
//! live session each. Two phases of `--secs` seconds each send heartbeats open loop at
//! `--rate` per second over all sessions; latency is measured from each heartbeat's
//! intended start. In the second phase `POST /api/admin/licenses/bulk {"action":
//! "suspend"}` runs over the targets one second in. Reported: the bystanders' p50/p99 in
//! both phases and their ratio, the bulk call's duration and `ended_sessions`, and what the
//! targets' heartbeats were answered after it.
//!
//!     cargo build --release -p tessera -p tessera-bench
//!     target/release/bulk_suspend --json bench/results/bulk-suspend.json
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tessera_bench::procs::{Backend, TesseraOpts, default_tessera_bin, pin_self, start_tessera};

#[derive(Parser, Debug)]
struct Args {
    /// The `tessera` binary (a release build).
    #[arg(long, default_value_os_t = default_tessera_bin())]
    tessera_bin: PathBuf,
    /// Licenses suspended by the bulk call (and as many bystanders).
    #[arg(long, default_value_t = 1000)]
    targets: usize,
    /// Heartbeats per second over all sessions.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Write the numbers here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// State shared by the generator's tasks.
type Shared<T> = Arc<tokio::sync::Mutex<T>>;

#[derive(Clone)]
struct Sess {
    key: String,
    token: String,
    target: bool,
}

struct Client {
    http: reqwest::Client,
    url: String,
    api_key: String,
    admin_key: String,
}

impl Client {
    async fn post(&self, path: &str, body: &Value, admin: bool) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.post(format!("{}{path}", self.url)).json(body);
        req = if admin {
            req.bearer_auth(&self.admin_key)
        } else {
            req.header("X-API-Key", &self.api_key)
        };
        let r = req.send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    async fn ok(&self, path: &str, body: Value, admin: bool) -> anyhow::Result<Value> {
        let (status, v) = self.post(path, &body, admin).await?;
        if !(200..300).contains(&status) {
            bail!("{path}: {status} {v}");
        }
        Ok(v)
    }

    async fn issue(&self, count: usize) -> anyhow::Result<Vec<String>> {
        let mut keys = Vec::with_capacity(count);
        while keys.len() < count {
            let n = (count - keys.len()).min(1000);
            let v = self
                .ok("/api/admin/licenses", json!({"count": n}), true)
                .await?;
            for l in v["licenses"].as_array().context("licenses")? {
                keys.push(l["license_key"].as_str().context("key")?.to_owned());
            }
        }
        Ok(keys)
    }
}

/// One live session per license, 32 at a time.
async fn sessions(c: &Arc<Client>, keys: Vec<(String, bool)>) -> anyhow::Result<Vec<Sess>> {
    let queue: Shared<Vec<(String, bool)>> = Arc::new(tokio::sync::Mutex::new(keys));
    let out: Shared<Vec<Sess>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (c, queue, out) = (Arc::clone(c), Arc::clone(&queue), Arc::clone(&out));
        tasks.push(tokio::spawn(async move {
            loop {
                let Some((key, target)) = queue.lock().await.pop() else {
                    return Ok::<(), anyhow::Error>(());
                };
                let hw = format!("dev-{key}");
                c.ok(
                    "/api/license/activate",
                    json!({"license_key": key, "hardware_hash": hw}),
                    false,
                )
                .await?;
                let v = c
                    .ok(
                        "/api/license/session/start",
                        json!({"license_key": key, "hardware_hash": hw}),
                        false,
                    )
                    .await?;
                let token = v["session_token"].as_str().context("token")?.to_owned();
                out.lock().await.push(Sess { key, token, target });
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let all = std::mem::take(&mut *out.lock().await);
    Ok(all)
}

/// What one phase saw.
#[derive(Default)]
struct Seen {
    bystander_us: Option<Histogram<u64>>,
    bystander_failures: u64,
    /// Bystander heartbeats due while the bulk call ran (µs).
    during_bulk_us: Vec<u64>,
    /// Target heartbeats' answers after the bulk call returned, by status and code.
    target_after: BTreeMap<String, u64>,
    sent: u64,
}

/// Heartbeats open loop at `rate` for `secs`; with `bulk`, the bulk suspend runs 1 s in.
async fn phase(
    c: &Arc<Client>,
    all: &Arc<Vec<Sess>>,
    rate: f64,
    secs: u64,
    bulk: Option<Vec<String>>,
) -> anyhow::Result<(Seen, Option<(Duration, Value)>)> {
    let seen: Shared<Seen> = Arc::new(tokio::sync::Mutex::new(Seen {
        bystander_us: Some(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        ..Seen::default()
    }));
    let bulk_done: Shared<Option<Instant>> = Arc::default();
    let bulk_started: Shared<Option<Instant>> = Arc::default();
    let bulk_task = bulk.map(|keys| {
        let (c, done, started) = (
            Arc::clone(c),
            Arc::clone(&bulk_done),
            Arc::clone(&bulk_started),
        );
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let t0 = Instant::now();
            *started.lock().await = Some(t0);
            let v = c
                .ok(
                    "/api/admin/licenses/bulk",
                    json!({"action": "suspend", "keys": keys}),
                    true,
                )
                .await;
            *done.lock().await = Some(Instant::now());
            v.map(|v| (t0.elapsed(), v))
        })
    });
    let start = Instant::now();
    let total = (rate * secs as f64) as u64;
    let mut inflight = Vec::new();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let sess = all[(i as usize) % all.len()].clone();
        let (c, seen, bulk_done, bulk_started) = (
            Arc::clone(c),
            Arc::clone(&seen),
            Arc::clone(&bulk_done),
            Arc::clone(&bulk_started),
        );
        inflight.push(tokio::spawn(async move {
            let body = json!({"session_token": sess.token, "license_key": sess.key});
            let answer = c.post("/api/license/session/heartbeat", &body, false).await;
            let us = due.elapsed().as_micros() as u64;
            let mut s = seen.lock().await;
            s.sent += 1;
            match (sess.target, answer) {
                (false, Ok((200, _))) => {
                    if let Some(h) = s.bystander_us.as_mut() {
                        let _ = h.record(us.max(1));
                    }
                    let began = bulk_started.lock().await.is_some_and(|t| t <= due);
                    let ended = bulk_done.lock().await.is_some_and(|t| t < due);
                    if began && !ended {
                        s.during_bulk_us.push(us);
                    }
                }
                (false, _) => s.bystander_failures += 1,
                (true, answer) => {
                    let after = bulk_done.lock().await.is_some_and(|t| t < due);
                    if after {
                        let label = match answer {
                            Ok((status, v)) => {
                                format!("{status} {}", v["code"].as_str().unwrap_or(""))
                            }
                            Err(e) => format!("transport error: {e}"),
                        };
                        *s.target_after.entry(label).or_default() += 1;
                    }
                }
            }
        }));
        if inflight.len() >= 4096 {
            for t in inflight.drain(..) {
                t.await?;
            }
        }
    }
    for t in inflight {
        t.await?;
    }
    let bulk = match bulk_task {
        Some(t) => Some(t.await??),
        None => None,
    };
    let seen = Arc::try_unwrap(seen)
        .map_err(|_| anyhow::anyhow!("phase results still shared"))?
        .into_inner();
    Ok((seen, bulk))
}

fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = pin_self("0");
    let server = start_tessera(&TesseraOpts {
        bin: args.tessera_bin.clone(),
        backend: Backend::Embedded,
        cpus: Some("1".into()),
        dir: None,
        env: vec![],
    })
    .await?;
    let c = Arc::new(Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?,
        url: format!("http://{}", server.addr),
        api_key: server.api_key.clone(),
        admin_key: server.admin_key.clone(),
    });
    let targets = c.issue(args.targets).await?;
    let bystanders = c.issue(args.targets).await?;
    let mut keys: Vec<(String, bool)> = targets.iter().map(|k| (k.clone(), true)).collect();
    keys.extend(bystanders.iter().map(|k| (k.clone(), false)));
    // Mixed, so every stretch of the open loop heartbeats targets and bystanders alike.
    let mut all = sessions(&c, keys).await?;
    rand::seq::SliceRandom::shuffle(all.as_mut_slice(), &mut rand::rng());
    let all = Arc::new(all);
    println!("{} live sessions ({} to suspend)", all.len(), targets.len());

    let (quiet, _) = phase(&c, &all, args.rate, args.secs, None).await?;
    let (busy, bulk) = phase(&c, &all, args.rate, args.secs, Some(targets.clone())).await?;
    let (bulk_time, bulk_reply) = bulk.context("bulk result")?;
    let (hq, hb) = (
        quiet.bystander_us.as_ref().context("histogram")?,
        busy.bystander_us.as_ref().context("histogram")?,
    );
    let ratio = pct(hb, 0.99) / pct(hq, 0.99).max(0.001);
    println!(
        "\n| phase | bystander heartbeats | p50 ms | p99 ms | bystander failures |\n|---|---:|---:|---:|---:|"
    );
    for (name, s, h) in [
        ("heartbeats only", &quiet, hq),
        ("with bulk suspend", &busy, hb),
    ] {
        println!(
            "| {name} | {} | {:.2} | {:.2} | {} |",
            h.len(),
            pct(h, 0.5),
            pct(h, 0.99),
            s.bystander_failures
        );
    }
    println!(
        "\nbulk suspend of {}: {:.0} ms, changed {}, ended_sessions {}, failed {}",
        targets.len(),
        bulk_time.as_secs_f64() * 1000.0,
        bulk_reply["changed"],
        bulk_reply["ended_sessions"],
        bulk_reply["failed"].as_array().map_or(0, Vec::len)
    );
    let during_max = busy.during_bulk_us.iter().max().copied().unwrap_or(0) as f64 / 1000.0;
    println!(
        "bystander heartbeats due while it ran: {}, slowest {during_max:.2} ms",
        busy.during_bulk_us.len()
    );
    println!("target heartbeats after it: {:?}", busy.target_after);
    println!("bystander p99 ratio (with / without): {ratio:.2} (target ≤ 2)");
    let exact = bulk_reply["ended_sessions"].as_u64() == Some(targets.len() as u64)
        && busy.bystander_failures == 0
        && quiet.bystander_failures == 0;
    println!("ended exactly the targets' sessions: {exact}");
    if let Some(path) = args.json {
        let out = json!({
            "targets": targets.len(),
            "rate": args.rate,
            "secs": args.secs,
            "quiet": {"p50_ms": pct(hq, 0.5), "p99_ms": pct(hq, 0.99), "count": hq.len()},
            "busy": {"p50_ms": pct(hb, 0.5), "p99_ms": pct(hb, 0.99), "count": hb.len()},
            "p99_ratio": ratio,
            "bulk_ms": bulk_time.as_secs_f64() * 1000.0,
            "during_bulk": {"count": busy.during_bulk_us.len(), "max_ms": during_max},
            "bulk": bulk_reply,
            "target_after": busy.target_after,
            "exact": exact,
            "sent": [quiet.sent, busy.sent],
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&out)?)?;
    }
    Ok(())
}
