//! One plugin instance (its own `Store`), the host functions, and the call protocol.
//!
//! **Invariant:** every value from the guest (pointer, length, flag, decision) is checked
//! before use; a bad one traps the call (or returns an error code), never the host.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;
use tessera_plugin_abi::wire::{
    ALLOC_EXPORT, ERR_FULL, ERR_INVALID, ERR_NOT_FOUND, HOST_MODULE, INIT_EXPORT, KV_DURABLE,
    KV_REFRESH_TTL, LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_WARN, MAX_DECISION_LEN, MAX_KEY_LEN,
    MAX_LOG_LEN, MAX_METRIC_NAME_LEN, MAX_VALUE_LEN, MEMORY_EXPORT, unpack_ptr_len,
};
use tessera_plugin_abi::{Decision, Hook, decode_decision};
use wasmtime::{
    Caller, Engine, InstancePre, Linker, Memory, ResourceLimiter, Store, StoreLimits,
    StoreLimitsBuilder, Trap, TypedFunc,
};

use crate::error::{FailureKind, PluginError};
use crate::kv::{KvError, Namespace, WriteError};

/// Most distinct custom metric names one plugin may create.
const MAX_CUSTOM_METRICS: usize = 64;

/// What all instances of one loaded plugin share.
pub(crate) struct PluginShared {
    pub(crate) name: Arc<str>,
    pub(crate) kv: Arc<Namespace>,
    pub(crate) config: serde_json::Value,
    custom_metrics: Mutex<HashSet<String>>,
}

impl PluginShared {
    pub(crate) fn new(name: Arc<str>, kv: Arc<Namespace>, config: serde_json::Value) -> Self {
        PluginShared {
            name,
            kv,
            config,
            custom_metrics: Mutex::new(HashSet::new()),
        }
    }

    /// The value at a dotted path of the config: strings as their UTF-8 bytes, anything
    /// else as JSON text.
    fn config_bytes(&self, path: &str) -> Option<Vec<u8>> {
        let mut v = &self.config;
        for part in path.split('.') {
            v = v.as_object()?.get(part)?;
        }
        Some(match v {
            serde_json::Value::String(s) => s.as_bytes().to_vec(),
            other => other.to_string().into_bytes(),
        })
    }
}

/// Memory limiter that remembers it refused a growth (so the failure is classified as
/// `memory_limit`, not as a generic trap).
struct Limiter {
    limits: StoreLimits,
    limit_bytes: usize,
    hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if self.limits.memory_growing(current, desired, maximum)? {
            Ok(true)
        } else {
            self.hit = true;
            Err(wasmtime::Error::msg(format!(
                "memory limit: growing linear memory to {desired} bytes exceeds the limit of {} bytes",
                self.limit_bytes
            )))
        }
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.hit = true;
        Err(error.context("memory limit: growing linear memory failed"))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// The data of one instance's `Store`.
pub(crate) struct HostState {
    limiter: Limiter,
    memory: Option<Memory>,
    now_ms: i64,
    shared: Arc<PluginShared>,
    /// While `init` runs: error and warning lines it logs (quoted in the load error).
    init_log: Option<Vec<String>>,
}

/// A failed call, classified.
#[derive(Debug, Clone)]
pub(crate) struct CallFailure {
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
}

impl CallFailure {
    fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        CallFailure {
            kind,
            message: message.into(),
        }
    }
}

fn oob(func: &str, what: &str) -> wasmtime::Error {
    wasmtime::Error::msg(format!(
        "host function `{func}`: {what} is out of bounds of linear memory"
    ))
}

/// The guest range `ptr..ptr+len` as a slice (pointers and lengths are unsigned 32-bit).
fn guest<'a>(
    data: &'a [u8],
    ptr: i32,
    len: i32,
    func: &str,
    what: &str,
) -> wasmtime::Result<&'a [u8]> {
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(len as u32 as usize)
        .ok_or_else(|| oob(func, what))?;
    data.get(start..end).ok_or_else(|| oob(func, what))
}

fn guest_mut<'a>(
    data: &'a mut [u8],
    ptr: i32,
    len: usize,
    func: &str,
    what: &str,
) -> wasmtime::Result<&'a mut [u8]> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len).ok_or_else(|| oob(func, what))?;
    data.get_mut(start..end).ok_or_else(|| oob(func, what))
}

fn split<'a>(
    caller: &'a mut Caller<'_, HostState>,
) -> wasmtime::Result<(&'a mut [u8], &'a mut HostState)> {
    let memory = caller.data().memory.ok_or_else(|| {
        wasmtime::Error::msg("host function called before the instance was initialized")
    })?;
    Ok(memory.data_and_store_mut(caller))
}

/// Copies `value` to the guest buffer when it fits; returns its length either way.
fn copy_out(
    data: &mut [u8],
    buf: i32,
    cap: i32,
    value: &[u8],
    func: &str,
) -> wasmtime::Result<i32> {
    let len = i32::try_from(value.len()).map_err(|_| wasmtime::Error::msg("value too large"))?;
    if value.len() <= cap as u32 as usize {
        guest_mut(data, buf, value.len(), func, "output buffer")?.copy_from_slice(value);
    }
    Ok(len)
}

fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN
}

fn valid_metric_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_METRIC_NAME_LEN
        && name
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

/// A guest's log text as it may reach a log line: control characters (newlines, carriage
/// returns, terminal escapes) and invisible direction overrides are written as escapes, so a
/// plugin cannot forge extra log lines or rewrite a terminal.
pub(crate) fn escape_log(msg: &str) -> std::borrow::Cow<'_, str> {
    let needs = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !msg.chars().any(needs) {
        return std::borrow::Cow::Borrowed(msg);
    }
    let mut out = String::with_capacity(msg.len() + 8);
    for c in msg.chars() {
        if needs(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Builds the linker with every host function of ABI v1 (module `tessera`).
pub(crate) fn linker(engine: &Engine) -> Result<Linker<HostState>, PluginError> {
    let mut l = Linker::new(engine);
    let e = |err: wasmtime::Error| PluginError::Engine(format!("{err:#}"));

    l.func_wrap(
        HOST_MODULE,
        "log",
        |mut c: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            let (data, st) = split(&mut c)?;
            let len = len.clamp(0, MAX_LOG_LEN as i32);
            let raw = String::from_utf8_lossy(guest(data, ptr, len, "log", "message")?);
            let msg = escape_log(&raw);
            let plugin = &*st.shared.name;
            if let Some(lines) = st.init_log.as_mut()
                && level <= LOG_WARN
                && lines.len() < 8
            {
                lines.push(msg.clone().into_owned());
            }
            match level {
                LOG_ERROR => tracing::error!(plugin, "{msg}"),
                LOG_WARN => tracing::warn!(plugin, "{msg}"),
                LOG_INFO => tracing::info!(plugin, "{msg}"),
                LOG_DEBUG => tracing::debug!(plugin, "{msg}"),
                _ => tracing::trace!(plugin, "{msg}"),
            }
            Ok(())
        },
    )
    .map_err(e)?;

    l.func_wrap(HOST_MODULE, "now_ms", |c: Caller<'_, HostState>| {
        c.data().now_ms
    })
    .map_err(e)?;

    l.func_wrap(
        HOST_MODULE,
        "kv_get",
        |mut c: Caller<'_, HostState>, kp: i32, kl: i32, buf: i32, cap: i32, flags: i32| {
            let (data, st) = split(&mut c)?;
            if flags & !KV_DURABLE != 0 {
                return Ok(ERR_INVALID);
            }
            let key = guest(data, kp, kl, "kv_get", "key")?;
            if !valid_key(key) {
                return Ok(ERR_INVALID);
            }
            match st.shared.kv.get(key, flags & KV_DURABLE != 0, st.now_ms) {
                Ok(Some(v)) => copy_out(data, buf, cap, &v, "kv_get"),
                Ok(None) => Ok(ERR_NOT_FOUND),
                Err(err) => Err(wasmtime::Error::new(err)),
            }
        },
    )
    .map_err(e)?;

    l.func_wrap(
        HOST_MODULE,
        "kv_set",
        |mut c: Caller<'_, HostState>,
         kp: i32,
         kl: i32,
         vp: i32,
         vl: i32,
         ttl_ms: i64,
         flags: i32| {
            let (data, st) = split(&mut c)?;
            if flags & !KV_DURABLE != 0 {
                return Ok(ERR_INVALID);
            }
            let key = guest(data, kp, kl, "kv_set", "key")?;
            let value = guest(data, vp, vl, "kv_set", "value")?;
            if !valid_key(key) || value.len() > MAX_VALUE_LEN || ttl_ms < 0 {
                return Ok(ERR_INVALID);
            }
            match st
                .shared
                .kv
                .set(key, value, ttl_ms, flags & KV_DURABLE != 0, st.now_ms)
            {
                Ok(()) => Ok(0),
                Err(WriteError::Full) => Ok(ERR_FULL),
            }
        },
    )
    .map_err(e)?;

    l.func_wrap(
        HOST_MODULE,
        "kv_incr",
        |mut c: Caller<'_, HostState>, kp: i32, kl: i32, delta: i64, ttl_ms: i64, flags: i32| {
            let (data, st) = split(&mut c)?;
            if flags & !(KV_DURABLE | KV_REFRESH_TTL) != 0 || ttl_ms < 0 {
                return Err(wasmtime::Error::msg(
                    "host function `kv_incr`: invalid flags or negative ttl",
                ));
            }
            let key = guest(data, kp, kl, "kv_incr", "key")?;
            if !valid_key(key) {
                return Err(wasmtime::Error::msg(
                    "host function `kv_incr`: key must be 1 to 256 bytes",
                ));
            }
            let durable = flags & KV_DURABLE != 0;
            let refresh = flags & KV_REFRESH_TTL != 0;
            match st
                .shared
                .kv
                .incr(key, delta, ttl_ms, durable, refresh, st.now_ms)
            {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(WriteError::Full)) => Err(wasmtime::Error::msg(
                    "host function `kv_incr`: the plugin's kv namespace is full",
                )),
                Err(err) => Err(wasmtime::Error::new(err)),
            }
        },
    )
    .map_err(e)?;

    l.func_wrap(
        HOST_MODULE,
        "kv_delete",
        |mut c: Caller<'_, HostState>, kp: i32, kl: i32, flags: i32| {
            let (data, st) = split(&mut c)?;
            if flags & !KV_DURABLE != 0 {
                return Ok(ERR_INVALID);
            }
            let key = guest(data, kp, kl, "kv_delete", "key")?;
            if !valid_key(key) {
                return Ok(ERR_INVALID);
            }
            st.shared.kv.delete(key, flags & KV_DURABLE != 0, st.now_ms);
            Ok(0)
        },
    )
    .map_err(e)?;

    l.func_wrap(
        HOST_MODULE,
        "config_get",
        |mut c: Caller<'_, HostState>, kp: i32, kl: i32, buf: i32, cap: i32| {
            let (data, st) = split(&mut c)?;
            let key = guest(data, kp, kl, "config_get", "key")?;
            let Ok(key) = std::str::from_utf8(key) else {
                return Ok(ERR_INVALID);
            };
            match st.shared.config_bytes(key) {
                Some(v) => copy_out(data, buf, cap, &v, "config_get"),
                None => Ok(ERR_NOT_FOUND),
            }
        },
    )
    .map_err(e)?;

    l.func_wrap(
        HOST_MODULE,
        "metric_incr",
        |mut c: Caller<'_, HostState>, np: i32, nl: i32, delta: i64| {
            let (data, st) = split(&mut c)?;
            let name = guest(data, np, nl, "metric_incr", "name")?;
            if !valid_metric_name(name) || delta < 0 {
                return Ok(ERR_INVALID);
            }
            let name = String::from_utf8_lossy(name).into_owned();
            {
                let mut names = st.shared.custom_metrics.lock();
                if !names.contains(&name) {
                    if names.len() >= MAX_CUSTOM_METRICS {
                        return Ok(ERR_FULL);
                    }
                    names.insert(name.clone());
                }
            }
            metrics::counter!(
                "tessera_plugin_custom_total",
                "plugin" => st.shared.name.to_string(),
                "name" => name
            )
            .increment(delta as u64);
            Ok(0)
        },
    )
    .map_err(e)?;

    Ok(l)
}

/// A live instance of one plugin version with its own `Store`.
pub(crate) struct PluginInstance {
    store: Store<HostState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    hooks: [Option<TypedFunc<(i32, i32), i64>>; 8],
}

fn classify(store: &Store<HostState>, err: &wasmtime::Error, timeout_note: &str) -> CallFailure {
    if store.data().limiter.hit {
        return CallFailure::new(FailureKind::MemoryLimit, format!("{err:#}"));
    }
    if let Some(kv) = err.downcast_ref::<KvError>() {
        return CallFailure::new(FailureKind::KvUnavailable, kv.to_string());
    }
    if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return CallFailure::new(FailureKind::Timeout, format!("interrupted: {timeout_note}"));
    }
    CallFailure::new(FailureKind::Trap, format!("{err:#}"))
}

impl PluginInstance {
    /// Instantiates `pre` in a fresh store and runs `init` with `init_payload`.
    pub(crate) fn new(
        engine: &Engine,
        pre: &InstancePre<HostState>,
        shared: Arc<PluginShared>,
        memory_limit_bytes: usize,
        init_payload: &[u8],
        ticks: u64,
        now_ms: i64,
    ) -> Result<PluginInstance, CallFailure> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(memory_limit_bytes)
            .instances(1)
            .memories(1)
            .tables(1)
            .build();
        let state = HostState {
            limiter: Limiter {
                limits,
                limit_bytes: memory_limit_bytes,
                hit: false,
            },
            memory: None,
            now_ms,
            shared,
            init_log: Some(Vec::new()),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks);
        let fail = |kind, msg: String| CallFailure::new(kind, msg);

        let instance = match pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(err) => {
                let f = classify(&store, &err, "start function ran past the timeout");
                let kind = if f.kind == FailureKind::Trap {
                    FailureKind::Instantiate
                } else {
                    f.kind
                };
                return Err(fail(kind, format!("instantiation failed: {}", f.message)));
            }
        };
        let memory = instance
            .get_memory(&mut store, MEMORY_EXPORT)
            .ok_or_else(|| fail(FailureKind::Instantiate, "missing export `memory`".into()))?;
        store.data_mut().memory = Some(memory);
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, ALLOC_EXPORT)
            .map_err(|e| fail(FailureKind::Instantiate, format!("{e:#}")))?;
        let init = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, INIT_EXPORT)
            .map_err(|e| fail(FailureKind::Instantiate, format!("{e:#}")))?;
        let mut hooks: [Option<TypedFunc<(i32, i32), i64>>; 8] = Default::default();
        for hook in Hook::ALL {
            if let Ok(f) = instance.get_typed_func::<(i32, i32), i64>(&mut store, hook.name()) {
                hooks[hook.index()] = Some(f);
            }
        }
        let mut inst = PluginInstance {
            store,
            memory,
            alloc,
            hooks,
        };
        let (ptr, len) = inst.write_payload(init_payload).map_err(|mut f| {
            f.message = format!("init: {}", f.message);
            f
        })?;
        let result = init.call(&mut inst.store, (ptr, len));
        let logged = inst.store.data_mut().init_log.take().unwrap_or_default();
        let said = if logged.is_empty() {
            String::new()
        } else {
            format!(": {}", logged.join("; "))
        };
        match result {
            Ok(0) => Ok(inst),
            Ok(code) => Err(fail(
                FailureKind::Instantiate,
                format!("init returned {code} (the plugin rejected its config){said}"),
            )),
            Err(err) => {
                let f = classify(&inst.store, &err, "init ran past the timeout");
                Err(fail(f.kind, format!("init: {}{said}", f.message)))
            }
        }
    }

    /// Copies `payload` into a buffer the guest allocates; returns `(ptr, len)`.
    fn write_payload(&mut self, payload: &[u8]) -> Result<(i32, i32), CallFailure> {
        let len = i32::try_from(payload.len())
            .map_err(|_| CallFailure::new(FailureKind::Trap, "payload larger than 2 GiB"))?;
        let ptr = self
            .alloc
            .call(&mut self.store, len)
            .map_err(|e| classify(&self.store, &e, "alloc ran past the timeout"))?;
        self.memory
            .write(&mut self.store, ptr as u32 as usize, payload)
            .map_err(|_| {
                CallFailure::new(
                    FailureKind::Trap,
                    format!("alloc({len}) returned {ptr}, out of bounds of linear memory"),
                )
            })?;
        Ok((ptr, len))
    }

    /// Runs `hook` with the encoded event; the caller discards the instance on `Err`.
    pub(crate) fn call(
        &mut self,
        hook: Hook,
        payload: &[u8],
        now_ms: i64,
        ticks: u64,
    ) -> Result<Decision, CallFailure> {
        let func = self.hooks[hook.index()].clone().ok_or_else(|| {
            CallFailure::new(FailureKind::Trap, format!("{hook} is not exported"))
        })?;
        self.store.data_mut().now_ms = now_ms;
        self.store.set_epoch_deadline(ticks);
        let (ptr, len) = self.write_payload(payload)?;
        let packed = func
            .call(&mut self.store, (ptr, len))
            .map_err(|e| classify(&self.store, &e, "the hook ran past its timeout"))?;
        if packed == 0 {
            return Ok(Decision::Allow);
        }
        let (dptr, dlen) = unpack_ptr_len(packed);
        if dlen as usize > MAX_DECISION_LEN {
            return Err(CallFailure::new(
                FailureKind::BadDecision,
                format!("decision of {dlen} bytes exceeds {MAX_DECISION_LEN}"),
            ));
        }
        let data = self.memory.data(&self.store);
        let bytes = (dptr as usize)
            .checked_add(dlen as usize)
            .and_then(|end| data.get(dptr as usize..end))
            .ok_or_else(|| {
                CallFailure::new(
                    FailureKind::BadDecision,
                    format!("decision pointer {dptr}+{dlen} is out of bounds of linear memory"),
                )
            })?;
        decode_decision(bytes).map_err(|e| CallFailure::new(FailureKind::BadDecision, e.0))
    }
}

#[cfg(test)]
mod log_tests {
    use super::escape_log;

    #[test]
    fn plugin_log_text_cannot_forge_lines_or_terminal_escapes() {
        assert_eq!(escape_log("plain text: ok"), "plain text: ok");
        assert_eq!(
            escape_log("a\nINFO forged line\r\x1b[31mred\u{202e}"),
            "a\\nINFO forged line\\r\\u{1b}[31mred\\u{202e}"
        );
        assert_eq!(escape_log("tab\there"), "tab\\there");
        assert_eq!(escape_log("über ✓"), "über ✓");
    }
}
