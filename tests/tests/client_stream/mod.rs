//! A client stream for store tests: a task issuing licenses (admin API), activating a
//! device, starting a session and heartbeating, over HTTP, recording when each answer came
//! back, so a test can say which acknowledged writes a backup or a migration must keep.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use std::sync::Mutex;
use tessera_integration_tests::TestServer;

/// Where a stream sends its requests.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The system API key.
    pub api_key: String,
    /// An admin key with every scope.
    pub admin_key: String,
}

impl Endpoint {
    /// The endpoint of a test server.
    pub fn of(server: &TestServer) -> Self {
        Self {
            base: server.url(""),
            api_key: server.api_key.clone(),
            admin_key: server.admin_key.clone(),
        }
    }
}

/// One license of the stream and when each of its writes was acknowledged.
#[derive(Clone, Debug)]
pub struct Acked {
    /// The license key.
    pub key: String,
    /// Its device.
    pub hw: String,
    /// When the issue was answered.
    pub issued: Instant,
    /// When the activation was answered (200).
    pub activated: Option<Instant>,
    /// The session token and when its start was answered (200).
    pub session: Option<(String, Instant)>,
}

/// A running client stream.
pub struct ClientStream {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    task: tokio::task::JoinHandle<()>,
}

async fn post(
    client: &reqwest::Client,
    url: String,
    auth: (&str, &str),
    body: Value,
) -> (u16, Value) {
    let req = client.post(url).json(&body);
    let req = if auth.0 == "bearer" {
        req.bearer_auth(auth.1)
    } else {
        req.header("X-API-Key", auth.1)
    };
    match req.send().await {
        Ok(r) => {
            let s = r.status().as_u16();
            (s, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// Activates `hw` on `key`: the status.
pub async fn activate(client: &reqwest::Client, at: &Endpoint, key: &str, hw: &str) -> u16 {
    post(
        client,
        format!("{}/api/license/activate", at.base),
        ("key", &at.api_key),
        json!({"license_key": key, "hardware_hash": hw, "machine_name": "BOX", "app_version": "1.0.0"}),
    )
    .await
    .0
}

/// Starts a session on `hw`: its token on 200.
pub async fn start(client: &reqwest::Client, at: &Endpoint, key: &str, hw: &str) -> Option<String> {
    let (s, body) = post(
        client,
        format!("{}/api/license/session/start", at.base),
        ("key", &at.api_key),
        json!({"license_key": key, "machine_id": "BOX", "hardware_hash": hw, "version": "1.0.0"}),
    )
    .await;
    (s == 200).then(|| {
        body["session_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    })
}

/// Heartbeats a session: the status.
pub async fn heartbeat(client: &reqwest::Client, at: &Endpoint, key: &str, token: &str) -> u16 {
    post(
        client,
        format!("{}/api/license/session/heartbeat", at.base),
        ("key", &at.api_key),
        json!({"session_token": token, "license_key": key}),
    )
    .await
    .0
}

/// Issues a license through the admin API: its key on 201.
pub async fn issue(client: &reqwest::Client, at: &Endpoint, owner: &str) -> Option<String> {
    let (s, body) = post(
        client,
        format!("{}/api/admin/licenses", at.base),
        ("bearer", &at.admin_key),
        json!({"owner": owner}),
    )
    .await;
    (s == 201).then(|| {
        body["licenses"][0]["license_key"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    })
}

/// The status of `GET /api/admin/licenses/{key}`.
pub async fn show(client: &reqwest::Client, at: &Endpoint, key: &str) -> u16 {
    client
        .get(format!("{}/api/admin/licenses/{key}", at.base))
        .bearer_auth(&at.admin_key)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

impl ClientStream {
    /// Starts a stream against `at`; `tag` keeps owners and devices of two streams apart.
    pub fn start(at: Endpoint, tag: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (stopping, recording, tag) = (Arc::clone(&stop), Arc::clone(&acked), tag.to_owned());
        let task = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0u64;
            while !stopping.load(Ordering::Relaxed) {
                n += 1;
                let Some(key) = issue(&client, &at, &format!("{tag} owner {n}")).await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let hw = format!("{tag}-hw-{n}");
                let idx = {
                    let mut a = recording.lock().unwrap();
                    a.push(Acked {
                        key: key.clone(),
                        hw: hw.clone(),
                        issued: Instant::now(),
                        activated: None,
                        session: None,
                    });
                    a.len() - 1
                };
                if activate(&client, &at, &key, &hw).await != 200 {
                    continue;
                }
                recording.lock().unwrap()[idx].activated = Some(Instant::now());
                if let Some(token) = start(&client, &at, &key, &hw).await {
                    recording.lock().unwrap()[idx].session = Some((token, Instant::now()));
                }
                // Keep the last few sessions beating, as live clients would.
                let live: Vec<(String, String)> = recording
                    .lock()
                    .unwrap()
                    .iter()
                    .rev()
                    .take(4)
                    .filter_map(|a| a.session.as_ref().map(|(t, _)| (a.key.clone(), t.clone())))
                    .collect();
                for (key, token) in live {
                    heartbeat(&client, &at, &key, &token).await;
                }
            }
        });
        Self { stop, acked, task }
    }

    /// Licenses issued so far.
    pub fn len(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until at least `n` licenses are fully set up (session started), at most 60 s.
    pub async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self
            .acked
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.session.is_some())
            .count()
            < n
        {
            assert!(
                Instant::now() < deadline,
                "the client stream made no progress"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the stream and returns everything it recorded.
    pub async fn stop(self) -> Vec<Acked> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.acked.lock().unwrap().clone()
    }
}
