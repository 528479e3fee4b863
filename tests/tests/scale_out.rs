//! Several servers on one Redis behind Debian's nginx, configured with the block in
//! docs/deployment.md ("Several servers behind a balancer"), run verbatim apart from its
//! ports:
//!
//! - with `X-License-Key`, each license is loaded from Redis by one server only (the hash
//!   keeps it there), where without the header it is loaded by several;
//! - kill -9 the server holding most sessions: every session keeps heartbeating through
//!   nginx on the others, none is expired, and new sessions start; restarted, it rejoins;
//! - a server cut off from Redis (a forwarder the test cuts): its `/ready` fails and its
//!   durable writes answer 503 while the other carries on; back, it catches up with a
//!   suspension made meanwhile (the change notice it missed);
//! - on a Redis Cluster of three primaries with a replica each: change notices reach the
//!   other servers, and when a primary is killed under writes its replica takes over, every
//!   server writes to every license again, and no session limit is exceeded. What was
//!   acknowledged and lost (asynchronous replication) is measured and printed, not asserted;
//! - all of it at once, the whole setup under load: three servers behind nginx on a Redis
//!   Cluster of three primaries with a replica each, one client per license (half with the
//!   locality header, half spread over the servers so their starts race across them) and a
//!   checker counting each license's live sessions in Redis against its limit throughout.
//!   One server is killed -9 and restarted, a license is suspended through one server while
//!   its sessions heartbeat through the others, one server is cut off from every Redis node
//!   (forwarders the nodes announce, with an owner rule: the connections of that server's
//!   process are dropped), and a primary is killed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod redis_support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis_support::{Redis, Tessera, code, issue, store};
use serde_json::{Value, json};

/// The tests of this binary each run several servers and Redis processes; on two cores they
/// run one at a time, so one test's load does not stall another's timeouts.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// nginx in the foreground with a private prefix, as one process (`master_process off`), so
/// the kill on drop ends it: a killed master leaves its workers running, holding the port.
struct Nginx {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The ```nginx block of docs/deployment.md.
fn documented_config() -> String {
    let doc = std::fs::read_to_string(repo("docs/deployment.md")).unwrap();
    let start = doc
        .find("```nginx\n")
        .expect("docs/deployment.md has an nginx block")
        + 9;
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end].to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    /// Runs the documented block with its upstream servers replaced by `backends`.
    fn start(backends: &[&Tessera]) -> Self {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!(
                    "nginx is not installed: run `bash tests/run.sh` (it installs Debian's \
                     nginx-light) or `apt-get install -y nginx-light`"
                )
            });
        let documented = documented_config();
        let mut lines: Vec<String> = Vec::new();
        let mut replaced = false;
        for line in documented.lines() {
            if line.trim_start().starts_with("server 127.0.0.1:") {
                if !replaced {
                    for b in backends {
                        let addr = b.base.trim_start_matches("http://");
                        lines.push(format!("    server {addr} max_fails=1 fail_timeout=2s;"));
                    }
                    replaced = true;
                }
                continue;
            }
            lines.push(line.to_owned());
        }
        assert!(replaced, "the documented block names no upstream server");
        let port = free_port();
        let block = lines
            .join("\n")
            .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"));
        assert!(
            block.contains(&format!("listen 127.0.0.1:{port};")),
            "{block}"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let conf = format!(
            "error_log {d}/error.log info;\npid {d}/nginx.pid;\nmaster_process off;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             {block}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut n = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = n.child.try_wait() {
                panic!("nginx exited with {status}: {}", n.log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                n.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// A seed 000 call through nginx; with `hashed`, the license key also goes in
/// `X-License-Key`.
async fn call(
    http: &reqwest::Client,
    nginx: &Nginx,
    api_key: &str,
    path: &str,
    body: Value,
    hashed: bool,
) -> (u16, Value) {
    let mut req = http
        .post(format!("http://127.0.0.1:{}{path}", nginx.port))
        .header("X-API-Key", api_key)
        .json(&body);
    if hashed && let Some(key) = body["license_key"].as_str() {
        req = req.header("X-License-Key", key);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!({ "error": e.to_string() })),
    }
}

/// Three servers on `redis_url`, the first one making the store's API key.
async fn three_servers(redis_url: &str) -> [Tessera; 3] {
    let a = Tessera::start(redis_url, None).await.unwrap();
    let b = Tessera::start(redis_url, Some(&a.api_key)).await.unwrap();
    let c = Tessera::start(redis_url, Some(&a.api_key)).await.unwrap();
    [a, b, c]
}

/// A counter of `node`'s `/metrics` (0 when absent).
async fn counter(node: &Tessera, name: &str) -> f64 {
    let text = reqwest::get(node.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn loads(nodes: &[&Tessera]) -> Vec<f64> {
    let mut out = Vec::new();
    for n in nodes {
        out.push(counter(n, "tessera_license_loads_total").await);
    }
    out
}

/// Activates, starts a session and heartbeats `licenses` through nginx; returns the tokens.
async fn drive(
    http: &reqwest::Client,
    nginx: &Nginx,
    api_key: &str,
    licenses: &[String],
    hashed: bool,
) -> Vec<(String, String)> {
    let mut sessions = Vec::new();
    for key in licenses {
        let (s, b) = call(
            http,
            nginx,
            api_key,
            "/api/license/activate",
            json!({"license_key": key, "hardware_hash": "hw-1", "machine_name": "M", "app_version": "1.0.0"}),
            hashed,
        )
        .await;
        assert_eq!(s, 200, "{b}");
        let (s, b) = call(
            http,
            nginx,
            api_key,
            "/api/license/session/start",
            json!({"license_key": key, "machine_id": "M", "hardware_hash": "hw-1", "version": "1.0.0"}),
            hashed,
        )
        .await;
        assert_eq!(s, 200, "{b}");
        sessions.push((key.clone(), b["session_token"].as_str().unwrap().to_owned()));
    }
    for _ in 0..3 {
        for (key, token) in &sessions {
            let (s, b) = beat(http, nginx, api_key, key, token, hashed).await;
            assert_eq!(s, 200, "{b}");
        }
    }
    sessions
}

async fn beat(
    http: &reqwest::Client,
    nginx: &Nginx,
    api_key: &str,
    key: &str,
    token: &str,
    hashed: bool,
) -> (u16, Value) {
    call(
        http,
        nginx,
        api_key,
        "/api/license/session/heartbeat",
        json!({"license_key": key, "session_token": token}),
        hashed,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_servers_behind_nginx_hash_on_the_license_and_survive_a_kill() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let redis = Redis::start().unwrap();
    let direct = store(&redis).await;
    let [a, b, c] = three_servers(&redis.url).await;
    let nodes = [&a, &b, &c];
    let nginx = Nginx::start(&nodes);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let api_key = a.api_key.clone();

    // With the header: each license is loaded by exactly one server.
    let mut hashed = Vec::new();
    for i in 0..24 {
        hashed.push(issue(&direct, &format!("HASH-{i:04}-AAAA-BBBB"), 4, 4).await);
    }
    let before = loads(&nodes).await;
    let sessions = drive(&http, &nginx, &api_key, &hashed, true).await;
    let after = loads(&nodes).await;
    let per_node: Vec<f64> = after.iter().zip(&before).map(|(x, y)| x - y).collect();
    println!("loads per server with X-License-Key (24 licenses): {per_node:?}");
    assert_eq!(
        per_node.iter().sum::<f64>(),
        24.0,
        "{per_node:?}\n{}",
        nginx.log()
    );
    assert!(
        per_node.iter().filter(|n| **n > 0.0).count() >= 2,
        "the hash sent every license to one server: {per_node:?}"
    );

    // Without it: the same work loads licenses on several servers.
    let mut spread = Vec::new();
    for i in 0..24 {
        spread.push(issue(&direct, &format!("SPRD-{i:04}-AAAA-BBBB"), 4, 4).await);
    }
    let before = loads(&nodes).await;
    drive(&http, &nginx, &api_key, &spread, false).await;
    let after = loads(&nodes).await;
    let unhashed: f64 = after.iter().zip(&before).map(|(x, y)| x - y).sum();
    println!("loads without the header (24 licenses): {unhashed}");
    assert!(unhashed > 24.0, "{unhashed}");

    // Kill -9 the server that holds the most hashed licenses: their clients go on through
    // nginx on the others, and no session was expired.
    let busiest = (0..3)
        .max_by(|x, y| per_node[*x].total_cmp(&per_node[*y]))
        .unwrap();
    nodes[busiest].kill9();
    for (key, token) in &sessions {
        let (s, body) = beat(&http, &nginx, &api_key, key, token, true).await;
        assert_eq!(s, 200, "after the kill, {key}: {body}\n{}", nginx.log());
    }
    for key in &hashed {
        let (s, body) = call(
            &http,
            &nginx,
            &api_key,
            "/api/license/session/start",
            json!({"license_key": key, "machine_id": "M", "hardware_hash": "hw-1", "version": "1.0.0"}),
            true,
        )
        .await;
        assert_eq!(
            s,
            200,
            "a new session after the kill, {key}: {} {body}",
            code(&body)
        );
    }

    // Restarted, it rejoins: it answers, and nginx sends its licenses back to it.
    nodes[busiest].restart().await.unwrap();
    let before = counter(nodes[busiest], "tessera_license_cache_hits_total").await
        + counter(nodes[busiest], "tessera_license_loads_total").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (key, token) in &sessions {
            let (s, body) = beat(&http, &nginx, &api_key, key, token, true).await;
            assert_eq!(s, 200, "after the restart, {key}: {body}");
        }
        let now = counter(nodes[busiest], "tessera_license_cache_hits_total").await
            + counter(nodes[busiest], "tessera_license_loads_total").await;
        if now > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted server got no traffic back:\n{}",
            nginx.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A TCP forwarder between one server and Redis that the test can cut and restore: a
/// network partition of that server alone.
struct Link {
    port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Link {
    async fn start(to: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            std::sync::Arc::default();
        let (o, c) = (open.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused at once
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut redis) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut redis).await;
                    }
                });
                c.lock().unwrap().push(task);
            }
        });
        Self {
            port,
            open,
            conns,
            accept,
        }
    }

    /// Drops every connection and refuses new ones.
    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_cut_off_from_redis_refuses_writes_and_catches_up_when_back() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let redis = Redis::start().unwrap();
    let direct = store(&redis).await;
    let a = Tessera::start(&redis.url, None).await.unwrap();
    let link = Link::start(redis.port).await;
    let b = Tessera::start(
        &format!("redis://127.0.0.1:{}", link.port),
        Some(&a.api_key),
    )
    .await
    .unwrap();
    let key = issue(&direct, "PART-0001-AAAA-BBBB", 4, 4).await;
    let other = issue(&direct, "PART-0002-AAAA-BBBB", 4, 4).await;
    for k in [&key, &other] {
        assert_eq!(redis_support::activate(&b, k, "hw-1").await.0, 200);
        assert_eq!(redis_support::activate(&b, k, "hw-2").await.0, 200);
    }
    let (s, body) = redis_support::start(&b, &key, "hw-1").await;
    assert_eq!(s, 200, "{body}");
    let token = body["session_token"].as_str().unwrap().to_owned();

    link.cut();
    // B: /ready fails and a durable write answers 503; a heartbeat still answers from memory.
    assert!(
        redis_support::eventually(Duration::from_secs(10), || async {
            b.get("/ready").await.map(|(s, _)| s).unwrap_or(0) == 503
        })
        .await,
        "B's /ready kept answering 200 without Redis"
    );
    let (s, body) = redis_support::start(&b, &other, "hw-1").await;
    assert_eq!((s, code(&body)), (503, "STORE_UNAVAILABLE"), "{body}");
    assert_eq!(redis_support::heartbeat(&b, &key, &token).await.0, 200);
    // A carries on.
    assert_eq!(a.get("/ready").await.unwrap().0, 200);
    let (s, body) = redis_support::start(&a, &other, "hw-2").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(redis_support::heartbeat(&a, &key, &token).await.0, 200);

    // Meanwhile A suspends the license B holds: B cannot hear of it yet...
    redis_support::suspend(&a, &direct, &key).await;

    // ...and once the link is back, B is ready again and has caught up: the suspension
    // missed while cut off ends the session there too.
    link.restore();
    assert!(
        redis_support::eventually(Duration::from_secs(15), || async {
            b.get("/ready").await.map(|(s, _)| s).unwrap_or(0) == 200
        })
        .await,
        "B did not become ready again:\n{}",
        b.log()
    );
    assert!(
        redis_support::eventually(Duration::from_secs(10), || async {
            redis_support::heartbeat(&b, &key, &token).await.0 != 200
        })
        .await,
        "B kept serving a license suspended while it was cut off:\n{}",
        b.log()
    );
    let (_, body) = redis_support::start(&b, &key, "hw-2").await;
    assert_eq!(code(&body), "LICENSE_SUSPENDED", "{body}");
}

/// What the writers were told succeeded during the primary's failover.
#[derive(Default)]
struct Acked {
    activations: Vec<(String, String)>,
    failures: Vec<(Duration, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_redis_cluster_with_replicas_a_primary_can_die() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use tessera_actors::{LicenseKey, Store};

    let mut cluster = redis_support::RedisCluster::start_with_replicas(1).unwrap();
    let direct = tessera::store::redis::RedisStore::connect(&cluster.url, Duration::from_secs(5))
        .await
        .unwrap();
    let [a, b, c] = three_servers(&cluster.url).await;

    // Change notices travel over the cluster: a suspension through A ends B's session.
    let key = issue(&direct, "CLUS-0000-AAAA-BBBB", 4, 2).await;
    assert_eq!(redis_support::activate(&b, &key, "hw-1").await.0, 200);
    let (s, body) = redis_support::start(&b, &key, "hw-1").await;
    assert_eq!(s, 200, "{body}");
    let token = body["session_token"].as_str().unwrap().to_owned();
    assert_eq!(redis_support::heartbeat(&a, &key, &token).await.0, 200);
    let suspended = Instant::now();
    redis_support::suspend(&a, &direct, &key).await;
    assert!(
        redis_support::eventually(Duration::from_secs(5), || async {
            redis_support::heartbeat(&b, &key, &token).await.0 != 200
        })
        .await,
        "B kept serving a license suspended through A on the cluster"
    );
    println!("suspension on A reached B in {:?}", suspended.elapsed());

    // Writers activate devices and start sessions on 30 licenses through all three servers
    // while a primary is killed.
    let mut licenses = Vec::new();
    for i in 0..30 {
        licenses.push(issue(&direct, &format!("CLUS-{:04}-AAAA-BBBB", i + 1), 1000, 2).await);
    }
    let nodes = Arc::new([a, b, c]);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let began = Instant::now();
    let mut writers = Vec::new();
    for w in 0..3 {
        let (nodes, stop, acked, licenses) =
            (nodes.clone(), stop.clone(), acked.clone(), licenses.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let key = &licenses[(n * 3 + w) % licenses.len()];
                let node = &nodes[(n + w) % 3];
                let hw = format!("hw-{w}-{n}");
                let (s, body) = redis_support::activate(node, key, &hw).await;
                if s == 200 {
                    acked
                        .lock()
                        .unwrap()
                        .activations
                        .push((key.clone(), hw.clone()));
                    let _ = redis_support::start(node, key, &hw).await;
                } else {
                    let what = format!("{s} {}", code(&body));
                    acked.lock().unwrap().failures.push((began.elapsed(), what));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A primary (`ROLE` says so; `--cluster create` usually makes the first three primaries).
    let victim = (0..cluster.nodes().len())
        .find(|i| {
            cluster.nodes()[*i]
                .cli(&["ROLE"])
                .is_ok_and(|r| r.starts_with("master"))
        })
        .expect("a primary");
    let killed_at = began.elapsed();
    let dead = format!("127.0.0.1:{}", cluster.nodes()[victim].port);
    cluster.nodes_mut()[victim].kill9();
    // The replica takes over after the node timeout (5 s) and an election: the survivors
    // mark the dead node `fail` and the cluster is ok again.
    let survivors: Vec<&redis_support::Redis> = cluster
        .nodes()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, n)| n)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ok = survivors.iter().all(|n| {
            n.cli(&["CLUSTER", "INFO"])
                .is_ok_and(|info| info.contains("cluster_state:ok"))
                && n.cli(&["CLUSTER", "NODES"]).is_ok_and(|nodes| {
                    nodes
                        .lines()
                        .any(|l| l.contains(&dead) && l.contains(",fail") && !l.contains("fail?"))
                })
        });
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never took over; as the survivors see it:\n{}",
            survivors
                .iter()
                .map(|n| format!(
                    "{}: {}\n{}",
                    n.port,
                    n.cli(&["CLUSTER", "INFO"])
                        .unwrap_or_default()
                        .lines()
                        .next()
                        .unwrap_or(""),
                    n.cli(&["CLUSTER", "NODES"]).unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered_at = began.elapsed();
    // Writes go on for a while after the takeover.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }

    // Every license takes writes again through every server (the dead primary's slots are
    // served by its replica).
    let mut pending: Vec<(usize, &String)> = (0..3)
        .flat_map(|n| licenses.iter().map(move |k| (n, k)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() {
        let mut still = Vec::new();
        for (n, key) in pending {
            let (s, _) = redis_support::activate(&nodes[n], key, &format!("hw-after-{n}")).await;
            if s != 200 {
                still.push((n, key));
            }
        }
        pending = still;
        assert!(
            Instant::now() < deadline,
            "after the failover, {} (server, license) pairs still refuse writes: {:?}\n{}",
            pending.len(),
            &pending[..pending.len().min(5)],
            nodes[pending[0].0].log()
        );
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let all_writable_at = began.elapsed();
    // What was acknowledged and is not in Redis now: the asynchronous-replication window.
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let mut lost = 0;
    let mut over_limit = 0;
    for key in &licenses {
        let snap = direct
            .load(&LicenseKey::parse(key).unwrap())
            .await
            .unwrap()
            .unwrap();
        let have: std::collections::BTreeSet<&str> = snap
            .activations
            .iter()
            .map(|a| a.hardware_hash.as_str())
            .collect();
        lost += acked
            .activations
            .iter()
            .filter(|(k, hw)| k == key && !have.contains(hw.as_str()))
            .count();
        if snap.sessions.len() > 2 {
            over_limit += 1;
        }
    }
    let failed_from = acked.failures.first().map(|f| f.0);
    let failed_until = acked.failures.last().map(|f| f.0);
    println!("every server wrote to every license again at {all_writable_at:?}");
    println!(
        "primary killed at {killed_at:?}, cluster ok again at {recovered_at:?}; writes failed \
         from {failed_from:?} to {failed_until:?} ({} refused, first: {:?}); {} activations \
         acknowledged, {lost} of them lost",
        acked.failures.len(),
        acked.failures.first().map(|f| &f.1),
        acked.activations.len()
    );
    assert_eq!(over_limit, 0, "a session limit was exceeded");
    assert!(!acked.activations.is_empty());
}

/// Loopback forwarders in front of every node of a Redis Cluster (the nodes announce the
/// forwarders' ports, so every client goes through them) holding the one rule of a firewall
/// with an owner match: the connections of one process are dropped and new ones refused.
/// The owner of a connection is found as the kernel knows it: the connecting socket's inode
/// in `/proc/net/tcp`, among the process's descriptors.
struct Wall {
    listeners: Vec<tokio::net::TcpListener>,
    ports: Vec<u16>,
    blocked: std::sync::Arc<std::sync::Mutex<Option<u32>>>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<Forwarding>>>,
    accepts: Vec<tokio::task::JoinHandle<()>>,
}

/// One forwarded connection: the inode of the connecting socket, and the task copying it.
type Forwarding = (u64, tokio::task::JoinHandle<()>);

/// The inode of the socket connected from `peer` to local port `to` (IPv4 loopback).
fn socket_inode(peer: std::net::SocketAddr, to: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = |field: &str| u16::from_str_radix(field.rsplit(':').next()?, 16).ok();
        (f.len() > 9 && port(f[1])? == peer.port() && port(f[2])? == to)
            .then(|| f[9].parse().ok())
            .flatten()
    })
}

/// The socket inodes among `pid`'s open descriptors.
fn socket_inodes(pid: u32) -> std::collections::HashSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Default::default();
    };
    fds.filter_map(|fd| {
        let link = std::fs::read_link(fd.ok()?.path()).ok()?;
        let link = link.to_str()?;
        link.strip_prefix("socket:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    })
    .collect()
}

impl Wall {
    async fn bind(count: usize) -> Self {
        let mut listeners = Vec::new();
        for _ in 0..count {
            listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        Self {
            listeners,
            ports,
            blocked: Default::default(),
            conns: Default::default(),
            accepts: Vec::new(),
        }
    }

    /// Forwards port `i` to `targets[i]`.
    fn open(&mut self, targets: &[u16]) {
        for (listener, (&to, &port)) in self
            .listeners
            .drain(..)
            .zip(targets.iter().zip(&self.ports))
        {
            let (blocked, conns) = (self.blocked.clone(), self.conns.clone());
            self.accepts.push(tokio::spawn(async move {
                while let Ok((mut client, peer)) = listener.accept().await {
                    let inode = socket_inode(peer, port).unwrap_or(0);
                    let refused = blocked
                        .lock()
                        .unwrap()
                        .is_some_and(|pid| socket_inodes(pid).contains(&inode));
                    if refused {
                        continue; // dropped: the connection is reset at once
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut redis) =
                            tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                        {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut redis).await;
                        }
                    });
                    conns.lock().unwrap().push((inode, task));
                }
            }));
        }
    }

    /// Cuts process `pid` off: its connections are dropped and new ones refused.
    fn block(&self, pid: u32) {
        *self.blocked.lock().unwrap() = Some(pid);
        let theirs = socket_inodes(pid);
        self.conns.lock().unwrap().retain(|(inode, task)| {
            let cut = theirs.contains(inode);
            if cut {
                task.abort();
            }
            !cut && !task.is_finished()
        });
    }

    fn unblock(&self) {
        *self.blocked.lock().unwrap() = None;
    }
}

impl Drop for Wall {
    fn drop(&mut self) {
        for a in &self.accepts {
            a.abort();
        }
        for (_, t) in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// How long a full-setup client waits for an answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the clients of the full-setup test were told, and what they saw go wrong.
#[derive(Default, Clone)]
struct Ledger {
    /// Acknowledged activations: (license, device).
    activations: Vec<(String, String)>,
    /// Acknowledged session starts: (license, token, phase).
    starts: Vec<(String, String, &'static str)>,
    /// Sessions the clients ended themselves.
    ended: std::collections::HashSet<String>,
    /// Answers that mean a session or device was lost or something was refused for no good
    /// reason: (phase, what).
    refused: Vec<(&'static str, String)>,
    /// Answers a client retries (a dead or cut-off server, a failover): "phase: status code".
    transient: std::collections::BTreeMap<String, u64>,
    /// Client rounds (heartbeats, an end, starts) finished per phase, and the longest.
    rounds: std::collections::BTreeMap<&'static str, (u64, Duration)>,
    /// Sessions whose end got no answer (it may or may not have happened).
    unacked_ends: std::collections::HashSet<String>,
    /// Starts refused with `SESSION_LIMIT_REACHED`.
    limit_refusals: u64,
}

/// The phase the full-setup test is in, for the ledger.
type Phase = std::sync::Arc<std::sync::Mutex<&'static str>>;

/// Whether a client retries this answer: the balancer found no server (0: no answer at all,
/// 502/504), or the store could not make the change durable (503).
fn is_transient(status: u16) -> bool {
    matches!(status, 0 | 502 | 503 | 504)
}

/// One license's client through nginx: three devices that each want a session (the limit is
/// two, so the third start races the others and is refused), heartbeats, an end now and
/// then, a new device now and then. With `hashed` it sends `X-License-Key`; without, nginx
/// spreads its requests over the servers and its starts race across them.
async fn client(
    key: String,
    hashed: bool,
    nginx: std::sync::Arc<Nginx>,
    api_key: String,
    ledger: std::sync::Arc<std::sync::Mutex<Ledger>>,
    phase: Phase,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let http = reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .unwrap();
    let now = || *phase.lock().unwrap();
    let transient = |s: u16, b: &Value| {
        let what = format!("{}: {s} {}", now(), code(b));
        *ledger.lock().unwrap().transient.entry(what).or_default() += 1;
    };
    let activate = |hw: &str| {
        let body = json!({"license_key": key, "hardware_hash": hw, "machine_name": "M", "app_version": "1.0.0"});
        call(
            &http,
            &nginx,
            &api_key,
            "/api/license/activate",
            body,
            hashed,
        )
    };
    let devices: Vec<String> = (0..3).map(|d| format!("{key}-hw-{d}")).collect();
    for hw in &devices {
        loop {
            let (s, b) = activate(hw).await;
            if s == 200 {
                ledger
                    .lock()
                    .unwrap()
                    .activations
                    .push((key.clone(), hw.clone()));
                break;
            }
            assert!(is_transient(s), "activate {key} {hw}: {s} {b}");
            transient(s, &b);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut live: Vec<(String, String)> = Vec::new();
    let mut n = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let round = Instant::now();
        let mut still = Vec::new();
        for (hw, token) in live.drain(..) {
            let (s, b) = beat(&http, &nginx, &api_key, &key, &token, hashed).await;
            if s == 200 {
                still.push((hw, token));
            } else if is_transient(s) {
                transient(s, &b);
                still.push((hw, token));
            } else {
                let what = format!("heartbeat {key} {token}: {s} {}", code(&b));
                ledger.lock().unwrap().refused.push((now(), what));
            }
        }
        live = still;
        if n % 4 == 3 && !live.is_empty() {
            let (_, token) = live.remove(0);
            let body = json!({"license_key": key, "session_token": token});
            let (s, b) = call(
                &http,
                &nginx,
                &api_key,
                "/api/license/session/end",
                body,
                hashed,
            )
            .await;
            if s == 200 {
                ledger.lock().unwrap().ended.insert(token);
            } else if is_transient(s) {
                // The end may have happened: the client gives the session up (as a client
                // exiting would) instead of heartbeating it into a refusal.
                transient(s, &b);
                ledger.lock().unwrap().unacked_ends.insert(token);
            } else {
                let what = format!("end {key} {token}: {s} {}", code(&b));
                ledger.lock().unwrap().refused.push((now(), what));
            }
        }
        let wanted: Vec<&String> = devices
            .iter()
            .filter(|hw| !live.iter().any(|(h, _)| h == *hw))
            .collect();
        let starts = futures::future::join_all(wanted.iter().map(|hw| {
            let body = json!({"license_key": key, "machine_id": "M", "hardware_hash": hw, "version": "1.0.0"});
            call(&http, &nginx, &api_key, "/api/license/session/start", body, hashed)
        }))
        .await;
        for (hw, (s, b)) in wanted.into_iter().zip(starts) {
            if s == 200 {
                let token = b["session_token"].as_str().unwrap().to_owned();
                ledger
                    .lock()
                    .unwrap()
                    .starts
                    .push((key.clone(), token.clone(), now()));
                live.push((hw.clone(), token));
            } else if code(&b) == "SESSION_LIMIT_REACHED" {
                ledger.lock().unwrap().limit_refusals += 1;
            } else if is_transient(s) {
                transient(s, &b);
            } else {
                let what = format!("start {key} {hw}: {s} {}", code(&b));
                ledger.lock().unwrap().refused.push((now(), what));
            }
        }
        if n % 10 == 9 {
            let hw = format!("{key}-hw-new-{n}");
            let (s, b) = activate(&hw).await;
            if s == 200 {
                ledger.lock().unwrap().activations.push((key.clone(), hw));
            } else if is_transient(s) {
                transient(s, &b);
            } else {
                let what = format!("activate {key} {hw}: {s} {}", code(&b));
                ledger.lock().unwrap().refused.push((now(), what));
            }
        }
        n += 1;
        {
            let took = round.elapsed();
            let mut l = ledger.lock().unwrap();
            let r = l.rounds.entry(now()).or_default();
            r.0 += 1;
            r.1 = r.1.max(took);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Live sessions above a license's limit, as the checker saw them in Redis: (phase,
/// license, live sessions).
type Violations = Vec<(&'static str, String, usize)>;

/// Counts each license's live sessions in Redis against its limit, over and over, until
/// `stop`; returns what exceeded it and how many full rounds it made.
async fn check_limits(
    direct: tessera::store::redis::RedisStore,
    licenses: Vec<String>,
    limit: usize,
    phase: Phase,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (Violations, u64) {
    use tessera_actors::{LicenseKey, Store};
    let keys: Vec<LicenseKey> = licenses
        .iter()
        .map(|k| LicenseKey::parse(k).unwrap())
        .collect();
    let mut violations = Vec::new();
    let mut rounds = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let mut complete = true;
        for key in &keys {
            match direct.load(key).await {
                Ok(Some(snap)) if snap.sessions.len() > limit => {
                    let now = *phase.lock().unwrap();
                    violations.push((now, key.to_string(), snap.sessions.len()));
                }
                Ok(Some(_)) => {}
                // A primary's failover: its slots cannot be read for a while.
                Ok(None) | Err(_) => complete = false,
            }
        }
        rounds += u64::from(complete);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (violations, rounds)
}

/// What Redis holds of what the clients were told: (acknowledged activations missing or
/// inactive, acknowledged sessions the clients did not end that are gone). The clients may
/// still be running: only what was acknowledged before a license's read began counts, and
/// only against the ends known after it (an end acknowledged later may have happened
/// before the read). An end that got no answer may have happened: it does not count.
async fn missing(
    direct: &tessera::store::redis::RedisStore,
    ledger: &std::sync::Mutex<Ledger>,
) -> (Vec<String>, Vec<String>) {
    use tessera_actors::{LicenseKey, Store, TokenHash};
    let mut keys: Vec<String> = {
        let l = ledger.lock().unwrap();
        l.activations.iter().map(|(k, _)| k.clone()).collect()
    };
    keys.sort();
    keys.dedup();
    let mut read = Vec::new();
    for key in keys {
        let marks = {
            let l = ledger.lock().unwrap();
            (l.activations.len(), l.starts.len())
        };
        let snap = direct
            .load(&LicenseKey::parse(&key).unwrap())
            .await
            .unwrap()
            .unwrap();
        read.push((key, marks, snap));
    }
    // An end made before a read may still be on its way back to its client: by now it was
    // answered or timed out.
    tokio::time::sleep(CLIENT_TIMEOUT + Duration::from_millis(500)).await;
    let ledger = ledger.lock().unwrap().clone();
    let (mut devices, mut sessions) = (Vec::new(), Vec::new());
    for (key, (activations, starts), snap) in read {
        let key = &key;
        for (_, hw) in ledger.activations[..activations]
            .iter()
            .filter(|(k, _)| k == key)
        {
            if !snap
                .activations
                .iter()
                .any(|a| a.is_active && &a.hardware_hash == hw)
            {
                devices.push(format!("{key} {hw}"));
            }
        }
        for (_, token, _) in ledger.starts[..starts].iter().filter(|(k, _, _)| k == key) {
            let hash = TokenHash::of(token);
            if !ledger.ended.contains(token)
                && !ledger.unacked_ends.contains(token)
                && !snap.sessions.iter().any(|s| s.token_hash == hash)
            {
                // How Redis says it ended, if it logged the end.
                let ended = direct
                    .ended_sessions(&LicenseKey::parse(key).unwrap())
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .find(|e| e.token_hash == hash)
                    .map(|e| format!(" (ended {:?} at {})", e.reason, e.ended_at))
                    .unwrap_or_default();
                sessions.push(format!("{key} {token}{ended}"));
            }
        }
    }
    (devices, sessions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_full_setup_under_load_survives_a_dead_server_a_suspension_a_partition_and_a_dead_primary()
 {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    const LIMIT: u32 = 2;

    // Redis Cluster: three primaries, a replica each, every node behind a forwarder.
    let mut wall = Wall::bind(6).await;
    let announced = wall.ports.clone();
    let mut cluster =
        redis_support::RedisCluster::start_announcing(1, &announced, |own| wall.open(own)).unwrap();
    let direct = tessera::store::redis::RedisStore::connect(&cluster.url, Duration::from_secs(5))
        .await
        .unwrap();
    let nodes = Arc::new(three_servers(&cluster.url).await);
    let nginx = Arc::new(Nginx::start(&nodes.iter().collect::<Vec<_>>()));
    let api_key = nodes[0].api_key.clone();

    let mut licenses = Vec::new();
    for i in 0..24 {
        licenses.push(issue(&direct, &format!("LOAD-{i:04}-AAAA-BBBB"), 1000, LIMIT).await);
    }
    let suspended = issue(&direct, "SUSP-0000-AAAA-BBBB", 4, 4).await;
    let spare = issue(&direct, "PART-0000-AAAA-BBBB", 4, 4).await;

    // The load: one client per license, half of them with the locality header; and the
    // checker counting live sessions in Redis against the limit throughout.
    let phase: Phase = Arc::new(Mutex::new("steady"));
    let set_phase = |p: &'static str| *phase.lock().unwrap() = p;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for (i, key) in licenses.iter().enumerate() {
        clients.push(tokio::spawn(client(
            key.clone(),
            i % 2 == 0,
            nginx.clone(),
            api_key.clone(),
            ledger.clone(),
            phase.clone(),
            stop.clone(),
        )));
    }
    let checker = tokio::spawn(check_limits(
        direct.clone(),
        licenses.clone(),
        LIMIT as usize,
        phase.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let starts_before = ledger.lock().unwrap().starts.len();
    assert!(
        starts_before > 24,
        "the load did not start: {starts_before}"
    );

    // 1. kill -9 the server that loaded the most licenses: its clients go on through the
    // others, nothing acknowledged is lost, and, restarted, it rejoins.
    let mut most = (0, -1.0);
    for (i, n) in nodes.iter().enumerate() {
        let loads = counter(n, "tessera_license_loads_total").await;
        if loads > most.1 {
            most = (i, loads);
        }
    }
    let victim = &nodes[most.0];
    set_phase("server killed");
    victim.kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    {
        let (devices, sessions) = missing(&direct, &ledger).await;
        let snapshot = ledger.lock().unwrap().clone();
        let refused = snapshot.refused;
        assert!(
            devices.is_empty(),
            "acknowledged activations lost: {devices:?}"
        );
        let started: Vec<_> = snapshot
            .starts
            .iter()
            .filter(|(k, t, _)| sessions.iter().any(|s| s.starts_with(&format!("{k} {t}"))))
            .map(|(_, t, p)| (t.clone(), *p, snapshot.unacked_ends.contains(t)))
            .collect();
        assert!(
            sessions.is_empty(),
            "acknowledged sessions lost: {sessions:?}; (token, phase started, end unacknowledged): {started:?}; refused: {refused:?}"
        );
        assert!(refused.is_empty(), "refused after the kill: {refused:?}");
    }
    set_phase("server restarted");
    victim.restart().await.unwrap();
    let traffic = |n: &Tessera| {
        let n = n.url("/metrics");
        async move {
            let text = reqwest::get(n).await.unwrap().text().await.unwrap();
            [
                "tessera_license_cache_hits_total ",
                "tessera_license_loads_total ",
            ]
            .iter()
            .filter_map(|m| {
                text.lines()
                    .find_map(|l| l.strip_prefix(m)?.trim().parse::<f64>().ok())
            })
            .sum::<f64>()
        }
    };
    let since = traffic(victim).await;
    assert!(
        redis_support::eventually(Duration::from_secs(20), || async {
            traffic(victim).await > since
        })
        .await,
        "the restarted server got no traffic back:\n{}",
        nginx.log()
    );

    // 2. A license suspended through A while its sessions heartbeat through B and C: both
    // end with `suspended` within a second (their heartbeat is refused, 410 as for any
    // ended session or 403 if it came between the status change and the end, and the
    // session's end on that server reports why).
    set_phase("suspension");
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let mut watchers = Vec::new();
    for (node, hw) in [(b, "hw-s1"), (c, "hw-s2")] {
        assert_eq!(redis_support::activate(node, &suspended, hw).await.0, 200);
        let (s, body) = redis_support::start(node, &suspended, hw).await;
        assert_eq!(s, 200, "{body}");
        let token = body["session_token"].as_str().unwrap().to_owned();
        let (nodes, key) = (nodes.clone(), suspended.clone());
        let at = if hw == "hw-s1" { 1 } else { 2 };
        watchers.push(tokio::spawn(async move {
            let mut ok = 0u32;
            loop {
                let (s, body) = redis_support::heartbeat(&nodes[at], &key, &token).await;
                if s == 200 {
                    ok += 1;
                } else {
                    return (Instant::now(), ok, s, code(&body).to_owned(), at, token);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis_support::suspend(a, &direct, &suspended).await;
    let returned = Instant::now();
    for w in watchers {
        let (at, ok, s, code, node, token) = tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("a session of the suspended license kept heartbeating")
            .unwrap();
        let after = at.saturating_duration_since(returned);
        println!("suspended through A: a session elsewhere refused {after:?} later ({s} {code})");
        assert!(ok > 0, "the session never heartbeat before the suspension");
        assert!(
            matches!(code.as_str(), "SESSION_EXPIRED" | "LICENSE_SUSPENDED"),
            "{s} {code}"
        );
        assert!(
            after < Duration::from_secs(1),
            "the suspension took {after:?}"
        );
        let (s, body) = redis_support::end(&nodes[node], &suspended, &token).await;
        assert_eq!(
            (s, body["end_reason"].as_str()),
            (200, Some("suspended")),
            "{body}"
        );
    }
    assert!(
        redis_support::eventually(Duration::from_secs(1), || async {
            use tessera_actors::{LicenseKey, Store};
            let snap = direct.load(&LicenseKey::parse(&suspended).unwrap()).await;
            snap.is_ok_and(|s| s.is_some_and(|s| s.sessions.is_empty()))
        })
        .await,
        "the suspended license's sessions are still live in Redis"
    );

    // 3. C cut off from Redis: its /ready fails and its writes answer 503; A and B carry on;
    // back, C is ready and writes again.
    set_phase("partition");
    wall.block(c.pid().unwrap());
    assert!(
        redis_support::eventually(Duration::from_secs(10), || async {
            c.get("/ready").await.map(|(s, _)| s).unwrap_or(0) == 503
        })
        .await,
        "C's /ready kept answering 200 without Redis"
    );
    let (s, body) = redis_support::activate(c, &spare, "hw-p1").await;
    assert_eq!((s, code(&body)), (503, "STORE_UNAVAILABLE"), "{body}");
    let starts_cut = ledger.lock().unwrap().starts.len();
    assert_eq!(redis_support::activate(a, &spare, "hw-p1").await.0, 200);
    assert_eq!(redis_support::start(b, &spare, "hw-p1").await.0, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = ledger.lock().unwrap().starts.len() - starts_cut;
    println!("{during} sessions started through nginx while C was cut off");
    assert!(during > 0, "nothing started while C was cut off");
    wall.unblock();
    set_phase("partition healed");
    assert!(
        redis_support::eventually(Duration::from_secs(20), || async {
            c.get("/ready").await.map(|(s, _)| s).unwrap_or(0) == 200
        })
        .await,
        "C did not become ready again:\n{}",
        c.log()
    );
    assert!(
        redis_support::eventually(Duration::from_secs(10), || async {
            redis_support::activate(c, &spare, "hw-p2").await.0 == 200
        })
        .await,
        "C does not write again:\n{}",
        c.log()
    );

    // 4. A Redis primary killed: its replica takes over. What was acknowledged and is lost
    // is measured, not asserted (replication is asynchronous).
    set_phase("steady again");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let refused = ledger.lock().unwrap().refused.clone();
    assert!(
        refused.is_empty(),
        "refused before the primary's death: {refused:?}"
    );
    let victim = (0..cluster.nodes().len())
        .find(|i| {
            cluster.nodes()[*i]
                .cli(&["ROLE"])
                .is_ok_and(|r| r.starts_with("master"))
        })
        .expect("a primary");
    let dead = cluster.nodes()[victim].port;
    let killed = Instant::now();
    set_phase("primary failover");
    cluster.nodes_mut()[victim].kill9();
    let survivors: Vec<&redis_support::Redis> = cluster
        .nodes()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, n)| n)
        .collect();
    assert!(
        redis_support::eventually(Duration::from_secs(90), || async {
            survivors.iter().all(|n| {
                n.cli(&["CLUSTER", "INFO"])
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
                    && n.cli(&["CLUSTER", "NODES"]).is_ok_and(|nodes| {
                        nodes.lines().any(|l| {
                            l.contains(&format!("@{}", u32::from(dead) + 10000))
                                && l.contains(",fail")
                                && !l.contains("fail?")
                        })
                    })
            })
        })
        .await,
        "the replica never took over"
    );
    let promoted = killed.elapsed();
    set_phase("after failover");
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let (violations, rounds) = checker.await.unwrap();

    let (devices, sessions) = missing(&direct, &ledger).await;
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    println!(
        "{} activations and {} session starts acknowledged, {} starts refused at the limit; \
         the checker made {rounds} full rounds over {} licenses",
        ledger.activations.len(),
        ledger.starts.len(),
        ledger.limit_refusals,
        licenses.len()
    );
    let mut per_phase = std::collections::BTreeMap::<&str, usize>::new();
    for (_, _, p) in &ledger.starts {
        *per_phase.entry(*p).or_default() += 1;
    }
    println!("acknowledged session starts by phase: {per_phase:?}");
    println!("retried answers by phase: {:#?}", ledger.transient);
    println!(
        "client rounds by phase (count, longest): {:#?}",
        ledger.rounds
    );
    println!(
        "primary killed: replica promoted after {promoted:?}; lost: {} acknowledged \
         activations {:?}, {} acknowledged sessions {:?}; refused after the failover: {:?}",
        devices.len(),
        &devices[..devices.len().min(5)],
        sessions.len(),
        &sessions[..sessions.len().min(5)],
        ledger.refused
    );
    assert!(
        violations.is_empty(),
        "a session limit was exceeded: {violations:?}"
    );
    assert!(rounds >= 20, "the checker made only {rounds} rounds");
    assert!(ledger.limit_refusals > 0, "the load never reached a limit");
    assert!(
        ledger
            .refused
            .iter()
            .all(|(p, _)| *p == "primary failover" || *p == "after failover"),
        "{:?}",
        ledger.refused
    );
}
