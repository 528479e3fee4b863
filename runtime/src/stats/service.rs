//! The statistics service: the local event consumer, the periodic flush into one record per
//! day, and the reports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use utoipa::ToSchema;

use super::counters::DayStats;
use crate::events::Events;
use crate::store::{MetaStore, StoreError};

/// How often a server adds its counts to the stored days.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// Compare-and-swap attempts per day record and flush.
const CAS_ATTEMPTS: usize = 16;

/// A report's span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// Today (UTC).
    Day,
    /// The last 7 days, today included.
    Week,
    /// The last 30 days, today included.
    Month,
}

impl Period {
    /// `day`, `week` or `month`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            "month" => Some(Self::Month),
            _ => None,
        }
    }

    fn days(self) -> u64 {
        match self {
            Self::Day => 1,
            Self::Week => 7,
            Self::Month => 30,
        }
    }
}

/// One day of a report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DayReport {
    /// The day (UTC), `YYYY-MM-DD`.
    pub date: String,
    /// Its counters.
    #[serde(flatten)]
    pub stats: DayStats,
}

/// `GET /api/admin/stats/{period}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsReport {
    /// `day`, `week` or `month`.
    pub period: Period,
    /// First day (UTC).
    pub from: String,
    /// Last day (UTC), today.
    pub to: String,
    /// The days added up (`peak_live_sessions`: the highest day).
    pub totals: DayStats,
    /// Each day, oldest first.
    pub days: Vec<DayReport>,
}

fn key(day: NaiveDate) -> String {
    format!("stats:day:{}", day.format("%Y-%m-%d"))
}

fn decode(bytes: &[u8]) -> Result<DayStats, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("stats record: {e}")))
}

/// Counts this server's events and keeps the days. Cheap to clone.
#[derive(Clone)]
pub struct Stats(Arc<Inner>);

struct Inner {
    meta: Arc<dyn MetaStore>,
    pending: Mutex<BTreeMap<NaiveDate, DayStats>>,
    /// Sessions started minus ended on this server, for the day's peak.
    live: AtomicU64,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stats")
    }
}

impl Stats {
    /// Starts counting `events` (this server's) and flushing every [`FLUSH_EVERY`].
    pub fn start(meta: Arc<dyn MetaStore>, events: &Events) -> Self {
        let stats = Self(Arc::new(Inner {
            meta,
            pending: Mutex::new(BTreeMap::new()),
            live: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
        }));
        let mut rx = events.subscribe_local();
        let counting = stats.clone();
        let consumer = tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(e) => counting.count(&e),
                    Err(RecvError::Lagged(n)) => {
                        metrics::counter!("tessera_events_dropped_total", "sink" => "stats", "type" => "any")
                            .increment(n);
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        let flushing = stats.clone();
        let flusher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = flushing.flush().await {
                    tracing::warn!(error = %e, "statistics not stored; kept for the next flush");
                }
            }
        });
        stats.0.tasks.lock().extend([consumer, flusher]);
        stats
    }

    fn count(&self, event: &crate::events::Event) {
        let live = match event.event_type.as_str() {
            "session.started" => self
                .0
                .live
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1),
            "session.ended" => {
                let _ = self
                    .0
                    .live
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(n.saturating_sub(1))
                    });
                0
            }
            _ => 0,
        };
        let day = event.created_at.date_naive();
        let mut pending = self.0.pending.lock();
        let d = pending.entry(day).or_default();
        d.count(event);
        d.peak_live_sessions = d.peak_live_sessions.max(live);
    }

    /// Adds the counts gathered since the last flush to the stored days. On a failure the
    /// counts are kept for the next flush.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut *self.0.pending.lock());
        let mut failed = BTreeMap::new();
        let mut error = None;
        for (day, delta) in pending {
            if delta.is_empty() {
                continue;
            }
            if let Err(e) = self.add(day, &delta).await {
                failed.insert(day, delta);
                error = Some(e);
            }
        }
        if !failed.is_empty() {
            let mut pending = self.0.pending.lock();
            for (day, delta) in failed {
                pending.entry(day).or_default().add(&delta);
            }
        }
        error.map_or(Ok(()), Err)
    }

    async fn add(&self, day: NaiveDate, delta: &DayStats) -> Result<(), StoreError> {
        let key = key(day);
        for _ in 0..CAS_ATTEMPTS {
            let current = self.0.meta.get(&key).await?;
            let mut stats = match &current {
                Some(b) => decode(b)?,
                None => DayStats::default(),
            };
            stats.add(delta);
            let bytes = serde_json::to_vec(&stats)
                .map_err(|e| StoreError::Corrupt(format!("stats record: {e}")))?;
            if self
                .0
                .meta
                .compare_and_swap(&key, current.as_deref(), Some(&bytes))
                .await?
            {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(
            "statistics: the day record kept changing; retried at the next flush".into(),
        ))
    }

    /// The report of `period` ending today, with this server's latest counts included.
    pub async fn report(&self, period: Period) -> Result<StatsReport, StoreError> {
        self.flush().await?;
        let today = Utc::now().date_naive();
        let mut days = Vec::new();
        let mut totals = DayStats::default();
        for back in (0..period.days()).rev() {
            let Some(day) = today.checked_sub_days(chrono::Days::new(back)) else {
                continue;
            };
            let stats = match self.0.meta.get(&key(day)).await? {
                Some(b) => decode(&b)?,
                None => DayStats::default(),
            };
            totals.add(&stats);
            days.push(DayReport {
                date: day.format("%Y-%m-%d").to_string(),
                stats,
            });
        }
        Ok(StatsReport {
            period,
            from: days.first().map(|d| d.date.clone()).unwrap_or_default(),
            to: today.format("%Y-%m-%d").to_string(),
            totals,
            days,
        })
    }

    /// Stops counting and stores what was counted.
    pub async fn shutdown(&self) {
        for t in self.0.tasks.lock().drain(..) {
            t.abort();
        }
        if let Err(e) = self.flush().await {
            tracing::warn!(error = %e, "final statistics flush failed");
        }
    }
}
