//! Indexes what a store held before the index existed (or what a dropped index write
//! missed): every license and its devices, once per store, in the background.

use std::sync::Arc;

use tessera_actors::{Store, StoreError};

use super::index::SearchIndex;
use crate::store::MetaStore;

/// Set in the metadata store when a backfill has walked every license.
pub const BACKFILL_DONE_KEY: &str = "search:backfill:v1";

/// Licenses read per page.
const PAGE: usize = 500;

/// Indexes every license of `store` and its devices, unless done before on this store (or
/// `force`). Safe to run on several servers at once (indexing is idempotent). Returns how
/// many licenses it indexed.
pub async fn backfill(
    index: &SearchIndex,
    store: &dyn Store,
    meta: &dyn MetaStore,
    force: bool,
) -> Result<u64, StoreError> {
    if !force && meta.get(BACKFILL_DONE_KEY).await?.is_some() {
        return Ok(0);
    }
    let mut after = None;
    let mut done = 0u64;
    loop {
        let page = store.list_records(after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        for record in &page {
            index.index_license(record).await?;
            if let Some(snapshot) = store.load(&record.key).await? {
                index
                    .index_devices(record.id, &snapshot.activations)
                    .await?;
            }
            done += 1;
        }
    }
    meta.put(BACKFILL_DONE_KEY, b"1").await?;
    Ok(done)
}

/// Runs [`backfill`] on a task of its own, logging the outcome.
pub fn spawn_backfill(
    index: SearchIndex,
    store: Arc<dyn Store>,
    meta: Arc<dyn MetaStore>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match backfill(&index, store.as_ref(), meta.as_ref(), false).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(licenses = n, "search index: existing licenses indexed"),
            Err(e) => {
                tracing::warn!(error = %e, "search index backfill failed; it runs again at the next start")
            }
        }
    })
}
