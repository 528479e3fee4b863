//! The shared plugin KV on Redis: one key per durable plugin key, holding its raw bytes,
//! expiring by Redis's own `PXAT`. An increment is one script, so two nodes adding at once
//! both count.

use super::codec::decode_value;
use super::*;
use crate::store::plugin_kv::SharedPluginKv;

/// Adds to the 8-byte little-endian counter in `KEYS[1]`. Lua numbers are doubles, exact
/// only to 2^53, so the 64-bit value is added as two 32-bit halves (`ARGV[1]` the delta's
/// low half, unsigned; `ARGV[2]` its high half, signed) and saturates like the host's.
/// `ARGV[3]`: the expiry (Unix ms) or `""`; `ARGV[4]`: `"1"` to set it on an existing key.
/// Returns `{low, high}` of the new value.
const INCR: &str = r"
local v = redis.call('GET', KEYS[1])
local lo, hi = 0, 0
if v and string.len(v) == 8 then
  local b = {string.byte(v, 1, 8)}
  lo = b[1] + b[2] * 256 + b[3] * 65536 + b[4] * 16777216
  hi = b[5] + b[6] * 256 + b[7] * 65536 + b[8] * 16777216
  if hi >= 2147483648 then hi = hi - 4294967296 end
end
local sum = lo + tonumber(ARGV[1])
local carry = math.floor(sum / 4294967296)
lo = sum - carry * 4294967296
hi = hi + tonumber(ARGV[2]) + carry
if hi > 2147483647 then
  hi, lo = 2147483647, 4294967295
elseif hi < -2147483648 then
  hi, lo = -2147483648, 0
end
local uh = hi
if uh < 0 then uh = uh + 4294967296 end
local function bytes(n)
  return string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 16777216) % 256)
end
local packed = bytes(lo) .. bytes(uh)
if v and ARGV[4] ~= '1' then
  redis.call('SET', KEYS[1], packed, 'KEEPTTL')
elseif ARGV[3] ~= '' then
  redis.call('SET', KEYS[1], packed, 'PXAT', ARGV[3])
else
  redis.call('SET', KEYS[1], packed)
end
return {lo, hi}";

/// The delta as the script's two halves: low 32 bits unsigned, high 32 bits signed.
fn halves(delta: i64) -> (i64, i64) {
    (delta & 0xffff_ffff, delta >> 32)
}

/// The script's `{low, high}` back as one value.
fn join(lo: i64, hi: i64) -> i64 {
    (hi << 32) | (lo & 0xffff_ffff)
}

#[async_trait]
impl SharedPluginKv for RedisStore {
    async fn kv_get(&self, namespace: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut get = redis::cmd("GET");
        get.arg(keys::plugin_kv(namespace, key));
        let inner = &self.inner;
        self.guarded(async { decode_value::<Option<Vec<u8>>>(inner.query(&get).await?) })
            .await
    }

    async fn kv_set(
        &self,
        namespace: &str,
        key: &[u8],
        value: &[u8],
        expires_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(keys::plugin_kv(namespace, key)).arg(value);
        if let Some(at) = expires_at_ms {
            set.arg("PXAT").arg(at.max(1));
        }
        let inner = &self.inner;
        self.guarded(async { inner.query(&set).await.map(drop) })
            .await
    }

    async fn kv_incr(
        &self,
        namespace: &str,
        key: &[u8],
        delta: i64,
        expires_at_ms: Option<i64>,
        refresh_ttl: bool,
    ) -> Result<i64, StoreError> {
        let (lo, hi) = halves(delta);
        let mut eval = redis::cmd("EVAL");
        eval.arg(INCR)
            .arg(1)
            .arg(keys::plugin_kv(namespace, key))
            .arg(lo)
            .arg(hi)
            .arg(
                expires_at_ms
                    .map(|t| t.max(1).to_string())
                    .unwrap_or_default(),
            )
            .arg(if refresh_ttl { "1" } else { "0" });
        let inner = &self.inner;
        let (lo, hi) = self
            .guarded(async { decode_value::<(i64, i64)>(inner.query(&eval).await?) })
            .await?;
        Ok(join(lo, hi))
    }

    async fn kv_delete(&self, namespace: &str, key: &[u8]) -> Result<(), StoreError> {
        let mut del = redis::cmd("DEL");
        del.arg(keys::plugin_kv(namespace, key));
        let inner = &self.inner;
        self.guarded(async { inner.query(&del).await.map(drop) })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::{halves, join};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn halves_join_back(v in any::<i64>()) {
            let (lo, hi) = halves(v);
            prop_assert!((0..=0xffff_ffff).contains(&lo));
            prop_assert!((-(1i64 << 31)..(1i64 << 31)).contains(&hi));
            prop_assert_eq!(join(lo, hi), v);
        }
    }
}
