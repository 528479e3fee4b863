//! The live sessions of one license: a vector sorted by token hash.
//!
//! Most licenses hold one to a handful of sessions, and a server holds a million of them.
//! A hash map's smallest table is four buckets of key plus record (about 750 bytes for one
//! session); this table stores each record once, keyed by the token hash inside it, grows by
//! half its length at a time and gives spare room back on [`SessionTable::release_spare`].
//! Lookups are binary searches: a license with a thousand seats needs ten comparisons.

use crate::model::{SessionRecord, TokenHash};

/// Sessions of a license, unique by token hash.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionTable {
    sorted: Vec<SessionRecord>,
}

impl SessionTable {
    /// How many sessions.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// No sessions.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    fn position(&self, token: &TokenHash) -> Result<usize, usize> {
        self.sorted.binary_search_by(|s| s.token_hash.cmp(token))
    }

    /// The session of `token`.
    pub fn get(&self, token: &TokenHash) -> Option<&SessionRecord> {
        self.position(token).ok().map(|i| &self.sorted[i])
    }

    /// The session of `token`, to change it (its token hash must stay the same).
    pub fn get_mut(&mut self, token: &TokenHash) -> Option<&mut SessionRecord> {
        self.position(token).ok().map(|i| &mut self.sorted[i])
    }

    /// Whether `token` has a session here.
    pub fn contains_key(&self, token: &TokenHash) -> bool {
        self.position(token).is_ok()
    }

    /// Adds `session` under its token hash, returning the one it replaces.
    pub fn insert(&mut self, session: SessionRecord) -> Option<SessionRecord> {
        match self.position(&session.token_hash) {
            Ok(i) => Some(std::mem::replace(&mut self.sorted[i], session)),
            Err(i) => {
                if self.sorted.len() == self.sorted.capacity() {
                    // Exact growth: a one-session license keeps room for one.
                    self.sorted.reserve_exact((self.sorted.len() / 2).max(1));
                }
                self.sorted.insert(i, session);
                None
            }
        }
    }

    /// Removes and returns the session of `token`.
    pub fn remove(&mut self, token: &TokenHash) -> Option<SessionRecord> {
        self.position(token).ok().map(|i| self.sorted.remove(i))
    }

    /// The sessions, by token hash.
    pub fn values(&self) -> std::slice::Iter<'_, SessionRecord> {
        self.sorted.iter()
    }

    /// The sessions, by token hash, to change them (their token hashes must stay the same).
    pub fn values_mut(&mut self) -> std::slice::IterMut<'_, SessionRecord> {
        self.sorted.iter_mut()
    }

    /// The token hashes, in order.
    pub fn keys(&self) -> impl Iterator<Item = &TokenHash> {
        self.sorted.iter().map(|s| &s.token_hash)
    }

    /// Gives back room beyond the current sessions.
    pub fn release_spare(&mut self) {
        if self.sorted.capacity() > self.sorted.len() {
            self.sorted.shrink_to_fit();
        }
    }
}

impl FromIterator<SessionRecord> for SessionTable {
    fn from_iter<I: IntoIterator<Item = SessionRecord>>(iter: I) -> Self {
        let mut sorted: Vec<SessionRecord> = iter.into_iter().collect();
        sorted.sort_by_key(|s| s.token_hash);
        sorted.dedup_by(|later, earlier| later.token_hash == earlier.token_hash);
        sorted.shrink_to_fit();
        Self { sorted }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn session(token: u8, n: u8) -> SessionRecord {
        let t = DateTime::<Utc>::from_timestamp(i64::from(n), 0).unwrap_or_default();
        SessionRecord {
            token_hash: TokenHash::from_bytes([token; 32]),
            hardware_hash: format!("hw{n}"),
            machine_id: String::new(),
            version: String::new(),
            started_at: t,
            last_heartbeat: t,
            deadline: t,
            stored_deadline: t,
        }
    }

    #[test]
    fn one_session_takes_room_for_one() {
        let mut t = SessionTable::default();
        t.insert(session(1, 1));
        assert_eq!(t.sorted.capacity(), 1);
        t.insert(session(2, 1));
        t.insert(session(3, 1));
        t.remove(&TokenHash::from_bytes([2; 32]));
        t.release_spare();
        assert_eq!(t.sorted.capacity(), 2);
    }

    proptest! {
        /// Any sequence of inserts and removes leaves the table equal to a map's view,
        /// sorted by token hash.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0u8..16, any::<u8>()), 0..200)) {
            let mut table = SessionTable::default();
            let mut model: BTreeMap<TokenHash, SessionRecord> = BTreeMap::new();
            for (insert, token, n) in ops {
                let key = TokenHash::from_bytes([token; 32]);
                if insert {
                    let s = session(token, n);
                    prop_assert_eq!(table.insert(s.clone()), model.insert(key, s));
                } else {
                    prop_assert_eq!(table.remove(&key), model.remove(&key));
                }
                prop_assert_eq!(table.len(), model.len());
                prop_assert_eq!(table.get(&key), model.get(&key));
            }
            let ours: Vec<&SessionRecord> = table.values().collect();
            let theirs: Vec<&SessionRecord> = model.values().collect();
            prop_assert_eq!(ours, theirs);
        }
    }
}
