//! What licenses and devices are indexed under, and the candidate lookups of a query.

use std::sync::Arc;

use tessera_actors::{Activation, LicenseRecord, StoreError};

use super::terms;
use crate::store::catalog::{CatalogKind, CatalogStore, numeric_id, parse_numeric_id};

/// Most index hits read per lookup prefix, whatever the caller's limit: each is checked
/// against its entity, so this bounds the work of one keystroke.
const MAX_CANDIDATES: usize = 400;

/// A device in the index: its license and its activation id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRef {
    /// The license's numeric id.
    pub license_id: u64,
    /// The activation id.
    pub device_id: u64,
}

impl DeviceRef {
    fn id(self) -> String {
        format!(
            "{}/{}",
            numeric_id(self.license_id),
            numeric_id(self.device_id)
        )
    }

    fn parse(id: &str) -> Option<Self> {
        let (l, d) = id.split_once('/')?;
        Some(Self {
            license_id: parse_numeric_id(l)?,
            device_id: parse_numeric_id(d)?,
        })
    }
}

/// The search index over the catalog store. Cheap to clone.
#[derive(Clone)]
pub struct SearchIndex {
    store: Arc<dyn CatalogStore>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SearchIndex")
    }
}

impl SearchIndex {
    /// The index kept in `store`.
    pub fn new(store: Arc<dyn CatalogStore>) -> Self {
        Self { store }
    }

    /// The store it is kept in (customers live there too).
    pub fn store(&self) -> &Arc<dyn CatalogStore> {
        &self.store
    }

    /// The terms of a license: its key, customer name and note, and its customer link.
    pub fn license_terms(r: &LicenseRecord) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(c) = r.customer_id {
            out.push(terms::customer_link(c));
        }
        let fields = Self::license_fields(r);
        for t in terms::terms_of(fields.iter().map(String::as_str)) {
            if out.len() < crate::store::catalog::MAX_TERMS {
                out.push(t);
            }
        }
        out
    }

    /// The text a license is matched on (see [`terms::matches`]): its key with and without
    /// dashes, customer name and note.
    pub fn license_fields(r: &LicenseRecord) -> Vec<String> {
        let key = r.key.as_str();
        [key.to_owned(), key.replace('-', "")]
            .into_iter()
            .chain(r.customer_name.clone())
            .chain(r.note.clone())
            .collect()
    }

    /// (Re)indexes `r` under its current terms.
    pub async fn index_license(&self, r: &LicenseRecord) -> Result<(), StoreError> {
        self.store
            .set_terms(
                CatalogKind::License,
                &numeric_id(r.id),
                &Self::license_terms(r),
            )
            .await
    }

    /// Removes license `id` from the index.
    pub async fn unindex_license(&self, id: u64) -> Result<(), StoreError> {
        self.store
            .set_terms(CatalogKind::License, &numeric_id(id), &[])
            .await
    }

    /// (Re)indexes a device under its hardware hash and machine name.
    pub async fn index_device(
        &self,
        device: DeviceRef,
        hardware_hash: &str,
        machine_name: &str,
    ) -> Result<(), StoreError> {
        let terms = terms::terms_of([hardware_hash, machine_name]);
        self.store
            .set_terms(CatalogKind::Device, &device.id(), &terms)
            .await
    }

    /// Indexes every device of a license.
    pub async fn index_devices(
        &self,
        license_id: u64,
        devices: &[Activation],
    ) -> Result<(), StoreError> {
        for a in devices {
            let d = DeviceRef {
                license_id,
                device_id: a.id,
            };
            self.index_device(d, &a.hardware_hash, &a.machine_name)
                .await?;
        }
        Ok(())
    }

    /// Removes devices from the index.
    pub async fn unindex_devices(
        &self,
        license_id: u64,
        devices: &[Activation],
    ) -> Result<(), StoreError> {
        for a in devices {
            let d = DeviceRef {
                license_id,
                device_id: a.id,
            };
            self.store
                .set_terms(CatalogKind::Device, &d.id(), &[])
                .await?;
        }
        Ok(())
    }

    /// Ids of `kind` indexed under a prefix of `query`'s lookups: candidates, to be checked
    /// against their entity. At most [`MAX_CANDIDATES`] per lookup.
    pub async fn candidates(
        &self,
        kind: CatalogKind,
        query: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let want = (limit.saturating_mul(4)).clamp(1, MAX_CANDIDATES);
        let mut out: Vec<String> = Vec::new();
        for prefix in terms::lookups(query) {
            for id in self.store.search(kind, &prefix, false, None, want).await? {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    /// Numeric ids of the licenses and customers among `ids`.
    pub fn numeric(ids: &[String]) -> Vec<u64> {
        ids.iter().filter_map(|id| parse_numeric_id(id)).collect()
    }

    /// Devices among `ids`.
    pub fn devices(ids: &[String]) -> Vec<DeviceRef> {
        ids.iter().filter_map(|id| DeviceRef::parse(id)).collect()
    }

    /// Up to `limit` license ids of customer `customer_id`, in id order, after `after`.
    pub async fn licenses_of_customer(
        &self,
        customer_id: u64,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let after = after.map(numeric_id);
        let ids = self
            .store
            .search(
                CatalogKind::License,
                &terms::customer_link(customer_id),
                true,
                after.as_deref(),
                limit,
            )
            .await?;
        Ok(Self::numeric(&ids))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use tessera_actors::LicenseKey;

    use super::*;

    #[test]
    fn device_ids_round_trip() {
        let d = DeviceRef {
            license_id: 12,
            device_id: 345,
        };
        assert_eq!(DeviceRef::parse(&d.id()), Some(d));
        assert_eq!(DeviceRef::parse("12/345"), None);
    }

    #[test]
    fn a_license_is_indexed_under_its_key_customer_note_and_customer_link() {
        let key = LicenseKey::parse("ABCD-EFGH-JKLM-NPQR").unwrap_or_else(|e| panic!("{e}"));
        let mut r = LicenseRecord::new(key, "default", "default", Utc::now());
        r.customer_name = Some("ACME Corp".into());
        r.customer_id = Some(9);
        r.note = Some("renewal due".into());
        let t = SearchIndex::license_terms(&r);
        assert_eq!(t[0], terms::customer_link(9));
        for want in [
            "abcd-efgh-jklm-npqr",
            "abcdefghjklmnpqr",
            "efgh",
            "acme corp",
            "corp",
            "renewal",
        ] {
            assert!(t.iter().any(|x| x == want), "{want} in {t:?}");
        }
        let fields = SearchIndex::license_fields(&r);
        assert!(terms::matches("efgh", fields.iter().map(String::as_str)));
        assert!(terms::matches(
            "abcdefgh",
            fields.iter().map(String::as_str)
        ));
    }
}
