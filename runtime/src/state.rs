//! The shared state of every handler.

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use metrics_exporter_prometheus::PrometheusHandle;
use parking_lot::Mutex;
use tessera_actors::{Licenses, Store};
use tessera_config::{Config, StoreBackend};

use crate::admin::Admin;
use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::auth::system_key::{ApiKeys, EnsuredKey, write_key_file};
use crate::catalog::Catalog;
use crate::cluster::notices::Notices;
use crate::events::{Events, LicenseEventSink};
use crate::http::rate_limit::RateLimits;
use crate::http::tls::{ServerTls, TlsError};
use crate::licenses::push::SessionPush;
use crate::licenses::rules::rules_from;
use crate::policy::{Policy, PolicyEvents};
use crate::search::{IndexEvents, SearchIndex, spawn_backfill};
use crate::stats::Stats;
use crate::store::redis::RedisStore;
use crate::store::{
    AuditStore, CatalogStore, EmbeddedStore, EventStore, MetaStore, ResourceStore, StoreError,
};
use crate::webhooks::Webhooks;

/// Handler state: cheap to clone (one `Arc`), dereferences to [`AppStateInner`].
///
/// To add a service (license shards, plugin host, ...): add a field to [`AppStateInner`] and
/// build it in [`AppState::open`].
#[derive(Clone, Debug)]
pub struct AppState(Arc<AppStateInner>);

/// The services behind [`AppState`].
#[derive(Debug)]
pub struct AppStateInner {
    /// The configuration the server started with. Settings that a reload applies are read
    /// from their services (or `running_config`), not from here.
    pub config: Arc<Config>,
    /// Metadata store of the configured backend.
    pub meta: Arc<dyn MetaStore>,
    /// The embedded redb store when `store.backend = "embedded"`; its
    /// [`EmbeddedStore::database`] is shared with the embedded license tables.
    pub embedded: Option<EmbeddedStore>,
    /// The system API key checker.
    pub api_keys: ApiKeys,
    /// Rate limiters per route class (`state.rate_limits.check_heartbeat(token)?`).
    pub rate_limits: RateLimits,
    /// The Prometheus handle rendering `/metrics`.
    pub metrics: PrometheusHandle,
    /// Process start, for `uptime_seconds`.
    pub started_at: Instant,
    /// Work to run after HTTP has drained on shutdown (e.g. flushing write-behind).
    pub shutdown_hooks: ShutdownHooks,
    /// The license actors (shards, write-behind, recovery sweep).
    pub licenses: Licenses,
    /// Policy plugins (hooks on the request path and on license events).
    pub policy: Arc<Policy>,
    /// Administrative operations (HTTP admin routes and the control socket call these).
    pub admin: Admin,
    /// Admin keys, operators, logins, security controls.
    pub auth: Arc<Auth>,
    /// Session-end and release pushes to the session WebSocket's connections.
    pub session_push: SessionPush,
    /// Resource pools (seed 000) of the configured backend.
    pub resource_store: Arc<dyn ResourceStore>,
    /// The event fan-out (event log, live stream, local consumers such as webhooks).
    pub events: Events,
    /// Statistics counted from this server's events.
    pub stats: Stats,
    /// Webhook endpoints and their deliveries (the dispatcher runs on tasks of its own).
    pub webhooks: Webhooks,
    /// The certificate `listen_addr` serves when `server.tls_cert_file` is set; `None`
    /// serves plain HTTP.
    pub tls: Option<Arc<ServerTls>>,
    /// The configuration in effect: `config` with what reloads applied (`crate::reload`).
    pub running_config: arc_swap::ArcSwap<Config>,
    /// Serializes reloads (SIGHUP and the config file's watcher may fire at once).
    pub reload_lock: tokio::sync::Mutex<()>,
    /// Change notices to and from the other servers of the store (Redis only).
    pub cluster: Option<Arc<Notices>>,
    /// The panel dashboard's last hour of this server's numbers.
    pub overview: crate::panel::overview::Overview,
}

impl std::fmt::Debug for dyn MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetaStore({})", self.backend())
    }
}

impl Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// What [`AppState::open`] produced.
#[derive(Debug)]
pub struct Opened {
    /// The state to serve with.
    pub state: AppState,
    /// The API key generated on this first start: show it once, it cannot be recovered.
    pub new_api_key: Option<String>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The store could not be opened or read.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The license actors could not start.
    #[error("license actors: {0}")]
    Actors(String),
    /// A policy plugin could not be loaded.
    #[error("policy plugins: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    /// The configured backend is not available in this build.
    #[error("store backend `{0}` is not available yet; use backend = \"embedded\"")]
    BackendUnavailable(&'static str),
    /// The TLS certificate or key could not be loaded.
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// `store.redis_ca_file` could not be read.
    #[error("store.redis_ca_file: {0}")]
    RedisCa(String),
    /// Writing `auth.api_key_file` failed.
    #[error("cannot write auth.api_key_file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Opens the store selected by `config` (metadata port and, for embedded, the database).
pub fn open_store(
    config: &Config,
) -> Result<(Arc<dyn MetaStore>, Option<EmbeddedStore>), StartupError> {
    match config.store.backend {
        StoreBackend::Embedded => {
            let cache = config.store.embedded_cache_mib as usize * 1024 * 1024;
            let store = EmbeddedStore::open_with_cache(&config.store.embedded_path(), Some(cache))?;
            Ok((Arc::new(store.clone()), Some(store)))
        }
        StoreBackend::Redis => Err(StartupError::BackendUnavailable("redis")),
    }
}

/// The license Store port of the configured backend.
pub fn license_store(
    config: &Config,
    embedded: Option<&EmbeddedStore>,
) -> Result<Arc<dyn Store>, StartupError> {
    match (config.store.backend, embedded) {
        (StoreBackend::Embedded, Some(store)) => Ok(Arc::new(store.clone())),
        (StoreBackend::Embedded, None) => Err(StartupError::BackendUnavailable("embedded")),
        (StoreBackend::Redis, _) => Err(StartupError::BackendUnavailable("redis")),
    }
}

/// Opens the configured backend: its metadata port, the embedded database (embedded only)
/// and the license Store port. Unlike [`open_store`] this also connects Redis.
pub async fn open_stores(
    config: &Config,
) -> Result<(Arc<dyn MetaStore>, Option<EmbeddedStore>, Arc<dyn Store>), StartupError> {
    open_all_stores(config)
        .await
        .map(|s| (s.meta, s.embedded, s.licenses))
}

/// Every port of the configured backend, opened once.
pub(crate) struct AllStores {
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) embedded: Option<EmbeddedStore>,
    pub(crate) licenses: Arc<dyn Store>,
    pub(crate) resources: Arc<dyn ResourceStore>,
    pub(crate) catalog: Arc<dyn CatalogStore>,
    pub(crate) events: Arc<dyn EventStore>,
    pub(crate) audit: Arc<dyn AuditStore>,
    /// Durable plugin keys every server shares (Redis only; see `store::plugin_kv`).
    pub(crate) plugin_kv: Option<Arc<dyn crate::store::SharedPluginKv>>,
    /// Change notices between the servers of one store (Redis only; see `cluster`).
    pub(crate) changes: Option<Arc<dyn crate::store::ChangeFeed>>,
}

pub(crate) async fn open_all_stores(config: &Config) -> Result<AllStores, StartupError> {
    if config.store.backend == StoreBackend::Redis {
        let ca = match &config.store.redis_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                StartupError::RedisCa(format!("cannot read {}: {e}", path.display()))
            })?),
            None => None,
        };
        let redis =
            RedisStore::connect_with_ca(&config.store.redis_url, config.store.op_timeout, ca)
                .await?;
        return Ok(AllStores {
            meta: Arc::new(redis.clone()),
            embedded: None,
            licenses: Arc::new(redis.clone()),
            resources: Arc::new(redis.clone()),
            catalog: Arc::new(redis.clone()),
            events: Arc::new(redis.clone()),
            audit: Arc::new(redis.clone()),
            plugin_kv: Some(Arc::new(redis.clone())),
            changes: Some(Arc::new(redis)),
        });
    }
    let (meta, embedded) = open_store(config)?;
    let licenses = license_store(config, embedded.as_ref())?;
    let Some(e) = &embedded else {
        return Err(StartupError::BackendUnavailable("embedded"));
    };
    Ok(AllStores {
        meta,
        resources: Arc::new(e.clone()),
        catalog: Arc::new(e.clone()),
        events: Arc::new(e.clone()),
        audit: Arc::new(e.clone()),
        plugin_kv: None,
        changes: None,
        embedded,
        licenses,
    })
}

/// The catalog, the search index and the admin service over opened stores: what a running
/// server and a CLI command on a stopped server's store both build.
pub(crate) async fn admin_over(
    config: Arc<Config>,
    stores: &AllStores,
    licenses: Licenses,
    events: Events,
) -> Result<Admin, StartupError> {
    let catalog = Catalog::open(
        Arc::clone(&config),
        Arc::clone(&stores.catalog),
        Arc::clone(&stores.meta),
    )
    .await?;
    let rules_of = licenses.clone();
    catalog.on_change(move |snap| {
        rules_of
            .rules()
            .replace(rules_from(&snap.config, &snap.plans, &snap.products));
    });
    Ok(Admin::new(
        config,
        licenses,
        Arc::clone(&stores.resources),
        catalog,
        SearchIndex::new(Arc::clone(&stores.catalog)),
        events,
        AuditLog::new(Arc::clone(&stores.audit), Arc::clone(&stores.meta)),
    ))
}

impl AppState {
    /// Opens the configured store, makes sure an API key exists (generating and, if
    /// configured, writing it to `auth.api_key_file` on first start) and builds every service.
    pub async fn open(config: Config) -> Result<Opened, StartupError> {
        // The Prometheus recorder first: a metric registered before it exists (the plugin
        // host registers its counters when it loads a plugin) would stay a no-op forever.
        let _ = crate::http::metrics::handle();
        // Before the store: a certificate that does not load fails the start at once.
        let tls = ServerTls::open(&config.server)?;
        let stores = open_all_stores(&config).await?;
        let search = SearchIndex::new(Arc::clone(&stores.catalog));
        let (events, event_rx) = PolicyEvents::channel();
        let session_push = SessionPush::new(&config);
        let events = session_push.sink(events);
        let bus = Events::start(Arc::clone(&stores.events), &config.events).await;
        // Subscribes at once: every event stored from here on may become a delivery.
        let webhooks =
            Webhooks::start(Arc::clone(&stores.catalog), bus.clone(), &config.webhooks).await;
        let events = LicenseEventSink::wrap(events, bus.clone());
        let (events, indexer) = IndexEvents::start(events, search.clone());
        // Outermost: it sees every change this node makes, to tell the other nodes.
        let (notices, events) = match &stores.changes {
            Some(feed) => {
                let (notices, sink) = Notices::start(Arc::clone(feed), events);
                (Some(Arc::new(notices)), sink)
            }
            None => (None, events),
        };
        let licenses = crate::licenses::start(&config, Arc::clone(&stores.licenses), events)
            .await
            .map_err(|e| StartupError::Actors(e.to_string()))?;
        let config = Arc::new(config);
        let admin =
            match admin_over(Arc::clone(&config), &stores, licenses.clone(), bus.clone()).await {
                Ok(a) => a,
                Err(e) => {
                    licenses.shutdown().await;
                    return Err(e);
                }
            };
        let push = session_push.clone();
        admin
            .catalog()
            .on_change(move |snap| push.set_releases(&snap.products));
        let policy = match Policy::start(
            &config,
            Arc::clone(&stores.meta),
            stores.plugin_kv.clone(),
            licenses.clone(),
            event_rx,
        )
        .await
        {
            Ok(p) => p,
            Err(e) => {
                licenses.shutdown().await;
                return Err(e.into());
            }
        };
        policy.publish_to(bus.clone());
        let stats = Stats::start(Arc::clone(&stores.meta), &bus);
        let state = Self::from_parts(
            config,
            &stores,
            licenses,
            policy,
            session_push,
            admin,
            (bus, stats, webhooks, tls, notices),
        );
        if let Some(tls) = &state.tls {
            tls.watch();
            let watching = Arc::clone(tls);
            state
                .shutdown_hooks
                .register("tls: stop watching the certificate files", async move {
                    watching.unwatch();
                });
        }
        // After the event log's hook: the events stored at shutdown become deliveries too.
        let delivering = state.webhooks.clone();
        state
            .shutdown_hooks
            .register("webhooks: stop delivering", async move {
                delivering.shutdown().await;
            });
        let anchor = state.admin.audit().spawn_anchor();
        state
            .shutdown_hooks
            .register("audit: stop anchoring", async move {
                anchor.abort();
                let _ = anchor.await;
            });
        if let Some(notices) = &state.cluster {
            let listening = notices.listen(state.licenses.clone());
            state
                .shutdown_hooks
                .register("cluster: stop listening for changes", async move {
                    listening.abort();
                    let _ = listening.await;
                });
        }
        let watch = state.admin.catalog().spawn_watch();
        let backfill = spawn_backfill(
            search,
            Arc::clone(&stores.licenses),
            Arc::clone(&stores.meta),
        );
        state
            .shutdown_hooks
            .register("catalog and search: stop", async move {
                watch.abort();
                backfill.abort();
                indexer.abort();
                let _ = watch.await;
                let _ = backfill.await;
            });
        let new_api_key = match state.api_keys.ensure().await? {
            EnsuredKey::Existing => None,
            EnsuredKey::Generated(key) => {
                if let Some(path) = &state.config.auth.api_key_file {
                    write_key_file(path, &key).map_err(|source| StartupError::KeyFile {
                        path: path.display().to_string(),
                        source,
                    })?;
                }
                Some(key)
            }
        };
        Ok(Opened { state, new_api_key })
    }

    /// Builds the state over opened stores and started services.
    fn from_parts(
        config: Arc<Config>,
        stores: &AllStores,
        licenses: Licenses,
        policy: Arc<Policy>,
        session_push: SessionPush,
        admin: Admin,
        (events, stats, webhooks, tls, cluster): (
            Events,
            Stats,
            Webhooks,
            Option<Arc<ServerTls>>,
            Option<Arc<Notices>>,
        ),
    ) -> Self {
        let meta = Arc::clone(&stores.meta);
        let embedded = stores.embedded.clone();
        let resource_store = Arc::clone(&stores.resources);
        let hooks = ShutdownHooks::default();
        let closing = session_push.clone();
        hooks.register("session websockets: close", async move {
            closing.close().await;
        });
        let stopping = Arc::clone(&policy);
        hooks.register("policy: flush durable plugin KV", async move {
            stopping.shutdown().await;
        });
        let flushing = licenses.clone();
        hooks.register("license actors: flush heartbeats", async move {
            flushing.shutdown().await;
        });
        // After the actors: the session ends of the shutdown are events too.
        let storing = events.clone();
        hooks.register("events: store what is queued", async move {
            storing.shutdown().await;
        });
        let counting = stats.clone();
        hooks.register("statistics: store the last counts", async move {
            counting.shutdown().await;
        });
        let (overview, sampling) =
            crate::panel::overview::Overview::start(crate::http::metrics::handle());
        hooks.register("panel: stop sampling the dashboard's numbers", async move {
            sampling.abort();
            let _ = sampling.await;
        });
        let auth = Arc::new(Auth::new(Arc::clone(&meta), &config));
        // The login keys: generated on a fresh store's first start, off the start-up path.
        let warming = Arc::clone(&auth);
        let warm_up = tokio::spawn(async move {
            if let Err(e) = warming.login_keys().await {
                tracing::warn!(error = %e, "login keys not ready; the first login challenge retries");
            }
        });
        // It holds the store: a stopped server must not keep the database open behind it.
        hooks.register("auth: stop the login key warm-up", async move {
            warm_up.abort();
            let _ = warm_up.await;
        });
        Self(Arc::new(AppStateInner {
            auth,
            admin,
            events,
            stats,
            webhooks,
            session_push,
            resource_store,
            licenses,
            policy,
            rate_limits: RateLimits::new(&config.rate_limit),
            api_keys: ApiKeys::new(Arc::clone(&meta)),
            running_config: arc_swap::ArcSwap::new(Arc::clone(&config)),
            reload_lock: tokio::sync::Mutex::new(()),
            cluster,
            config,
            meta,
            embedded,
            metrics: crate::http::metrics::handle(),
            overview,
            started_at: Instant::now(),
            shutdown_hooks: hooks,
            tls,
        }))
    }
}

/// Named futures run, in registration order, after the HTTP server has drained.
#[derive(Default)]
pub struct ShutdownHooks(Mutex<Vec<(String, BoxFuture<'static, ()>)>>);

impl std::fmt::Debug for ShutdownHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.0.lock().iter().map(|(n, _)| n.clone()).collect();
        f.debug_tuple("ShutdownHooks").field(&names).finish()
    }
}

impl ShutdownHooks {
    /// Registers `hook` (not polled until shutdown).
    pub fn register(
        &self,
        name: impl Into<String>,
        hook: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.0.lock().push((name.into(), Box::pin(hook)));
    }

    /// Runs every hook, each bounded by `limit`.
    pub(crate) async fn run(&self, limit: Duration) {
        let hooks = std::mem::take(&mut *self.0.lock());
        for (name, hook) in hooks {
            if tokio::time::timeout(limit, hook).await.is_err() {
                tracing::warn!(hook = %name, "shutdown hook did not finish in time");
            } else {
                tracing::debug!(hook = %name, "shutdown hook done");
            }
        }
    }
}
