//! Resource pools (seed 000): every resource with its id, holder and times, through the
//! transfer port's `put_resource` (the pools' own import would hand out new ids), and the
//! pools' id counter.

use super::endpoint::Opened;
use super::pass::{MigrateError, Pass};
use super::tally::{Tally, Verdict};
use crate::store::resources::ResourceIndex;

/// Resources read per page.
const PAGE: usize = 500;

pub(super) async fn pass(
    src: &Opened,
    dst: &Opened,
    pass: Pass,
    tally: &mut Tally,
) -> Result<(), MigrateError> {
    let mut after = None;
    loop {
        let page = src.resources.page(ResourceIndex::All, after, PAGE).await?;
        let Some(last) = page.last().map(|r| r.id) else {
            break;
        };
        for r in page {
            let there = dst
                .resources
                .page(ResourceIndex::All, r.id.checked_sub(1), 1)
                .await?
                .into_iter()
                .find(|t| t.id == r.id);
            let verdict = match there {
                None => Verdict::New,
                Some(t) if t == r => Verdict::Same,
                Some(_) => Verdict::Conflict,
            };
            tally.saw("resources", verdict, || format!("resource:{}", r.id));
            if pass.writes(verdict) {
                dst.transfer.put_resource(&r).await?;
            }
        }
        after = Some(last);
    }
    let seq = src.transfer.resource_seq().await?;
    if matches!(pass, Pass::Write { .. }) && dst.transfer.resource_seq().await? < seq {
        dst.transfer.raise_resource_seq(seq).await?;
    }
    Ok(())
}
