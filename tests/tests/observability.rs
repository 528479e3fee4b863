//! The monitoring files against the real server (issue 20, item 5).
//!
//! - Every metric a query of the Grafana dashboard (`ops/grafana/tessera.json`) or an alert
//!   rule (`ops/prometheus/alerts.yml`) names is one the server exports, and
//!   `docs/metrics.md` lists every family a scrape shows, with its type, and nothing the code
//!   does not record. The scrape comes from a server on the embedded store driven through a
//!   license's life (a webhook receiver, a plugin that traps, a rate limit and a license
//!   limit hit) and from a second one on a Redis the test kills (store and flush errors,
//!   `/ready` 503). Both write to the process's one recorder, so one scrape shows them all.
//! - The rules pass `promtool check rules` and their unit tests (`promtool test rules
//!   ops/prometheus/alerts.test.yml`); `bash tests/run.sh` installs promtool (Debian's
//!   `prometheus` package).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_config::{Config, FailMode, PluginConfig, StoreBackend};
use tessera_integration_tests::{RedisServer, TestServer};

/// Names the monitoring files may use although the test server does not export them. Each
/// is listed in docs/metrics.md as not exported yet, with why. Nothing else belongs here.
const NOT_YET_EXPORTED: &[&str] = &[
    // Exported once TLS is configured (`server.tls_cert_file`); the test server speaks plain
    // HTTP. docs/metrics.md, "TLS (exported once TLS is configured)"; the certificate-expiry
    // alerts use it.
    "tessera_tls_cert_expiry_timestamp_seconds",
];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_name_only_exported_metrics_and_the_doc_lists_every_family() {
    let receiver = Receiver::start().await;
    let (server, outage) = tokio::join!(drive_embedded(&receiver), drive_store_outage());
    let scrape = Scrape::of(&server).await;

    let mut uses: Vec<(String, String)> = Vec::new();
    let dashboard: Value = serde_json::from_str(&read("ops/grafana/tessera.json"))
        .expect("ops/grafana/tessera.json is JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(
        queries.len() > 20,
        "the dashboard should have its panels' queries: {queries:?}"
    );
    let rules = read("ops/prometheus/alerts.yml");
    let exprs = rule_exprs(&rules);
    let rule_count = rules
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("- alert:") || l.starts_with("- record:")
        })
        .count();
    assert_eq!(
        exprs.len(),
        rule_count,
        "every rule's expr must be found (a single-line `expr: ...` or a block `expr: |`): {exprs:?}"
    );
    for (place, expr) in queries
        .iter()
        .map(|(p, e)| (format!("dashboard {p}"), e))
        .chain(exprs.iter().map(|(p, e)| (format!("alert {p}"), e)))
    {
        let names = promql_metric_names(expr);
        assert!(!names.is_empty(), "{place} names no metric: {expr}");
        uses.extend(names.into_iter().map(|n| (place.clone(), n)));
    }

    let mut missing = Vec::new();
    for (place, name) in &uses {
        if !scrape.samples.contains(name) && !NOT_YET_EXPORTED.contains(&name.as_str()) {
            missing.push(format!("{place}: `{name}` {}", scrape.explain(name)));
        }
    }
    assert!(
        missing.is_empty(),
        "metrics named by the monitoring files that the server does not export:\n  {}\n\
         the scrape's families: {:?}",
        missing.join("\n  "),
        scrape.types.keys().collect::<Vec<_>>()
    );

    let doc = read("docs/metrics.md");
    let documented = documented(&doc);
    for name in NOT_YET_EXPORTED {
        assert!(
            uses.iter().any(|(_, n)| n == name),
            "`{name}` is allowed unexported but nothing uses it: drop it from NOT_YET_EXPORTED"
        );
        assert!(
            !scrape.types.contains_key(*name),
            "`{name}` is exported now: drop it from NOT_YET_EXPORTED"
        );
        assert!(
            documented.contains_key(*name),
            "`{name}` must be in docs/metrics.md, as exported once TLS is configured"
        );
    }

    let mut undocumented = Vec::new();
    for (family, kind) in &scrape.types {
        match documented.get(family) {
            None => undocumented.push(format!("`{family}` ({kind}) is not listed")),
            Some(doc_kind) if doc_kind != kind => undocumented.push(format!(
                "`{family}` is listed as a {doc_kind}, the scrape says {kind}"
            )),
            Some(_) => {}
        }
    }
    assert!(
        undocumented.is_empty(),
        "docs/metrics.md is behind the server:\n  {}",
        undocumented.join("\n  ")
    );

    let source = source_text(&["runtime/src", "actors/src", "plugins/host/src"]);
    let unknown: Vec<&String> = documented
        .keys()
        .filter(|name| !source.contains(&format!("\"{name}\"")))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/metrics.md lists metrics no code records (renamed or removed?): {unknown:?}"
    );
    drop(outage);
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let promtool = find_in_path("promtool").unwrap_or_else(|| {
        panic!(
            "promtool is not installed: run `bash tests/run.sh` (it installs it) or \
             `apt-get install -y --no-install-recommends prometheus`"
        )
    });
    for args in [
        ["check", "rules", "ops/prometheus/alerts.yml"],
        ["test", "rules", "ops/prometheus/alerts.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(repo(""))
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {} failed ({}):\n{}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn promql_names_leave_out_functions_labels_grouping_and_variables() {
    let expr = r#"histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{route=~"/x|{y}", job=~"$job"}[$__rate_interval])))
        / on (job) group_left(instance) sum without (op) (b_total offset 5m) > bool 0.5
        or vector(0) unless max(c) - time() < 14 * 86400 # d_total in a comment"#;
    assert_eq!(promql_metric_names(expr), ["a_bucket", "b_total", "c"]);
}

// ---------------------------------------------------------------------------------------------
// Making the server export its metrics

/// The timing that makes a heartbeat reach the write-behind within a second: a 2 s lifetime,
/// written once half of it is left; flushed every 100 ms.
fn short_sessions(c: &mut Config) {
    c.sessions.heartbeat_interval = Duration::from_secs(1);
    c.sessions.heartbeat_timeout = Duration::from_secs(1);
    c.sessions.grace = Duration::from_secs(1);
    c.store.flush_interval = Duration::from_millis(100);
}

/// A server on the embedded store through a license's life, with a plugin that traps in
/// `on_heartbeat` (failing open) and a webhook endpoint that receives the session events.
async fn drive_embedded(receiver: &Receiver) -> TestServer {
    let server = TestServer::start_with(|c| {
        short_sessions(c);
        c.rate_limit.login_per_minute = 1;
        c.webhooks.allow_private_targets = true;
        let mut p: PluginConfig = toml::from_str(&format!(
            "name = \"trapper\"\npath = {:?}",
            repo("plugins/host/tests/fixtures/trap.wat")
                .display()
                .to_string()
        ))
        .unwrap();
        p.fail_mode = FailMode::Open;
        c.plugins.push(p);
    })
    .await
    .unwrap();

    let resp = server
        .admin_post("/api/admin/webhooks")
        .json(&json!({"url": receiver.url(), "event_types": ["session."], "format": "json"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());

    let key = issue(&server, 1).await;
    assert_eq!(activate(&server, &key, "hw-1").await, 200);
    let refused = activate(&server, &key, "hw-2").await;
    assert!(
        (400..500).contains(&refused),
        "a second device on a one-device license is refused: {refused}"
    );
    let token = start_session(&server, &key, "hw-1").await;
    // Heartbeats until one reaches the write-behind and a flush writes it (about a second).
    let (s, k, t) = (&server, key.as_str(), token.as_str());
    poll(
        s,
        &["tessera_write_behind_flush_size_count"],
        move || async move {
            assert_eq!(heartbeat(s, k, t).await, 200, "the trap fails open");
        },
    )
    .await;

    let resp = server
        .client()
        .post(server.url("/api/license/verify"))
        .header("X-API-Key", "AF-2026-WRONG")
        .json(&json!({"license_key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let login = || {
        server
            .client()
            .post(server.url("/api/auth/login"))
            .json(&json!({"username": "nobody", "password": "wrong password!"}))
            .send()
    };
    login().await.unwrap();
    assert_eq!(login().await.unwrap().status(), 429, "one login a minute");

    let resp = server
        .post("/api/license/session/end")
        .json(&json!({"session_token": token, "license_key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    poll(
        &server,
        &[
            "tessera_webhook_deliveries_total",
            "tessera_webhook_delivery_seconds_bucket",
        ],
        || async {},
    )
    .await;
    assert!(receiver.count() > 0);
    server
}

/// A server on a Redis that dies under it: store calls, heartbeat flushes and `/ready` fail.
async fn drive_store_outage() -> TestServer {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap()
        .unwrap();
    let url = redis.url.clone();
    let server = TestServer::start_with(move |c| {
        short_sessions(c);
        c.store.backend = StoreBackend::Redis;
        c.store.redis_url = url;
        c.store.op_timeout = Duration::from_millis(500);
        c.rate_limit.api_per_minute = 10_000;
    })
    .await
    .unwrap();
    let key = issue(&server, 1000).await;
    assert_eq!(activate(&server, &key, "hw-1").await, 200);
    let token = start_session(&server, &key, "hw-1").await;
    tokio::task::spawn_blocking(move || drop(redis))
        .await
        .unwrap();

    let device = AtomicUsize::new(2);
    let (s, k, t, d) = (&server, key.as_str(), token.as_str(), &device);
    poll(
        s,
        &[
            "tessera_store_errors_total",
            "tessera_write_behind_flush_errors_total",
        ],
        move || async move {
            // Live sessions keep heartbeating from memory; a heartbeat past half the
            // lifetime goes to the write-behind, whose flush fails.
            assert_eq!(heartbeat(s, k, t).await, 200);
            let hw = format!("hw-{}", d.fetch_add(1, Ordering::Relaxed));
            assert_eq!(activate(s, k, &hw).await, 503, "the store is down");
        },
    )
    .await;
    // The store's health probe notices within a few seconds; /ready then answers 503.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = server
            .client()
            .get(server.url("/ready"))
            .send()
            .await
            .unwrap();
        if ready.status() == 503 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/ready still answers {}",
            ready.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server
}

/// Runs `step` until the scrape shows every sample name in `want`, for at most 20 s.
async fn poll<F, Fut>(server: &TestServer, want: &[&str], mut step: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        step().await;
        let scrape = Scrape::of(server).await;
        let absent: Vec<&&str> = want
            .iter()
            .filter(|w| !scrape.samples.contains(**w))
            .collect();
        if absent.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never exported: {absent:?}; the scrape has {:?}",
            scrape.types.keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn issue(server: &TestServer, max_devices: u32) -> String {
    let resp = server
        .admin_post("/api/admin/licenses")
        .json(&json!({"max_devices": max_devices, "max_sessions": 1}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    body["licenses"][0]["license_key"]
        .as_str()
        .unwrap_or_else(|| panic!("no license issued: {body}"))
        .to_owned()
}

async fn activate(server: &TestServer, key: &str, hw: &str) -> u16 {
    server
        .post("/api/license/activate")
        .json(&json!({"license_key": key, "hardware_hash": hw}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn start_session(server: &TestServer, key: &str, hw: &str) -> String {
    let resp = server
        .post("/api/license/session/start")
        .json(&json!({"license_key": key, "hardware_hash": hw}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["session_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn heartbeat(server: &TestServer, key: &str, token: &str) -> u16 {
    server
        .post("/api/license/session/heartbeat")
        .json(&json!({"session_token": token, "license_key": key}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A webhook receiver on 127.0.0.1 that answers 200 and counts.
struct Receiver {
    addr: std::net::SocketAddr,
    got: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let got = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&got);
        let app = axum::Router::new().fallback(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            async { axum::http::StatusCode::OK }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, got, task }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn count(&self) -> usize {
        self.got.load(Ordering::Relaxed)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the scrape, the dashboard, the rules and the doc

/// One `/metrics` text: the families with their `# TYPE`, and every sample name
/// (`x_bucket`, `x_sum`, `x_count` for a histogram `x`).
struct Scrape {
    types: BTreeMap<String, String>,
    samples: BTreeSet<String>,
}

impl Scrape {
    async fn of(server: &TestServer) -> Scrape {
        let resp = server
            .client()
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        Scrape::parse(&resp.text().await.unwrap())
    }

    fn parse(text: &str) -> Scrape {
        let mut types = BTreeMap::new();
        let mut samples = BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    types.insert(name.to_owned(), kind.to_owned());
                }
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                samples.insert(name.to_owned());
            }
        }
        Scrape { types, samples }
    }

    /// Why `name` is not a sample name of this scrape.
    fn explain(&self, name: &str) -> String {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(family) = name.strip_suffix(suffix)
                && let Some(kind) = self.types.get(family)
            {
                let has: Vec<&String> = self
                    .samples
                    .iter()
                    .filter(|s| s.strip_prefix(family).is_some_and(|r| r.starts_with('_')))
                    .collect();
                return format!("is not exported: `{family}` is a {kind}, exported as {has:?}");
            }
        }
        match self.types.get(name).map(String::as_str) {
            Some(kind @ ("histogram" | "summary")) => {
                format!("is a {kind}: name its `_bucket`, `_sum` or `_count` series")
            }
            _ => "is not exported".to_owned(),
        }
    }
}

/// Every PromQL query of the dashboard, with the title of the panel (or the name of the
/// template variable) it belongs to.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                let title = map.get("title").and_then(Value::as_str).unwrap_or(title);
                if let Some(expr) = map.get("expr").and_then(Value::as_str) {
                    out.push((format!("panel {title:?}"), expr.to_owned()));
                }
                for (k, child) in map {
                    if k != "templating" {
                        walk(child, title, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, title, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, "", &mut out);
    let variables = dashboard["templating"]["list"].as_array().cloned();
    for var in variables.unwrap_or_default() {
        if var["type"] != "query" {
            continue;
        }
        let name = var["name"].as_str().unwrap_or_default();
        let query = var["query"]
            .as_str()
            .or_else(|| var["query"]["query"].as_str())
            .unwrap_or_default();
        // `label_values(SELECTOR, LABEL)`: only the selector names a metric (a label name
        // has no comma, so the last comma ends the selector).
        let selector = query
            .trim()
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
            .map(|(selector, _)| selector)
            .unwrap_or_else(|| {
                panic!("variable {name}: only `label_values(metric, label)` is checked: {query}")
            });
        out.push((format!("variable {name:?}"), selector.to_owned()));
    }
    out
}

/// The `expr` of each rule of a Prometheus rules file, with its alert (or record) name: the
/// two forms this repository writes, `expr: ...` on one line and a block `expr: |`.
/// `promtool check rules` checks the YAML as a whole.
fn rule_exprs(yaml: &str) -> Vec<(String, String)> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut rule = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_start();
        if let Some(name) = t
            .strip_prefix("- alert:")
            .or_else(|| t.strip_prefix("- record:"))
        {
            rule = name.trim().to_owned();
        }
        i += 1;
        let Some(value) = t.strip_prefix("expr:").map(str::trim) else {
            continue;
        };
        if value.starts_with('|') || value.starts_with('>') {
            let mut body = String::new();
            while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > indent(line))
            {
                body.push_str(lines[i].trim());
                body.push('\n');
                i += 1;
            }
            out.push((rule.clone(), body));
        } else {
            let value = value.trim_matches(|c: char| c == '"' || c == '\'');
            out.push((rule.clone(), value.to_owned()));
        }
    }
    out
}

/// The metric names a PromQL expression selects: identifiers that are not functions,
/// aggregations, keywords, label names (in `{...}` or a `by (...)` list), range durations
/// (`[...]`), strings, numbers, comments or Grafana variables (`$x`).
fn promql_metric_names(expr: &str) -> Vec<String> {
    const NOT_METRICS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        "atan2",
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "limitk",
        "limit_ratio",
    ];
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let b = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut names = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_string(b, i),
            b'{' => i = skip_group(b, i, b'{', b'}'),
            b'[' => i = skip_group(b, i, b'[', b']'),
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'$' => {
                i += 1;
                while i < b.len() && (ident(b[i]) || b[i] == b'{' || b[i] == b'}') {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == b'.' => {
                while i < b.len() && (ident(b[i]) || b[i] == b'.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && ident(b[i]) {
                    i += 1;
                }
                let word = &expr[start..i];
                let mut next = i;
                while next < b.len() && b[next].is_ascii_whitespace() {
                    next += 1;
                }
                let call = next < b.len() && b[next] == b'(';
                if LABEL_LISTS.contains(&word) {
                    if call {
                        i = skip_group(b, next, b'(', b')');
                    }
                } else if !call && !NOT_METRICS.contains(&word) {
                    names.push(word.to_owned());
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The index after the string starting at `b[i]` (its quote), escapes included.
fn skip_string(b: &[u8], i: usize) -> usize {
    let quote = b[i];
    let mut j = i + 1;
    while j < b.len() && b[j] != quote {
        j += if b[j] == b'\\' && quote != b'`' { 2 } else { 1 };
    }
    j + 1
}

/// The index after the group opened at `b[i]`, nesting and strings included.
fn skip_group(b: &[u8], i: usize, open: u8, close: u8) -> usize {
    let mut depth = 0;
    let mut j = i;
    while j < b.len() {
        match b[j] {
            b'"' | b'\'' | b'`' => {
                j = skip_string(b, j);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    j
}

/// The metrics docs/metrics.md lists: each table row that starts with a metric name, and the
/// type in its second column.
fn documented(doc: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in doc.lines() {
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let Some((name, rest)) = rest.split_once('`') else {
            continue;
        };
        let kind = rest.split('|').nth(1).unwrap_or_default().trim();
        out.insert(name.to_owned(), kind.to_owned());
    }
    out
}

/// Every `.rs` file under `dirs`, concatenated.
fn source_text(dirs: &[&str]) -> String {
    fn collect(dir: &Path, out: &mut String) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    let mut out = String::new();
    for dir in dirs {
        collect(&repo(dir), &mut out);
    }
    out
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/local/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
