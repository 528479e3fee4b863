//! Glue behind [`crate::export_plugin!`]: memory ownership and payload coding.
//!
//! Ownership rules of ABI v1: a buffer returned by `alloc` belongs to the plugin from
//! then on; the hook or `init` it is passed to frees it. A decision buffer stays valid
//! until the next call into the instance (it lives in `OUT`).

use std::cell::RefCell;
use std::thread::LocalKey;

use serde::de::DeserializeOwned;
use tessera_plugin_abi::Decision;
use tessera_plugin_abi::wire::pack_ptr_len;

use crate::Plugin;
use crate::host::{Level, log};

thread_local! {
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Allocates `len` bytes for the host to write a payload into.
#[must_use]
pub fn alloc(len: i32) -> i32 {
    let len = usize::try_from(len).unwrap_or(0);
    let mut buf = Vec::<u8>::with_capacity(len);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr as usize as i32
}

/// Takes back a buffer made by [`alloc`].
///
/// # Safety
/// `ptr` and `len` must be exactly a pointer returned by `alloc(len)` whose buffer the
/// host has filled, and each such buffer must be taken back at most once.
unsafe fn take(ptr: i32, len: i32) -> Vec<u8> {
    let len = usize::try_from(len).unwrap_or(0);
    // SAFETY: per this function's contract the pointer comes from `Vec::with_capacity(len)`
    // (exact capacity for u8), the host initialized all `len` bytes, and ownership returns
    // here exactly once.
    unsafe { Vec::from_raw_parts(ptr as u32 as usize as *mut u8, len, len) }
}

fn trap(msg: &str) -> ! {
    log(Level::Error, msg);
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    panic!("{msg}");
}

/// `init`: decodes the config and builds the plugin.
///
/// # Safety
/// `ptr` and `len` must be exactly a pointer returned by `alloc(len)` whose buffer the host
/// has filled, passed here once.
pub unsafe fn init<P: Plugin>(
    slot: &'static LocalKey<RefCell<Option<P>>>,
    ptr: i32,
    len: i32,
) -> i32 {
    // SAFETY: forwarded contract.
    let bytes = unsafe { take(ptr, len) };
    match new_plugin::<P>(&bytes) {
        Ok(p) => {
            slot.with_borrow_mut(|s| *s = Some(p));
            0
        }
        Err((rc, e)) => {
            log(Level::Error, &e);
            rc
        }
    }
}

/// Decodes a MessagePack config and builds the plugin; on failure the `init` return code
/// (1: undecodable config, 2: refused by [`Plugin::new`]) and the reason.
///
/// # Errors
/// As described.
pub fn new_plugin<P: Plugin>(config: &[u8]) -> Result<P, (i32, String)> {
    let config: P::Config =
        rmp_serde::from_slice(config).map_err(|e| (1, format!("invalid plugin config: {e}")))?;
    P::new(config).map_err(|e| (2, format!("plugin config rejected: {e}")))
}

/// A hook: decodes the event, runs `f`, encodes the decision.
///
/// # Safety
/// `ptr` and `len` must be exactly a pointer returned by `alloc(len)` whose buffer the host
/// has filled, passed here once.
pub unsafe fn call<P: Plugin, E: DeserializeOwned>(
    slot: &'static LocalKey<RefCell<Option<P>>>,
    ptr: i32,
    len: i32,
    f: fn(&P, E) -> Decision,
) -> i64 {
    // SAFETY: forwarded contract.
    let bytes = unsafe { take(ptr, len) };
    let event: E = match rmp_serde::from_slice(&bytes) {
        Ok(e) => e,
        Err(e) => trap(&format!("undecodable event: {e}")),
    };
    drop(bytes);
    let decision = slot.with_borrow(|p| match p {
        Some(p) => f(p, event),
        None => trap("hook called before init"),
    });
    encode(&decision)
}

/// Encodes a decision into the output buffer and packs its pointer and length
/// (0 for allow).
#[must_use]
pub fn encode(decision: &Decision) -> i64 {
    if decision.is_allow() {
        return 0;
    }
    OUT.with_borrow_mut(|out| {
        out.clear();
        if let Err(e) = rmp_serde::encode::write_named(out, decision) {
            trap(&format!("cannot encode decision: {e}"));
        }
        let len = u32::try_from(out.len()).unwrap_or(0);
        pack_ptr_len(out.as_ptr() as usize as u32, len)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Config {
        limit: u32,
    }

    struct Limit(u32);

    impl Plugin for Limit {
        type Config = Config;

        fn new(config: Config) -> Result<Self, String> {
            if config.limit == 0 {
                return Err("limit must be positive".into());
            }
            Ok(Limit(config.limit))
        }
    }

    fn config(limit: u32) -> Vec<u8> {
        tessera_plugin_abi::encode_msgpack(&std::collections::BTreeMap::from([("limit", limit)]))
            .unwrap()
    }

    #[test]
    fn new_plugin_decodes_the_config_or_says_why_not() {
        assert_eq!(new_plugin::<Limit>(&config(3)).map(|p| p.0).ok(), Some(3));
        let (rc, why) = new_plugin::<Limit>(&config(0)).err().unwrap();
        assert_eq!(
            (rc, why.as_str()),
            (2, "plugin config rejected: limit must be positive")
        );
        assert_eq!(new_plugin::<Limit>(&[0xc1]).err().map(|e| e.0), Some(1));
    }
}
