//! Managing the pools: import identifiers (idempotent on type and identifier), list them with
//! filters and a cursor, delete a free one.

use chrono::Utc;

use super::error::ResourceError;
use super::service::Resources;
use super::{gauges, validate};
use crate::store::resources::{
    CreateOutcome, MAX_RESOURCE_TYPES, Removal, Resource, ResourceIndex, ResourceStatus,
};

/// Most resources one listing call reads to fill a filtered page; past that the page ends
/// early with a cursor, so a sparse filter costs bounded work per call.
const MAX_SCANNED: usize = 5_000;
/// Resources read per step of a filtered scan.
const SCAN_STEP: usize = 500;

/// What an import did.
#[derive(Debug, Clone)]
pub struct Import {
    /// Resources added to the pool.
    pub created: usize,
    /// Identifiers that were in the pool already (left as they were).
    pub existing: usize,
    /// Every identifier's resource, in the order given (repeats once).
    pub resources: Vec<Resource>,
}

/// The raw parameters of a listing, as the caller sent them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Listing<'a> {
    /// `type`.
    pub kind: Option<&'a str>,
    /// `status`: `free` or `allocated`.
    pub status: Option<&'a str>,
    /// `cursor`: the previous page's `next_cursor`.
    pub cursor: Option<&'a str>,
    /// `limit`.
    pub limit: Option<&'a str>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    /// The resources, in id order.
    pub items: Vec<Resource>,
    /// Where the next page starts, if there may be one.
    pub next_cursor: Option<String>,
}

impl Resources {
    /// Adds `identifiers` to the pool of `kind`; those already there are returned as they are.
    pub async fn import(
        &self,
        kind: &str,
        identifiers: &[String],
    ) -> Result<Import, ResourceError> {
        let kind = validate::resource_type("type", kind)?;
        let identifiers = validate::identifiers("identifiers", identifiers)?;
        let created = match self.store.create(&kind, &identifiers, Utc::now()).await? {
            CreateOutcome::Done(c) => c,
            CreateOutcome::TooManyTypes => {
                return Err(ResourceError::invalid(
                    "type",
                    format!(
                        "is a new type and the server holds {MAX_RESOURCE_TYPES} types already"
                    ),
                ));
            }
        };
        let new = created.iter().filter(|c| c.created).count();
        if new > 0 {
            tracing::info!(event = "resource.created", r#type = %kind, count = new, "resources added to a pool");
        }
        gauges::refresh(self.store.as_ref(), std::slice::from_ref(&kind)).await;
        Ok(Import {
            created: new,
            existing: created.len() - new,
            resources: created.into_iter().map(|c| c.resource).collect(),
        })
    }

    /// One page of the pools, filtered by type and status, in id order.
    pub async fn list(&self, q: Listing<'_>) -> Result<Page, ResourceError> {
        let kind = q
            .kind
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| validate::resource_type("type", k))
            .transpose()?;
        let status = validate::status(q.status)?;
        let mut after = validate::cursor(q.cursor)?;
        let limit = validate::limit(q.limit)?;
        let (index, exact) = match (&kind, status) {
            (Some(k), Some(ResourceStatus::Free)) => (ResourceIndex::FreeOfType(k), true),
            (Some(k), s) => (ResourceIndex::OfType(k), s.is_none()),
            (None, s) => (ResourceIndex::All, s.is_none()),
        };
        if exact {
            // One more than asked tells whether a next page exists.
            let mut items = self.store.page(index, after, limit + 1).await?;
            let next_cursor = if items.len() > limit {
                items.truncate(limit);
                items.last().map(|r| r.id.to_string())
            } else {
                None
            };
            return Ok(Page { items, next_cursor });
        }
        let mut items = Vec::new();
        let mut scanned = 0;
        let next_cursor = loop {
            let batch = self.store.page(index, after, SCAN_STEP).await?;
            let full = batch.len() == SCAN_STEP;
            for r in batch {
                after = Some(r.id);
                scanned += 1;
                if Some(r.status()) == status {
                    items.push(r);
                    if items.len() == limit {
                        break;
                    }
                }
            }
            if items.len() == limit {
                break after.map(|a| a.to_string());
            }
            if !full {
                break None;
            }
            if scanned >= MAX_SCANNED {
                break after.map(|a| a.to_string());
            }
        };
        Ok(Page { items, next_cursor })
    }

    /// Removes a free resource from its pool; the resource as it was.
    pub async fn delete(&self, id: &str) -> Result<Resource, ResourceError> {
        let id = validate::id("id", id)?;
        match self.store.delete(id).await? {
            Removal::Deleted(r) => {
                tracing::info!(event = "resource.deleted", id, r#type = %r.kind, "resource removed from its pool");
                gauges::refresh(self.store.as_ref(), std::slice::from_ref(&r.kind)).await;
                Ok(r)
            }
            Removal::Unknown => Err(ResourceError::NotFound(vec![id])),
            Removal::Allocated => Err(ResourceError::Unavailable(vec![id])),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use tessera_actors::LicenseKey;

    use super::*;
    use crate::store::EmbeddedStore;

    fn service() -> (Resources, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("t.redb")).unwrap();
        (Resources::new(Arc::new(store)), dir)
    }

    async fn all_pages(svc: &Resources, status: &str, limit: &str) -> Vec<u64> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = svc
                .list(Listing {
                    kind: Some("seat"),
                    status: Some(status),
                    cursor: cursor.as_deref(),
                    limit: Some(limit),
                })
                .await
                .unwrap();
            out.extend(page.items.iter().map(|r| r.id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    #[tokio::test]
    async fn filtered_listings_page_through_every_match_once() {
        let (svc, _dir) = service();
        let names: Vec<String> = (0..30).map(|i| format!("seat-{i}")).collect();
        let import = svc.import("Seat", &names).await.unwrap();
        assert_eq!((import.created, import.existing), (30, 0));
        let again = svc.import("seat", &names[..2]).await.unwrap();
        assert_eq!((again.created, again.existing), (0, 2));
        let ids: Vec<u64> = import.resources.iter().map(|r| r.id).collect();
        let every_third: Vec<u64> = ids.iter().copied().step_by(3).collect();
        let license = LicenseKey::parse("HOLD-ER").unwrap();
        svc.allocate(&license, &every_third, Some("seat"))
            .await
            .unwrap();

        assert_eq!(all_pages(&svc, "allocated", "4").await, every_third);
        let free: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| !every_third.contains(id))
            .collect();
        assert_eq!(all_pages(&svc, "free", "7").await, free);
        assert_eq!(all_pages(&svc, "", "500").await, ids);
        let held = svc.held_by(&license).await.unwrap();
        assert_eq!(held.iter().map(|r| r.id).collect::<Vec<_>>(), every_third);
    }

    #[tokio::test]
    async fn deleting_needs_a_free_resource() {
        let (svc, _dir) = service();
        let import = svc.import("domain", &["a.example".into()]).await.unwrap();
        let id = import.resources[0].id;
        let license = LicenseKey::parse("HOLD-ER").unwrap();
        svc.allocate(&license, &[id], None).await.unwrap();
        assert!(matches!(
            svc.delete(&id.to_string()).await,
            Err(ResourceError::Unavailable(ids)) if ids == vec![id]
        ));
        svc.release(&license, &[id]).await.unwrap();
        assert_eq!(svc.delete(&id.to_string()).await.unwrap().id, id);
        assert!(matches!(
            svc.delete(&id.to_string()).await,
            Err(ResourceError::NotFound(_))
        ));
        assert!(matches!(
            svc.delete("x").await,
            Err(ResourceError::Invalid { field: "id", .. })
        ));
    }
}
