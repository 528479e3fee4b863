//! The change-notice port: how a node tells the others sharing its store that something
//! they may hold in memory changed, so they refresh it (design §8: a node's memory is a
//! cache of the store, never the last word).
//!
//! Only a store that several servers share implements it (Redis, with pub/sub). Notices are
//! best effort: a node that missed some (it was disconnected) refreshes everything it holds
//! when it subscribes again, so a missed notice cannot leave a suspended license serving.

use async_trait::async_trait;
use futures::stream::BoxStream;

use tessera_actors::StoreError;

/// Publishes and receives change notices (opaque bytes) among the nodes of one store.
#[async_trait]
pub trait ChangeFeed: Send + Sync + 'static {
    /// Sends `notice` to every node subscribed now (this one included).
    async fn publish(&self, notice: &[u8]) -> Result<(), StoreError>;

    /// Subscribes; the stream ends when the subscription is lost (subscribe again).
    async fn subscribe(&self) -> Result<BoxStream<'static, Vec<u8>>, StoreError>;
}
