//! The resource port on Redis: every operation is one `EVALSHA` of `scripts/resources.lua`
//! over the fixed keys below, so each change (and each read) is atomic. All of them carry
//! the hash tag `{res}`, so on a Redis Cluster they live in one slot and one script may touch
//! them all: the pools are small next to the license data (one hash field and a few sorted
//! set members per resource), and one slot is what makes "all or none, never one resource to
//! two licenses" a single step without cross-slot coordination. Any number of Tessera
//! processes sharing the Redis see the same pools.
//!
//! The script is not part of [`Scripts`](super::scripts::Scripts): it is loaded on first use
//! and again after `NOSCRIPT` (a restarted Redis), here.
//!
//! | key | type | content |
//! |---|---|---|
//! | `{res}:seq` | string | last resource id given (`INCR`) |
//! | `{res}:type` | hash | id → type |
//! | `{res}:ident` | hash | id → identifier |
//! | `{res}:holder` | hash | id → license key (allocated ones only) |
//! | `{res}:at` | hash | id → allocated_at, T string (allocated ones only) |
//! | `{res}:created` | hash | id → created_at, T string |
//! | `{res}:names` | hash | `type:identifier` → id (the pool's uniqueness) |
//! | `{res}:ids` | zset | id, score id: every resource |
//! | `{res}:bytype` | zset | `type:<id, 20 digits>`, score 0: by type, read by lex range |
//! | `{res}:free` | zset | `type:<id, 20 digits>`, score 0: the free ones |
//! | `{res}:held` | zset | `LICENSE:<id, 20 digits>`, score 0: by holder |
//! | `{res}:nfree` | hash | type → free count; a field per type that has resources |
//! | `{res}:nheld` | hash | type → allocated count |
//!
//! Types and license keys hold no `:` or `;`, so a lex range `[prefix:` … `(prefix;` is
//! exactly one type's or one license's members, in id order.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use redis::Script;

use super::codec::{corrupt, decode_value, unexpected};
use super::keys::{parse_t, t};
use super::scripts::evalsha;
use super::{RedisStore, conn};
use crate::store::resources::{
    Change, CreateOutcome, Created, MAX_RESOURCE_TYPES, Removal, Resource, ResourceIndex,
    ResourceStore, ResourceType, TypeCounts,
};
use async_trait::async_trait;
use redis::Value;
use tessera_actors::{LicenseKey, StoreError};

/// The script's keys, in `KEYS[1..=13]` order.
pub(super) const KEYS: [&str; 13] = [
    "{res}:seq",
    "{res}:type",
    "{res}:ident",
    "{res}:holder",
    "{res}:at",
    "{res}:created",
    "{res}:names",
    "{res}:ids",
    "{res}:bytype",
    "{res}:free",
    "{res}:held",
    "{res}:nfree",
    "{res}:nheld",
];

static SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/resources.lua")));

/// Strings in a row of the script's replies.
const ROW: usize = 6;

impl RedisStore {
    /// One operation of `resources.lua`; its reply as strings.
    async fn resources_op(&self, args: Vec<String>) -> Result<Vec<String>, StoreError> {
        let cmd = evalsha(&SCRIPT, &KEYS, &args);
        let inner = &self.inner;
        self.guarded(async {
            let mut c = inner.conn();
            let reply = match cmd.query_async::<Value>(&mut c).await {
                Err(e) if conn::is_noscript(&e) => {
                    SCRIPT
                        .prepare_invoke()
                        .load_async(&mut c)
                        .await
                        .map_err(|e| conn::map_err(&e))?;
                    cmd.query_async::<Value>(&mut c)
                        .await
                        .map_err(|e| conn::map_err(&e))?
                }
                other => other.map_err(|e| conn::map_err(&e))?,
            };
            decode_value::<Vec<String>>(reply)
        })
        .await
    }
}

fn ids_of(items: &[String]) -> Result<Vec<u64>, StoreError> {
    items
        .iter()
        .map(|s| s.parse().map_err(|_| corrupt("malformed resource id")))
        .collect()
}

/// Rows of six strings (see `row` in the script) as resources.
fn rows(items: &[String]) -> Result<Vec<Resource>, StoreError> {
    if !items.len().is_multiple_of(ROW) {
        return Err(corrupt("resource rows have the wrong shape"));
    }
    items.chunks_exact(ROW).map(resource).collect()
}

fn resource(r: &[String]) -> Result<Resource, StoreError> {
    let id: u64 = r[0].parse().map_err(|_| corrupt("malformed resource id"))?;
    let bad = |what: &str| corrupt(format!("resource {id}: malformed {what}"));
    let time = |s: &str, what: &str| parse_t(s).ok_or_else(|| bad(what));
    Ok(Resource {
        id,
        kind: ResourceType::new(&r[1]).ok_or_else(|| bad("type"))?,
        identifier: r[2].clone(),
        holder: match r[3].as_str() {
            "" => None,
            k => Some(LicenseKey::parse(k).map_err(|_| bad("holder"))?),
        },
        allocated_at: match r[4].as_str() {
            "" => None,
            s => Some(time(s, "allocated_at")?),
        },
        created_at: time(&r[5], "created_at")?,
    })
}

/// Distinct ids, increasing, as the script's arguments.
fn id_args(ids: &[u64]) -> Vec<String> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids.iter().map(u64::to_string).collect()
}

fn split(reply: Vec<String>) -> Result<(String, Vec<String>), StoreError> {
    let mut it = reply.into_iter();
    let status = it.next().ok_or_else(|| corrupt("empty script reply"))?;
    Ok((status, it.collect()))
}

#[async_trait]
impl ResourceStore for RedisStore {
    async fn create(
        &self,
        kind: &ResourceType,
        identifiers: &[String],
        at: DateTime<Utc>,
    ) -> Result<CreateOutcome, StoreError> {
        let mut args = vec![
            "create".to_owned(),
            kind.as_str().to_owned(),
            t(at),
            MAX_RESOURCE_TYPES.to_string(),
        ];
        args.extend(identifiers.iter().cloned());
        let (status, rest) = split(self.resources_op(args).await?)?;
        match status.as_str() {
            "too_many_types" => return Ok(CreateOutcome::TooManyTypes),
            "done" => {}
            other => return Err(unexpected(other)),
        }
        if rest.len() != identifiers.len() * (ROW + 1) {
            return Err(corrupt("create reply has the wrong shape"));
        }
        let mut out = Vec::with_capacity(identifiers.len());
        for entry in rest.chunks_exact(ROW + 1) {
            out.push(Created {
                created: entry[0] == "1",
                resource: resource(&entry[1..])?,
            });
        }
        Ok(CreateOutcome::Done(out))
    }

    async fn page(
        &self,
        index: ResourceIndex<'_>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Resource>, StoreError> {
        let (name, prefix) = match index {
            ResourceIndex::All => ("ids", ""),
            ResourceIndex::OfType(k) => ("bytype", k.as_str()),
            ResourceIndex::FreeOfType(k) => ("free", k.as_str()),
            ResourceIndex::HeldBy(l) => ("held", l.as_str()),
        };
        let args = vec![
            "page".to_owned(),
            name.to_owned(),
            prefix.to_owned(),
            after.unwrap_or(0).to_string(),
            limit.to_string(),
        ];
        rows(&self.resources_op(args).await?)
    }

    async fn allocate(
        &self,
        license: &LicenseKey,
        ids: &[u64],
        kind: Option<&ResourceType>,
        at: DateTime<Utc>,
    ) -> Result<Change, StoreError> {
        let ids = id_args(ids);
        let mut args = vec![
            "allocate".to_owned(),
            license.as_str().to_owned(),
            t(at),
            kind.map(|k| k.as_str().to_owned()).unwrap_or_default(),
        ];
        args.extend(ids);
        change(self.resources_op(args).await?)
    }

    async fn release(&self, license: &LicenseKey, ids: &[u64]) -> Result<Change, StoreError> {
        let ids = id_args(ids);
        let mut args = vec!["release".to_owned(), license.as_str().to_owned()];
        args.extend(ids);
        change(self.resources_op(args).await?)
    }

    async fn release_all(&self, license: &LicenseKey) -> Result<Vec<u64>, StoreError> {
        let args = vec!["release_all".to_owned(), license.as_str().to_owned()];
        let (status, rest) = split(self.resources_op(args).await?)?;
        match status.as_str() {
            "done" => ids_of(&rest),
            other => Err(unexpected(other)),
        }
    }

    async fn delete(&self, id: u64) -> Result<Removal, StoreError> {
        let args = vec!["delete".to_owned(), id.to_string()];
        let (status, rest) = split(self.resources_op(args).await?)?;
        match status.as_str() {
            "done" => rows(&rest)?
                .pop()
                .map(Removal::Deleted)
                .ok_or_else(|| corrupt("delete reply without the resource")),
            "unknown" => Ok(Removal::Unknown),
            "allocated" => Ok(Removal::Allocated),
            other => Err(unexpected(other)),
        }
    }

    async fn counts(&self, kinds: &[ResourceType]) -> Result<Vec<TypeCounts>, StoreError> {
        let mut args = vec!["counts".to_owned()];
        args.extend(kinds.iter().map(|k| k.as_str().to_owned()));
        let reply = self.resources_op(args).await?;
        if reply.len() != kinds.len() * 2 {
            return Err(corrupt("counts reply has the wrong shape"));
        }
        let number = |s: &str| -> Result<u64, StoreError> {
            // A counter is never negative; a negative one is reported as empty.
            let n: i64 = s.parse().map_err(|_| corrupt("malformed resource count"))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        kinds
            .iter()
            .zip(reply.chunks_exact(2))
            .map(|(kind, pair)| {
                Ok(TypeCounts {
                    kind: kind.clone(),
                    free: number(&pair[0])?,
                    allocated: number(&pair[1])?,
                })
            })
            .collect()
    }
}

/// The [`Change`] of an allocate or release reply.
fn change(reply: Vec<String>) -> Result<Change, StoreError> {
    let (status, rest) = split(reply)?;
    match status.as_str() {
        "done" => Ok(Change::Done(rows(&rest)?)),
        "unknown" => Ok(Change::Unknown(ids_of(&rest)?)),
        "wrong_type" => Ok(Change::WrongType(ids_of(&rest)?)),
        "conflict" => Ok(Change::Conflict(ids_of(&rest)?)),
        other => Err(unexpected(other)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_key_shares_the_one_hash_tag() {
        for k in KEYS {
            assert!(k.starts_with("{res}:"), "{k}");
        }
    }

    #[test]
    fn rows_decode_free_and_held_resources() {
        let at = t(Utc::now());
        let items: Vec<String> = [
            "7",
            "server",
            "SRV-1",
            "",
            "",
            &at,
            "8",
            "domain",
            "a.example",
            "ABCD-EFGH",
            &at,
            &at,
        ]
        .map(str::to_owned)
        .to_vec();
        let got = rows(&items).unwrap();
        assert_eq!(got[0].holder, None);
        assert_eq!(
            got[1].holder.as_ref().map(|k| k.as_str()),
            Some("ABCD-EFGH")
        );
        assert!(rows(&items[..5]).is_err());
    }
}
