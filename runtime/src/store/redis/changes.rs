//! Change notices on Redis: `PUBLISH` on one channel through the store's connection, and a
//! subscription on a connection of its own. On a cluster, classic pub/sub is broadcast over
//! the cluster bus, so a subscription on any one node hears every node's notices; the
//! subscriber tries the configured nodes in turn.

use futures::StreamExt;
use futures::stream::BoxStream;

use super::*;
use crate::store::changes::ChangeFeed;

/// The channel every node publishes on and listens to.
const CHANNEL: &str = "tessera:changes";

#[async_trait]
impl ChangeFeed for RedisStore {
    async fn publish(&self, notice: &[u8]) -> Result<(), StoreError> {
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(CHANNEL).arg(notice);
        let inner = &self.inner;
        self.guarded(async { inner.query(&publish).await.map(drop) })
            .await
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, Vec<u8>>, StoreError> {
        let urls: Vec<String> = match &self.inner.target {
            Target::Single(url) => vec![url.clone()],
            Target::Cluster(nodes) => nodes.clone(),
            Target::Sentinel(_) => return self.subscribe_on_primary().await,
        };
        let timeout = self.inner.op_timeout;
        let mut last = StoreError::Unavailable("redis: no node to subscribe on".into());
        for url in urls {
            let client = conn::single_client(&url, &self.inner.tls)?;
            let subscribed = tokio::time::timeout(timeout, async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(CHANNEL).await?;
                Ok::<_, redis::RedisError>(pubsub)
            })
            .await;
            match subscribed {
                Ok(Ok(pubsub)) => {
                    return Ok(pubsub
                        .into_on_message()
                        .map(|msg| msg.get_payload_bytes().to_vec())
                        .boxed());
                }
                Ok(Err(e)) => last = conn::map_err(&e),
                Err(_) => last = StoreError::Unavailable("redis: subscribe timed out".into()),
            }
        }
        Err(last)
    }
}

impl RedisStore {
    /// Subscribes on the primary the sentinels name now; the stream ends when its connection
    /// drops or the store switches to another primary.
    async fn subscribe_on_primary(&self) -> Result<BoxStream<'static, Vec<u8>>, StoreError> {
        let Conn::Sentinel(sentinel) = self.inner.conn() else {
            return Err(StoreError::Unavailable(
                "redis: a sentinel url without a sentinel connection".into(),
            ));
        };
        let (client, mut switched) = sentinel.primary_now().await?;
        let subscribed = tokio::time::timeout(self.inner.op_timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match subscribed {
            Ok(Ok(pubsub)) => Ok(pubsub
                .into_on_message()
                .map(|msg| msg.get_payload_bytes().to_vec())
                // A server that is no longer the primary may hear nothing more (it can be
                // cut off from the new one): follow the store's view instead.
                .take_until(async move {
                    let _ = switched.changed().await;
                })
                .boxed()),
            Ok(Err(e)) => Err(conn::map_err(&e)),
            Err(_) => Err(StoreError::Unavailable("redis: subscribe timed out".into())),
        }
    }
}
