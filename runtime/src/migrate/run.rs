//! The migration: three passes over every part (check, write, verify), in an order where
//! nothing refers to what is not there yet, and the refusals between them.

use tessera_config::Config;

use super::endpoint::{Endpoint, Opened, open};
use super::pass::{MigrateError, Pass};
use super::tally::Tally;
use super::{audit, catalog, events, licenses, meta, resources};

/// What a migration did.
#[derive(Debug)]
pub struct Report {
    /// The check pass: what the target held before.
    pub before: Tally,
    /// The verify pass: every source item, now unchanged in the target.
    pub after: Tally,
}

/// Copies `from` into `to` (see the module documentation); `config` gives the Redis CA file
/// and timeout. With `on_check`, the check pass's tally is shown before anything is written.
pub async fn migrate(
    config: &Config,
    from: &Endpoint,
    to: &Endpoint,
    force: bool,
    on_check: impl FnOnce(&Tally),
) -> Result<Report, MigrateError> {
    if from == to {
        return Err(MigrateError::SameStore);
    }
    let src = open(from, config, true).await?;
    let dst = open(to, config, false).await?;
    let before = run(&src, &dst, Pass::Check).await?;
    on_check(&before);
    if let Some(c) = before.get("audit records").filter(|c| c.conflicts > 0) {
        let seq = c
            .examples
            .first()
            .and_then(|e| e.strip_prefix("audit:")?.parse().ok())
            .unwrap_or(0);
        return Err(MigrateError::AuditDiverges(seq));
    }
    if before.conflicts() > 0 && !force {
        return Err(MigrateError::Conflicts(before.conflicts()));
    }
    run(&src, &dst, Pass::Write { force }).await?;
    let after = run(&src, &dst, Pass::Check).await?;
    if after.missing() > 0 || after.conflicts() > 0 {
        return Err(MigrateError::Verify(format!(
            "{} item(s) missing and {} differing in the target after the copy\n{after}",
            after.missing(),
            after.conflicts()
        )));
    }
    Ok(Report { before, after })
}

/// Every kind a report lists, also when the source has none.
const KINDS: &[&str] = &[
    "meta records",
    "plugin keys",
    "customers",
    "products",
    "plans",
    "webhook endpoints",
    "webhook deliveries",
    "search: licenses",
    "search: devices",
    "licenses",
    "devices",
    "live sessions",
    "resources",
    "audit records",
    "events",
];

/// One pass over every part, in an order where nothing refers to what is not yet there.
async fn run(src: &Opened, dst: &Opened, pass: Pass) -> Result<Tally, MigrateError> {
    let mut tally = Tally::with_kinds(KINDS);
    meta::pass(src, dst, pass, &mut tally).await?;
    catalog::pass(src, dst, pass, &mut tally).await?;
    licenses::pass(src, dst, pass, &mut tally).await?;
    resources::pass(src, dst, pass, &mut tally).await?;
    audit::pass(src, dst, pass, &mut tally).await?;
    events::pass(src, dst, pass, &mut tally).await?;
    Ok(tally)
}
