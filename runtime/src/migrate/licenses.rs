//! Licenses with their devices (activations) and live sessions, copied as they are (ids,
//! counts and times kept) through the transfer port's `put_license`, and the id counters
//! raised so neither store ever hands out an id twice.

use super::endpoint::Opened;
use super::pass::{MigrateError, Pass};
use super::tally::{Tally, Verdict};
use crate::store::transfer::IdCounters;

/// Licenses listed per page.
const PAGE: usize = 500;

pub(super) async fn pass(
    src: &Opened,
    dst: &Opened,
    pass: Pass,
    tally: &mut Tally,
) -> Result<(), MigrateError> {
    let mut after = None;
    loop {
        let keys = src.licenses.list_licenses(after.as_ref(), PAGE).await?;
        let Some(last) = keys.last().cloned() else {
            break;
        };
        for key in &keys {
            // Deleted between the listing and the load: nothing to copy.
            let Some(license) = src.licenses.load(key).await? else {
                continue;
            };
            let verdict = match dst.licenses.load(key).await? {
                None => Verdict::New,
                Some(there) if there == license => Verdict::Same,
                Some(_) => Verdict::Conflict,
            };
            tally.saw("licenses", verdict, || key.masked().to_string());
            tally.add("devices", license.activations.len() as u64, verdict);
            tally.add("live sessions", license.sessions.len() as u64, verdict);
            if pass.writes(verdict) {
                dst.transfer.put_license(&license).await?;
            }
        }
        after = Some(last);
    }
    let counters = src.transfer.id_counters().await?;
    let there = dst.transfer.id_counters().await?;
    let raised = IdCounters {
        license: counters.license.max(there.license),
        activation: counters.activation.max(there.activation),
    };
    if matches!(pass, Pass::Write { .. }) && raised != there {
        dst.transfer.raise_id_counters(raised).await?;
    }
    Ok(())
}
