//! Change notices between the nodes of one store: a sink that collects the licenses this
//! node changed and publishes them in small batches, and a listener that refreshes the
//! licenses other nodes changed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tessera_actors::{EndReason, EventSink, LicenseEvent, LicenseKey, Licenses, SessionRecord};
use tokio::sync::mpsc;

use crate::store::{ChangeFeed, StoreError};

/// Changed licenses waiting to be published; beyond this a batch says "refresh everything".
const QUEUE: usize = 16_384;
/// Most keys in one notice.
const MAX_BATCH: usize = 512;
/// How long the publisher gathers keys after the first one: bounds the notice rate under
/// load and adds at most this much to the time a change takes to reach the other nodes.
const GATHER: Duration = Duration::from_millis(2);
/// Longest wait between two subscription attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One notice on the feed.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Notice {
    /// The node that made the changes (it ignores its own notices).
    node: String,
    /// The licenses changed.
    #[serde(default)]
    keys: Vec<String>,
    /// Refresh everything held (the sender lost track of what it changed).
    #[serde(default)]
    all: bool,
    /// End every live session held, with this reason (the emergency control, made on the
    /// sender).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_all: Option<EndReason>,
}

/// The sink in front of the license actors' others: forwards everything and queues each
/// changed license for the publisher.
struct NoticeSink {
    inner: Arc<dyn EventSink>,
    tx: mpsc::Sender<LicenseKey>,
    overflowed: Arc<AtomicBool>,
}

impl EventSink for NoticeSink {
    fn emit(&self, event: &LicenseEvent) {
        self.inner.emit(event);
    }

    fn changed(&self, key: &LicenseKey) {
        self.inner.changed(key);
        if self.tx.try_send(key.clone()).is_err() {
            // The next notice tells every node to refresh everything.
            self.overflowed.store(true, Ordering::Relaxed);
        }
    }

    fn ended_elsewhere(&self, key: &LicenseKey, session: &SessionRecord, reason: EndReason) {
        self.inner.ended_elsewhere(key, session, reason);
    }
}

/// This node's side of the feed.
pub struct Notices {
    node: String,
    feed: Arc<dyn ChangeFeed>,
}

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notices").field("node", &self.node).finish()
    }
}

impl Notices {
    /// Wraps `inner` (the license actors' sink) so that every change is published on
    /// `feed`; the publisher runs until the sink is dropped.
    pub fn start(
        feed: Arc<dyn ChangeFeed>,
        inner: Arc<dyn EventSink>,
    ) -> (Self, Arc<dyn EventSink>) {
        let node = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = mpsc::channel(QUEUE);
        let overflowed = Arc::new(AtomicBool::new(false));
        tokio::spawn(publish(
            Arc::clone(&feed),
            node.clone(),
            rx,
            Arc::clone(&overflowed),
        ));
        let sink = Arc::new(NoticeSink {
            inner,
            tx,
            overflowed,
        });
        (Self { node, feed }, sink)
    }

    /// Tells the other nodes to end every live session they hold with `reason` (this node
    /// ends its own itself).
    ///
    /// # Errors
    /// The store did not take the notice.
    pub async fn end_all_sessions(&self, reason: EndReason) -> Result<(), StoreError> {
        let notice = Notice {
            node: self.node.clone(),
            keys: Vec::new(),
            all: false,
            end_all: Some(reason),
        };
        let bytes = serde_json::to_vec(&notice)
            .map_err(|e| StoreError::Unavailable(format!("notice: {e}")))?;
        self.feed.publish(&bytes).await?;
        metrics::counter!("tessera_cluster_notices_sent_total").increment(1);
        Ok(())
    }

    /// Listens for the other nodes' notices and refreshes what they changed in `licenses`,
    /// until the returned task is aborted.
    pub fn listen(&self, licenses: Licenses) -> tokio::task::JoinHandle<()> {
        tokio::spawn(listen(Arc::clone(&self.feed), self.node.clone(), licenses))
    }
}

async fn publish(
    feed: Arc<dyn ChangeFeed>,
    node: String,
    mut rx: mpsc::Receiver<LicenseKey>,
    overflowed: Arc<AtomicBool>,
) {
    while let Some(first) = rx.recv().await {
        let mut keys = BTreeSet::from([first.as_str().to_owned()]);
        let gather = tokio::time::sleep(GATHER);
        tokio::pin!(gather);
        while keys.len() < MAX_BATCH {
            tokio::select! {
                () = &mut gather => break,
                next = rx.recv() => match next {
                    Some(k) => {
                        keys.insert(k.as_str().to_owned());
                    }
                    None => break,
                },
            }
        }
        let all = overflowed.swap(false, Ordering::Relaxed);
        let notice = Notice {
            node: node.clone(),
            keys: if all {
                Vec::new()
            } else {
                keys.into_iter().collect()
            },
            all,
            end_all: None,
        };
        let Ok(bytes) = serde_json::to_vec(&notice) else {
            continue;
        };
        match feed.publish(&bytes).await {
            Ok(()) => metrics::counter!("tessera_cluster_notices_sent_total").increment(1),
            Err(e) => {
                // The store is unreachable: the other nodes lose their subscription too and
                // refresh everything when it is back.
                metrics::counter!("tessera_cluster_notice_failures_total").increment(1);
                tracing::debug!(error = %e, "change notice not published");
            }
        }
    }
}

async fn listen(feed: Arc<dyn ChangeFeed>, node: String, licenses: Licenses) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match feed.subscribe().await {
            Ok(mut notices) => {
                backoff = Duration::from_millis(100);
                // Whatever changed while this node was not listening.
                licenses.refresh_all();
                metrics::counter!("tessera_cluster_resyncs_total").increment(1);
                tracing::info!("listening for other nodes' changes");
                while let Some(bytes) = notices.next().await {
                    apply(&bytes, &node, &licenses);
                }
                tracing::warn!("lost the change-notice subscription; subscribing again");
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to change notices"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn apply(bytes: &[u8], node: &str, licenses: &Licenses) {
    let Ok(notice) = serde_json::from_slice::<Notice>(bytes) else {
        metrics::counter!("tessera_cluster_notice_failures_total").increment(1);
        return;
    };
    if notice.node == node {
        return;
    }
    metrics::counter!("tessera_cluster_notices_received_total").increment(1);
    if let Some(reason) = notice.end_all {
        let licenses = licenses.clone();
        tokio::spawn(async move {
            match licenses.end_all_sessions(reason).await {
                Ok(n) => tracing::warn!(
                    ended = n,
                    "emergency control from another server: ended every live session here"
                ),
                Err(e) => tracing::error!(error = %e, "ending every live session failed"),
            }
        });
        return;
    }
    if notice.all {
        licenses.refresh_all();
        return;
    }
    for key in notice.keys.iter().filter_map(|k| LicenseKey::parse(k).ok()) {
        licenses.refresh(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_round_trips_and_defaults_to_no_keys() {
        let n = Notice {
            node: "a".into(),
            keys: vec!["K".into()],
            all: false,
            end_all: Some(EndReason::Admin),
        };
        let bytes = serde_json::to_vec(&n).unwrap_or_default();
        assert_eq!(serde_json::from_slice::<Notice>(&bytes).ok(), Some(n));
        let bare: Notice =
            serde_json::from_str(r#"{"node":"b","all":true}"#).unwrap_or_else(|e| panic!("{e}"));
        assert!(bare.all && bare.keys.is_empty() && bare.end_all.is_none());
    }
}
