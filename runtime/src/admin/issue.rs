//! Issuing licenses: defaults from the plan and product, a fresh key, one durable create.

use chrono::{DateTime, Utc};
use tessera_actors::{LicenseKey, LicenseRecord, LimitOverrides, Store, StoreError};
use tessera_config::Config;

use crate::catalog::Snapshot;
use crate::licenses::generate_license_key;

/// Longest validity an issued license may be given, in days (about 100 years): keeps the
/// date arithmetic far from the calendar's end whatever the caller sends.
pub const MAX_VALID_DAYS: u32 = 36_525;

/// What a new license gets when the caller does not say.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct NewLicense {
    /// Plan (default: none → `default`).
    pub plan: Option<String>,
    /// Product (default: `licenses.default_product`).
    pub product: Option<String>,
    /// Customer name (default: the customer's, when `customer_id` is given).
    pub customer_name: Option<String>,
    /// The customer the licenses belong to.
    #[serde(default)]
    pub customer_id: Option<u64>,
    /// Per-license overrides.
    pub overrides: LimitOverrides,
    /// Validity in days (default: the plan's `valid_days`, else perpetual).
    pub days: Option<u32>,
}

/// Why a license could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The product is not configured.
    #[error("unknown product `{0}`")]
    UnknownProduct(String),
    /// The plan is not configured.
    #[error("unknown plan `{0}`")]
    UnknownPlan(String),
    /// The validity would pass the calendar's end.
    #[error("days: {0} is more than the allowed {MAX_VALID_DAYS}")]
    DaysOutOfRange(u32),
    /// A limit above [`MAX_LIMIT`].
    #[error("{0}: must be at most {MAX_LIMIT}")]
    LimitOutOfRange(&'static str),
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Issues a new license with a fresh key (retrying on the astronomically unlikely collision).
pub(super) async fn issue(
    cfg: &Config,
    catalog: &Snapshot,
    store: &dyn Store,
    new: NewLicense,
    now: DateTime<Utc>,
) -> Result<LicenseRecord, IssueError> {
    let product = new
        .product
        .unwrap_or_else(|| cfg.licenses.default_product.clone());
    if !catalog.products.contains_key(&product) {
        return Err(IssueError::UnknownProduct(product));
    }
    // `default` is the plan of a license issued without one: always valid, with or without
    // a `[plans.default]` section.
    if let Some(plan) = &new.plan
        && !catalog.has_plan(plan)
    {
        return Err(IssueError::UnknownPlan(plan.clone()));
    }
    let plan = new.plan.unwrap_or_else(|| "default".to_string());
    let days = new
        .days
        .or_else(|| catalog.plans.get(&plan).and_then(|p| p.valid_days));
    if let Some(d) = days
        && d > MAX_VALID_DAYS
    {
        return Err(IssueError::DaysOutOfRange(d));
    }
    for _ in 0..8 {
        let key = LicenseKey::parse(&generate_license_key())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut record = LicenseRecord::new(key, &product, &plan, now);
        record.customer_name = new.customer_name.clone();
        record.customer_id = new.customer_id;
        record.overrides = new.overrides.clone();
        if let Some(days) = days {
            let valid = chrono::Duration::try_days(i64::from(days))
                .and_then(|d| now.checked_add_signed(d))
                .ok_or(IssueError::DaysOutOfRange(days))?;
            record.valid_until = Some(valid);
            record.license_type = "subscription".to_string();
        }
        match store.create_license(record).await {
            Err(StoreError::AlreadyExists) => continue,
            other => return Ok(other?),
        }
    }
    Err(IssueError::Store(StoreError::AlreadyExists))
}

/// Largest limit an operator may set (devices, activations, sessions), at issue and in an
/// edit.
pub const MAX_LIMIT: u32 = 1_000_000;

/// `v`, if it is at most [`MAX_LIMIT`].
pub(crate) fn limit(field: &'static str, v: Option<u32>) -> Result<Option<u32>, IssueError> {
    match v {
        Some(n) if n > MAX_LIMIT => Err(IssueError::LimitOutOfRange(field)),
        other => Ok(other),
    }
}
