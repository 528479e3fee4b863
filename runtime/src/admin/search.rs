//! Seed 000's global search (`GET /api/search`): customers, licenses and devices whose words
//! start with the query, from the search index, each hit checked against its entity.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tessera_actors::LicenseStatus;
use utoipa::ToSchema;

use super::error::AdminError;
use super::service::Admin;
use crate::search::{SearchIndex, terms};
use crate::store::catalog::CatalogKind;

/// Results when the caller gives no limit.
pub const DEFAULT_LIMIT: usize = 20;
/// Most results one search returns.
pub const MAX_LIMIT: usize = 100;

/// What to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchType {
    /// Customers: name, email, company.
    Customer,
    /// Licenses: key (with or without dashes), customer name, note.
    License,
    /// Devices: hardware hash, machine name.
    Device,
}

/// One hit, in seed 000's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    /// `customer`, `license` or `device`.
    #[serde(rename = "type")]
    pub kind: SearchType,
    /// The entity's numeric id.
    pub id: u64,
    /// Customer name, license key, or machine name.
    pub title: String,
    /// Customer email; `"Customer - Status"` of a license; hardware hash and license of a
    /// device.
    pub subtitle: String,
    /// Where the API shows the entity.
    pub url: String,
}

/// Seed 000's search reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchResults {
    /// Hits: customers, then licenses, then devices.
    pub results: Vec<SearchHit>,
    /// How many matches were found (at most `limit` of each type are looked for).
    pub total: usize,
}

fn status_label(s: LicenseStatus) -> &'static str {
    match s {
        LicenseStatus::Active => "Active",
        LicenseStatus::Suspended => "Suspended",
        LicenseStatus::Revoked => "Revoked",
        LicenseStatus::Banned => "Banned",
    }
}

impl Admin {
    /// Searches `only` one type or all three for `query`, at most `limit` results.
    pub async fn search(
        &self,
        query: &str,
        only: Option<SearchType>,
        limit: usize,
    ) -> Result<SearchResults, AdminError> {
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AdminError::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let query = query.trim();
        if terms::normalize(query).is_empty() {
            return Err(AdminError::invalid("q", "must not be blank"));
        }
        let wants = |t| only.is_none_or(|o| o == t);
        let mut hits = Vec::new();
        if wants(SearchType::Customer) {
            hits.extend(self.customer_hits(query, limit).await?);
        }
        if wants(SearchType::License) {
            hits.extend(self.license_hits(query, limit).await?);
        }
        if wants(SearchType::Device) {
            hits.extend(self.device_hits(query, limit).await?);
        }
        let total = hits.len();
        hits.truncate(limit);
        Ok(SearchResults {
            results: hits,
            total,
        })
    }

    async fn customer_hits(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, AdminError> {
        let page = self.customers(Some(query), 1, limit).await?;
        Ok(page
            .customers
            .into_iter()
            .map(|c| SearchHit {
                kind: SearchType::Customer,
                id: c.id,
                subtitle: c.email.clone().or(c.company.clone()).unwrap_or_default(),
                url: format!("/api/admin/customers/{}", c.id),
                title: c.name,
            })
            .collect())
    }

    async fn license_hits(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, AdminError> {
        let ids = self
            .search
            .candidates(CatalogKind::License, query, limit)
            .await?;
        let store = self.licenses.store();
        let now = Utc::now();
        let mut out = Vec::new();
        for id in SearchIndex::numeric(&ids) {
            if out.len() >= limit {
                break;
            }
            let Some(key) = store.key_for_id(id).await? else {
                continue;
            };
            let Some(snap) = store.load(&key).await? else {
                continue;
            };
            let r = snap.record;
            let fields = SearchIndex::license_fields(&r);
            if !terms::matches(query, fields.iter().map(String::as_str)) {
                continue;
            }
            let status = status_label(r.effective_status(now));
            out.push(SearchHit {
                kind: SearchType::License,
                id: r.id,
                title: r.key.as_str().to_owned(),
                subtitle: match &r.customer_name {
                    Some(c) => format!("{c} - {status}"),
                    None => status.to_owned(),
                },
                url: format!("/api/admin/licenses/{}", r.key.as_str()),
            });
        }
        Ok(out)
    }

    async fn device_hits(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, AdminError> {
        let ids = self
            .search
            .candidates(CatalogKind::Device, query, limit)
            .await?;
        let store = self.licenses.store();
        let mut out = Vec::new();
        for d in SearchIndex::devices(&ids) {
            if out.len() >= limit {
                break;
            }
            let Some(key) = store.key_for_id(d.license_id).await? else {
                continue;
            };
            let Some(snap) = store.load(&key).await? else {
                continue;
            };
            let Some(a) = snap.activations.iter().find(|a| a.id == d.device_id) else {
                continue;
            };
            if !terms::matches(query, [a.hardware_hash.as_str(), a.machine_name.as_str()]) {
                continue;
            }
            let state = if a.is_active { "active" } else { "deactivated" };
            out.push(SearchHit {
                kind: SearchType::Device,
                id: a.id,
                title: if a.machine_name.is_empty() {
                    a.hardware_hash.clone()
                } else {
                    a.machine_name.clone()
                },
                subtitle: format!("{} - {} ({state})", a.hardware_hash, key.as_str()),
                url: format!("/api/license/{}/devices", d.license_id),
            });
        }
        Ok(out)
    }
}
