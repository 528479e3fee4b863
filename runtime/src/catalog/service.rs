//! The catalog service: the merged snapshot, its refresh when any server changes the
//! catalog, and the changes themselves (compare-and-swap on the stored definition, so two
//! servers changing one product never lose an update).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_actors::StoreError;
use tessera_config::Config;

use super::error::CatalogError;
use super::records::{MAX_RELEASES, PlanDef, ProductDef, Release};
use super::snapshot::Snapshot;
use crate::store::MetaStore;
use crate::store::catalog::{CatalogKind, CatalogStore, Entry};

/// How often each server checks whether another server changed the catalog.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The metadata key every change increments; a server whose last seen value differs reloads.
const REVISION_KEY: &str = "catalog:revision";

/// Most stored products (and, separately, plans) a server loads: they are held in memory
/// and sent whole by the admin API.
pub const MAX_DEFS: usize = 1_000;

/// How many times a change is retried when another server changed the same definition
/// between its read and its write.
const CAS_ATTEMPTS: usize = 8;

type Listener = Box<dyn Fn(&Snapshot) + Send + Sync>;

/// Products and plans in force, shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct Catalog(Arc<Inner>);

struct Inner {
    base: RwLock<Arc<Config>>,
    store: Arc<dyn CatalogStore>,
    meta: Arc<dyn MetaStore>,
    current: RwLock<Arc<Snapshot>>,
    seen_revision: Mutex<Option<Vec<u8>>>,
    listeners: RwLock<Vec<Listener>>,
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snap = self.snapshot();
        f.debug_struct("Catalog")
            .field("products", &snap.products.len())
            .field("plans", &snap.plans.len())
            .finish()
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("catalog record: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(format!("catalog record: {e}")))
}

impl Catalog {
    /// The catalog over `store`, with `config`'s products and plans as the initial set;
    /// loads the stored definitions once.
    pub async fn open(
        config: Arc<Config>,
        store: Arc<dyn CatalogStore>,
        meta: Arc<dyn MetaStore>,
    ) -> Result<Self, StoreError> {
        let initial = Snapshot::merge(&config, Vec::new(), Vec::new());
        let catalog = Self(Arc::new(Inner {
            base: RwLock::new(config),
            store,
            meta,
            current: RwLock::new(Arc::new(initial)),
            seen_revision: Mutex::new(None),
            listeners: RwLock::new(Vec::new()),
            refreshing: tokio::sync::Mutex::new(()),
        }));
        catalog.refresh().await?;
        Ok(catalog)
    }

    /// Products and plans in force now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.0.current.read())
    }

    /// Calls `listener` with the current snapshot now and with every new one after.
    pub fn on_change(&self, listener: impl Fn(&Snapshot) + Send + Sync + 'static) {
        listener(&self.snapshot());
        self.0.listeners.write().push(Box::new(listener));
    }

    /// A reloaded configuration: its products and plans become the initial set.
    pub async fn set_base(&self, config: Arc<Config>) -> Result<(), StoreError> {
        *self.0.base.write() = config;
        self.refresh().await
    }

    /// Reloads the stored definitions and tells the listeners.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.0.refreshing.lock().await;
        let revision = self.0.meta.get(REVISION_KEY).await?;
        let products: Vec<ProductDef> = self.load_all(CatalogKind::Product).await?;
        let plans: Vec<PlanDef> = self.load_all(CatalogKind::Plan).await?;
        let base = Arc::clone(&self.0.base.read());
        let snap = Arc::new(Snapshot::merge(&base, products, plans));
        *self.0.current.write() = Arc::clone(&snap);
        *self.0.seen_revision.lock() = revision;
        for listener in self.0.listeners.read().iter() {
            listener(&snap);
        }
        Ok(())
    }

    /// Refreshes if another server changed the catalog since the last refresh.
    pub async fn poll(&self) -> Result<bool, StoreError> {
        let revision = self.0.meta.get(REVISION_KEY).await?;
        if *self.0.seen_revision.lock() == revision {
            return Ok(false);
        }
        self.refresh().await?;
        Ok(true)
    }

    /// Polls every [`REFRESH_EVERY`] until the task is aborted.
    pub fn spawn_watch(&self) -> tokio::task::JoinHandle<()> {
        let catalog = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match catalog.poll().await {
                    Ok(true) => metrics::counter!("tessera_catalog_refreshes_total").increment(1),
                    Ok(false) => {}
                    Err(e) => {
                        metrics::counter!("tessera_catalog_refresh_failures_total").increment(1);
                        tracing::warn!(error = %e, "catalog refresh failed; the previous products and plans stay in force");
                    }
                }
            }
        })
    }

    async fn load_all<T: DeserializeOwned>(&self, kind: CatalogKind) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        while out.len() < MAX_DEFS {
            let page = self
                .0
                .store
                .list(kind, after.as_deref(), (MAX_DEFS - out.len()).min(200))
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, bytes) in &page {
                out.push(decode(bytes)?);
            }
        }
        Ok(out)
    }

    /// Creates product `id` (`create`) or changes the existing one with `change`, checks the
    /// result and stores it; every server sees it within [`REFRESH_EVERY`], this one at once.
    pub async fn change_product(
        &self,
        id: &str,
        create: bool,
        change: impl Fn(&mut ProductDef) -> Result<(), CatalogError>,
    ) -> Result<ProductDef, CatalogError> {
        super::records::check_id("id", id)?;
        for _ in 0..CAS_ATTEMPTS {
            let stored = self.0.store.get(CatalogKind::Product, id).await?;
            let base = Arc::clone(&self.0.base.read());
            let current = match &stored {
                Some(bytes) => Some(decode::<ProductDef>(bytes)?),
                None => base
                    .products
                    .get(id)
                    .map(|p| ProductDef::from_config(id, p)),
            };
            let mut def = match (current, create) {
                (Some(_), true) => {
                    return Err(CatalogError::Conflict(format!(
                        "product `{id}` already exists"
                    )));
                }
                (None, false) => {
                    return Err(CatalogError::ProductNotFound(id.to_owned()));
                }
                (Some(def), false) => def,
                (None, true) => {
                    if self.count(CatalogKind::Product).await? >= MAX_DEFS {
                        return Err(CatalogError::Conflict(format!(
                            "at most {MAX_DEFS} products may be created at run time"
                        )));
                    }
                    ProductDef {
                        id: id.to_owned(),
                        name: id.to_owned(),
                        heartbeat_interval_secs: None,
                        heartbeat_timeout_secs: None,
                        grace_secs: None,
                        on_session_limit: None,
                        releases: Vec::new(),
                    }
                }
            };
            change(&mut def)?;
            def.id = id.to_owned();
            def.check(
                base.sessions.heartbeat_interval,
                base.sessions.heartbeat_timeout,
            )?;
            if self.swap(CatalogKind::Product, id, stored, &def).await? {
                return Ok(def);
            }
        }
        Err(CatalogError::Conflict(format!(
            "product `{id}` kept changing under this request; retry"
        )))
    }

    /// Publishes `release` of product `id`. A version published before is a conflict.
    pub async fn publish_release(
        &self,
        id: &str,
        release: Release,
    ) -> Result<ProductDef, CatalogError> {
        release.check()?;
        self.change_product(id, false, |p| {
            if p.releases.iter().any(|r| r.version == release.version) {
                return Err(CatalogError::Conflict(format!(
                    "version {} of `{id}` is already published",
                    release.version
                )));
            }
            p.releases.push(release.clone());
            if p.releases.len() > MAX_RELEASES {
                p.releases.remove(0);
            }
            Ok(())
        })
        .await
    }

    /// Creates plan `name` (`create`) or changes the existing one with `change`.
    pub async fn change_plan(
        &self,
        name: &str,
        create: bool,
        change: impl Fn(&mut PlanDef) -> Result<(), CatalogError>,
    ) -> Result<PlanDef, CatalogError> {
        super::records::check_id("name", name)?;
        for _ in 0..CAS_ATTEMPTS {
            let stored = self.0.store.get(CatalogKind::Plan, name).await?;
            let base = Arc::clone(&self.0.base.read());
            let current = match &stored {
                Some(bytes) => Some(decode::<PlanDef>(bytes)?),
                None => base.plans.get(name).map(|p| PlanDef::from_config(name, p)),
            };
            let mut def = match (current, create) {
                (Some(_), true) => {
                    return Err(CatalogError::Conflict(format!(
                        "plan `{name}` already exists"
                    )));
                }
                (None, false) => return Err(CatalogError::PlanNotFound(name.to_owned())),
                (Some(def), false) => def,
                (None, true) => {
                    if self.count(CatalogKind::Plan).await? >= MAX_DEFS {
                        return Err(CatalogError::Conflict(format!(
                            "at most {MAX_DEFS} plans may be created at run time"
                        )));
                    }
                    PlanDef::from_config(name, &tessera_config::PlanConfig::default())
                }
            };
            change(&mut def)?;
            def.name = name.to_owned();
            def.check()?;
            if self.swap(CatalogKind::Plan, name, stored, &def).await? {
                return Ok(def);
            }
        }
        Err(CatalogError::Conflict(format!(
            "plan `{name}` kept changing under this request; retry"
        )))
    }

    async fn count(&self, kind: CatalogKind) -> Result<usize, StoreError> {
        Ok(self.0.store.list(kind, None, MAX_DEFS).await?.len())
    }

    /// Stores `def` if the stored bytes are still `expected`; on success tells every server.
    async fn swap<T: Serialize>(
        &self,
        kind: CatalogKind,
        id: &str,
        expected: Option<Vec<u8>>,
        def: &T,
    ) -> Result<bool, StoreError> {
        let bytes = encode(def)?;
        let entry = Entry {
            value: &bytes,
            terms: &[],
        };
        if !self
            .0
            .store
            .swap(kind, id, expected.as_deref(), Some(entry))
            .await?
        {
            return Ok(false);
        }
        self.bump().await?;
        self.refresh().await?;
        Ok(true)
    }

    /// Increments the revision every server polls.
    async fn bump(&self) -> Result<(), StoreError> {
        loop {
            let current = self.0.meta.get(REVISION_KEY).await?;
            let n = current
                .as_deref()
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            let next = n.wrapping_add(1).to_string();
            if self
                .0
                .meta
                .compare_and_swap(REVISION_KEY, current.as_deref(), Some(next.as_bytes()))
                .await?
            {
                return Ok(());
            }
        }
    }
}
