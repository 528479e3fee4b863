//! The resource port on the embedded store: tables of their own in the one redb file.
//!
//! Every change is one redb write transaction: it reads what it checks and writes what it
//! changes inside it, and redb runs one writer at a time, so two allocations of the same
//! resource are serialized and the second sees the first's holder. A refused change returns
//! before the commit: nothing is written. Resource writes do not go through the license
//! writer's group commit (`writer.rs`); they are rare and take their own transaction.
//!
//! | table | key → value |
//! |---|---|
//! | `resources` | id → resource (JSON) |
//! | `resource_names` | `type:identifier` → id (the pool's uniqueness) |
//! | `resource_types` | (type, id) → () |
//! | `resource_free` | (type, id) → (), the free ones |
//! | `resource_held` | (license key, id) → () |
//! | `resource_counts` | type → (free, allocated); a type leaves with its last resource |
//! | `resource_seq` | `"next_id"` → last id given |

use chrono::{DateTime, Utc};
use redb::{ReadableTableMetadata, Table, WriteTransaction};
use serde::{Deserialize, Serialize};
use tessera_actors::LicenseKey;

use super::tables::{decode, encode, read_table, unavailable};
use super::*;
use crate::store::resources::{
    Change, CreateOutcome, Created, MAX_RESOURCE_TYPES, Removal, Resource, ResourceIndex,
    ResourceStore, ResourceType, TypeCounts,
};

pub(super) const RESOURCES: TableDefinition<u64, &[u8]> = TableDefinition::new("resources");
pub(super) const NAMES: TableDefinition<&str, u64> = TableDefinition::new("resource_names");
pub(super) const BY_TYPE: TableDefinition<(&str, u64), ()> = TableDefinition::new("resource_types");
pub(super) const FREE: TableDefinition<(&str, u64), ()> = TableDefinition::new("resource_free");
pub(super) const HELD: TableDefinition<(&str, u64), ()> = TableDefinition::new("resource_held");
pub(super) const COUNTS: TableDefinition<&str, (u64, u64)> =
    TableDefinition::new("resource_counts");
pub(super) const SEQ: TableDefinition<&str, u64> = TableDefinition::new("resource_seq");

/// A resource as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    kind: String,
    identifier: String,
    #[serde(default)]
    holder: Option<String>,
    #[serde(default)]
    allocated_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl Stored {
    fn into_resource(self, id: u64) -> Result<Resource, StoreError> {
        let kind = ResourceType::new(&self.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("resource {id}: bad type")))?;
        let holder = match self.holder {
            Some(k) => Some(
                LicenseKey::parse(&k)
                    .map_err(|_| StoreError::Corrupt(format!("resource {id}: bad holder")))?,
            ),
            None => None,
        };
        Ok(Resource {
            id,
            kind,
            identifier: self.identifier,
            holder,
            allocated_at: self.allocated_at,
            created_at: self.created_at,
        })
    }
}

fn name_key(kind: &str, identifier: &str) -> String {
    format!("{kind}:{identifier}")
}

/// The resource tables inside one write transaction.
struct Tables<'t> {
    resources: Table<'t, u64, &'static [u8]>,
    names: Table<'t, &'static str, u64>,
    by_type: Table<'t, (&'static str, u64), ()>,
    free: Table<'t, (&'static str, u64), ()>,
    held: Table<'t, (&'static str, u64), ()>,
    counts: Table<'t, &'static str, (u64, u64)>,
    seq: Table<'t, &'static str, u64>,
}

impl<'t> Tables<'t> {
    fn open(tx: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            resources: tx.open_table(RESOURCES).map_err(unavailable)?,
            names: tx.open_table(NAMES).map_err(unavailable)?,
            by_type: tx.open_table(BY_TYPE).map_err(unavailable)?,
            free: tx.open_table(FREE).map_err(unavailable)?,
            held: tx.open_table(HELD).map_err(unavailable)?,
            counts: tx.open_table(COUNTS).map_err(unavailable)?,
            seq: tx.open_table(SEQ).map_err(unavailable)?,
        })
    }

    fn get(&self, id: u64) -> Result<Option<Stored>, StoreError> {
        let value = self.resources.get(id).map_err(unavailable)?;
        value.map(|v| decode::<Stored>(v.value())).transpose()
    }

    fn put(&mut self, id: u64, stored: &Stored) -> Result<(), StoreError> {
        self.resources
            .insert(id, encode(stored)?.as_slice())
            .map_err(unavailable)?;
        Ok(())
    }

    fn counts_of(&self, kind: &str) -> Result<(u64, u64), StoreError> {
        Ok(self
            .counts
            .get(kind)
            .map_err(unavailable)?
            .map_or((0, 0), |v| v.value()))
    }

    /// Moves `kind`'s counts by `free` and `allocated` (each -1, 0 or +1); a type whose counts
    /// both reach zero is removed.
    fn bump(&mut self, kind: &str, free: i8, allocated: i8) -> Result<(), StoreError> {
        let (f, a) = self.counts_of(kind)?;
        let step = |n: u64, d: i8| match d {
            1 => n.saturating_add(1),
            -1 => n.saturating_sub(1),
            _ => n,
        };
        let (f, a) = (step(f, free), step(a, allocated));
        if f == 0 && a == 0 {
            self.counts.remove(kind).map_err(unavailable)?;
        } else {
            self.counts.insert(kind, (f, a)).map_err(unavailable)?;
        }
        Ok(())
    }

    fn next_id(&mut self) -> Result<u64, StoreError> {
        let last = self
            .seq
            .get("next_id")
            .map_err(unavailable)?
            .map_or(0, |v| v.value());
        let id = last
            .checked_add(1)
            .ok_or_else(|| StoreError::Corrupt("resource ids exhausted".into()))?;
        self.seq.insert("next_id", id).map_err(unavailable)?;
        Ok(id)
    }

    fn type_count(&self) -> Result<u64, StoreError> {
        self.counts.len().map_err(unavailable)
    }
}

/// Runs `f` in one write transaction, committed only when it answers `(true, _)`.
fn in_write<T>(
    db: &Database,
    f: impl FnOnce(&mut Tables<'_>) -> Result<(bool, T), StoreError>,
) -> Result<T, StoreError> {
    let tx = db.begin_write().map_err(unavailable)?;
    let (commit, out) = {
        let mut tables = Tables::open(&tx)?;
        f(&mut tables)?
    };
    if commit {
        tx.commit().map_err(unavailable)?;
    } else {
        tx.abort().map_err(unavailable)?;
    }
    Ok(out)
}

/// Distinct ids in increasing order.
fn distinct(ids: &[u64]) -> Vec<u64> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Reads up to `limit` ids above `after` of a `(prefix, id)` index.
fn index_ids<T: ReadableTable<(&'static str, u64), ()>>(
    table: &T,
    prefix: &str,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<u64>, StoreError> {
    let Some(from) = after.map_or(Some(0), |a| a.checked_add(1)) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in table
        .range((prefix, from)..=(prefix, u64::MAX))
        .map_err(unavailable)?
        .take(limit)
    {
        let (k, _) = row.map_err(unavailable)?;
        out.push(k.value().1);
    }
    Ok(out)
}

/// Removes resource `id` and its index entries and counts, if it exists.
fn unput(t: &mut Tables<'_>, id: u64) -> Result<(), StoreError> {
    let Some(old) = t.get(id)? else {
        return Ok(());
    };
    let k = old.kind.as_str();
    t.names
        .remove(name_key(k, &old.identifier).as_str())
        .map_err(unavailable)?;
    t.by_type.remove((k, id)).map_err(unavailable)?;
    match &old.holder {
        Some(holder) => {
            t.held.remove((holder.as_str(), id)).map_err(unavailable)?;
            t.bump(k, 0, -1)?;
        }
        None => {
            t.free.remove((k, id)).map_err(unavailable)?;
            t.bump(k, -1, 0)?;
        }
    }
    t.resources.remove(id).map_err(unavailable)?;
    Ok(())
}

/// Writes `r` as given (for `tessera migrate`; see `store::transfer`).
fn put_as_is(t: &mut Tables<'_>, r: &Resource) -> Result<(), StoreError> {
    let k = r.kind.as_str();
    let name = name_key(k, &r.identifier);
    unput(t, r.id)?;
    let other = t
        .names
        .get(name.as_str())
        .map_err(unavailable)?
        .map(|v| v.value());
    if let Some(other) = other {
        unput(t, other)?;
    }
    let stored = Stored {
        kind: k.to_owned(),
        identifier: r.identifier.clone(),
        holder: r.holder.as_ref().map(|h| h.as_str().to_owned()),
        allocated_at: r.allocated_at,
        created_at: r.created_at,
    };
    t.put(r.id, &stored)?;
    t.names.insert(name.as_str(), r.id).map_err(unavailable)?;
    t.by_type.insert((k, r.id), ()).map_err(unavailable)?;
    match &r.holder {
        Some(holder) => {
            t.held
                .insert((holder.as_str(), r.id), ())
                .map_err(unavailable)?;
            t.bump(k, 0, 1)?;
        }
        None => {
            t.free.insert((k, r.id), ()).map_err(unavailable)?;
            t.bump(k, 1, 0)?;
        }
    }
    raise_seq(t, r.id)
}

fn raise_seq(t: &mut Tables<'_>, at_least: u64) -> Result<(), StoreError> {
    let now = t
        .seq
        .get("next_id")
        .map_err(unavailable)?
        .map_or(0, |v| v.value());
    if now < at_least {
        t.seq.insert("next_id", at_least).map_err(unavailable)?;
    }
    Ok(())
}

impl EmbeddedStore {
    /// See [`crate::store::Transfer::put_resource`].
    pub(super) async fn put_resource_as_is(&self, r: Resource) -> Result<(), StoreError> {
        self.blocking(move |db| in_write(db, |t| put_as_is(t, &r).map(|()| (true, ()))))
            .await
    }

    /// See [`crate::store::Transfer::resource_seq`].
    pub(super) async fn last_resource_id(&self) -> Result<u64, StoreError> {
        self.blocking(|db| {
            let tx = db.begin_read().map_err(unavailable)?;
            Ok(match read_table(&tx, SEQ)? {
                Some(t) => t
                    .get("next_id")
                    .map_err(unavailable)?
                    .map_or(0, |v| v.value()),
                None => 0,
            })
        })
        .await
    }

    /// See [`crate::store::Transfer::raise_resource_seq`].
    pub(super) async fn raise_last_resource_id(&self, at_least: u64) -> Result<(), StoreError> {
        self.blocking(move |db| in_write(db, |t| raise_seq(t, at_least).map(|()| (true, ()))))
            .await
    }
}

#[async_trait]
impl ResourceStore for EmbeddedStore {
    async fn create(
        &self,
        kind: &ResourceType,
        identifiers: &[String],
        at: DateTime<Utc>,
    ) -> Result<CreateOutcome, StoreError> {
        let kind = kind.clone();
        let identifiers = identifiers.to_vec();
        self.blocking(move |db| {
            in_write(db, |t| {
                let k = kind.as_str();
                if t.counts.get(k).map_err(unavailable)?.is_none()
                    && t.type_count()? >= MAX_RESOURCE_TYPES as u64
                {
                    return Ok((false, CreateOutcome::TooManyTypes));
                }
                let mut out = Vec::with_capacity(identifiers.len());
                for identifier in &identifiers {
                    let name = name_key(k, identifier);
                    let existing = t.names.get(name.as_str()).map_err(unavailable)?;
                    if let Some(id) = existing.map(|v| v.value()) {
                        let stored = t
                            .get(id)?
                            .ok_or_else(|| StoreError::Corrupt(format!("resource {id} lost")))?;
                        out.push(Created {
                            resource: stored.into_resource(id)?,
                            created: false,
                        });
                        continue;
                    }
                    let id = t.next_id()?;
                    let stored = Stored {
                        kind: k.to_owned(),
                        identifier: identifier.clone(),
                        holder: None,
                        allocated_at: None,
                        created_at: at,
                    };
                    t.put(id, &stored)?;
                    t.names.insert(name.as_str(), id).map_err(unavailable)?;
                    t.by_type.insert((k, id), ()).map_err(unavailable)?;
                    t.free.insert((k, id), ()).map_err(unavailable)?;
                    t.bump(k, 1, 0)?;
                    out.push(Created {
                        resource: stored.into_resource(id)?,
                        created: true,
                    });
                }
                Ok((true, CreateOutcome::Done(out)))
            })
        })
        .await
    }

    async fn page(
        &self,
        index: ResourceIndex<'_>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Resource>, StoreError> {
        enum Owned {
            All,
            Index(TableDefinition<'static, (&'static str, u64), ()>, String),
        }
        let index = match index {
            ResourceIndex::All => Owned::All,
            ResourceIndex::OfType(k) => Owned::Index(BY_TYPE, k.as_str().to_owned()),
            ResourceIndex::FreeOfType(k) => Owned::Index(FREE, k.as_str().to_owned()),
            ResourceIndex::HeldBy(l) => Owned::Index(HELD, l.as_str().to_owned()),
        };
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some(resources) = read_table(&tx, RESOURCES)? else {
                return Ok(Vec::new());
            };
            let ids = match index {
                Owned::All => {
                    let Some(from) = after.map_or(Some(0), |a| a.checked_add(1)) else {
                        return Ok(Vec::new());
                    };
                    let mut out = Vec::new();
                    for row in resources.range(from..).map_err(unavailable)?.take(limit) {
                        let (id, v) = row.map_err(unavailable)?;
                        out.push(decode::<Stored>(v.value())?.into_resource(id.value())?);
                    }
                    return Ok(out);
                }
                Owned::Index(def, prefix) => match read_table(&tx, def)? {
                    Some(table) => index_ids(&table, &prefix, after, limit)?,
                    None => Vec::new(),
                },
            };
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let stored = resources.get(id).map_err(unavailable)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("index names lost resource {id}"))
                })?;
                out.push(decode::<Stored>(stored.value())?.into_resource(id)?);
            }
            Ok(out)
        })
        .await
    }

    async fn allocate(
        &self,
        license: &LicenseKey,
        ids: &[u64],
        kind: Option<&ResourceType>,
        at: DateTime<Utc>,
    ) -> Result<Change, StoreError> {
        let (license, ids, kind) = (license.clone(), distinct(ids), kind.cloned());
        self.blocking(move |db| {
            in_write(db, |t| {
                let (mut found, mut unknown, mut wrong, mut taken) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for &id in &ids {
                    match t.get(id)? {
                        None => unknown.push(id),
                        Some(s) => {
                            if kind.as_ref().is_some_and(|k| k.as_str() != s.kind) {
                                wrong.push(id);
                            }
                            if s.holder.is_some() {
                                taken.push(id);
                            }
                            found.push((id, s));
                        }
                    }
                }
                if !unknown.is_empty() {
                    return Ok((false, Change::Unknown(unknown)));
                }
                if !wrong.is_empty() {
                    return Ok((false, Change::WrongType(wrong)));
                }
                if !taken.is_empty() {
                    return Ok((false, Change::Conflict(taken)));
                }
                let mut done = Vec::with_capacity(found.len());
                for (id, mut s) in found {
                    s.holder = Some(license.as_str().to_owned());
                    s.allocated_at = Some(at);
                    t.put(id, &s)?;
                    t.free.remove((s.kind.as_str(), id)).map_err(unavailable)?;
                    t.held
                        .insert((license.as_str(), id), ())
                        .map_err(unavailable)?;
                    t.bump(&s.kind, -1, 1)?;
                    done.push(s.into_resource(id)?);
                }
                Ok((true, Change::Done(done)))
            })
        })
        .await
    }

    async fn release(&self, license: &LicenseKey, ids: &[u64]) -> Result<Change, StoreError> {
        let (license, ids) = (license.clone(), distinct(ids));
        self.blocking(move |db| {
            in_write(db, |t| {
                let (mut found, mut unknown, mut foreign) = (Vec::new(), Vec::new(), Vec::new());
                for &id in &ids {
                    match t.get(id)? {
                        None => unknown.push(id),
                        Some(s) if s.holder.as_deref() != Some(license.as_str()) => {
                            foreign.push(id);
                        }
                        Some(s) => found.push((id, s)),
                    }
                }
                if !unknown.is_empty() {
                    return Ok((false, Change::Unknown(unknown)));
                }
                if !foreign.is_empty() {
                    return Ok((false, Change::Conflict(foreign)));
                }
                let mut done = Vec::with_capacity(found.len());
                for (id, s) in found {
                    done.push(free_one(t, &license, id, s)?);
                }
                Ok((true, Change::Done(done)))
            })
        })
        .await
    }

    async fn release_all(&self, license: &LicenseKey) -> Result<Vec<u64>, StoreError> {
        let license = license.clone();
        self.blocking(move |db| {
            in_write(db, |t| {
                let ids = index_ids(&t.held, license.as_str(), None, usize::MAX)?;
                for &id in &ids {
                    let s = t
                        .get(id)?
                        .ok_or_else(|| StoreError::Corrupt(format!("held resource {id} lost")))?;
                    free_one(t, &license, id, s)?;
                }
                Ok((true, ids))
            })
        })
        .await
    }

    async fn delete(&self, id: u64) -> Result<Removal, StoreError> {
        self.blocking(move |db| {
            in_write(db, |t| {
                let Some(s) = t.get(id)? else {
                    return Ok((false, Removal::Unknown));
                };
                if s.holder.is_some() {
                    return Ok((false, Removal::Allocated));
                }
                t.resources.remove(id).map_err(unavailable)?;
                t.names
                    .remove(name_key(&s.kind, &s.identifier).as_str())
                    .map_err(unavailable)?;
                t.by_type
                    .remove((s.kind.as_str(), id))
                    .map_err(unavailable)?;
                t.free.remove((s.kind.as_str(), id)).map_err(unavailable)?;
                t.bump(&s.kind, -1, 0)?;
                Ok((true, Removal::Deleted(s.into_resource(id)?)))
            })
        })
        .await
    }

    async fn counts(&self, kinds: &[ResourceType]) -> Result<Vec<TypeCounts>, StoreError> {
        let kinds = kinds.to_vec();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let table = read_table(&tx, COUNTS)?;
            let mut out = Vec::with_capacity(kinds.len());
            for kind in kinds {
                let (free, allocated) = match &table {
                    Some(t) => t
                        .get(kind.as_str())
                        .map_err(unavailable)?
                        .map_or((0, 0), |v| v.value()),
                    None => (0, 0),
                };
                out.push(TypeCounts {
                    kind,
                    free,
                    allocated,
                });
            }
            Ok(out)
        })
        .await
    }
}

/// Returns one resource held by `license` to its pool; the resource as it is now.
fn free_one(
    t: &mut Tables<'_>,
    license: &LicenseKey,
    id: u64,
    mut s: Stored,
) -> Result<Resource, StoreError> {
    s.holder = None;
    s.allocated_at = None;
    t.put(id, &s)?;
    t.held.remove((license.as_str(), id)).map_err(unavailable)?;
    t.free
        .insert((s.kind.as_str(), id), ())
        .map_err(unavailable)?;
    t.bump(&s.kind, 1, -1)?;
    s.into_resource(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn kind(name: &str) -> ResourceType {
        ResourceType::new(name).unwrap()
    }

    #[tokio::test]
    async fn a_refused_allocation_writes_nothing_and_counts_follow_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("t.redb")).unwrap();
        let at = Utc::now();
        let server = kind("server");
        let CreateOutcome::Done(made) = store
            .create(&server, &["a".into(), "b".into()], at)
            .await
            .unwrap()
        else {
            panic!("created");
        };
        let (a, b) = (made[0].resource.id, made[1].resource.id);
        let one = LicenseKey::parse("ONE-1").unwrap();
        let two = LicenseKey::parse("TWO-2").unwrap();
        assert!(matches!(
            store.allocate(&one, &[a], None, at).await.unwrap(),
            Change::Done(_)
        ));
        assert_eq!(
            store.allocate(&two, &[b, a], None, at).await.unwrap(),
            Change::Conflict(vec![a])
        );
        // b stayed free: the refused allocation wrote nothing.
        let free = store
            .page(ResourceIndex::FreeOfType(&server), None, 10)
            .await
            .unwrap();
        assert_eq!(free.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b]);
        let counts = store.counts(std::slice::from_ref(&server)).await.unwrap();
        assert_eq!((counts[0].free, counts[0].allocated), (1, 1));
        assert_eq!(store.release_all(&one).await.unwrap(), vec![a]);
        assert_eq!(
            store.delete(a).await.unwrap(),
            Removal::Deleted(made[0].resource.clone())
        );
        assert_eq!(
            store.delete(b).await.unwrap(),
            Removal::Deleted(made[1].resource.clone())
        );
        let counts = store.counts(std::slice::from_ref(&server)).await.unwrap();
        assert_eq!((counts[0].free, counts[0].allocated), (0, 0));
    }
}
