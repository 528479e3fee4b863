//! The transfer port on the embedded store (see `store::transfer`): reads of the meta,
//! catalog-terms and counter tables, and a license written as given through the license
//! writer (one transaction: record, activations, sessions and their index entries).

use redb::ReadableTable;
use tessera_actors::{LicenseSnapshot, StoreError};

use super::catalog::{SEQ, TERMS};
use super::events::EVENTS;
use super::tables::{COUNTERS, decode, encode, read_table, unavailable};
use super::{EmbeddedStore, META, ReadableDatabase, async_trait};
use crate::store::catalog::CatalogKind;
use crate::store::events::{Event, EventId, NewEvent};
use crate::store::resources::Resource;
use crate::store::transfer::{IdCounters, PluginKvEntry, Transfer, unstored};

/// Separates a catalog kind from an id in `catalog_terms` keys (as `catalog.rs` writes them).
const US: char = '\x1f';

#[async_trait]
impl Transfer for EmbeddedStore {
    async fn meta_names(&self) -> Result<Vec<String>, StoreError> {
        self.blocking(|db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let mut names = Vec::new();
            if let Some(t) = read_table(&tx, META)? {
                for row in t.iter().map_err(unavailable)? {
                    names.push(row.map_err(unavailable)?.0.value().to_owned());
                }
            }
            Ok(names)
        })
        .await
    }

    async fn put_license(&self, license: &LicenseSnapshot) -> Result<(), StoreError> {
        let after = license.clone();
        self.writer()
            .write(move |t| {
                let key = &after.record.key;
                let before = match t.snapshot(key)? {
                    Some(before) => {
                        if before.record.id != after.record.id {
                            t.license_ids
                                .remove(before.record.id)
                                .map_err(unavailable)?;
                        }
                        before
                    }
                    None => {
                        t.licenses
                            .insert(
                                key.as_str(),
                                super::tables::encode(&after.record)?.as_slice(),
                            )
                            .map_err(unavailable)?;
                        LicenseSnapshot {
                            record: after.record.clone(),
                            activations: Vec::new(),
                            sessions: Vec::new(),
                        }
                    }
                };
                t.write_diff(&before, &after)?;
                t.license_ids
                    .insert(after.record.id, key.as_str())
                    .map_err(unavailable)?;
                Ok(())
            })
            .await
    }

    async fn id_counters(&self) -> Result<IdCounters, StoreError> {
        self.blocking(|db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some(t) = read_table(&tx, COUNTERS)? else {
                return Ok(IdCounters::default());
            };
            let get = |name: &str| -> Result<u64, StoreError> {
                Ok(t.get(name).map_err(unavailable)?.map_or(0, |v| v.value()))
            };
            Ok(IdCounters {
                license: get("license_id")?,
                activation: get("activation_id")?,
            })
        })
        .await
    }

    async fn raise_id_counters(&self, at_least: IdCounters) -> Result<(), StoreError> {
        self.writer()
            .write(move |t| {
                for (name, floor) in [
                    ("license_id", at_least.license),
                    ("activation_id", at_least.activation),
                ] {
                    let now = t
                        .counters
                        .get(name)
                        .map_err(unavailable)?
                        .map_or(0, |v| v.value());
                    if now < floor {
                        t.counters.insert(name, floor).map_err(unavailable)?;
                    }
                }
                Ok(())
            })
            .await
    }

    async fn catalog_terms(&self, kind: CatalogKind, id: &str) -> Result<Vec<String>, StoreError> {
        let key = format!("{}{US}{id}", kind.as_str());
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some(t) = read_table(&tx, TERMS)? else {
                return Ok(Vec::new());
            };
            Ok(t.get(key.as_str())
                .map_err(unavailable)?
                .map(|v| v.value().split('\0').map(str::to_owned).collect())
                .unwrap_or_default())
        })
        .await
    }

    async fn catalog_indexed(&self, kind: CatalogKind) -> Result<Vec<String>, StoreError> {
        let (lo, hi) = (
            format!("{}{US}", kind.as_str()),
            format!("{}\x20", kind.as_str()),
        );
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let mut ids = Vec::new();
            if let Some(t) = read_table(&tx, TERMS)? {
                for row in t.range(lo.as_str()..hi.as_str()).map_err(unavailable)? {
                    let (k, _) = row.map_err(unavailable)?;
                    if let Some(id) = k.value().get(lo.len()..) {
                        ids.push(id.to_owned());
                    }
                }
            }
            Ok(ids)
        })
        .await
    }

    async fn catalog_seq(&self, kind: CatalogKind) -> Result<u64, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some(t) = read_table(&tx, SEQ)? else {
                return Ok(0);
            };
            Ok(t.get(kind.as_str())
                .map_err(unavailable)?
                .map_or(0, |v| v.value()))
        })
        .await
    }

    async fn raise_catalog_seq(&self, kind: CatalogKind, at_least: u64) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            {
                let mut t = tx.open_table(SEQ).map_err(unavailable)?;
                let now = t
                    .get(kind.as_str())
                    .map_err(unavailable)?
                    .map_or(0, |v| v.value());
                if now < at_least {
                    t.insert(kind.as_str(), at_least).map_err(unavailable)?;
                }
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn put_resource(&self, resource: &Resource) -> Result<(), StoreError> {
        self.put_resource_as_is(resource.clone()).await
    }

    async fn resource_seq(&self) -> Result<u64, StoreError> {
        self.last_resource_id().await
    }

    async fn raise_resource_seq(&self, at_least: u64) -> Result<(), StoreError> {
        self.raise_last_resource_id(at_least).await
    }

    async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some(t) = read_table(&tx, EVENTS)? else {
                return Ok(None);
            };
            t.get((id.ms, id.seq))
                .map_err(unavailable)?
                .map(|v| Ok(decode::<NewEvent>(v.value())?.stored(id)))
                .transpose()
        })
        .await
    }

    async fn put_event(&self, event: &Event) -> Result<(), StoreError> {
        let (id, record) = unstored(event)?;
        let bytes = encode(&record)?;
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            tx.open_table(EVENTS)
                .map_err(unavailable)?
                .insert((id.ms, id.seq), bytes.as_slice())
                .map_err(unavailable)?;
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn plugin_kv_entries(&self) -> Result<Vec<PluginKvEntry>, StoreError> {
        Ok(Vec::new())
    }
}
