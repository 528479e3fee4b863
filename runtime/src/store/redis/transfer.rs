//! The transfer port on Redis (see `store::transfer`). A license is written as given by one
//! script over its own keys (hash tag `{lic:KEY}`, so one slot), after its global index
//! entries, in the order `mod.rs` documents for cross-slot writes. Enumerating meta blobs
//! and shared plugin keys takes a `SCAN` of the key space, which this adapter only does on a
//! single Redis: exporting from a Redis Cluster is refused.

use redis::Value;
use tessera_actors::{LicenseSnapshot, StoreError};

use super::codec::{decode_value, record_fields, session_times, to_json};
use super::events::{FIELD, LOG, entries};
use super::keys::{self, LicenseKeys, t};
use super::resources::KEYS as RES_KEYS;
use super::{RedisStore, async_trait};
use crate::store::catalog::CatalogKind;
use crate::store::events::{Event, EventId};
use crate::store::resources::Resource;
use crate::store::transfer::{IdCounters, PluginKvEntry, Transfer, unstored};

/// Replaces one license's record, activations, sessions and times (`KEYS` rec, act, ses,
/// t). `ARGV[1..=4]`: how many field/value pairs each key gets; then the pairs in that order.
/// The `ended` list is history and is left alone.
const PUT_LICENSE: &str = r"
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
local at = 5
for k = 1, 4 do
  local n = tonumber(ARGV[k])
  if n > 0 then
    local args = {}
    for i = at, at + 2 * n - 1 do args[#args + 1] = ARGV[i] end
    redis.call('HSET', KEYS[k], unpack(args))
  end
  at = at + 2 * n
end
return 1";

/// Writes one resource as given (`KEYS` as in `resources.rs`; `ARGV`: id, type, identifier,
/// holder or '', allocated_at T string or '', created_at T string), first removing the
/// resource with its id and the one with its type and identifier, as `resources.lua` keeps
/// them.
const PUT_RESOURCE: &str = r"
local SEQ, TYPE, IDENT, HOLDER, AT, CREATED, NAMES, IDS, BYTYPE, FREE, HELD, NFREE, NHELD =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10],
  KEYS[11], KEYS[12], KEYS[13]
local function pad(id) return string.rep('0', 20 - #id) .. id end
local function unput(id)
  local kind = redis.call('HGET', TYPE, id)
  if not kind then return end
  local holder = redis.call('HGET', HOLDER, id)
  redis.call('HDEL', NAMES, kind .. ':' .. redis.call('HGET', IDENT, id))
  redis.call('ZREM', BYTYPE, kind .. ':' .. pad(id))
  if holder then
    redis.call('ZREM', HELD, holder .. ':' .. pad(id))
    redis.call('HINCRBY', NHELD, kind, -1)
  else
    redis.call('ZREM', FREE, kind .. ':' .. pad(id))
    redis.call('HINCRBY', NFREE, kind, -1)
  end
  local f = tonumber(redis.call('HGET', NFREE, kind) or '0')
  local h = tonumber(redis.call('HGET', NHELD, kind) or '0')
  if f <= 0 and h <= 0 then
    redis.call('HDEL', NFREE, kind)
    redis.call('HDEL', NHELD, kind)
  end
  for _, k in ipairs({TYPE, IDENT, HOLDER, AT, CREATED}) do redis.call('HDEL', k, id) end
  redis.call('ZREM', IDS, id)
end
local id, kind, ident, holder, at, created = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
unput(id)
local other = redis.call('HGET', NAMES, kind .. ':' .. ident)
if other then unput(other) end
redis.call('HSET', TYPE, id, kind)
redis.call('HSET', IDENT, id, ident)
redis.call('HSET', CREATED, id, created)
redis.call('HSET', NAMES, kind .. ':' .. ident, id)
redis.call('ZADD', IDS, id, id)
redis.call('ZADD', BYTYPE, 0, kind .. ':' .. pad(id))
if holder ~= '' then
  redis.call('HSET', HOLDER, id, holder)
  if at ~= '' then redis.call('HSET', AT, id, at) end
  redis.call('ZADD', HELD, 0, holder .. ':' .. pad(id))
  redis.call('HINCRBY', NHELD, kind, 1)
  if redis.call('HEXISTS', NFREE, kind) == 0 then redis.call('HSET', NFREE, kind, 0) end
else
  redis.call('ZADD', FREE, 0, kind .. ':' .. pad(id))
  redis.call('HINCRBY', NFREE, kind, 1)
  if redis.call('HEXISTS', NHELD, kind) == 0 then redis.call('HSET', NHELD, kind, 0) end
end
local last = tonumber(redis.call('GET', SEQ) or '0')
if last < tonumber(id) then redis.call('SET', SEQ, id) end
return 1";

/// Sets the integer at `KEYS[1]` to `ARGV[1]` unless it already is at least that.
const RAISE: &str = r"
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
if now < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1";

fn catalog_key(kind: CatalogKind, part: &str) -> String {
    format!("tessera:{{cat:{}}}:{part}", kind.as_str())
}

fn not_on_cluster(what: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "listing {what} needs a SCAN of the key space, which tessera migrate only does on a \
         single Redis, not a Redis Cluster"
    ))
}

impl RedisStore {
    /// Every key matching `pattern` (single Redis only), sorted.
    async fn scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let inner = &self.inner;
        let mut cursor = 0u64;
        let mut out = Vec::new();
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, batch): (u64, Vec<String>) = decode_value(inner.query(&scan).await?)?;
            out.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn raise(&self, key: &str, at_least: u64) -> Result<(), StoreError> {
        let mut eval = redis::cmd("EVAL");
        eval.arg(RAISE).arg(1).arg(key).arg(at_least);
        self.inner.query(&eval).await.map(drop)
    }

    async fn get_u64(&self, key: &str) -> Result<u64, StoreError> {
        let mut get = redis::cmd("GET");
        get.arg(key);
        Ok(decode_value::<Option<u64>>(self.inner.query(&get).await?)?.unwrap_or(0))
    }
}

#[async_trait]
impl Transfer for RedisStore {
    async fn meta_names(&self) -> Result<Vec<String>, StoreError> {
        if self.is_cluster() {
            return Err(not_on_cluster("meta records"));
        }
        let prefix = keys::meta("");
        Ok(self
            .scan(&format!("{prefix}*"))
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
            .collect())
    }

    async fn put_license(&self, license: &LicenseSnapshot) -> Result<(), StoreError> {
        let key = &license.record.key;
        let lk = LicenseKeys::of(key);
        let rec = record_fields(&license.record)?;
        let mut act = Vec::new();
        let mut times = Vec::new();
        let single = !self.is_cluster();
        let mut beats = Vec::new();
        for a in &license.activations {
            // A single Redis keeps newer heartbeat times in global sets, which every script
            // reads as the later of the two: set them to the license's own, so it reads back
            // as given even over an older copy.
            if single {
                let member = keys::device_member(key, &a.hardware_hash);
                let mut c = redis::cmd(if a.is_active { "ZADD" } else { "ZREM" });
                c.arg(keys::DEVICE_BEATS);
                if a.is_active {
                    c.arg(keys::time_score(a.last_heartbeat));
                }
                c.arg(member);
                beats.push(c);
            }
            act.push(a.hardware_hash.clone());
            act.push(to_json(a)?);
            times.push(format!("a:{}", a.hardware_hash));
            times.push(format!(
                "{}{}",
                if a.is_active { "1" } else { "0" },
                t(a.last_heartbeat)
            ));
        }
        let mut ses = Vec::new();
        let mut pre = Vec::new();
        let mut list = redis::cmd("ZADD");
        list.arg(keys::LICENSES).arg(0).arg(key.as_str());
        let mut by_id = redis::cmd("HSET");
        by_id
            .arg(keys::LICENSE_IDS)
            .arg(license.record.id)
            .arg(key.as_str());
        pre.push(list);
        pre.push(by_id);
        for s in &license.sessions {
            ses.push(s.token_hash.to_hex());
            ses.push(to_json(s)?);
            times.push(keys::session_field(&s.token_hash));
            times.push(session_times(s.deadline, s.last_heartbeat));
            let mut tok = redis::cmd("SET");
            tok.arg(keys::token_index(&s.token_hash)).arg(key.as_str());
            let mut deadline = redis::cmd("ZADD");
            deadline
                .arg(keys::DEADLINES)
                .arg(keys::time_score(s.deadline))
                .arg(keys::deadline_member(key, &s.token_hash));
            pre.push(tok);
            pre.push(deadline);
            if single {
                let mut beat = redis::cmd("ZADD");
                beat.arg(keys::BEATS)
                    .arg(keys::time_score(s.last_heartbeat))
                    .arg(keys::deadline_member(key, &s.token_hash));
                pre.push(beat);
            }
        }
        pre.extend(beats);
        let mut eval = redis::cmd("EVAL");
        eval.arg(PUT_LICENSE).arg(4);
        for k in [&lk.rec, &lk.act, &lk.ses, &lk.times] {
            eval.arg(k);
        }
        for n in [rec.len(), act.len(), ses.len(), times.len()] {
            eval.arg(n / 2);
        }
        for part in [&rec, &act, &ses, &times] {
            for v in part {
                eval.arg(v);
            }
        }
        let reply: Value = self.inner.around(&pre, &eval, &[]).await?;
        decode_value::<i64>(reply).map(drop)
    }

    async fn id_counters(&self) -> Result<IdCounters, StoreError> {
        Ok(IdCounters {
            license: self.get_u64(keys::LICENSE_ID).await?,
            activation: self.get_u64(keys::ACTIVATION_ID).await?,
        })
    }

    async fn raise_id_counters(&self, at_least: IdCounters) -> Result<(), StoreError> {
        self.raise(keys::LICENSE_ID, at_least.license).await?;
        self.raise(keys::ACTIVATION_ID, at_least.activation).await
    }

    async fn catalog_terms(&self, kind: CatalogKind, id: &str) -> Result<Vec<String>, StoreError> {
        let mut hget = redis::cmd("HGET");
        hget.arg(catalog_key(kind, "tof")).arg(id);
        let joined: Option<String> = decode_value(self.inner.query(&hget).await?)?;
        Ok(joined
            .map(|j| j.split('\0').map(str::to_owned).collect())
            .unwrap_or_default())
    }

    async fn catalog_indexed(&self, kind: CatalogKind) -> Result<Vec<String>, StoreError> {
        let mut hkeys = redis::cmd("HKEYS");
        hkeys.arg(catalog_key(kind, "tof"));
        let mut ids: Vec<String> = decode_value(self.inner.query(&hkeys).await?)?;
        ids.sort();
        Ok(ids)
    }

    async fn catalog_seq(&self, kind: CatalogKind) -> Result<u64, StoreError> {
        self.get_u64(&catalog_key(kind, "seq")).await
    }

    async fn raise_catalog_seq(&self, kind: CatalogKind, at_least: u64) -> Result<(), StoreError> {
        self.raise(&catalog_key(kind, "seq"), at_least).await
    }

    async fn put_resource(&self, r: &Resource) -> Result<(), StoreError> {
        let mut eval = redis::cmd("EVAL");
        eval.arg(PUT_RESOURCE).arg(RES_KEYS.len());
        for k in RES_KEYS {
            eval.arg(k);
        }
        eval.arg(r.id)
            .arg(r.kind.as_str())
            .arg(&r.identifier)
            .arg(r.holder.as_ref().map_or("", |h| h.as_str()))
            .arg(r.allocated_at.map(t).unwrap_or_default())
            .arg(t(r.created_at));
        decode_value::<i64>(self.inner.query(&eval).await?).map(drop)
    }

    async fn resource_seq(&self) -> Result<u64, StoreError> {
        self.get_u64(RES_KEYS[0]).await
    }

    async fn raise_resource_seq(&self, at_least: u64) -> Result<(), StoreError> {
        self.raise(RES_KEYS[0], at_least).await
    }

    async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        let mut range = redis::cmd("XRANGE");
        range.arg(LOG).arg(id.to_string()).arg(id.to_string());
        Ok(entries(self.inner.query(&range).await?)?.into_iter().next())
    }

    async fn put_event(&self, event: &Event) -> Result<(), StoreError> {
        let (id, record) = unstored(event)?;
        let mut add = redis::cmd("XADD");
        add.arg(LOG)
            .arg(id.to_string())
            .arg(FIELD)
            .arg(to_json(&record)?);
        self.inner.query(&add).await.map(drop)
    }

    async fn plugin_kv_entries(&self) -> Result<Vec<PluginKvEntry>, StoreError> {
        if self.is_cluster() {
            return Err(not_on_cluster("shared plugin keys"));
        }
        let mut out = Vec::new();
        for name in self.scan("tessera:pkv:*").await? {
            // `tessera:pkv:{<plugin>:<hex key>}`; the hex key holds no `:`.
            let Some((namespace, hex_key)) = name
                .strip_prefix("tessera:pkv:{")
                .and_then(|r| r.strip_suffix('}'))
                .and_then(|r| r.rsplit_once(':'))
            else {
                continue;
            };
            let Ok(key) = hex::decode(hex_key) else {
                continue;
            };
            let mut get = redis::cmd("GET");
            get.arg(&name);
            let mut expiry = redis::cmd("PEXPIRETIME");
            expiry.arg(&name);
            let mut replies = self.inner.pipeline(&[get, expiry]).await?.into_iter();
            let value: Option<Vec<u8>> = match replies.next() {
                Some(v) => decode_value(v)?,
                None => None,
            };
            let at: i64 = match replies.next() {
                Some(v) => decode_value(v)?,
                None => -1,
            };
            // Gone meanwhile (expired): nothing to copy.
            let Some(value) = value else {
                continue;
            };
            out.push(PluginKvEntry {
                namespace: namespace.to_owned(),
                key,
                value,
                expires_at_ms: (at > 0).then_some(at),
            });
        }
        out.sort_by(|a, b| (&a.namespace, &a.key).cmp(&(&b.namespace, &b.key)));
        Ok(out)
    }
}
