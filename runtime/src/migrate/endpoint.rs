//! Where a migration reads and writes: `embedded` (the config's `store.data_dir`),
//! `embedded:DIR` (another data directory), `redis` (the config's `store.redis_url`) or a
//! Redis URL. Opening an embedded store takes its lock, so a server running on it makes the
//! migration fail instead of copying a store that changes underneath.

use std::path::PathBuf;
use std::sync::Arc;

use tessera_actors::Store;
use tessera_config::Config;

use crate::store::redis::RedisStore;
use crate::store::{
    AuditStore, CatalogStore, EmbeddedStore, EventStore, MetaStore, ResourceStore, SharedPluginKv,
    StoreError, Transfer,
};

/// A store named on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The embedded store in this data directory.
    Embedded(PathBuf),
    /// Redis at this URL (never printed: it may hold a password).
    Redis(String),
}

impl Endpoint {
    /// Parses `embedded`, `embedded:DIR`, `redis` or a `redis://`, `rediss://`,
    /// `redis+cluster://`, `rediss+cluster://`, `unix://` or `redis+unix://` URL.
    pub fn parse(text: &str, config: &Config) -> Result<Self, String> {
        let text = text.trim();
        if text == "embedded" {
            return Ok(Self::Embedded(config.store.data_dir.clone()));
        }
        if let Some(dir) = text.strip_prefix("embedded:") {
            if dir.is_empty() {
                return Err("`embedded:` needs a data directory after the colon".into());
            }
            return Ok(Self::Embedded(PathBuf::from(dir)));
        }
        if text == "redis" {
            return Ok(Self::Redis(config.store.redis_url.clone()));
        }
        let schemes = [
            "redis://",
            "rediss://",
            "redis+cluster://",
            "rediss+cluster://",
            "unix://",
            "redis+unix://",
        ];
        if schemes.iter().any(|s| text.starts_with(s)) {
            return Ok(Self::Redis(text.to_owned()));
        }
        Err(format!(
            "`{}` is no store: use embedded, embedded:DIR, redis or a redis:// URL",
            text.chars().take(40).collect::<String>()
        ))
    }

    /// How reports name it: the directory, or just `redis`.
    pub fn label(&self) -> String {
        match self {
            Self::Embedded(dir) => format!("embedded:{}", dir.display()),
            Self::Redis(_) => "redis".to_owned(),
        }
    }
}

/// Every port a migration uses, of one store.
pub(crate) struct Opened {
    pub(crate) licenses: Arc<dyn Store>,
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) catalog: Arc<dyn CatalogStore>,
    pub(crate) audit: Arc<dyn AuditStore>,
    pub(crate) resources: Arc<dyn ResourceStore>,
    pub(crate) events: Arc<dyn EventStore>,
    pub(crate) transfer: Arc<dyn Transfer>,
    /// Redis only: durable plugin keys live here rather than in meta blobs.
    pub(crate) shared_kv: Option<Arc<dyn SharedPluginKv>>,
}

/// Opens `endpoint`; `must_exist` refuses an embedded store that is not there yet.
pub(crate) async fn open(
    endpoint: &Endpoint,
    config: &Config,
    must_exist: bool,
) -> Result<Opened, StoreError> {
    match endpoint {
        Endpoint::Embedded(dir) => {
            let path = dir.join("tessera.redb");
            if must_exist && !path.exists() {
                return Err(StoreError::Unavailable(format!(
                    "there is no store at {}",
                    path.display()
                )));
            }
            let s = EmbeddedStore::open(&path)?;
            Ok(Opened {
                licenses: Arc::new(s.clone()),
                meta: Arc::new(s.clone()),
                catalog: Arc::new(s.clone()),
                audit: Arc::new(s.clone()),
                resources: Arc::new(s.clone()),
                events: Arc::new(s.clone()),
                transfer: Arc::new(s),
                shared_kv: None,
            })
        }
        Endpoint::Redis(url) => {
            let ca = match &config.store.redis_ca_file {
                Some(p) => Some(std::fs::read(p).map_err(|e| {
                    StoreError::Unavailable(format!("store.redis_ca_file {}: {e}", p.display()))
                })?),
                None => None,
            };
            let s = RedisStore::connect_with_ca(url, config.store.op_timeout, ca).await?;
            Ok(Opened {
                licenses: Arc::new(s.clone()),
                meta: Arc::new(s.clone()),
                catalog: Arc::new(s.clone()),
                audit: Arc::new(s.clone()),
                resources: Arc::new(s.clone()),
                events: Arc::new(s.clone()),
                transfer: Arc::new(s.clone()),
                shared_kv: Some(Arc::new(s)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_named_by_kind_directory_or_url() {
        let mut config = Config::default();
        config.store.data_dir = PathBuf::from("/var/lib/tessera");
        config.store.redis_url = "redis://10.0.0.1:6379".into();
        let parse = |s: &str| Endpoint::parse(s, &config);
        assert_eq!(
            parse("embedded"),
            Ok(Endpoint::Embedded("/var/lib/tessera".into()))
        );
        assert_eq!(
            parse("embedded:/srv/new"),
            Ok(Endpoint::Embedded("/srv/new".into()))
        );
        assert_eq!(
            parse("redis"),
            Ok(Endpoint::Redis("redis://10.0.0.1:6379".into()))
        );
        assert_eq!(
            parse("rediss://:pw@cache:6380/2"),
            Ok(Endpoint::Redis("rediss://:pw@cache:6380/2".into()))
        );
        assert!(parse("embedded:").is_err());
        assert!(parse("postgres://x").is_err());
        // A URL is never shown: it may hold a password.
        assert_eq!(
            parse("redis://:pw@h:1").map(|e| e.label()),
            Ok("redis".into())
        );
    }
}
