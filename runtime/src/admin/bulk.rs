//! One action over many licenses (seed 000's bulk-activate/-deactivate/-delete, seed 001's
//! bulk actions): chosen by keys or by a filter, previewed with `dry_run`, run in bounded
//! batches so client traffic keeps its latency, and safe to retry.
//!
//! Retries: every action but `renew` is idempotent by nature (suspending a suspended
//! license changes nothing). A renewal run twice would extend twice, so a request that
//! carries a `request_id` is remembered with its outcome (the last 256 ids, in
//! memory): a retry with the same id gets the first run's outcome and changes nothing.

use serde::{Deserialize, Serialize};
use serde_json::json;
use tessera_actors::{LicenseKey, LicenseStatus};

use super::error::AdminError;
use super::list::LicenseFilter;
use super::service::Admin;

/// Most licenses one bulk action may touch.
pub const MAX_BULK: usize = 10_000;
/// Licenses changed at once; the next batch starts when this one is done.
pub const BATCH: usize = 64;
/// Keys listed in a dry run's answer.
pub const PREVIEW_KEYS: usize = 1_000;

/// What to do to each license.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BulkAction {
    /// Status `active` (seed 000's bulk-activate).
    Activate,
    /// Status `suspended`, ending live sessions (seed 000's bulk-deactivate).
    Suspend,
    /// Status `revoked`, ending live sessions.
    Revoke,
    /// Extend validity by `days`.
    Renew,
    /// Deactivate every device.
    HwidReset,
    /// Delete (needs `confirm`: the number of licenses matched).
    Delete,
}

impl BulkAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Activate => "activate",
            Self::Suspend => "suspend",
            Self::Revoke => "revoke",
            Self::Renew => "renew",
            Self::HwidReset => "hwid-reset",
            Self::Delete => "delete",
        }
    }
}

/// Which licenses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkTarget {
    /// These keys (unknown ones fail with `LICENSE_NOT_FOUND`).
    Keys(Vec<LicenseKey>),
    /// Every license the filter matches (an empty filter is refused).
    Filter(LicenseFilter),
}

/// A bulk request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BulkRequest {
    /// The action.
    pub action: BulkAction,
    /// The licenses.
    pub target: BulkTarget,
    /// For `renew`: days (1..=36525).
    #[serde(default)]
    pub days: Option<u32>,
    /// Only report what would be touched.
    #[serde(default)]
    pub dry_run: bool,
    /// For `delete`: the number of licenses matched, as the dry run reported it.
    #[serde(default)]
    pub confirm: Option<String>,
    /// Makes a retry return the first run's outcome instead of running again.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// One license the action failed on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct BulkFailure {
    /// The license.
    pub license_key: String,
    /// Error code, as the API would answer it.
    pub code: String,
    /// Why.
    pub error: String,
}

/// What a bulk request did (or, dry, would do).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct BulkOutcome {
    /// The action.
    pub action: BulkAction,
    /// Whether this was a preview.
    pub dry_run: bool,
    /// Licenses selected.
    pub matched: usize,
    /// Licenses changed (0 on a dry run).
    pub changed: usize,
    /// Failures with their reasons.
    pub failed: Vec<BulkFailure>,
    /// On a dry run, the selected keys (at most 1000).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Live sessions the action ended.
    pub ended_sessions: u64,
    /// Whether this is the remembered outcome of an earlier run with the same `request_id`.
    #[serde(default)]
    pub replayed: bool,
}

/// A failure's code and sentence, as the HTTP API would send them.
pub type Classify = fn(&AdminError) -> (String, String);

impl Admin {
    /// Runs (or previews) `req`. `classify` names failures as the caller's interface does.
    pub async fn bulk(
        &self,
        req: BulkRequest,
        classify: Classify,
    ) -> Result<BulkOutcome, AdminError> {
        if req.action == BulkAction::Renew {
            match req.days {
                Some(d) if (1..=super::issue::MAX_VALID_DAYS).contains(&d) => {}
                _ => {
                    return Err(AdminError::invalid(
                        "days",
                        format!(
                            "renew needs days between 1 and {}",
                            super::issue::MAX_VALID_DAYS
                        ),
                    ));
                }
            }
        }
        if let Some(id) = &req.request_id {
            super::edit::text("request_id", Some(id), 128)?;
            if !req.dry_run
                && let Some(seen) = self.remembered.get(id)
                && let Ok(mut seen) = serde_json::from_value::<BulkOutcome>(seen)
            {
                seen.replayed = true;
                return Ok(seen);
            }
        }
        let keys = self.select(&req.target).await?;
        let mut outcome = BulkOutcome {
            action: req.action,
            dry_run: req.dry_run,
            matched: keys.len(),
            changed: 0,
            failed: Vec::new(),
            keys: Vec::new(),
            ended_sessions: 0,
            replayed: false,
        };
        if req.dry_run {
            outcome.keys = keys
                .iter()
                .take(PREVIEW_KEYS)
                .map(ToString::to_string)
                .collect();
            return Ok(outcome);
        }
        if req.action == BulkAction::Delete
            && req.confirm.as_deref().map(str::trim) != Some(keys.len().to_string().as_str())
        {
            return Err(AdminError::ConfirmationRequired);
        }
        let days = req.days.unwrap_or(0);
        for batch in keys.chunks(BATCH) {
            let runs = batch.iter().map(|k| self.bulk_one(req.action, k, days));
            for (key, result) in batch.iter().zip(futures::future::join_all(runs).await) {
                match result {
                    Ok(ended) => {
                        outcome.changed += 1;
                        outcome.ended_sessions += u64::from(ended);
                    }
                    Err(e) => {
                        let (code, error) = classify(&e);
                        outcome.failed.push(BulkFailure {
                            license_key: key.to_string(),
                            code,
                            error,
                        });
                    }
                }
            }
            // Let client requests waiting on the same shards and store go first.
            tokio::task::yield_now().await;
        }
        self.emit(
            "admin.license.bulk",
            None,
            format!(
                "bulk {}: {} of {} changed",
                req.action.as_str(),
                outcome.changed,
                outcome.matched
            ),
            json!({
                "action": req.action,
                "matched": outcome.matched,
                "changed": outcome.changed,
                "failed": outcome.failed.len(),
            }),
        )
        .await?;
        if let Some(id) = req.request_id
            && let Ok(v) = serde_json::to_value(&outcome)
        {
            self.remembered.put(id, v);
        }
        Ok(outcome)
    }

    /// The keys a target names, at most [`MAX_BULK`].
    async fn select(&self, target: &BulkTarget) -> Result<Vec<LicenseKey>, AdminError> {
        match target {
            BulkTarget::Keys(keys) => {
                if keys.is_empty() {
                    return Err(AdminError::invalid(
                        "license_ids",
                        "must name at least one license",
                    ));
                }
                if keys.len() > MAX_BULK {
                    return Err(AdminError::invalid(
                        "license_ids",
                        format!("at most {MAX_BULK} licenses at once"),
                    ));
                }
                let mut keys = keys.clone();
                keys.sort();
                keys.dedup();
                Ok(keys)
            }
            BulkTarget::Filter(filter) => {
                if filter.is_empty() {
                    return Err(AdminError::invalid(
                        "filter",
                        "an empty filter would select every license; name at least one field",
                    ));
                }
                let mut keys = Vec::new();
                let mut cursor = None;
                loop {
                    let page = self
                        .scan(filter, cursor, MAX_BULK + 1 - keys.len(), usize::MAX)
                        .await?;
                    keys.extend(page.licenses.into_iter().map(|r| r.key));
                    if keys.len() > MAX_BULK {
                        return Err(AdminError::invalid(
                            "filter",
                            format!("matches more than {MAX_BULK} licenses; narrow it"),
                        ));
                    }
                    match page.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => return Ok(keys),
                    }
                }
            }
        }
    }

    /// The action on one license; the sessions it ended.
    async fn bulk_one(
        &self,
        action: BulkAction,
        key: &LicenseKey,
        days: u32,
    ) -> Result<u32, AdminError> {
        let quiet = self;
        match action {
            BulkAction::Activate => Ok(quiet
                .set_status(key, LicenseStatus::Active, None, None)
                .await?
                .ended_sessions),
            BulkAction::Suspend => Ok(quiet
                .set_status(
                    key,
                    LicenseStatus::Suspended,
                    Some("bulk suspend".into()),
                    None,
                )
                .await?
                .ended_sessions),
            BulkAction::Revoke => Ok(quiet
                .set_status(
                    key,
                    LicenseStatus::Revoked,
                    Some("bulk revoke".into()),
                    None,
                )
                .await?
                .ended_sessions),
            BulkAction::Renew => quiet.renew(key, days).await.map(|_| 0),
            BulkAction::HwidReset => Ok(quiet.hwid_reset(key, false).await?.ended_sessions),
            BulkAction::Delete => quiet.delete(key, Some(key.as_str())).await,
        }
    }
}
