//! Credentials kept as small JSON records in the meta store, changed by compare-and-swap so
//! two servers sharing one store never lose each other's writes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{MetaStore, StoreError};

/// How many times a change is retried when another writer got in between.
const CAS_ATTEMPTS: usize = 16;

/// Reads the record under `key`; `None` when it was never written.
pub(crate) async fn read<T: DeserializeOwned>(
    meta: &dyn MetaStore,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match meta.get(key).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("{key}: {e}"))),
    }
}

/// Applies `change` to the record under `key` (starting from `T::default()` when absent) and
/// writes it back atomically, retrying on a concurrent change. `change` may run several
/// times; its `Err` aborts without writing.
pub(crate) async fn update<T, R, E>(
    meta: &dyn MetaStore,
    key: &str,
    mut change: impl FnMut(&mut T) -> Result<R, E>,
) -> Result<R, E>
where
    T: Serialize + DeserializeOwned + Default,
    E: From<StoreError>,
{
    for _ in 0..CAS_ATTEMPTS {
        let before = meta.get(key).await?;
        let mut value: T = match &before {
            None => T::default(),
            Some(bytes) => serde_json::from_slice(bytes)
                .map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))?,
        };
        let result = change(&mut value)?;
        let after =
            serde_json::to_vec(&value).map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))?;
        if meta
            .compare_and_swap(key, before.as_deref(), Some(&after))
            .await?
        {
            return Ok(result);
        }
    }
    Err(StoreError::Unavailable(format!("{key}: too many concurrent changes")).into())
}
