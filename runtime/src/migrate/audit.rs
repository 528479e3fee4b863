//! The audit chain, record by record through the audit port's own append (each appended at
//! the head it follows), so the copy verifies exactly as the source does: same records,
//! same hashes, and the anchor, a meta record, copied with the other meta records.
//!
//! A target whose chain differs from the source's is refused even with `--force`: an
//! append-only chain cannot take another chain's records without breaking.

use super::endpoint::Opened;
use super::pass::{MigrateError, Pass};
use super::tally::{Tally, Verdict};
use crate::store::audit::MAX_READ;

pub(super) async fn pass(
    src: &Opened,
    dst: &Opened,
    pass: Pass,
    tally: &mut Tally,
) -> Result<(), MigrateError> {
    let head = src.audit.audit_head().await?;
    let mut from = 1;
    while from <= head {
        let limit = MAX_READ.min(usize::try_from(head - from + 1).unwrap_or(MAX_READ));
        let mine = src.audit.audit_range(from, limit).await?;
        let theirs = dst.audit.audit_range(from, limit).await?;
        for (seq, record) in mine {
            let Some(record) = record else {
                return Err(MigrateError::Source(format!(
                    "audit record {seq} is missing from the source (its chain does not verify)"
                )));
            };
            let there = theirs
                .iter()
                .find(|(s, _)| *s == seq)
                .and_then(|(_, r)| r.as_ref());
            let verdict = match there {
                None => Verdict::New,
                Some(r) if *r == record => Verdict::Same,
                Some(_) => Verdict::Conflict,
            };
            if verdict == Verdict::Conflict && matches!(pass, Pass::Write { .. }) {
                return Err(MigrateError::AuditDiverges(seq));
            }
            tally.saw("audit records", verdict, || format!("audit:{seq}"));
            if pass.writes(verdict) && !dst.audit.audit_append(seq - 1, &record).await? {
                return Err(MigrateError::AuditDiverges(seq));
            }
        }
        from += limit as u64;
    }
    Ok(())
}
