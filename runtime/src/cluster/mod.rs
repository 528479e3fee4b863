//! Several nodes on one store (design §8): what keeps each node's in-memory licenses a
//! cache of the store rather than the last word.
//!
//! `notices.rs`: every change a node makes to a license is announced to the other nodes
//! over the store's [`crate::store::ChangeFeed`]; a node holding that license in memory
//! reloads it, so a suspension, an edit, a kick or a session started elsewhere reaches it
//! within milliseconds, and the sessions the store no longer has end on its WebSocket
//! connections with the reason. After a lost subscription a node reloads every license it
//! holds (a missed notice cannot leave a suspended license serving).

pub mod notices;
