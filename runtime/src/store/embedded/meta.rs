//! The metadata port on the embedded store: small named blobs in the `meta` table of the one
//! redb file; a compare-and-swap is one write transaction.

use super::*;

#[async_trait]
impl MetaStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(backend)?;
            let table = tx.open_table(META).map_err(backend)?;
            let value = table.get(key.as_str()).map_err(backend)?;
            Ok(value.map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let key = key.to_owned();
        let value = value.to_vec();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(backend)?;
            {
                let mut table = tx.open_table(META).map_err(backend)?;
                table
                    .insert(key.as_str(), value.as_slice())
                    .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        let expected = expected.map(<[u8]>::to_vec);
        let new = new.map(<[u8]>::to_vec);
        self.blocking(move |db| {
            // One write transaction: redb serializes writers, so the read and the write are
            // atomic with respect to every other writer of this file.
            let tx = db.begin_write().map_err(backend)?;
            {
                let mut table = tx.open_table(META).map_err(backend)?;
                let current = table
                    .get(key.as_str())
                    .map_err(backend)?
                    .map(|v| v.value().to_vec());
                if current != expected {
                    return Ok(false);
                }
                match &new {
                    Some(v) => {
                        table.insert(key.as_str(), v.as_slice()).map_err(backend)?;
                    }
                    None => {
                        table.remove(key.as_str()).map_err(backend)?;
                    }
                }
            }
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn health(&self) -> StoreHealth {
        let probe = self
            .blocking(|db| {
                let tx = db.begin_read().map_err(backend)?;
                tx.open_table(META).map_err(backend)?;
                Ok(())
            })
            .await;
        match probe {
            Ok(()) => StoreHealth::Ok,
            Err(_) => StoreHealth::Degraded,
        }
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}
