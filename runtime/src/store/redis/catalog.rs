//! The catalog port on Redis. Every key of one kind carries the hash tag `{cat:KIND}`, so on a
//! Redis Cluster a kind lives in one slot and one script may touch all of its keys: a swap
//! (compare the value, write it and the id list, move the index entries) and a change of
//! terms are each one `EVALSHA` of [`SCRIPT`], atomic on the server. Reads are single
//! commands or one read-only call of the same script.
//!
//! | key | type | content |
//! |---|---|---|
//! | `tessera:{cat:KIND}:v` | hash | id → the record's bytes |
//! | `tessera:{cat:KIND}:ids` | zset | every record's id, score 0 (listed by `ZRANGEBYLEX`) |
//! | `tessera:{cat:KIND}:t` | zset | `term NUL id`, score 0: the index, read by lex range |
//! | `tessera:{cat:KIND}:tof` | hash | id → its terms joined by NUL (to remove them on change) |
//! | `tessera:{cat:KIND}:seq` | string | last id given (`INCR`) |
//!
//! Ids and terms hold no NUL (the port's contract), so the index's lex order is (term, id)
//! order; members are UTF-8, which never holds the byte `0xFF`, so `[prefix` … `(prefix\xff`
//! is every member whose term starts with `prefix`, and `[term NUL` … `(term \x01` one exact
//! term's members in id order.
//!
//! The script is not part of [`Scripts`](super::scripts::Scripts): like `resources.lua` it is
//! loaded on first use and again after `NOSCRIPT` (a restarted Redis), here.

use std::collections::HashSet;
use std::sync::LazyLock;

use async_trait::async_trait;
use redis::{Script, Value};
use tessera_actors::StoreError;

use super::codec::{corrupt, decode_value};
use super::{RedisStore, conn};
use crate::store::catalog::{
    CatalogKind, CatalogStore, Entry, MAX_ID_LEN, MAX_TERM_LEN, MAX_TERMS,
};

/// Every change of the catalog, and the atomic read of a page of records. `ARGV[1]` names the
/// operation; `KEYS` are one kind's `v`, `ids`, `t`, `tof`. Lua strings are binary, so values
/// pass through unchanged.
const LUA: &str = r"
local V, IDS, T, TOF = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local NUL = string.char(0)

-- Replaces the index entries of `id` with ARGV[first..]. No stored list means no terms; a
-- stored '' is the one empty term (an empty list is never stored).
local function set_terms(id, first)
  local old = redis.call('HGET', TOF, id)
  if old then
    local i = 1
    while true do
      local j = string.find(old, NUL, i, true)
      redis.call('ZREM', T, string.sub(old, i, j and j - 1 or -1) .. NUL .. id)
      if not j then break end
      i = j + 1
    end
  end
  local new = {}
  for k = first, #ARGV do
    new[#new + 1] = ARGV[k]
    redis.call('ZADD', T, 0, ARGV[k] .. NUL .. id)
  end
  if #new == 0 then
    redis.call('HDEL', TOF, id)
  else
    redis.call('HSET', TOF, id, table.concat(new, NUL))
  end
end

local op = ARGV[1]
if op == 'swap' then
  -- id, has expected ('0'/'1'), expected, has new ('0'/'1'), new, terms...
  local id = ARGV[2]
  local cur = redis.call('HGET', V, id)
  if ARGV[3] == '0' then
    if cur then return 0 end
  elseif cur ~= ARGV[4] then
    return 0
  end
  if ARGV[5] == '1' then
    redis.call('HSET', V, id, ARGV[6])
    redis.call('ZADD', IDS, 0, id)
    set_terms(id, 7)
  else
    redis.call('HDEL', V, id)
    redis.call('ZREM', IDS, id)
    set_terms(id, #ARGV + 1)
  end
  return 1
elseif op == 'terms' then
  -- id, terms...
  set_terms(ARGV[2], 3)
  return 1
elseif op == 'list' then
  -- lex min, count: id, value, id, value, ... (ids and values from one moment)
  local ids = redis.call('ZRANGEBYLEX', IDS, ARGV[2], '+', 'LIMIT', 0, ARGV[3])
  local out = {}
  for _, id in ipairs(ids) do
    local v = redis.call('HGET', V, id)
    if v then
      out[#out + 1] = id
      out[#out + 1] = v
    end
  end
  return out
end
return redis.error_reply('catalog: unknown operation ' .. tostring(op))
";

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LUA));

/// Most index members read by one `ZRANGEBYLEX` of a prefix search (bounds one reply).
const MAX_BATCH: usize = 1_000;

/// The keys of one kind, all with its hash tag.
struct Keys {
    v: String,
    ids: String,
    t: String,
    tof: String,
    seq: String,
}

impl Keys {
    fn of(kind: CatalogKind) -> Self {
        let tag = format!("tessera:{{cat:{}}}", kind.as_str());
        Self {
            v: format!("{tag}:v"),
            ids: format!("{tag}:ids"),
            t: format!("{tag}:t"),
            tof: format!("{tag}:tof"),
            seq: format!("{tag}:seq"),
        }
    }

    /// The script's keys, in `KEYS[1..=4]` order.
    fn script(&self) -> [&str; 4] {
        [&self.v, &self.ids, &self.t, &self.tof]
    }
}

/// The terms as stored: sorted, each once, checked against the port's limits. A refused
/// entry is written nowhere: a NUL would make an index member ambiguous and an oversized list
/// would break the bound on members a search reads.
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

/// `mark` followed by `parts`: a `ZRANGEBYLEX` bound (`[` inclusive, `(` exclusive).
fn bound(mark: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![mark];
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// The id of an index member `term NUL id`.
fn member_id(member: &[u8]) -> Result<String, StoreError> {
    let at = member
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| corrupt("catalog index member without a NUL"))?;
    String::from_utf8(member[at + 1..].to_vec()).map_err(|_| corrupt("catalog id is not UTF-8"))
}

/// A count as Redis's `LIMIT` takes it.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl RedisStore {
    /// One call of [`SCRIPT`] on `kind`'s keys; after `NOSCRIPT` it is loaded and retried once.
    async fn catalog_op(&self, keys: &Keys, args: Vec<Vec<u8>>) -> Result<Value, StoreError> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(SCRIPT.get_hash()).arg(4);
        for k in keys.script() {
            cmd.arg(k);
        }
        for a in &args {
            cmd.arg(a.as_slice());
        }
        let inner = &self.inner;
        self.guarded(async {
            let mut c = inner.conn();
            match cmd.query_async::<Value>(&mut c).await {
                Err(e) if conn::is_noscript(&e) => {
                    SCRIPT
                        .prepare_invoke()
                        .load_async(&mut c)
                        .await
                        .map_err(|e| conn::map_err(&e))?;
                    cmd.query_async::<Value>(&mut c)
                        .await
                        .map_err(|e| conn::map_err(&e))
                }
                other => other.map_err(|e| conn::map_err(&e)),
            }
        })
        .await
    }
}

/// A script argument from text.
fn arg(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

#[async_trait]
impl CatalogStore for RedisStore {
    async fn next_id(&self, kind: CatalogKind) -> Result<u64, StoreError> {
        let mut incr = redis::cmd("INCR");
        incr.arg(Keys::of(kind).seq);
        let inner = &self.inner;
        let id = self
            .guarded(async { decode_value::<i64>(inner.query(&incr).await?) })
            .await?;
        u64::try_from(id).map_err(|_| corrupt(format!("{} id counter is {id}", kind.as_str())))
    }

    async fn get(&self, kind: CatalogKind, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut hget = redis::cmd("HGET");
        hget.arg(Keys::of(kind).v).arg(id);
        let inner = &self.inner;
        self.guarded(async { decode_value::<Option<Vec<u8>>>(inner.query(&hget).await?) })
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
        let flag = |present: bool| arg(if present { "1" } else { "0" });
        let mut args = vec![
            arg("swap"),
            arg(id),
            flag(expected.is_some()),
            expected.unwrap_or_default().to_vec(),
            flag(new.is_some()),
            new.map(|e| e.value.to_vec()).unwrap_or_default(),
        ];
        args.extend(terms.iter().map(|t| arg(t)));
        let reply = self.catalog_op(&Keys::of(kind), args).await?;
        Ok(decode_value::<i64>(reply)? == 1)
    }

    async fn list(
        &self,
        kind: CatalogKind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let min = match after {
            Some(a) => bound(b'(', &[a.as_bytes()]),
            None => arg("-"),
        };
        let args = vec![arg("list"), min, arg(&count(limit).to_string())];
        let reply = self.catalog_op(&Keys::of(kind), args).await?;
        let items = decode_value::<Vec<Vec<u8>>>(reply)?;
        if !items.len().is_multiple_of(2) {
            return Err(corrupt("catalog list reply has the wrong shape"));
        }
        let mut out = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(id), Some(value)) = (it.next(), it.next()) {
            let id = String::from_utf8(id).map_err(|_| corrupt("catalog id is not UTF-8"))?;
            out.push((id, value));
        }
        Ok(out)
    }

    async fn set_terms(
        &self,
        kind: CatalogKind,
        id: &str,
        terms: &[String],
    ) -> Result<(), StoreError> {
        let terms = checked(id, terms)?;
        let mut args = vec![arg("terms"), arg(id)];
        args.extend(terms.iter().map(|t| arg(t)));
        let reply = self.catalog_op(&Keys::of(kind), args).await?;
        decode_value::<i64>(reply).map(drop)
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
        let index = Keys::of(kind).t;
        let p = prefix.as_bytes();
        let inner = &self.inner;
        if exact {
            // One term's members are `term NUL id`, unique per id and in id order.
            let min = match after {
                Some(a) => bound(b'(', &[p, b"\0", a.as_bytes()]),
                None => bound(b'[', &[p, b"\0"]),
            };
            let mut range = redis::cmd("ZRANGEBYLEX");
            range
                .arg(&index)
                .arg(min)
                .arg(bound(b'(', &[p, b"\x01"]))
                .arg("LIMIT")
                .arg(0)
                .arg(count(limit));
            let members = self
                .guarded(async { decode_value::<Vec<Vec<u8>>>(inner.query(&range).await?) })
                .await?;
            return members.iter().map(|m| member_id(m)).collect();
        }
        // A prefix may match several terms of one id: read in batches, each continuing after
        // the last member read, until `limit` distinct ids or the end of the range. The first
        // batch is `limit` (enough when each id matches once); each next one doubles, so an id
        // matching all its MAX_TERMS terms costs a few round trips, not one per member. An id
        // has at most MAX_TERMS members, so `limit * MAX_TERMS` members always hold `limit`
        // distinct ids.
        let max = if p.is_empty() {
            arg("+")
        } else {
            bound(b'(', &[p, b"\xff"])
        };
        let mut min = if p.is_empty() {
            arg("-")
        } else {
            bound(b'[', &[p])
        };
        let mut budget = limit.saturating_mul(MAX_TERMS);
        let mut batch = limit.min(MAX_BATCH);
        self.guarded(async {
            let (mut out, mut seen) = (Vec::new(), HashSet::new());
            while budget > 0 {
                let take = batch.min(budget);
                let mut range = redis::cmd("ZRANGEBYLEX");
                range
                    .arg(&index)
                    .arg(&min)
                    .arg(&max)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(count(take));
                let members = decode_value::<Vec<Vec<u8>>>(inner.query(&range).await?)?;
                for m in &members {
                    let id = member_id(m)?;
                    if seen.insert(id.clone()) {
                        out.push(id);
                        if out.len() == limit {
                            return Ok(out);
                        }
                    }
                }
                let Some(last) = members.last() else {
                    break;
                };
                if members.len() < take {
                    break;
                }
                min = bound(b'(', &[last]);
                budget -= members.len();
                batch = batch.saturating_mul(2).min(MAX_BATCH);
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
    fn every_key_of_a_kind_shares_its_hash_tag() {
        for kind in CatalogKind::ALL {
            let keys = Keys::of(kind);
            let tag = format!("{{cat:{}}}", kind.as_str());
            for k in keys.script().into_iter().chain([keys.seq.as_str()]) {
                assert!(k.starts_with(&format!("tessera:{tag}:")), "{k}");
            }
        }
    }

    #[test]
    fn members_split_at_the_first_nul() {
        assert_eq!(member_id(b"acme corp\x000000000042").unwrap(), "0000000042");
        assert_eq!(member_id(b"\x00x").unwrap(), "x");
        assert!(member_id(b"no separator").is_err());
    }
}
