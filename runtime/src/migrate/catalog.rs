//! The catalog: records (customers, products, plans, webhook endpoints and deliveries) with
//! their search terms, written by the catalog port's own compare-and-swap; the index-only
//! entries of licenses and devices, written by its `set_terms`; and each kind's id counter.

use super::endpoint::Opened;
use super::pass::{MigrateError, Pass};
use super::tally::{Tally, Verdict};
use crate::store::catalog::{CatalogKind, Entry};

/// Records listed per page.
const PAGE: usize = 500;

/// The name a kind is reported under.
fn name(kind: CatalogKind) -> &'static str {
    match kind {
        CatalogKind::Customer => "customers",
        CatalogKind::Product => "products",
        CatalogKind::Plan => "plans",
        CatalogKind::License => "search: licenses",
        CatalogKind::Device => "search: devices",
        CatalogKind::WebhookEndpoint => "webhook endpoints",
        CatalogKind::WebhookDelivery => "webhook deliveries",
    }
}

fn index_only(kind: CatalogKind) -> bool {
    matches!(kind, CatalogKind::License | CatalogKind::Device)
}

pub(super) async fn pass(
    src: &Opened,
    dst: &Opened,
    pass: Pass,
    tally: &mut Tally,
) -> Result<(), MigrateError> {
    for kind in CatalogKind::ALL {
        if index_only(kind) {
            index_entries(src, dst, kind, pass, tally).await?;
        } else {
            records(src, dst, kind, pass, tally).await?;
        }
        let seq = src.transfer.catalog_seq(kind).await?;
        if matches!(pass, Pass::Write { .. }) && dst.transfer.catalog_seq(kind).await? < seq {
            dst.transfer.raise_catalog_seq(kind, seq).await?;
        }
    }
    Ok(())
}

async fn records(
    src: &Opened,
    dst: &Opened,
    kind: CatalogKind,
    pass: Pass,
    tally: &mut Tally,
) -> Result<(), MigrateError> {
    let mut after: Option<String> = None;
    loop {
        let page = src.catalog.list(kind, after.as_deref(), PAGE).await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        let last = last.clone();
        for (id, value) in page {
            let terms = src.transfer.catalog_terms(kind, &id).await?;
            let there = dst.catalog.get(kind, &id).await?;
            let verdict = match &there {
                None => Verdict::New,
                Some(v) if *v == value && dst.transfer.catalog_terms(kind, &id).await? == terms => {
                    Verdict::Same
                }
                Some(_) => Verdict::Conflict,
            };
            tally.saw(name(kind), verdict, || format!("{}:{id}", kind.as_str()));
            if pass.writes(verdict) {
                let entry = Entry {
                    value: &value,
                    terms: &terms,
                };
                if !dst
                    .catalog
                    .swap(kind, &id, there.as_deref(), Some(entry))
                    .await?
                {
                    return Err(MigrateError::Raced(format!("{}:{id}", kind.as_str())));
                }
            }
        }
        after = Some(last);
    }
    Ok(())
}

async fn index_entries(
    src: &Opened,
    dst: &Opened,
    kind: CatalogKind,
    pass: Pass,
    tally: &mut Tally,
) -> Result<(), MigrateError> {
    for id in src.transfer.catalog_indexed(kind).await? {
        let terms = src.transfer.catalog_terms(kind, &id).await?;
        let there = dst.transfer.catalog_terms(kind, &id).await?;
        let verdict = if there.is_empty() {
            Verdict::New
        } else if there == terms {
            Verdict::Same
        } else {
            Verdict::Conflict
        };
        tally.saw(name(kind), verdict, || format!("{}:{id}", kind.as_str()));
        if pass.writes(verdict) {
            dst.catalog.set_terms(kind, &id, &terms).await?;
        }
    }
    Ok(())
}
