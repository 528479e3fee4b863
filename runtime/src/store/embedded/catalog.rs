//! The catalog port on the embedded store: four tables of their own in the one redb file.
//!
//! Every change is one redb write transaction and every read one read transaction. redb runs
//! one writer at a time, so a swap's comparison, its value, the id list (the records table
//! itself, read in key order) and the index entries change together, and two servers' swaps
//! of one record are serialized: the second compares against the first's value. A refused
//! swap aborts its transaction: nothing is written. Catalog writes do not go through the
//! license writer's group commit (`writer.rs`): they are rare admin actions.
//!
//! | table | key → value |
//! |---|---|
//! | `catalog_records` | `kind US id` → the record's bytes |
//! | `catalog_index` | `kind US term NUL id` → () |
//! | `catalog_terms` | `kind US id` → the entry's terms joined by NUL (to remove them on change) |
//! | `catalog_seq` | kind → last id given |
//!
//! `US` is the unit separator `\x1f`. redb orders `&str` keys bytewise, and ids and terms hold
//! no NUL (the port's contract), so one kind's index keys sort by (term, id): a prefix search
//! is a range read from `kind US prefix`, an exact term's ids are the range `kind US term NUL`
//! … `kind US term \x01`, and a kind's keys all lie below `kind \x20`.

use std::collections::HashSet;

use redb::{Table, WriteTransaction};

use super::tables::{read_table, unavailable};
use super::*;
use crate::store::catalog::{
    CatalogKind, CatalogStore, Entry, MAX_ID_LEN, MAX_TERM_LEN, MAX_TERMS,
};

pub(super) const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("catalog_records");
pub(super) const INDEX: TableDefinition<&str, ()> = TableDefinition::new("catalog_index");
pub(super) const TERMS: TableDefinition<&str, &str> = TableDefinition::new("catalog_terms");
pub(super) const SEQ: TableDefinition<&str, u64> = TableDefinition::new("catalog_seq");

/// Separates the kind from the rest of a key; no kind name holds it, so one kind's keys
/// never mix with another's.
const US: char = '\x1f';

/// `kind US`: the start of every key of `kind`.
fn start(kind: CatalogKind) -> String {
    format!("{}{US}", kind.as_str())
}

/// `kind \x20`: above every key of `kind` (`\x20` is the byte after [`US`]).
fn end(kind: CatalogKind) -> String {
    format!("{}\x20", kind.as_str())
}

/// `kind US id`: a key of the records and terms tables.
fn entry_key(kind: CatalogKind, id: &str) -> String {
    format!("{}{US}{id}", kind.as_str())
}

/// `kind US term NUL id`: a key of the index.
fn index_key(kind: CatalogKind, term: &str, id: &str) -> String {
    format!("{}{US}{term}\0{id}", kind.as_str())
}

/// The terms as stored: sorted, each once, checked against the port's limits. A refused
/// entry is written nowhere: a NUL would make an index key ambiguous and an oversized list
/// would break the bound on entries a search reads.
fn checked(id: &str, terms: &[String]) -> Result<Vec<String>, StoreError> {
    let refuse = |what: String| {
        Err(StoreError::Corrupt(format!(
            "catalog entry refused: {what}"
        )))
    };
    if id.len() > MAX_ID_LEN || id.contains('\0') {
        return refuse(format!("id of {} bytes or holding a NUL byte", id.len()));
    }
    let mut terms = terms.to_vec();
    terms.sort_unstable();
    terms.dedup();
    if terms.len() > MAX_TERMS {
        return refuse(format!("{} terms (at most {MAX_TERMS})", terms.len()));
    }
    if let Some(t) = terms
        .iter()
        .find(|t| t.len() > MAX_TERM_LEN || t.contains('\0'))
    {
        return refuse(format!("term of {} bytes or holding a NUL byte", t.len()));
    }
    Ok(terms)
}

/// The catalog tables inside one write transaction.
struct Tables<'t> {
    records: Table<'t, &'static str, &'static [u8]>,
    index: Table<'t, &'static str, ()>,
    terms: Table<'t, &'static str, &'static str>,
}

impl<'t> Tables<'t> {
    fn open(tx: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            records: tx.open_table(RECORDS).map_err(unavailable)?,
            index: tx.open_table(INDEX).map_err(unavailable)?,
            terms: tx.open_table(TERMS).map_err(unavailable)?,
        })
    }

    /// Replaces the index entries of `(kind, id)` with `terms` (already [`checked`]).
    fn replace_terms(
        &mut self,
        kind: CatalogKind,
        id: &str,
        terms: &[String],
    ) -> Result<(), StoreError> {
        let key = entry_key(kind, id);
        let old = self
            .terms
            .get(key.as_str())
            .map_err(unavailable)?
            .map(|v| v.value().to_owned());
        // No stored list means no terms; a stored "" is the one empty term (an empty list
        // is never stored).
        for term in old.iter().flat_map(|joined| joined.split('\0')) {
            self.index
                .remove(index_key(kind, term, id).as_str())
                .map_err(unavailable)?;
        }
        for term in terms {
            self.index
                .insert(index_key(kind, term, id).as_str(), ())
                .map_err(unavailable)?;
        }
        if terms.is_empty() {
            self.terms.remove(key.as_str()).map_err(unavailable)?;
        } else {
            self.terms
                .insert(key.as_str(), terms.join("\0").as_str())
                .map_err(unavailable)?;
        }
        Ok(())
    }
}

/// Runs `f` in one write transaction, committed only when it answers `(true, _)`.
fn in_write<T>(
    db: &Database,
    f: impl FnOnce(&mut Tables<'_>) -> Result<(bool, T), StoreError>,
) -> Result<T, StoreError> {
    let tx = db.begin_write().map_err(unavailable)?;
    let (commit, out) = {
        let mut tables = Tables::open(&tx)?;
        f(&mut tables)?
    };
    if commit {
        tx.commit().map_err(unavailable)?;
    } else {
        tx.abort().map_err(unavailable)?;
    }
    Ok(out)
}

#[async_trait]
impl CatalogStore for EmbeddedStore {
    async fn next_id(&self, kind: CatalogKind) -> Result<u64, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            let id = {
                let mut seq = tx.open_table(SEQ).map_err(unavailable)?;
                let last = seq
                    .get(kind.as_str())
                    .map_err(unavailable)?
                    .map_or(0, |v| v.value());
                let id = last.checked_add(1).ok_or_else(|| {
                    StoreError::Corrupt(format!("{} ids exhausted", kind.as_str()))
                })?;
                seq.insert(kind.as_str(), id).map_err(unavailable)?;
                id
            };
            tx.commit().map_err(unavailable)?;
            Ok(id)
        })
        .await
    }

    async fn get(&self, kind: CatalogKind, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = entry_key(kind, id);
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some(records) = read_table(&tx, RECORDS)? else {
                return Ok(None);
            };
            let value = records.get(key.as_str()).map_err(unavailable)?;
            Ok(value.map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn swap(
        &self,
        kind: CatalogKind,
        id: &str,
        expected: Option<&[u8]>,
        new: Option<Entry<'_>>,
    ) -> Result<bool, StoreError> {
        let terms = checked(id, new.map_or(&[], |e| e.terms))?;
        let id = id.to_owned();
        let expected = expected.map(<[u8]>::to_vec);
        let value = new.map(|e| e.value.to_vec());
        self.blocking(move |db| {
            in_write(db, |t| {
                let key = entry_key(kind, &id);
                let current = t
                    .records
                    .get(key.as_str())
                    .map_err(unavailable)?
                    .map(|v| v.value().to_vec());
                if current != expected {
                    return Ok((false, false));
                }
                match &value {
                    Some(v) => {
                        t.records
                            .insert(key.as_str(), v.as_slice())
                            .map_err(unavailable)?;
                    }
                    None => {
                        t.records.remove(key.as_str()).map_err(unavailable)?;
                    }
                }
                // A deleted record takes its terms along (`terms` is empty then).
                t.replace_terms(kind, &id, &terms)?;
                Ok((true, true))
            })
        })
        .await
    }

    async fn list(
        &self,
        kind: CatalogKind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        // Ids hold no NUL, so `after NUL` is the least id above `after`.
        let lo = match after {
            Some(a) => format!("{}\0", entry_key(kind, a)),
            None => start(kind),
        };
        let (hi, skip) = (end(kind), start(kind).len());
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some(records) = read_table(&tx, RECORDS)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for row in records
                .range(lo.as_str()..hi.as_str())
                .map_err(unavailable)?
                .take(limit)
            {
                let (k, v) = row.map_err(unavailable)?;
                let id = k.value().get(skip..).unwrap_or_default().to_owned();
                out.push((id, v.value().to_vec()));
            }
            Ok(out)
        })
        .await
    }

    async fn set_terms(
        &self,
        kind: CatalogKind,
        id: &str,
        terms: &[String],
    ) -> Result<(), StoreError> {
        let terms = checked(id, terms)?;
        let id = id.to_owned();
        self.blocking(move |db| {
            in_write(db, |t| {
                t.replace_terms(kind, &id, &terms)?;
                Ok((true, ()))
            })
        })
        .await
    }

    async fn search(
        &self,
        kind: CatalogKind,
        prefix: &str,
        exact: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        // No term holds a NUL: such a prefix matches nothing (and would reach into ids).
        if limit == 0 || prefix.contains('\0') {
            return Ok(Vec::new());
        }
        // Every key read starts with `want`; the id follows the first NUL after `start`.
        let (lo, hi, want) = if exact {
            let want = format!("{}\0", entry_key(kind, prefix));
            let lo = match after {
                Some(a) => format!("{want}{a}\0"),
                None => want.clone(),
            };
            (lo, format!("{}\x01", entry_key(kind, prefix)), want)
        } else {
            let want = entry_key(kind, prefix);
            (want.clone(), end(kind), want)
        };
        let skip = start(kind).len();
        // An id has at most MAX_TERMS entries, so `limit` distinct ids are among the first
        // `limit * MAX_TERMS` matching keys: the bound holds even when every id matches often.
        let budget = limit.saturating_mul(MAX_TERMS);
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let Some(index) = read_table(&tx, INDEX)? else {
                return Ok(Vec::new());
            };
            let (mut out, mut seen) = (Vec::new(), HashSet::new());
            for row in index
                .range(lo.as_str()..hi.as_str())
                .map_err(unavailable)?
                .take(budget)
            {
                let (k, _) = row.map_err(unavailable)?;
                let key = k.value();
                if !key.starts_with(want.as_str()) {
                    break;
                }
                let (_, id) = key
                    .get(skip..)
                    .and_then(|rest| rest.split_once('\0'))
                    .ok_or_else(|| StoreError::Corrupt(format!("catalog index key {key:?}")))?;
                if seen.insert(id.to_owned()) {
                    out.push(id.to_owned());
                    if out.len() == limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_of_one_kind_sort_between_its_bounds_and_by_term_then_id() {
        let k = CatalogKind::Plan;
        let keys = [
            index_key(k, "", "z"),
            index_key(k, "ab", "z"),
            // NUL sorts below every byte: "ab" with any id comes before a longer term.
            index_key(k, "ab\u{1}", "a"),
            index_key(k, "abc", "a"),
        ];
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert!(keys.iter().all(|key| start(k) <= *key && *key < end(k)));
        assert!(index_key(CatalogKind::Product, "", "") > end(k));
    }

    #[test]
    fn checked_sorts_dedups_and_refuses_what_would_break_the_index() {
        let terms = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            checked("1", &terms(&["b", "a", "b"])).unwrap(),
            terms(&["a", "b"])
        );
        assert!(checked("1\0", &[]).is_err());
        assert!(checked("1", &terms(&["a\0b"])).is_err());
        assert!(checked(&"x".repeat(MAX_ID_LEN + 1), &[]).is_err());
        let many: Vec<String> = (0..=MAX_TERMS).map(|i| i.to_string()).collect();
        assert!(checked("1", &many).is_err());
    }
}
