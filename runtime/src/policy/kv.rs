//! Durable plugin KV on the configured store.
//!
//! Plugins call `kv_*` synchronously inside a WebAssembly call, so reads must never wait on
//! a network. Each plugin's durable keys live in memory (loaded once at start) and are
//! written back as one blob per plugin (`plugin_kv/<name>` in the [`MetaStore`]) by a flusher
//! every second: a crash loses at most that second, a restart keeps ban counters.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tessera_plugins::{DurableKv, KvError, KvRecord};

use crate::store::MetaStore;

const PREFIX: &str = "plugin_kv/";

#[derive(Serialize, Deserialize)]
struct StoredRecord {
    key: String,
    value: String,
    expires_at_ms: Option<i64>,
}

type Namespace = HashMap<Vec<u8>, KvRecord>;

/// The runtime's [`DurableKv`].
pub struct PluginKv {
    /// `None` once closed: plugin instances cached on worker threads may outlive the
    /// server, and must not keep the store (and its file lock) alive.
    meta: Mutex<Option<Arc<dyn MetaStore>>>,
    data: Mutex<HashMap<String, Namespace>>,
    dirty: Mutex<HashSet<String>>,
}

impl PluginKv {
    /// Loads the durable keys of `plugins` from the store.
    pub async fn load(
        meta: Arc<dyn MetaStore>,
        plugins: impl IntoIterator<Item = String>,
    ) -> Result<Arc<Self>, crate::store::StoreError> {
        let mut data = HashMap::new();
        let now = wall_ms();
        for name in plugins {
            let Some(blob) = meta.get(&format!("{PREFIX}{name}")).await? else {
                continue;
            };
            let records: Vec<StoredRecord> = match serde_json::from_slice(&blob) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(plugin = %name, "durable plugin KV is unreadable, starting empty: {e}");
                    continue;
                }
            };
            let ns: Namespace = records
                .into_iter()
                .filter(|r| r.expires_at_ms.is_none_or(|t| t > now))
                .filter_map(|r| {
                    Some((
                        hex::decode(r.key).ok()?,
                        KvRecord {
                            value: hex::decode(r.value).ok()?,
                            expires_at_ms: r.expires_at_ms,
                        },
                    ))
                })
                .collect();
            data.insert(name, ns);
        }
        Ok(Arc::new(Self {
            meta: Mutex::new(Some(meta)),
            data: Mutex::new(data),
            dirty: Mutex::new(HashSet::new()),
        }))
    }

    /// Writes every changed namespace. On failure the namespace stays dirty for the next try.
    pub async fn flush(&self) -> Result<(), crate::store::StoreError> {
        let Some(meta) = self.meta.lock().clone() else {
            return Ok(());
        };
        let dirty: Vec<String> = self.dirty.lock().drain().collect();
        let now = wall_ms();
        for (i, ns) in dirty.iter().enumerate() {
            let blob = {
                let data = self.data.lock();
                let records: Vec<StoredRecord> = data
                    .get(ns)
                    .into_iter()
                    .flatten()
                    .filter(|(_, r)| r.expires_at_ms.is_none_or(|t| t > now))
                    .map(|(k, r)| StoredRecord {
                        key: hex::encode(k),
                        value: hex::encode(&r.value),
                        expires_at_ms: r.expires_at_ms,
                    })
                    .collect();
                serde_json::to_vec(&records).unwrap_or_default()
            };
            if let Err(e) = meta.put(&format!("{PREFIX}{ns}"), &blob).await {
                self.dirty.lock().extend(dirty[i..].iter().cloned());
                return Err(e);
            }
        }
        Ok(())
    }

    /// Flushes what is pending and lets go of the store; later writes stay in memory only.
    pub async fn close(&self) -> Result<(), crate::store::StoreError> {
        let result = self.flush().await;
        self.meta.lock().take();
        result
    }

    /// Flushes every `every` until the task is aborted.
    pub fn spawn_flusher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let kv = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = kv.flush().await {
                    tracing::warn!("durable plugin KV flush failed; will retry: {e}");
                }
            }
        })
    }
}

/// The meta name of plugin `namespace`'s blob (for `tessera migrate`).
pub fn blob_name(namespace: &str) -> String {
    format!("{PREFIX}{namespace}")
}

/// The plugin whose blob is the meta record `name`, if it is one.
pub fn blob_namespace(name: &str) -> Option<&str> {
    name.strip_prefix(PREFIX)
}

/// The keys in plugin `namespace`'s blob, sorted by key (for `tessera migrate`).
pub fn decode_blob(
    namespace: &str,
    blob: &[u8],
) -> Result<Vec<crate::store::transfer::PluginKvEntry>, String> {
    let records: Vec<StoredRecord> = serde_json::from_slice(blob).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        out.push(crate::store::transfer::PluginKvEntry {
            namespace: namespace.to_owned(),
            key: hex::decode(&r.key).map_err(|e| e.to_string())?,
            value: hex::decode(&r.value).map_err(|e| e.to_string())?,
            expires_at_ms: r.expires_at_ms,
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// A blob holding `entries` (of one plugin), as [`PluginKv::flush`] writes it.
pub fn encode_blob(entries: &[crate::store::transfer::PluginKvEntry]) -> Vec<u8> {
    let records: Vec<StoredRecord> = entries
        .iter()
        .map(|e| StoredRecord {
            key: hex::encode(&e.key),
            value: hex::encode(&e.value),
            expires_at_ms: e.expires_at_ms,
        })
        .collect();
    serde_json::to_vec(&records).unwrap_or_default()
}

fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl DurableKv for PluginKv {
    fn get(&self, namespace: &str, key: &[u8]) -> Result<Option<KvRecord>, KvError> {
        let data = self.data.lock();
        Ok(data
            .get(namespace)
            .and_then(|ns| ns.get(key))
            .filter(|r| r.expires_at_ms.is_none_or(|t| t > wall_ms()))
            .cloned())
    }

    fn put(&self, namespace: &str, key: &[u8], record: KvRecord) {
        self.data
            .lock()
            .entry(namespace.to_string())
            .or_default()
            .insert(key.to_vec(), record);
        self.dirty.lock().insert(namespace.to_string());
    }

    fn delete(&self, namespace: &str, key: &[u8]) {
        if let Some(ns) = self.data.lock().get_mut(namespace) {
            ns.remove(key);
        }
        self.dirty.lock().insert(namespace.to_string());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::store::EmbeddedStore;

    #[tokio::test]
    async fn durable_keys_survive_a_reload_and_expired_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("t.redb")).unwrap();
        let meta: Arc<dyn MetaStore> = Arc::new(store);
        let kv = PluginKv::load(Arc::clone(&meta), ["ban".to_string()])
            .await
            .unwrap();
        kv.put(
            "ban",
            b"warnings:K",
            KvRecord {
                value: b"3".to_vec(),
                expires_at_ms: None,
            },
        );
        kv.put(
            "ban",
            b"old",
            KvRecord {
                value: b"1".to_vec(),
                expires_at_ms: Some(1),
            },
        );
        kv.flush().await.unwrap();
        let again = PluginKv::load(meta, ["ban".to_string()]).await.unwrap();
        assert_eq!(
            again.get("ban", b"warnings:K").unwrap().map(|r| r.value),
            Some(b"3".to_vec())
        );
        assert_eq!(again.get("ban", b"old").unwrap(), None);
        assert_eq!(again.get("other", b"x").unwrap(), None);
    }
}
