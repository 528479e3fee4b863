//! The event log, oldest first, each event under its own id (so a client's
//! `Last-Event-ID` still means the same point in the log), through the transfer port's
//! `put_event`: the log's own append would number them anew.

use super::endpoint::Opened;
use super::pass::{MigrateError, Pass};
use super::tally::{Tally, Verdict};
use crate::store::events::MAX_BATCH;
use crate::store::transfer::unstored;

pub(super) async fn pass(
    src: &Opened,
    dst: &Opened,
    pass: Pass,
    tally: &mut Tally,
) -> Result<(), MigrateError> {
    let mut after = None;
    loop {
        let page = src.events.after(after, MAX_BATCH).await?;
        let Some(last) = page.last() else {
            break;
        };
        let last = unstored(last)?.0;
        for event in page {
            let id = unstored(&event)?.0;
            let verdict = match dst.transfer.event(id).await? {
                None => Verdict::New,
                Some(there) if there == event => Verdict::Same,
                Some(_) => Verdict::Conflict,
            };
            tally.saw("events", verdict, || format!("event:{id}"));
            if pass.writes(verdict) {
                dst.transfer.put_event(&event).await?;
            }
        }
        after = Some(last);
    }
    Ok(())
}
