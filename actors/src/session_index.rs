//! Which license a session token belongs to, for callers that present only the token
//! (seed 000's session end, seed 003's `extend_session` / `end_session`).
//!
//! A cache in front of [`Store::find_session`](crate::store::Store::find_session): filled on
//! lookup, emptied when the session ends on this node. A stale entry (the session ended on
//! another node) is harmless: the license's own state answers `SESSION_EXPIRED`.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::model::{LicenseKey, TokenHash};

const PARTS: usize = 16;

/// Token → license, partitioned to keep locks short.
pub struct SessionIndex {
    parts: Vec<Mutex<HashMap<TokenHash, LicenseKey>>>,
}

impl Default for SessionIndex {
    fn default() -> Self {
        Self {
            parts: (0..PARTS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl SessionIndex {
    fn part(&self, token: &TokenHash) -> &Mutex<HashMap<TokenHash, LicenseKey>> {
        &self.parts[token.as_bytes()[0] as usize % PARTS]
    }

    /// The cached license of `token`.
    pub fn get(&self, token: &TokenHash) -> Option<LicenseKey> {
        self.part(token).lock().get(token).cloned()
    }

    /// Remembers the license of `token`.
    pub fn insert(&self, token: TokenHash, key: LicenseKey) {
        self.part(&token).lock().insert(token, key);
    }

    /// Forgets `token`.
    pub fn remove(&self, token: &TokenHash) {
        self.part(token).lock().remove(token);
    }
}
