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
use crate::auth::Auth;
use crate::auth::system_key::{ApiKeys, EnsuredKey, write_key_file};
use crate::http::rate_limit::RateLimits;
use crate::licenses::push::SessionPush;
use crate::policy::{Policy, PolicyEvents};
use crate::store::redis::RedisStore;
use crate::store::{EmbeddedStore, MetaStore, ResourceStore, StoreError};

/// Handler state: cheap to clone (one `Arc`), dereferences to [`AppStateInner`].
///
/// To add a service (license shards, plugin host, ...): add a field to [`AppStateInner`] and
/// build it in [`AppState::open`].
#[derive(Clone, Debug)]
pub struct AppState(Arc<AppStateInner>);

/// The services behind [`AppState`].
#[derive(Debug)]
pub struct AppStateInner {
    /// The validated configuration.
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
    open_all_stores(config).await.map(|(m, e, s, _)| (m, e, s))
}

/// The stores [`open_stores`] opens, and the resource pools of the same backend.
pub(crate) type AllStores = (
    Arc<dyn MetaStore>,
    Option<EmbeddedStore>,
    Arc<dyn Store>,
    Arc<dyn ResourceStore>,
);

pub(crate) async fn open_all_stores(config: &Config) -> Result<AllStores, StartupError> {
    if config.store.backend == StoreBackend::Redis {
        let redis = RedisStore::connect(&config.store.redis_url, config.store.op_timeout).await?;
        return Ok((
            Arc::new(redis.clone()),
            None,
            Arc::new(redis.clone()),
            Arc::new(redis),
        ));
    }
    let (meta, embedded) = open_store(config)?;
    let store = license_store(config, embedded.as_ref())?;
    let resources: Arc<dyn ResourceStore> = match &embedded {
        Some(e) => Arc::new(e.clone()),
        None => return Err(StartupError::BackendUnavailable("embedded")),
    };
    Ok((meta, embedded, store, resources))
}

impl AppState {
    /// Opens the configured store, makes sure an API key exists (generating and, if
    /// configured, writing it to `auth.api_key_file` on first start) and builds every service.
    pub async fn open(config: Config) -> Result<Opened, StartupError> {
        let (meta, embedded, store, resource_store) = open_all_stores(&config).await?;
        let (events, event_rx) = PolicyEvents::channel();
        let session_push = SessionPush::new(&config);
        let events = session_push.sink(events);
        let licenses = crate::licenses::start(&config, store, events)
            .await
            .map_err(|e| StartupError::Actors(e.to_string()))?;
        let policy =
            match Policy::start(&config, Arc::clone(&meta), licenses.clone(), event_rx).await {
                Ok(p) => p,
                Err(e) => {
                    licenses.shutdown().await;
                    return Err(e.into());
                }
            };
        let state = Self::from_parts(
            config,
            meta,
            embedded,
            licenses,
            policy,
            session_push,
            resource_store,
        );
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

    /// Builds the state over an already opened store (tests use it with their own stores).
    pub fn from_parts(
        config: Config,
        meta: Arc<dyn MetaStore>,
        embedded: Option<EmbeddedStore>,
        licenses: Licenses,
        policy: Arc<Policy>,
        session_push: SessionPush,
        resource_store: Arc<dyn ResourceStore>,
    ) -> Self {
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
        let config = Arc::new(config);
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
            admin: Admin::new(
                Arc::clone(&config),
                licenses.clone(),
                Arc::clone(&resource_store),
            ),
            session_push,
            resource_store,
            licenses,
            policy,
            rate_limits: RateLimits::new(&config.rate_limit),
            api_keys: ApiKeys::new(Arc::clone(&meta)),
            config,
            meta,
            embedded,
            metrics: crate::http::metrics::handle(),
            started_at: Instant::now(),
            shutdown_hooks: hooks,
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
