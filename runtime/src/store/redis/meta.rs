//! The metadata port on Redis: small named blobs under `meta:<name>`.

use super::codec::decode_value;
use super::*;

#[async_trait]
impl MetaStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut get = redis::cmd("GET");
        get.arg(keys::meta(key));
        let inner = &self.inner;
        self.guarded(async { decode_value::<Option<Vec<u8>>>(inner.query(&get).await?) })
            .await
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut set = redis::cmd("SET");
        set.arg(keys::meta(key)).arg(value);
        let inner = &self.inner;
        self.guarded(async { inner.query(&set).await.map(drop) })
            .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        // One script, so the comparison and the write are atomic on the server.
        const CAS: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
if ARGV[3] == '1' then redis.call('SET', KEYS[1], ARGV[4]) else redis.call('DEL', KEYS[1]) end
return 1";
        let mut eval = redis::cmd("EVAL");
        eval.arg(CAS)
            .arg(1)
            .arg(keys::meta(key))
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(if new.is_some() { "1" } else { "0" })
            .arg(new.unwrap_or_default());
        let inner = &self.inner;
        self.guarded(async { decode_value::<i64>(inner.query(&eval).await?) })
            .await
            .map(|swapped| swapped == 1)
    }

    async fn health(&self) -> StoreHealth {
        Store::health(self)
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
