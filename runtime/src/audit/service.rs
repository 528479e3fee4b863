//! The audit log service: appending (compare-and-swap on the chain head), listing, the
//! verifier, and the anchor task.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use utoipa::ToSchema;

use super::chain::{GENESIS, hash_of};
use crate::store::audit::{AuditRecord, AuditStore, MAX_READ};
use crate::store::{MetaStore, StoreError};

/// Appends retried when other servers keep appending first.
const APPEND_ATTEMPTS: usize = 64;
/// How often the chain head is anchored.
const ANCHOR_EVERY: Duration = Duration::from_secs(60);
/// The metadata key holding the last anchor (`{seq, hash}`), which `verify` checks the chain
/// against, so a truncated tail is found too.
const ANCHOR_KEY: &str = "audit:anchor";

/// What an action adds to the log (the log numbers, timestamps and chains it).
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// Who acted.
    pub actor: String,
    /// From where.
    pub ip: Option<String>,
    /// What (the event type).
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// One line.
    pub summary: String,
    /// The state before, when known.
    pub before: Option<serde_json::Value>,
    /// The change or the state after.
    pub after: serde_json::Value,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditPage {
    /// Records, newest first (a removed record is skipped here; `verify` names it).
    pub records: Vec<AuditRecord>,
    /// Send back as `cursor` for older records; null at the first record.
    pub next_cursor: Option<u64>,
    /// The chain head's sequence number.
    pub head: u64,
}

/// How a record breaks the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Its content no longer matches its hash.
    Changed,
    /// It is missing.
    Removed,
    /// It is not where the chain puts it (another position, or after another record).
    Reordered,
}

/// The first place the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// The sequence number where the chain breaks.
    pub seq: u64,
    /// `changed`, `removed` or `reordered`.
    pub kind: ProblemKind,
    /// What was found.
    pub detail: String,
}

/// `GET /api/admin/audit/verify`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VerifyReport {
    /// True when every record is where the chain puts it, unchanged.
    pub ok: bool,
    /// Records checked.
    pub checked: u64,
    /// The head's sequence number.
    pub head: u64,
    /// The head record's hash.
    pub head_hash: Option<String>,
    /// The first break, if any.
    pub problem: Option<Problem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Anchor {
    seq: u64,
    hash: String,
}

/// The audit log over the store. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog(Arc<Inner>);

struct Inner {
    store: Arc<dyn AuditStore>,
    meta: Arc<dyn MetaStore>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

impl AuditLog {
    /// The log kept in `store` (anchors in `meta`).
    pub fn new(store: Arc<dyn AuditStore>, meta: Arc<dyn MetaStore>) -> Self {
        Self(Arc::new(Inner { store, meta }))
    }

    async fn record_at(&self, seq: u64) -> Result<Option<AuditRecord>, StoreError> {
        Ok(self
            .0
            .store
            .audit_range(seq, 1)
            .await?
            .into_iter()
            .next()
            .and_then(|(_, r)| r))
    }

    /// Appends `entry` after the chain head, durably. Fails rather than fork or skip: when
    /// the head record is missing the chain is broken and nothing is appended.
    pub async fn record(&self, entry: AuditEntry) -> Result<AuditRecord, StoreError> {
        for _ in 0..APPEND_ATTEMPTS {
            let head = self.0.store.audit_head().await?;
            let prev_hash = if head == 0 {
                GENESIS.to_owned()
            } else {
                match self.record_at(head).await? {
                    Some(r) => r.hash,
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "audit record {head}, the chain head, is missing; see GET /api/admin/audit/verify"
                        )));
                    }
                }
            };
            let mut record = AuditRecord {
                seq: head + 1,
                at: Utc::now(),
                actor: entry.actor.clone(),
                ip: entry.ip.clone(),
                action: entry.action.clone(),
                target: entry.target.clone(),
                summary: entry.summary.clone(),
                before: entry.before.clone(),
                after: entry.after.clone(),
                prev_hash,
                hash: String::new(),
            };
            record.hash = hash_of(&record);
            if self.0.store.audit_append(head, &record).await? {
                metrics::counter!("tessera_audit_records_total").increment(1);
                return Ok(record);
            }
        }
        Err(StoreError::Unavailable(
            "audit log: other servers kept appending first".into(),
        ))
    }

    /// Records older than `cursor` (newest first when `None`), at most `limit`.
    pub async fn page(&self, cursor: Option<u64>, limit: usize) -> Result<AuditPage, StoreError> {
        let head = self.0.store.audit_head().await?;
        let limit = limit.clamp(1, MAX_READ) as u64;
        let end = cursor.map_or(head, |c| c.saturating_sub(1).min(head));
        let start = end.saturating_sub(limit - 1).max(1);
        let mut records: Vec<AuditRecord> = if end == 0 {
            Vec::new()
        } else {
            self.0
                .store
                .audit_range(start, (end - start + 1) as usize)
                .await?
                .into_iter()
                .filter_map(|(_, r)| r)
                .collect()
        };
        records.reverse();
        Ok(AuditPage {
            records,
            next_cursor: (start > 1).then_some(start),
            head,
        })
    }

    /// Walks the whole chain and reports the first record that was changed, removed or
    /// reordered (and a head below the last anchor: records removed from the end).
    pub async fn verify(&self) -> Result<VerifyReport, StoreError> {
        let head = self.0.store.audit_head().await?;
        let mut prev = GENESIS.to_owned();
        let mut checked = 0;
        let mut next = 1;
        let mut problem = None;
        'walk: while next <= head {
            let batch = self.0.store.audit_range(next, MAX_READ).await?;
            if batch.is_empty() {
                break;
            }
            for (seq, record) in batch {
                next = seq + 1;
                checked += 1;
                let Some(r) = record else {
                    problem = Some(Problem {
                        seq,
                        kind: ProblemKind::Removed,
                        detail: format!("record {seq} is missing"),
                    });
                    break 'walk;
                };
                if r.seq != seq {
                    problem = Some(Problem {
                        seq,
                        kind: ProblemKind::Reordered,
                        detail: format!("position {seq} holds record {}", r.seq),
                    });
                    break 'walk;
                }
                if hash_of(&r) != r.hash {
                    problem = Some(Problem {
                        seq,
                        kind: ProblemKind::Changed,
                        detail: format!("record {seq} does not match its hash"),
                    });
                    break 'walk;
                }
                if r.prev_hash != prev {
                    problem = Some(Problem {
                        seq,
                        kind: ProblemKind::Reordered,
                        detail: format!("record {seq} does not follow record {}", seq - 1),
                    });
                    break 'walk;
                }
                prev = r.hash;
            }
        }
        let head_hash = (head > 0 && problem.is_none()).then(|| prev.clone());
        if problem.is_none()
            && let Some(anchor) = self.anchor().await?
        {
            if anchor.seq > head {
                problem = Some(Problem {
                    seq: head + 1,
                    kind: ProblemKind::Removed,
                    detail: format!(
                        "the chain ends at {head}, but record {} was anchored",
                        anchor.seq
                    ),
                });
            } else if let Some(r) = self.record_at(anchor.seq).await?
                && r.hash != anchor.hash
            {
                problem = Some(Problem {
                    seq: anchor.seq,
                    kind: ProblemKind::Changed,
                    detail: format!("record {} differs from its anchor", anchor.seq),
                });
            }
        }
        metrics::counter!("tessera_audit_verifications_total", "ok" => if problem.is_none() { "true" } else { "false" })
            .increment(1);
        Ok(VerifyReport {
            ok: problem.is_none(),
            checked,
            head,
            head_hash,
            problem,
        })
    }

    async fn anchor(&self) -> Result<Option<Anchor>, StoreError> {
        match self.0.meta.get(ANCHOR_KEY).await? {
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("audit anchor: {e}"))),
            None => Ok(None),
        }
    }

    /// Logs the chain head, exposes it in `/metrics` and stores it as the anchor `verify`
    /// checks against (only ever forwards).
    pub async fn anchor_now(&self) -> Result<(), StoreError> {
        let head = self.0.store.audit_head().await?;
        let Some(r) = self.record_at(head).await? else {
            return Ok(());
        };
        let prefix = u32::from_str_radix(r.hash.get(..8).unwrap_or("0"), 16).unwrap_or(0);
        metrics::gauge!("tessera_audit_head_seq").set(head as f64);
        metrics::gauge!("tessera_audit_head_hash_prefix").set(f64::from(prefix));
        tracing::info!(seq = head, hash = %r.hash, "audit chain head");
        let current = self.0.meta.get(ANCHOR_KEY).await?;
        let older = match &current {
            Some(b) => serde_json::from_slice::<Anchor>(b).map_or(true, |a| a.seq < head),
            None => true,
        };
        if older {
            let bytes = serde_json::to_vec(&Anchor {
                seq: head,
                hash: r.hash,
            })
            .map_err(|e| StoreError::Corrupt(format!("audit anchor: {e}")))?;
            self.0
                .meta
                .compare_and_swap(ANCHOR_KEY, current.as_deref(), Some(&bytes))
                .await?;
        }
        Ok(())
    }

    /// Anchors every minute until aborted.
    pub fn spawn_anchor(&self) -> JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ANCHOR_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = log.anchor_now().await {
                    tracing::warn!(error = %e, "audit chain head not anchored");
                }
            }
        })
    }
}
