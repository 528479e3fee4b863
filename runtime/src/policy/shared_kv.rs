//! Durable plugin keys on a store several servers share (Redis), as the plugin host's
//! [`DurableKv`]: every call goes to the store and waits for its answer, so an increment on
//! one node is seen by the next call on any other.
//!
//! Plugin calls are synchronous and run on the hook threads (`policy::pool`), never on a
//! request worker, so waiting here blocks only the calling hook. Each wait is bounded by
//! the store's operation timeout; a read or increment that fails makes the plugin call fail
//! with kind `kv_unavailable` (its fail mode applies); a failed write or delete is logged
//! and counted.

use std::sync::Arc;
use std::time::Duration;

use tessera_plugins::{DurableKv, KvError, KvRecord};
use tokio::runtime::Handle;

use crate::store::{SharedPluginKv, StoreError};

/// The runtime's [`DurableKv`] on a shared store.
pub struct SharedKv {
    store: Arc<dyn SharedPluginKv>,
    runtime: Handle,
    timeout: Duration,
}

impl SharedKv {
    /// Over `store`, on the current tokio runtime; each call waits at most `timeout`.
    ///
    /// # Panics
    /// Outside a tokio runtime (the server always builds it inside one).
    pub fn new(store: Arc<dyn SharedPluginKv>, timeout: Duration) -> Self {
        Self {
            store,
            runtime: Handle::current(),
            timeout,
        }
    }

    /// Runs one store call to completion from a hook thread.
    fn wait<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, KvError> {
        let timeout = self.timeout;
        let result = self.runtime.block_on(async move {
            match tokio::time::timeout(timeout, call).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Unavailable(format!(
                    "no answer within {} ms",
                    timeout.as_millis()
                ))),
            }
        });
        result.map_err(|e| {
            metrics::counter!("tessera_plugin_kv_errors_total", "op" => op).increment(1);
            KvError(e.to_string())
        })
    }
}

impl DurableKv for SharedKv {
    fn get(&self, namespace: &str, key: &[u8]) -> Result<Option<KvRecord>, KvError> {
        let found = self.wait("get", self.store.kv_get(namespace, key))?;
        // Only live values come back: the store expires keys itself.
        Ok(found.map(|value| KvRecord {
            value,
            expires_at_ms: None,
        }))
    }

    fn put(&self, namespace: &str, key: &[u8], record: KvRecord) {
        let call = self
            .store
            .kv_set(namespace, key, &record.value, record.expires_at_ms);
        if let Err(e) = self.wait("set", call) {
            tracing::warn!(
                plugin = namespace,
                "durable plugin key not written: {}",
                e.0
            );
        }
    }

    fn delete(&self, namespace: &str, key: &[u8]) {
        if let Err(e) = self.wait("delete", self.store.kv_delete(namespace, key)) {
            tracing::warn!(
                plugin = namespace,
                "durable plugin key not deleted: {}",
                e.0
            );
        }
    }

    fn shared(&self) -> bool {
        true
    }

    fn incr(
        &self,
        namespace: &str,
        key: &[u8],
        delta: i64,
        expires_at_ms: Option<i64>,
        refresh_ttl: bool,
    ) -> Result<i64, KvError> {
        self.wait(
            "incr",
            self.store
                .kv_incr(namespace, key, delta, expires_at_ms, refresh_ttl),
        )
    }
}
