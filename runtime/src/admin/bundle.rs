//! Bundle presets (seed 001): an operator applies a named set of features and limits from
//! `[presets.NAME]` to a license for a billing cycle, in one change through its actor.

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tessera_actors::{LicenseKey, LicensePatch, LicenseView, LimitOverrides, Reply, Request};
use tessera_config::BundleCycle;
use utoipa::ToSchema;

use super::edit::{MAX_METADATA, MAX_NOTE_LEN, text};
use super::error::AdminError;
use super::service::Admin;

/// `POST /api/admin/licenses/{key}/bundle` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleRequest {
    /// A preset name from `[presets.NAME]`.
    pub preset: String,
    /// `monthly`, `yearly` or `lifetime` (default: the preset's cycle).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(monthly|yearly|lifetime)$")]
    pub cycle: Option<BundleCycle>,
    /// Operator note, kept as the license's note.
    #[serde(default)]
    pub admin_note: Option<String>,
}

/// One `[presets.NAME]` as operators see it (`GET /api/admin/presets`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PresetView {
    /// The name a bundle request gives.
    pub name: String,
    /// Features granted (they replace the license's).
    pub features: Vec<String>,
    /// Plan the license moves to; null keeps its plan.
    pub plan: Option<String>,
    /// Device limit it sets; null keeps the license's.
    pub max_devices: Option<u32>,
    /// Lifetime activations it sets (0 = unlimited); null keeps the license's.
    pub max_activations: Option<u32>,
    /// Session limit it sets; null keeps the license's.
    pub max_sessions: Option<u32>,
    /// `monthly`, `yearly` or `lifetime`: how far one application extends validity.
    pub cycle: String,
}

/// The end of a cycle started at the later of `now` and the current end (a renewal adds
/// to what is left); `None` for a lifetime bundle.
pub fn cycle_end(
    cycle: BundleCycle,
    current: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, AdminError> {
    let from = current.filter(|c| *c > now).unwrap_or(now);
    let months = match cycle {
        BundleCycle::Lifetime => return Ok(None),
        BundleCycle::Monthly => 1,
        BundleCycle::Yearly => 12,
    };
    from.checked_add_months(Months::new(months))
        .map(Some)
        .ok_or_else(|| AdminError::invalid("cycle", "the validity would pass the calendar's end"))
}

impl Admin {
    /// The bundle presets in force (the configuration's, as last reloaded), by name.
    pub fn presets(&self) -> Vec<PresetView> {
        let snapshot = self.catalog.snapshot();
        snapshot
            .config
            .presets
            .iter()
            .map(|(name, p)| PresetView {
                name: name.clone(),
                features: p.features.clone(),
                plan: p.plan.clone(),
                max_devices: p.max_devices,
                max_activations: p.max_activations,
                max_sessions: p.max_sessions,
                cycle: p.cycle.as_str().to_owned(),
            })
            .collect()
    }

    /// Applies preset `req.preset` to the license: its features replace the license's, its
    /// limits and plan apply, validity runs one cycle further (or forever), and the
    /// metadata records `bundle` and `bundle_cycle`.
    pub async fn bundle(
        &self,
        key: &LicenseKey,
        req: &BundleRequest,
    ) -> Result<LicenseView, AdminError> {
        let name = req.preset.trim();
        let snapshot = self.catalog.snapshot();
        let preset = snapshot.config.presets.get(name).ok_or_else(|| {
            AdminError::invalid(
                "preset",
                format!("unknown preset `{name}` (see [presets.*])"),
            )
        })?;
        if let Some(plan) = &preset.plan
            && !snapshot.has_plan(plan)
        {
            return Err(AdminError::invalid(
                "preset",
                format!("preset `{name}` names plan `{plan}`, which no longer exists"),
            ));
        }
        let cycle = req.cycle.unwrap_or(preset.cycle);
        let note = text("admin_note", req.admin_note.as_deref(), MAX_NOTE_LEN)?;
        let current = self.show(key).await?.license.record;
        let mut metadata = current.metadata.clone();
        metadata.insert("bundle".into(), name.to_owned());
        metadata.insert("bundle_cycle".into(), cycle.as_str().to_owned());
        if metadata.len() > MAX_METADATA {
            return Err(AdminError::invalid(
                "preset",
                format!("the license's metadata is full ({MAX_METADATA} entries)"),
            ));
        }
        let mut features = preset.features.clone();
        features.sort();
        features.dedup();
        let overrides = LimitOverrides {
            max_devices: preset.max_devices,
            max_activations: preset.max_activations,
            max_sessions: preset.max_sessions,
            on_session_limit: None,
        };
        let valid_until = cycle_end(cycle, current.valid_until, Utc::now())?;
        let patch = LicensePatch {
            valid_until: Some(valid_until),
            plan: preset.plan.clone(),
            overrides: (overrides != LimitOverrides::default()).then_some(overrides),
            note: note.map(Some),
            metadata: Some(metadata),
            features: Some(features),
            ..LicensePatch::default()
        };
        let license = match self.licenses.call(key, Request::Update(patch)).await? {
            Reply::Updated { license } => license,
            _ => return Err(AdminError::Unexpected),
        };
        self.reindex(&license.record).await;
        self.emit(
            "admin.license.bundled",
            Some(key),
            format!("bundle `{name}` ({}) applied", cycle.as_str()),
            json!({ "preset": name, "cycle": cycle.as_str(), "valid_until": license.record.valid_until }),
        ).await?;
        Ok(license)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0)
            .single()
            .unwrap_or_else(|| panic!("bad date"))
    }

    #[test]
    fn a_cycle_runs_from_the_later_of_now_and_the_current_end() {
        let now = at(2026, 1, 31);
        assert_eq!(
            cycle_end(BundleCycle::Monthly, None, now).ok(),
            Some(Some(at(2026, 2, 28)))
        );
        assert_eq!(
            cycle_end(BundleCycle::Yearly, Some(at(2026, 6, 1)), now).ok(),
            Some(Some(at(2027, 6, 1)))
        );
        // Expired: the cycle starts now, not at the old end.
        assert_eq!(
            cycle_end(BundleCycle::Monthly, Some(at(2025, 1, 1)), now).ok(),
            Some(Some(at(2026, 2, 28)))
        );
        assert_eq!(
            cycle_end(BundleCycle::Lifetime, Some(at(2026, 6, 1)), now).ok(),
            Some(None)
        );
    }
}
