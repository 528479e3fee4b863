//! Resources and licenses: allocate (all or none), release, what a license holds, and
//! whether a pool has enough free resources. The caller names an existing license; the
//! store makes each change atomic across servers.

use std::collections::BTreeSet;

use chrono::Utc;
use tessera_actors::LicenseKey;

use super::error::ResourceError;
use super::service::Resources;
use super::{gauges, validate};
use crate::store::resources::{Change, Resource, ResourceIndex, ResourceType};

/// Most resources listed for one license.
pub const MAX_HELD_LISTED: usize = 10_000;
/// Resources read per step when listing what a license holds.
const HELD_STEP: usize = 1_000;

/// The answer to an availability check.
#[derive(Debug, Clone)]
pub struct Availability {
    /// Whether at least the asked count is free.
    pub available: bool,
    /// How many of the type are free.
    pub free: u64,
    /// Up to the asked count of free resources, lowest ids first (the ones to allocate).
    pub resources: Vec<Resource>,
}

/// The distinct types of `resources`, for the gauges.
fn kinds(resources: &[Resource]) -> Vec<ResourceType> {
    let set: BTreeSet<&ResourceType> = resources.iter().map(|r| &r.kind).collect();
    set.into_iter().cloned().collect()
}

impl Resources {
    /// Gives `ids` to `license`, all or none; with `kind`, each must be of that type.
    pub async fn allocate(
        &self,
        license: &LicenseKey,
        ids: &[u64],
        kind: Option<&str>,
    ) -> Result<Vec<Resource>, ResourceError> {
        let ids = validate::resource_ids("resource_ids", ids)?;
        let kind = kind
            .map(|k| validate::resource_type("resource_type", k))
            .transpose()?;
        match self
            .store
            .allocate(license, &ids, kind.as_ref(), Utc::now())
            .await?
        {
            Change::Done(resources) => {
                tracing::info!(event = "resource.allocated", license = %license.masked(), count = resources.len(), "resources allocated");
                gauges::refresh(self.store.as_ref(), &kinds(&resources)).await;
                Ok(resources)
            }
            Change::Unknown(ids) => Err(ResourceError::NotFound(ids)),
            Change::WrongType(ids) => Err(ResourceError::invalid(
                "resource_ids",
                format!(
                    "resource {} is not of type `{}`",
                    super::error::list(&ids),
                    kind.map(|k| k.to_string()).unwrap_or_default()
                ),
            )),
            Change::Conflict(ids) => Err(ResourceError::Unavailable(ids)),
        }
    }

    /// Returns `ids`, all held by `license`, to their pools; all or none.
    pub async fn release(
        &self,
        license: &LicenseKey,
        ids: &[u64],
    ) -> Result<Vec<Resource>, ResourceError> {
        let ids = validate::resource_ids("resource_ids", ids)?;
        match self.store.release(license, &ids).await? {
            Change::Done(resources) => {
                tracing::info!(event = "resource.released", license = %license.masked(), count = resources.len(), "resources released");
                gauges::refresh(self.store.as_ref(), &kinds(&resources)).await;
                Ok(resources)
            }
            Change::Unknown(ids) => Err(ResourceError::NotFound(ids)),
            Change::Conflict(ids) | Change::WrongType(ids) => Err(ResourceError::NotAllocated(ids)),
        }
    }

    /// The resources `license` holds, in id order (at most [`MAX_HELD_LISTED`]).
    pub async fn held_by(&self, license: &LicenseKey) -> Result<Vec<Resource>, ResourceError> {
        let mut out: Vec<Resource> = Vec::new();
        loop {
            let after = out.last().map(|r| r.id);
            let batch = self
                .store
                .page(ResourceIndex::HeldBy(license), after, HELD_STEP)
                .await?;
            let full = batch.len() == HELD_STEP;
            out.extend(batch);
            if !full || out.len() >= MAX_HELD_LISTED {
                out.truncate(MAX_HELD_LISTED);
                return Ok(out);
            }
        }
    }

    /// Whether `count` resources of `kind` are free, and which.
    pub async fn availability(
        &self,
        kind: Option<&str>,
        count: Option<&str>,
    ) -> Result<Availability, ResourceError> {
        let kind = validate::resource_type("type", kind.unwrap_or_default())?;
        let count = validate::count(count)?;
        let wanted =
            usize::try_from(count).map_err(|_| ResourceError::invalid("count", "out of range"))?;
        let counts = self.store.counts(std::slice::from_ref(&kind)).await?;
        let free = counts.first().map_or(0, |c| c.free);
        gauges::set(&counts);
        let resources = self
            .store
            .page(ResourceIndex::FreeOfType(&kind), None, wanted)
            .await?;
        Ok(Availability {
            available: free >= count,
            free,
            resources,
        })
    }
}
