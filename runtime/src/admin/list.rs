//! Finding licenses: filters over the stored records, read in key order a page at a time,
//! with a cursor the caller sends back for the next page.
//!
//! Each call reads at most [`SCAN_BUDGET`] records, whatever the filter: a filter that
//! matches little answers with fewer rows and a cursor to continue from, so one request never
//! walks a million records. The filters run over the stored record, which every record
//! change writes through (the actors never hold a newer record than the store).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_actors::{LicenseKey, LicenseRecord, LicenseStatus};

use super::error::AdminError;
use super::service::Admin;

/// Most rows one page returns.
pub const MAX_PAGE: usize = 500;
/// Rows when the caller does not say.
pub const DEFAULT_PAGE: usize = 50;
/// Most records one call reads from the store.
pub const SCAN_BUDGET: usize = 20_000;
/// Records read from the store per round trip.
const STORE_PAGE: usize = 500;

/// The status a filter asks for: an administrative status, or `expired` (past `valid_until`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    /// Active and not past `valid_until`.
    Active,
    /// Suspended (a lapsed timed suspension counts as active).
    Suspended,
    /// Revoked.
    Revoked,
    /// Banned (a lapsed timed ban counts as active).
    Banned,
    /// Past `valid_until`, whatever the status.
    Expired,
}

impl StatusFilter {
    /// Parses `active|suspended|revoked|banned|expired`.
    pub fn parse(field: &'static str, s: &str) -> Result<Self, AdminError> {
        match s.trim() {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "revoked" => Ok(Self::Revoked),
            "banned" => Ok(Self::Banned),
            "expired" => Ok(Self::Expired),
            other => Err(AdminError::invalid(
                field,
                format!("`{other}` is not one of active, suspended, revoked, banned, expired"),
            )),
        }
    }

    fn matches(self, r: &LicenseRecord, now: DateTime<Utc>) -> bool {
        let expired = r.valid_until.is_some_and(|v| v <= now);
        match self {
            Self::Expired => expired,
            Self::Active => !expired && r.effective_status(now) == LicenseStatus::Active,
            Self::Suspended => r.effective_status(now) == LicenseStatus::Suspended,
            Self::Revoked => r.effective_status(now) == LicenseStatus::Revoked,
            Self::Banned => r.effective_status(now) == LicenseStatus::Banned,
        }
    }
}

/// Which licenses: every field given must match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenseFilter {
    /// Status (see [`StatusFilter`]).
    #[serde(default)]
    pub status: Option<StatusFilter>,
    /// Plan name, exactly.
    #[serde(default)]
    pub plan: Option<String>,
    /// Product name, exactly.
    #[serde(default)]
    pub product: Option<String>,
    /// Customer: a customer id (all digits) or a case-insensitive part of the customer name.
    #[serde(default)]
    pub customer: Option<String>,
    /// Only licenses whose `valid_until` is before this time (perpetual ones never match).
    #[serde(default)]
    pub expires_before: Option<DateTime<Utc>>,
    /// Free text: a case-insensitive part of the key, the customer name or the note.
    #[serde(default)]
    pub q: Option<String>,
}

impl LicenseFilter {
    /// Whether `r` matches at `now`.
    pub fn matches(&self, r: &LicenseRecord, now: DateTime<Utc>) -> bool {
        let contains = |hay: Option<&str>, needle: &str| {
            hay.is_some_and(|h| h.to_lowercase().contains(&needle.to_lowercase()))
        };
        if self.status.is_some_and(|s| !s.matches(r, now)) {
            return false;
        }
        if self.plan.as_ref().is_some_and(|p| *p != r.plan) {
            return false;
        }
        if self.product.as_ref().is_some_and(|p| *p != r.product) {
            return false;
        }
        if let Some(c) = &self.customer {
            let by_id = c
                .parse::<u64>()
                .ok()
                .is_some_and(|id| r.customer_id == Some(id));
            if !by_id && !contains(r.customer_name.as_deref(), c) {
                return false;
            }
        }
        if let Some(before) = self.expires_before
            && r.valid_until.is_none_or(|v| v >= before)
        {
            return false;
        }
        if let Some(q) = &self.q
            && !contains(Some(r.key.as_str()), q)
            && !contains(r.customer_name.as_deref(), q)
            && !contains(r.note.as_deref(), q)
        {
            return false;
        }
        true
    }

    /// Whether the filter selects every license (bulk actions refuse that by accident).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct LicensePage {
    /// Matching licenses in key order.
    pub licenses: Vec<LicenseRecord>,
    /// Where the next page starts (send it back as `cursor`); `None` at the end.
    pub next_cursor: Option<LicenseKey>,
    /// Records read to answer.
    pub scanned: usize,
}

impl Admin {
    /// Matching licenses after `cursor`, at most `limit` (1..=[`MAX_PAGE`]).
    pub async fn list(
        &self,
        filter: &LicenseFilter,
        cursor: Option<LicenseKey>,
        limit: usize,
    ) -> Result<LicensePage, AdminError> {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AdminError::invalid(
                "limit",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
        self.scan(filter, cursor, limit, SCAN_BUDGET).await
    }

    pub(super) async fn scan(
        &self,
        filter: &LicenseFilter,
        cursor: Option<LicenseKey>,
        limit: usize,
        budget: usize,
    ) -> Result<LicensePage, AdminError> {
        let now = Utc::now();
        let store = self.licenses.store();
        let mut after = cursor;
        let mut licenses = Vec::new();
        let mut scanned = 0;
        loop {
            let want = STORE_PAGE.min(budget - scanned);
            let batch = store.list_records(after.as_ref(), want).await?;
            let exhausted = batch.len() < want;
            for r in batch {
                scanned += 1;
                after = Some(r.key.clone());
                if filter.matches(&r, now) {
                    licenses.push(r);
                    if licenses.len() == limit {
                        return Ok(LicensePage {
                            licenses,
                            next_cursor: after,
                            scanned,
                        });
                    }
                }
            }
            if exhausted {
                return Ok(LicensePage {
                    licenses,
                    next_cursor: None,
                    scanned,
                });
            }
            if scanned >= budget {
                return Ok(LicensePage {
                    licenses,
                    next_cursor: after,
                    scanned,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str) -> LicenseRecord {
        let key = LicenseKey::parse(key).unwrap_or_else(|e| panic!("{e}"));
        LicenseRecord::new(key, "app", "pro", Utc::now())
    }

    #[test]
    fn each_filter_field_narrows_and_text_ignores_case() {
        let now = Utc::now();
        let mut r = record("AAAA-BBBB");
        r.customer_name = Some("ACME Corp".into());
        r.customer_id = Some(7);
        r.note = Some("Renewal pending".into());
        r.valid_until = Some(now + chrono::Duration::days(3));
        let f = |f: LicenseFilter| f.matches(&r, now);
        assert!(f(LicenseFilter::default()));
        assert!(f(LicenseFilter {
            customer: Some("acme".into()),
            ..Default::default()
        }));
        assert!(f(LicenseFilter {
            customer: Some("7".into()),
            ..Default::default()
        }));
        assert!(!f(LicenseFilter {
            customer: Some("8".into()),
            ..Default::default()
        }));
        assert!(f(LicenseFilter {
            q: Some("bbbb".into()),
            ..Default::default()
        }));
        assert!(f(LicenseFilter {
            q: Some("RENEWAL".into()),
            ..Default::default()
        }));
        assert!(!f(LicenseFilter {
            q: Some("zzz".into()),
            ..Default::default()
        }));
        assert!(f(LicenseFilter {
            plan: Some("pro".into()),
            ..Default::default()
        }));
        assert!(!f(LicenseFilter {
            product: Some("other".into()),
            ..Default::default()
        }));
        let soon = Some(now + chrono::Duration::days(4));
        assert!(f(LicenseFilter {
            expires_before: soon,
            ..Default::default()
        }));
        let sooner = Some(now + chrono::Duration::days(2));
        assert!(!f(LicenseFilter {
            expires_before: sooner,
            ..Default::default()
        }));
        assert!(f(LicenseFilter {
            status: Some(StatusFilter::Active),
            ..Default::default()
        }));
        assert!(!f(LicenseFilter {
            status: Some(StatusFilter::Expired),
            ..Default::default()
        }));
    }

    #[test]
    fn expired_and_lapsed_statuses_are_told_apart() {
        let now = Utc::now();
        let mut r = record("CCCC-DDDD");
        r.status = LicenseStatus::Suspended;
        r.status_until = Some(now - chrono::Duration::seconds(1));
        assert!(
            StatusFilter::Active.matches(&r, now),
            "a lapsed suspension is active"
        );
        r.valid_until = Some(now - chrono::Duration::seconds(1));
        assert!(StatusFilter::Expired.matches(&r, now));
        assert!(!StatusFilter::Active.matches(&r, now));
        assert!(StatusFilter::parse("status", "paused").is_err());
    }
}
