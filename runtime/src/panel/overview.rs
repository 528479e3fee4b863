//! The dashboard's numbers: a sample of this server's Prometheus series every
//! [`SAMPLE_EVERY`], the last hour of them kept in memory, so the panel's chart has a history
//! as soon as it opens and shows exactly what `/metrics` shows (the same recorder, read
//! through its own rendering rather than a second set of counters on the request path).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use parking_lot::Mutex;
use serde::Serialize;
use utoipa::ToSchema;

/// How often a sample is taken.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Samples kept: one hour.
pub const KEPT: usize = 360;

/// One sample of the series the dashboard shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Sample {
    /// Unix milliseconds when it was taken.
    pub at_ms: i64,
    /// `tessera_sessions_live`.
    pub live_sessions: f64,
    /// `tessera_licenses_in_memory`.
    pub licenses_in_memory: f64,
    /// `tessera_heartbeats_total` since this server started.
    pub heartbeats_total: f64,
    /// Heartbeats per second since the previous sample (0 for the first).
    pub heartbeats_per_sec: f64,
    /// `tessera_activations_total`.
    pub activations_total: f64,
    /// `tessera_sessions_started_total`.
    pub sessions_started_total: f64,
    /// `tessera_policy_bans_total`.
    pub bans_total: f64,
    /// `tessera_ws_connections`.
    pub websocket_connections: f64,
    /// `tessera_api_errors_total` by `code` (refusals and errors answered), without the
    /// [`OPERATOR_CODES`]: the panel's own sign-in and credential errors are not refusals of
    /// clients.
    pub rejections_by_code: BTreeMap<String, f64>,
}

/// Codes only an operator or an admin credential is answered (a login, an expired panel
/// session, a missing scope). The login page's first call answers `UNAUTHENTICATED` by
/// design, so counting these would show the panel's own use as clients refused; the audit
/// log and the `login.*` events are where they are followed.
pub const OPERATOR_CODES: [&str; 7] = [
    "UNAUTHENTICATED",
    "INSUFFICIENT_SCOPE",
    "FORBIDDEN_ROLE",
    "CSRF_FAILED",
    "INVALID_CREDENTIALS",
    "LOGIN_CHALLENGE_INVALID",
    "ENCRYPTION_REQUIRED",
];

/// The last hour of samples of this server.
#[derive(Clone, Debug)]
pub struct Overview {
    samples: Arc<Mutex<VecDeque<Sample>>>,
    metrics: PrometheusHandle,
}

impl Overview {
    /// Starts sampling on a task of its own (first sample at once); abort the task to stop.
    pub fn start(metrics: PrometheusHandle) -> (Self, tokio::task::JoinHandle<()>) {
        let overview = Self {
            samples: Arc::new(Mutex::new(VecDeque::with_capacity(KEPT))),
            metrics,
        };
        let sampling = overview.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                sampling.sample_now();
            }
        });
        (overview, task)
    }

    /// Takes a sample now and keeps it; returns it.
    pub fn sample_now(&self) -> Sample {
        let text = self.metrics.render();
        let at_ms = chrono::Utc::now().timestamp_millis();
        let mut samples = self.samples.lock();
        let sample = read_sample(&text, at_ms, samples.back());
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back(sample.clone());
        sample
    }

    /// The samples kept, oldest first, and a fresh one (not kept, so polling does not
    /// crowd the history).
    pub fn current(&self) -> (Sample, Vec<Sample>) {
        let text = self.metrics.render();
        let at_ms = chrono::Utc::now().timestamp_millis();
        let samples = self.samples.lock();
        let now = read_sample(&text, at_ms, samples.back());
        (now, samples.iter().cloned().collect())
    }
}

/// Reads the dashboard's series out of a Prometheus text exposition.
pub fn read_sample(text: &str, at_ms: i64, previous: Option<&Sample>) -> Sample {
    let mut s = Sample {
        at_ms,
        ..Sample::default()
    };
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        match name {
            "tessera_sessions_live" => s.live_sessions += value,
            "tessera_licenses_in_memory" => s.licenses_in_memory += value,
            "tessera_heartbeats_total" => s.heartbeats_total += value,
            "tessera_activations_total" => s.activations_total += value,
            "tessera_sessions_started_total" => s.sessions_started_total += value,
            "tessera_policy_bans_total" => s.bans_total += value,
            "tessera_ws_connections" => s.websocket_connections += value,
            "tessera_api_errors_total" => {
                if let Some(code) = label(labels, "code").filter(|c| !OPERATOR_CODES.contains(c)) {
                    *s.rejections_by_code.entry(code.to_string()).or_default() += value;
                }
            }
            _ => {}
        }
    }
    if let Some(p) = previous {
        let secs = (at_ms - p.at_ms) as f64 / 1000.0;
        if secs > 0.0 && s.heartbeats_total >= p.heartbeats_total {
            s.heartbeats_per_sec = (s.heartbeats_total - p.heartbeats_total) / secs;
        }
    }
    s
}

/// The value of `name="value"` in a label set (the exposition escapes `"` in values;
/// error codes never contain one).
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE tessera_sessions_live gauge\n\
        tessera_sessions_live 12\n\
        tessera_heartbeats_total 1000\n\
        tessera_api_errors_total{code=\"SESSION_LIMIT_REACHED\"} 3\n\
        tessera_api_errors_total{code=\"INVALID_API_KEY\"} 2\n\
        tessera_api_errors_total{code=\"UNAUTHENTICATED\"} 4\n\
        tessera_api_errors_total{code=\"INVALID_CREDENTIALS\"} 1\n\
        tessera_activations_total 7\n\
        tessera_policy_bans_total 1\n";

    #[test]
    fn reads_the_series_and_the_heartbeat_rate_from_the_previous_sample() {
        let first = read_sample(TEXT, 10_000, None);
        assert_eq!(first.live_sessions, 12.0);
        assert_eq!(first.heartbeats_per_sec, 0.0);
        assert_eq!(first.rejections_by_code["SESSION_LIMIT_REACHED"], 3.0);
        assert_eq!(first.rejections_by_code["INVALID_API_KEY"], 2.0);
        // The panel's own sign-in and credential errors are not client refusals.
        assert_eq!(
            first.rejections_by_code.len(),
            2,
            "{:?}",
            first.rejections_by_code
        );
        assert_eq!((first.activations_total, first.bans_total), (7.0, 1.0));
        let later = TEXT.replace("heartbeats_total 1000", "heartbeats_total 1500");
        let second = read_sample(&later, 20_000, Some(&first));
        assert_eq!(second.heartbeats_per_sec, 50.0);
    }

    #[test]
    fn a_counter_that_went_back_gives_no_rate() {
        let first = read_sample(TEXT, 10_000, None);
        let reset = TEXT.replace("heartbeats_total 1000", "heartbeats_total 10");
        assert_eq!(
            read_sample(&reset, 20_000, Some(&first)).heartbeats_per_sec,
            0.0
        );
    }

    #[test]
    fn keeps_an_hour() {
        let handle = crate::http::metrics::handle();
        let overview = Overview {
            samples: Arc::new(Mutex::new(VecDeque::new())),
            metrics: handle,
        };
        for _ in 0..KEPT + 5 {
            overview.sample_now();
        }
        assert_eq!(overview.current().1.len(), KEPT);
    }
}
