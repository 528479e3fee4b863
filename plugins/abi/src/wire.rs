//! Wire constants of ABI v1: export names, the host import module, flags and return codes.
//!
//! Every number here is part of the stable ABI: it never changes within ABI v1
//! (see "Versioning" in `plugins/ABI.md`).

/// The ABI version this crate describes.
pub const ABI_VERSION: u32 = 1;

/// Marker export a v1 plugin must have: a function of type `() -> ()` the host never calls.
pub const ABI_MARKER_EXPORT: &str = "tessera_policy_abi_v1";

/// Prefix of the marker export of any ABI version (`tessera_policy_abi_v<N>`).
pub const ABI_MARKER_PREFIX: &str = "tessera_policy_abi_v";

/// Name of the exported linear memory.
pub const MEMORY_EXPORT: &str = "memory";

/// Name of the exported allocator, `alloc(len: i32) -> i32`.
pub const ALLOC_EXPORT: &str = "alloc";

/// Name of the exported initializer, `init(ptr: i32, len: i32) -> i32` (0 = success).
pub const INIT_EXPORT: &str = "init";

/// Module name of every host function import.
pub const HOST_MODULE: &str = "tessera";

/// Log level `error` for the `log` host function.
pub const LOG_ERROR: i32 = 0;
/// Log level `warn` for the `log` host function.
pub const LOG_WARN: i32 = 1;
/// Log level `info` for the `log` host function.
pub const LOG_INFO: i32 = 2;
/// Log level `debug` for the `log` host function.
pub const LOG_DEBUG: i32 = 3;

/// KV flag: the key is durable (written through to the server's store, survives restarts).
pub const KV_DURABLE: i32 = 1;
/// KV flag for `kv_incr`: (re)set the expiry to `now + ttl` on every increment
/// (sliding expiry). Without it the expiry is set only when the key is created.
pub const KV_REFRESH_TTL: i32 = 2;

/// Return code: the key does not exist (`kv_get`, `config_get`).
pub const ERR_NOT_FOUND: i32 = -1;
/// Return code: an argument is invalid (key too long, value too large, unknown flag bits).
pub const ERR_INVALID: i32 = -2;
/// Return code: the plugin's key-value namespace is full.
pub const ERR_FULL: i32 = -3;

/// Largest KV key, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Largest KV value, in bytes.
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// Largest decision payload the host reads, in bytes.
pub const MAX_DECISION_LEN: usize = 64 * 1024;
/// Largest log message the host keeps, in bytes (longer messages are truncated).
pub const MAX_LOG_LEN: usize = 4096;
/// Largest custom metric name, in bytes.
pub const MAX_METRIC_NAME_LEN: usize = 64;

/// Packs a guest pointer and length into the `i64` a hook returns (`ptr << 32 | len`).
#[must_use]
pub const fn pack_ptr_len(ptr: u32, len: u32) -> i64 {
    (((ptr as u64) << 32) | len as u64) as i64
}

/// Splits the `i64` a hook returns into `(ptr, len)`; `0` means allow and unpacks to `(0, 0)`.
#[must_use]
pub const fn unpack_ptr_len(packed: i64) -> (u32, u32) {
    let v = packed as u64;
    ((v >> 32) as u32, v as u32)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn pack_roundtrips_high_pointers() {
        let packed = pack_ptr_len(0xffff_fff0, 17);
        assert_eq!(unpack_ptr_len(packed), (0xffff_fff0, 17));
        assert_eq!(unpack_ptr_len(0), (0, 0));
    }
}
