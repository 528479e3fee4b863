//! What a migration pass found, kind by kind: how many items the source has, and how many
//! of them the target lacks, holds alike, or holds differently (a conflict).

use std::fmt;

/// How one item of the source compares with the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not in the target.
    New,
    /// In the target, equal.
    Same,
    /// In the target, different.
    Conflict,
}

/// Counts of one kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Items in the source.
    pub source: u64,
    /// Not in the target (before the copy).
    pub new: u64,
    /// Already in the target, equal.
    pub same: u64,
    /// In the target but different.
    pub conflicts: u64,
    /// A few conflicting ids, for the message.
    pub examples: Vec<String>,
}

/// Counts per kind, in the order [`Tally::with_kinds`] was given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally(pub Vec<(&'static str, Count)>);

impl Tally {
    /// A tally listing `kinds`, in that order, at zero.
    pub(crate) fn with_kinds(kinds: &[&'static str]) -> Self {
        Self(kinds.iter().map(|k| (*k, Count::default())).collect())
    }

    fn entry(&mut self, kind: &'static str) -> &mut Count {
        let at = match self.0.iter().position(|(k, _)| *k == kind) {
            Some(i) => i,
            None => {
                self.0.push((kind, Count::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }

    /// The counts of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Count> {
        self.0.iter().find(|(k, _)| *k == kind).map(|(_, c)| c)
    }

    /// Records one source item of `kind`.
    pub(crate) fn saw(
        &mut self,
        kind: &'static str,
        verdict: Verdict,
        id: impl FnOnce() -> String,
    ) {
        let c = self.entry(kind);
        c.source += 1;
        match verdict {
            Verdict::New => c.new += 1,
            Verdict::Same => c.same += 1,
            Verdict::Conflict => {
                c.conflicts += 1;
                if c.examples.len() < 3 {
                    c.examples.push(id());
                }
            }
        }
    }

    /// Adds `n` source items of `kind` that have no verdict of their own (a license's
    /// devices and sessions follow their license's).
    pub(crate) fn add(&mut self, kind: &'static str, n: u64, verdict: Verdict) {
        let c = self.entry(kind);
        c.source += n;
        match verdict {
            Verdict::New => c.new += n,
            Verdict::Same => c.same += n,
            Verdict::Conflict => c.conflicts += n,
        }
    }

    /// Items of every kind that differ in the target.
    pub fn conflicts(&self) -> u64 {
        self.0.iter().map(|(_, c)| c.conflicts).sum()
    }

    /// Items of every kind the target lacks.
    pub fn missing(&self) -> u64 {
        self.0.iter().map(|(_, c)| c.new).sum()
    }

    /// Source items of `kind`.
    pub fn source(&self, kind: &str) -> u64 {
        self.get(kind).map_or(0, |c| c.source)
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<20} {:>9} {:>9} {:>9} {:>9}",
            "kind", "source", "new", "unchanged", "differing"
        )?;
        for (kind, c) in &self.0 {
            writeln!(
                f,
                "{kind:<20} {:>9} {:>9} {:>9} {:>9}",
                c.source, c.new, c.same, c.conflicts
            )?;
            for e in &c.examples {
                writeln!(f, "    differs: {e}")?;
            }
        }
        Ok(())
    }
}
