//! Answers of recent requests by their caller-chosen id, so a retried request gets the first
//! answer instead of running again (see `bulk.rs`). Bounded: the oldest id is forgotten first.

use std::collections::VecDeque;

use parking_lot::Mutex;

/// Request ids remembered.
pub(super) const REMEMBERED: usize = 256;

/// The last [`REMEMBERED`] answers, as JSON.
#[derive(Debug, Default)]
pub(super) struct Remembered(Mutex<VecDeque<(String, serde_json::Value)>>);

impl Remembered {
    /// The answer remembered for `id`.
    pub(super) fn get(&self, id: &str) -> Option<serde_json::Value> {
        self.0
            .lock()
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, v)| v.clone())
    }

    /// Remembers `answer` for `id`, forgetting the oldest when full.
    pub(super) fn put(&self, id: String, answer: serde_json::Value) {
        let mut q = self.0.lock();
        if q.len() == REMEMBERED {
            q.pop_front();
        }
        q.push_back((id, answer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_answer_is_forgotten_first() {
        let r = Remembered::default();
        for n in 0..=REMEMBERED {
            r.put(format!("id-{n}"), serde_json::json!(n));
        }
        assert_eq!(r.get("id-0"), None);
        assert_eq!(r.get("id-1"), Some(serde_json::json!(1)));
        assert_eq!(
            r.get(&format!("id-{REMEMBERED}")),
            Some(serde_json::json!(REMEMBERED))
        );
    }
}
