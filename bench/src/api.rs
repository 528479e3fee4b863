//! The Tessera requests the generator sends (seed 000's License and Session API, and the
//! admin license issue), and the setup steps built from them.

use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use rand::Rng;
use serde::Deserialize;
use serde_json::json;

use crate::engine::{JobSpec, run_batch};
use crate::http::{CallResult, Target};
use crate::stats::{Op, Report};

/// `POST /api/admin/licenses`.
pub const ISSUE: &str = "/api/admin/licenses";
/// `POST /api/license/activate`.
pub const ACTIVATE: &str = "/api/license/activate";
/// `POST /api/license/session/start`.
pub const START: &str = "/api/license/session/start";
/// `POST /api/license/session/heartbeat`.
pub const HEARTBEAT: &str = "/api/license/session/heartbeat";
/// `POST /api/license/session/end`.
pub const END: &str = "/api/license/session/end";

/// Most licenses one issue request may ask for (the server's limit).
pub const ISSUE_BATCH: u32 = 1000;

/// Limits of issued licenses.
#[derive(Debug, Clone, Copy)]
pub struct LicenseLimits {
    /// Devices at once.
    pub max_devices: u32,
    /// Live sessions at once.
    pub max_sessions: u32,
    /// Lifetime activations (0 = unlimited).
    pub max_activations: u32,
}

/// Body of an issue request.
pub fn issue_body(count: u32, l: LicenseLimits) -> Bytes {
    json!({
        "count": count,
        "max_devices": l.max_devices,
        "max_sessions": l.max_sessions,
        "max_activations": l.max_activations,
    })
    .to_string()
    .into()
}

/// Body of an activation.
pub fn activate_body(key: &str, hw: &str) -> Bytes {
    json!({
        "license_key": key,
        "hardware_hash": hw,
        "machine_name": format!("bench-{hw}"),
        "app_version": "1.0.0",
    })
    .to_string()
    .into()
}

/// Body of a session start.
pub fn start_body(key: &str, hw: &str) -> Bytes {
    json!({
        "license_key": key,
        "machine_id": format!("bench-{hw}"),
        "hardware_hash": hw,
        "version": "1.0.0",
    })
    .to_string()
    .into()
}

/// Body of a heartbeat.
pub fn heartbeat_body(token: &str, key: &str) -> Bytes {
    json!({"session_token": token, "license_key": key})
        .to_string()
        .into()
}

/// Body of a session end (seed 000 sends only the token).
pub fn end_body(token: &str) -> Bytes {
    json!({ "session_token": token }).to_string().into()
}

const KEY_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A well-formed license key that almost surely does not exist.
pub fn random_key(rng: &mut impl Rng) -> String {
    let mut s = String::with_capacity(19);
    for g in 0..4 {
        if g > 0 {
            s.push('-');
        }
        for _ in 0..4 {
            s.push(KEY_ALPHABET[rng.random_range(0..KEY_ALPHABET.len())] as char);
        }
    }
    s
}

/// A random UUID v4 string (the shape of a session token).
pub fn random_token(rng: &mut impl Rng) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        rng.random::<u32>(),
        rng.random::<u16>(),
        rng.random::<u16>() & 0xfff,
        8 + (rng.random::<u8>() & 3),
        rng.random::<u16>() & 0xfff,
        rng.random::<u64>() & 0xffff_ffff_ffff
    )
}

/// Hardware hash of device `i` of a run.
pub fn hw(i: usize) -> String {
    format!("bench-hw-{i:08}")
}

/// The value of `field` in a JSON body, as a string.
pub fn json_str(body: &[u8], field: &str) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get(field)?
        .as_str()
        .map(str::to_owned)
}

#[derive(Deserialize)]
struct Issued {
    licenses: Vec<IssuedLicense>,
}

#[derive(Deserialize)]
struct IssuedLicense {
    license_key: String,
}

/// Issues `total` licenses with `limits`, `conns` requests at a time.
pub async fn issue_licenses(
    target: &Arc<Target>,
    total: usize,
    limits: LicenseLimits,
    conns: usize,
    progress: bool,
) -> anyhow::Result<(Vec<String>, Report)> {
    let mut specs = Vec::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(ISSUE_BATCH as usize);
        specs.push(JobSpec::post(
            Op::Issue,
            ISSUE,
            issue_body(n as u32, limits),
        ));
        left -= n;
    }
    let (results, report) = run_batch(target, conns, specs, progress).await;
    let mut keys = Vec::with_capacity(total);
    for r in results {
        match r {
            CallResult::Http { status: 201, body } => {
                let issued: Issued = serde_json::from_slice(&body).context("decode issue reply")?;
                keys.extend(issued.licenses.into_iter().map(|l| l.license_key));
            }
            other => bail!("issuing licenses failed: {}", other.label()),
        }
    }
    Ok((keys, report))
}

/// Activates device `hws[i]` on license `keys[i]` for every i.
pub async fn activate_all(
    target: &Arc<Target>,
    pairs: &[(String, String)],
    conns: usize,
    progress: bool,
) -> anyhow::Result<Report> {
    let specs = pairs
        .iter()
        .map(|(k, h)| JobSpec::post(Op::Activate, ACTIVATE, activate_body(k, h)))
        .collect();
    let (results, report) = run_batch(target, conns, specs, progress).await;
    if let Some(bad) = results.iter().find(|r| !r.is_success()) {
        bail!("activation failed: {}", bad.label());
    }
    Ok(report)
}

/// A live session the generator holds.
#[derive(Debug, Clone)]
pub struct Session {
    /// License key.
    pub key: String,
    /// Session token.
    pub token: String,
}

/// Starts one session per `(key, hw)` pair; fails on the first refusal.
pub async fn start_all(
    target: &Arc<Target>,
    pairs: &[(String, String)],
    conns: usize,
    progress: bool,
) -> anyhow::Result<(Vec<Session>, Report)> {
    let specs = pairs
        .iter()
        .map(|(k, h)| JobSpec::post(Op::Start, START, start_body(k, h)))
        .collect();
    let (results, report) = run_batch(target, conns, specs, progress).await;
    let mut sessions = Vec::with_capacity(pairs.len());
    for ((key, _), r) in pairs.iter().zip(results) {
        match &r {
            CallResult::Http { status: 200, body } => {
                let token = json_str(body, "session_token")
                    .context("session start reply without session_token")?;
                sessions.push(Session {
                    key: key.clone(),
                    token,
                });
            }
            other => bail!("session start failed: {}", other.label()),
        }
    }
    Ok((sessions, report))
}
