//! Wrappers of the host functions (module `tessera`); simulated on native targets.

use tessera_plugin_abi::wire::{
    ERR_FULL, KV_DURABLE, KV_REFRESH_TTL, LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_WARN,
};

/// Log level of [`log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something is broken.
    Error,
    /// Something is suspicious.
    Warn,
    /// Notable.
    Info,
    /// Details.
    Debug,
}

impl Level {
    const fn code(self) -> i32 {
        match self {
            Level::Error => LOG_ERROR,
            Level::Warn => LOG_WARN,
            Level::Info => LOG_INFO,
            Level::Debug => LOG_DEBUG,
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod sys {
    #[link(wasm_import_module = "tessera")]
    unsafe extern "C" {
        pub(super) fn log(level: i32, ptr: i32, len: i32);
        pub(super) fn now_ms() -> i64;
        pub(super) fn kv_get(kp: i32, kl: i32, buf: i32, cap: i32, flags: i32) -> i32;
        pub(super) fn kv_set(kp: i32, kl: i32, vp: i32, vl: i32, ttl_ms: i64, flags: i32) -> i32;
        pub(super) fn kv_incr(kp: i32, kl: i32, delta: i64, ttl_ms: i64, flags: i32) -> i64;
        pub(super) fn kv_delete(kp: i32, kl: i32, flags: i32) -> i32;
        pub(super) fn config_get(kp: i32, kl: i32, buf: i32, cap: i32) -> i32;
        pub(super) fn metric_incr(np: i32, nl: i32, delta: i64) -> i32;
    }

    pub(super) fn ptr(b: &[u8]) -> i32 {
        b.as_ptr() as usize as i32
    }

    pub(super) fn len(b: &[u8]) -> i32 {
        b.len() as i32
    }

    /// Calls a `(buf, cap) -> len` host function, growing the buffer once if needed.
    pub(super) fn read_into(mut f: impl FnMut(i32, i32) -> i32) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 256];
        let mut n = f(buf.as_mut_ptr() as usize as i32, buf.len() as i32);
        if n < 0 {
            return None;
        }
        if n as usize > buf.len() {
            buf = vec![0u8; n as usize];
            n = f(buf.as_mut_ptr() as usize as i32, buf.len() as i32);
            if n < 0 || n as usize > buf.len() {
                return None;
            }
        }
        buf.truncate(n as usize);
        Some(buf)
    }
}

/// Logs `msg` through the server's log, tagged with the plugin's name.
pub fn log(level: Level, msg: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host reads `msg` within its bounds during the call only.
    unsafe {
        sys::log(
            level.code(),
            sys::ptr(msg.as_bytes()),
            sys::len(msg.as_bytes()),
        );
    }
    #[cfg(not(target_arch = "wasm32"))]
    testing::with(|s| s.logs.push((level, msg.to_owned())));
    let _ = level.code();
}

/// The event time in Unix milliseconds (frozen for the whole call).
#[must_use]
pub fn now_ms() -> i64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: no arguments.
    return unsafe { sys::now_ms() };
    #[cfg(not(target_arch = "wasm32"))]
    testing::with(|s| s.now_ms)
}

/// A top-level (or dotted, `limits.max`) key of the plugin's config: strings as they are,
/// other values as JSON text.
#[must_use]
pub fn config_get(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        let k = key.as_bytes();
        // SAFETY: key and buffer are valid for their lengths during each call.
        let bytes = sys::read_into(|buf, cap| unsafe {
            sys::config_get(sys::ptr(k), sys::len(k), buf, cap)
        })?;
        String::from_utf8(bytes).ok()
    }
    #[cfg(not(target_arch = "wasm32"))]
    testing::with(|s| s.config.get(key).cloned())
}

/// Adds `delta` to the plugin's custom counter `tessera_plugin_custom_total{name}`
/// (`name`: 1 to 64 of `a-z`, `0-9`, `_`; at most 64 names per plugin).
pub fn metric_incr(name: &str, delta: u64) {
    let delta = i64::try_from(delta).unwrap_or(i64::MAX);
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the name is valid for its length during the call.
    unsafe {
        sys::metric_incr(sys::ptr(name.as_bytes()), sys::len(name.as_bytes()), delta);
    }
    #[cfg(not(target_arch = "wasm32"))]
    testing::with(|s| *s.metrics.entry(name.to_owned()).or_insert(0) += delta);
}

/// The plugin's key-value store, kept by the host: shared by all instances of the plugin,
/// kept across reloads, namespaced per plugin. Memory keys are lost on a server restart;
/// durable keys (the `durable` functions) are written through to the server's store.
///
/// TTLs are milliseconds from the event time; `0` never expires.
pub mod kv {
    use super::{ERR_FULL, KV_DURABLE, KV_REFRESH_TTL};

    /// A write was refused.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum KvError {
        /// The plugin's namespace is full.
        Full,
        /// Key empty or longer than 256 bytes, value longer than 64 KiB.
        Invalid,
    }

    fn flags(durable: bool) -> i32 {
        if durable { KV_DURABLE } else { 0 }
    }

    fn ttl(ttl_ms: u64) -> i64 {
        i64::try_from(ttl_ms).unwrap_or(i64::MAX)
    }

    /// Reads a key (`durable` looks in the server's store when memory has no value).
    #[must_use]
    pub fn get_with(key: &[u8], durable: bool) -> Option<Vec<u8>> {
        #[cfg(target_arch = "wasm32")]
        {
            use super::sys;
            // SAFETY: key and buffer are valid for their lengths during each call.
            sys::read_into(|buf, cap| unsafe {
                sys::kv_get(sys::ptr(key), sys::len(key), buf, cap, flags(durable))
            })
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = flags(durable);
            super::testing::with(|s| s.kv_get(key))
        }
    }

    /// Writes a key.
    ///
    /// # Errors
    /// [`KvError`] when the host refuses the write.
    pub fn set_with(key: &[u8], value: &[u8], ttl_ms: u64, durable: bool) -> Result<(), KvError> {
        #[cfg(target_arch = "wasm32")]
        let rc = {
            use super::sys;
            // SAFETY: key and value are valid for their lengths during the call.
            unsafe {
                sys::kv_set(
                    sys::ptr(key),
                    sys::len(key),
                    sys::ptr(value),
                    sys::len(value),
                    ttl(ttl_ms),
                    flags(durable),
                )
            }
        };
        #[cfg(not(target_arch = "wasm32"))]
        let rc = super::testing::with(|s| s.kv_set(key, value, ttl(ttl_ms), durable));
        match rc {
            0 => Ok(()),
            ERR_FULL => Err(KvError::Full),
            _ => Err(KvError::Invalid),
        }
    }

    /// Adds `delta` to a counter (8-byte little-endian i64; missing counts as 0) and
    /// returns the new value. `ttl_ms` sets the expiry when the key is created (a fixed
    /// window), or on every call with `sliding`.
    #[must_use]
    pub fn incr_with(key: &[u8], delta: i64, ttl_ms: u64, durable: bool, sliding: bool) -> i64 {
        let f = flags(durable) | if sliding { KV_REFRESH_TTL } else { 0 };
        #[cfg(target_arch = "wasm32")]
        {
            use super::sys;
            // SAFETY: the key is valid for its length during the call.
            unsafe { sys::kv_incr(sys::ptr(key), sys::len(key), delta, ttl(ttl_ms), f) }
        }
        #[cfg(not(target_arch = "wasm32"))]
        super::testing::with(|s| s.kv_incr(key, delta, ttl(ttl_ms), f))
    }

    /// Deletes a key (`durable` deletes it from the server's store too).
    pub fn delete_with(key: &[u8], durable: bool) {
        #[cfg(target_arch = "wasm32")]
        {
            use super::sys;
            // SAFETY: the key is valid for its length during the call.
            unsafe {
                sys::kv_delete(sys::ptr(key), sys::len(key), flags(durable));
            }
        }
        #[cfg(not(target_arch = "wasm32"))]
        super::testing::with(|s| s.kv_delete(key, durable));
    }

    /// Reads a memory key.
    #[must_use]
    pub fn get(key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        get_with(key.as_ref(), false)
    }

    /// Writes a memory key.
    ///
    /// # Errors
    /// [`KvError`] when the host refuses the write.
    pub fn set(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>, ttl_ms: u64) -> Result<(), KvError> {
        set_with(key.as_ref(), value.as_ref(), ttl_ms, false)
    }

    /// Increments a memory counter (fixed-window expiry).
    #[must_use]
    pub fn incr(key: impl AsRef<[u8]>, delta: i64, ttl_ms: u64) -> i64 {
        incr_with(key.as_ref(), delta, ttl_ms, false, false)
    }

    /// Reads a memory counter (0 when missing).
    #[must_use]
    pub fn get_i64(key: impl AsRef<[u8]>) -> i64 {
        get(key)
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, i64::from_le_bytes)
    }

    /// Deletes a memory key.
    pub fn delete(key: impl AsRef<[u8]>) {
        delete_with(key.as_ref(), false);
    }

    /// Durable keys: written through to the server's store, survive restarts.
    pub mod durable {
        use super::{KvError, delete_with, get_with, incr_with, set_with};

        /// Reads a durable key.
        #[must_use]
        pub fn get(key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
            get_with(key.as_ref(), true)
        }

        /// Writes a durable key.
        ///
        /// # Errors
        /// [`KvError`] when the host refuses the write.
        pub fn set(
            key: impl AsRef<[u8]>,
            value: impl AsRef<[u8]>,
            ttl_ms: u64,
        ) -> Result<(), KvError> {
            set_with(key.as_ref(), value.as_ref(), ttl_ms, true)
        }

        /// Increments a durable counter (fixed-window expiry).
        #[must_use]
        pub fn incr(key: impl AsRef<[u8]>, delta: i64, ttl_ms: u64) -> i64 {
            incr_with(key.as_ref(), delta, ttl_ms, true, false)
        }

        /// Deletes a durable key.
        pub fn delete(key: impl AsRef<[u8]>) {
            delete_with(key.as_ref(), true);
        }
    }
}

/// Native simulation of the host for unit tests of plugin logic (not on wasm32).
///
/// State is per thread (each `#[test]` runs on its own thread) and follows the host's
/// semantics: TTLs relative to [`testing::set_now_ms`], fixed-window counter expiry unless
/// sliding.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::Level;
    use tessera_plugin_abi::wire::KV_REFRESH_TTL;

    /// The simulated host's state.
    #[derive(Debug, Default)]
    pub struct HostSim {
        /// What `now_ms` returns.
        pub now_ms: i64,
        /// Config values for `config_get`.
        pub config: HashMap<String, String>,
        /// Logged lines.
        pub logs: Vec<(Level, String)>,
        /// Custom metric totals.
        pub metrics: HashMap<String, i64>,
        /// KV entries: key -> (value, expiry, durable).
        pub kv: HashMap<Vec<u8>, (Vec<u8>, Option<i64>, bool)>,
    }

    impl HostSim {
        fn live(&self, key: &[u8]) -> Option<&(Vec<u8>, Option<i64>, bool)> {
            self.kv
                .get(key)
                .filter(|(_, exp, _)| exp.is_none_or(|t| t > self.now_ms))
        }

        pub(crate) fn kv_get(&self, key: &[u8]) -> Option<Vec<u8>> {
            self.live(key).map(|(v, _, _)| v.clone())
        }

        pub(crate) fn kv_set(
            &mut self,
            key: &[u8],
            value: &[u8],
            ttl_ms: i64,
            durable: bool,
        ) -> i32 {
            let exp = (ttl_ms > 0).then(|| self.now_ms + ttl_ms);
            self.kv.insert(key.to_vec(), (value.to_vec(), exp, durable));
            0
        }

        pub(crate) fn kv_incr(&mut self, key: &[u8], delta: i64, ttl_ms: i64, flags: i32) -> i64 {
            let (current, old_exp) = match self.live(key) {
                Some((v, exp, _)) => (
                    <[u8; 8]>::try_from(v.as_slice()).map_or(0, i64::from_le_bytes),
                    Some(*exp),
                ),
                None => (0, None),
            };
            let value = current.saturating_add(delta);
            let exp = match old_exp {
                Some(e) if flags & KV_REFRESH_TTL == 0 => e,
                _ => (ttl_ms > 0).then(|| self.now_ms + ttl_ms),
            };
            self.kv.insert(
                key.to_vec(),
                (value.to_le_bytes().to_vec(), exp, flags & 1 != 0),
            );
            value
        }

        pub(crate) fn kv_delete(&mut self, key: &[u8], _durable: bool) {
            self.kv.remove(key);
        }
    }

    thread_local! {
        static SIM: RefCell<HostSim> = RefCell::new(HostSim::default());
    }

    /// Runs `f` with the simulated host of this thread.
    pub fn with<R>(f: impl FnOnce(&mut HostSim) -> R) -> R {
        SIM.with_borrow_mut(f)
    }

    /// Resets the simulated host (empty KV, no logs, time 0).
    pub fn reset() {
        with(|s| *s = HostSim::default());
    }

    /// Sets what `now_ms` returns.
    pub fn set_now_ms(now_ms: i64) {
        with(|s| s.now_ms = now_ms);
    }

    /// Advances the clock by `ms`.
    pub fn advance_ms(ms: i64) {
        with(|s| s.now_ms += ms);
    }

    /// Sets a config value for `config_get`.
    pub fn set_config(key: &str, value: &str) {
        with(|s| {
            s.config.insert(key.to_owned(), value.to_owned());
        });
    }
}
