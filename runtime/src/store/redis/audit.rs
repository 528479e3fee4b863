//! The audit log port on Redis: `tessera:{audit}:log` (hash: sequence number → the record as
//! JSON) and `tessera:{audit}:head` (the last sequence number), one hash tag so a cluster
//! keeps them in one slot. An append is one script that checks the head and writes both, so
//! a stale head writes nothing. Loaded on first use and again after `NOSCRIPT`, like the
//! catalog's script.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::{Script, Value};
use tessera_actors::StoreError;

use super::codec::{corrupt, decode_value};
use super::{RedisStore, conn};
use crate::store::audit::{AuditRecord, AuditStore, MAX_READ};

/// The record hash (tests tamper with it directly).
pub const LOG_KEY: &str = "tessera:{audit}:log";
/// The head counter.
pub const HEAD_KEY: &str = "tessera:{audit}:head";

/// `KEYS`: log, head. `ARGV`: expected head, new seq, record.
const LUA: &str = r"
local head = tonumber(redis.call('GET', KEYS[2]) or '0')
if head ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SET', KEYS[2], ARGV[2])
return 1
";

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LUA));

#[async_trait]
impl AuditStore for RedisStore {
    async fn audit_head(&self) -> Result<u64, StoreError> {
        let mut get = redis::cmd("GET");
        get.arg(HEAD_KEY);
        let inner = &self.inner;
        let head = self
            .guarded(async { decode_value::<Option<u64>>(inner.query(&get).await?) })
            .await?;
        Ok(head.unwrap_or(0))
    }

    async fn audit_append(&self, head: u64, record: &AuditRecord) -> Result<bool, StoreError> {
        if record.seq != head.saturating_add(1) {
            return Err(corrupt(format!(
                "audit record {} cannot follow head {head}",
                record.seq
            )));
        }
        let value =
            serde_json::to_vec(record).map_err(|e| corrupt(format!("audit record: {e}")))?;
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(SCRIPT.get_hash())
            .arg(2)
            .arg(LOG_KEY)
            .arg(HEAD_KEY)
            .arg(head)
            .arg(record.seq)
            .arg(value.as_slice());
        let inner = &self.inner;
        let done = self
            .guarded(async {
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
            .await?;
        Ok(decode_value::<i64>(done)? == 1)
    }

    async fn audit_range(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Option<AuditRecord>)>, StoreError> {
        let head = self.audit_head().await?;
        let from = from.max(1);
        let limit = limit.min(MAX_READ) as u64;
        let to = head.min(from.saturating_add(limit).saturating_sub(1));
        if limit == 0 || to < from {
            return Ok(Vec::new());
        }
        let mut hmget = redis::cmd("HMGET");
        hmget.arg(LOG_KEY);
        for seq in from..=to {
            hmget.arg(seq);
        }
        let inner = &self.inner;
        let values = self
            .guarded(async { decode_value::<Vec<Option<Vec<u8>>>>(inner.query(&hmget).await?) })
            .await?;
        let mut out = Vec::with_capacity(values.len());
        for (seq, v) in (from..=to).zip(values) {
            let record = match v {
                Some(bytes) => Some(
                    serde_json::from_slice::<AuditRecord>(&bytes)
                        .map_err(|e| corrupt(format!("audit record {seq}: {e}")))?,
                ),
                None => None,
            };
            out.push((seq, record));
        }
        Ok(out)
    }
}
