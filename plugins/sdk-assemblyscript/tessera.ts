// Tessera policy plugin SDK for AssemblyScript: ABI v1 (plugins/ABI.md) in one file.
//
// What it gives a plugin:
//   - the ABI exports every plugin needs: `tessera_policy_abi_v1` and `alloc` (re-export
//     them from your entry file, see plugins/examples/activation-guard-as/assembly/index.ts);
//   - `payload(ptr, len)`: decodes the MessagePack map the host passed to `init` or a hook
//     into a `Value` tree and frees the buffer;
//   - `allow()`, `deny()`, `ban()`, `flag()`, `risk()`: encode a decision (MessagePack) and
//     return the packed pointer/length a hook returns;
//   - the host functions of module `tessera`: `log`, `nowMs`, `kvGet`, `kvSet`, `kvIncr`,
//     `kvDelete`, `configGet`, `metricIncr`.
//
// Build with `asc ... --runtime incremental --use abort=<this file>/tesseraAbort` so the
// module imports nothing outside module `tessera` (`asc`'s default `env.abort` would make
// the host refuse it).

// ---- host functions (module `tessera`) ----------------------------------------------

@external("tessera", "log")
declare function host_log(level: i32, ptr: usize, len: i32): void;
@external("tessera", "now_ms")
declare function host_now_ms(): i64;
@external("tessera", "kv_get")
declare function host_kv_get(kp: usize, kl: i32, buf: usize, cap: i32, flags: i32): i32;
@external("tessera", "kv_set")
declare function host_kv_set(kp: usize, kl: i32, vp: usize, vl: i32, ttl: i64, flags: i32): i32;
@external("tessera", "kv_incr")
declare function host_kv_incr(kp: usize, kl: i32, delta: i64, ttl: i64, flags: i32): i64;
@external("tessera", "kv_delete")
declare function host_kv_delete(kp: usize, kl: i32, flags: i32): i32;
@external("tessera", "config_get")
declare function host_config_get(kp: usize, kl: i32, buf: usize, cap: i32): i32;
@external("tessera", "metric_incr")
declare function host_metric_incr(np: usize, nl: i32, delta: i64): i32;

export const LOG_ERROR: i32 = 0;
export const LOG_WARN: i32 = 1;
export const LOG_INFO: i32 = 2;
export const LOG_DEBUG: i32 = 3;

/// KV flag: written through to the server's store, survives restarts.
export const KV_DURABLE: i32 = 1;
/// KV flag for kvIncr: reset the expiry on every increment.
export const KV_SLIDING: i32 = 2;

function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}

/** Logs a message through the server's log, tagged with the plugin's name. */
export function log(level: i32, msg: string): void {
  const b = utf8(msg);
  host_log(level, changetype<usize>(b), b.byteLength);
}

/** The event time in Unix milliseconds (frozen for the call). */
export function nowMs(): i64 {
  return host_now_ms();
}

function readInto(key: ArrayBuffer, isConfig: bool, flags: i32): Uint8Array | null {
  let cap = 256;
  for (let attempt = 0; attempt < 2; attempt++) {
    const buf = new Uint8Array(cap);
    const n = isConfig
      ? host_config_get(changetype<usize>(key), key.byteLength, buf.dataStart, cap)
      : host_kv_get(changetype<usize>(key), key.byteLength, buf.dataStart, cap, flags);
    if (n < 0) return null;
    if (n <= cap) return buf.subarray(0, n);
    cap = n;
  }
  return null;
}

/** Reads a KV key (`flags`: KV_DURABLE looks in the server's store too); null if absent. */
export function kvGet(key: string, flags: i32 = 0): Uint8Array | null {
  return readInto(utf8(key), false, flags);
}

/** Writes a KV key; `ttlMs` from the event time, 0 never expires. 0 or a negative error code. */
export function kvSet(key: string, value: Uint8Array, ttlMs: i64, flags: i32 = 0): i32 {
  const k = utf8(key);
  return host_kv_set(changetype<usize>(k), k.byteLength, value.dataStart, value.length, ttlMs, flags);
}

/** Adds `delta` to a counter and returns the new value (expiry set when created, or on
 *  every call with KV_SLIDING). */
export function kvIncr(key: string, delta: i64, ttlMs: i64, flags: i32 = 0): i64 {
  const k = utf8(key);
  return host_kv_incr(changetype<usize>(k), k.byteLength, delta, ttlMs, flags);
}

/** Deletes a KV key (KV_DURABLE: from the server's store too). */
export function kvDelete(key: string, flags: i32 = 0): void {
  const k = utf8(key);
  host_kv_delete(changetype<usize>(k), k.byteLength, flags);
}

/** A (dotted) key of the plugin's config: strings as they are, other values as JSON text. */
export function configGet(key: string): string | null {
  const v = readInto(utf8(key), true, 0);
  if (v == null) return null;
  return String.UTF8.decodeUnsafe(v.dataStart, v.length);
}

/** Adds `delta` to `tessera_plugin_custom_total{plugin, name}`. */
export function metricIncr(name: string, delta: i64 = 1): void {
  const n = utf8(name);
  host_metric_incr(changetype<usize>(n), n.byteLength, delta);
}

/** Replaces asc's `env.abort` import (`--use abort=.../tesseraAbort`): logs, then traps. */
export function tesseraAbort(msg: string | null, file: string | null, line: u32, col: u32): void {
  log(LOG_ERROR, "abort: " + (msg != null ? msg : "") + " at " + (file != null ? file : "") + ":" + line.toString() + ":" + col.toString());
  unreachable();
}

// ---- ABI exports --------------------------------------------------------------------

/** The ABI v1 marker; never called. */
export function tessera_policy_abi_v1(): void {}

/** `alloc(len)`: a buffer the host writes a payload into; `payload()` frees it. */
export function alloc(len: i32): i32 {
  return <i32>heap.alloc(len > 0 ? <usize>len : 1);
}

// ---- MessagePack in -----------------------------------------------------------------

export const NIL: i32 = 0;
export const BOOL: i32 = 1;
export const INT: i32 = 2;
export const FLOAT: i32 = 3;
export const STR: i32 = 4;
export const BIN: i32 = 5;
export const ARRAY: i32 = 6;
export const MAP: i32 = 7;

/** A decoded MessagePack value: a map (keys/items), an array (items) or a scalar. */
export class Value {
  kind: i32 = NIL;
  int: i64 = 0;
  float: f64 = 0;
  str: string = "";
  keys: string[] = [];
  items: Value[] = [];

  /** The value under `key` of a map (null when absent or not a map). */
  get(key: string): Value | null {
    for (let i = 0; i < this.keys.length; i++) {
      if (this.keys[i] == key) return this.items[i];
    }
    return null;
  }

  /** A string field, or `def` when absent or nil. */
  getStr(key: string, def: string = ""): string {
    const v = this.get(key);
    return v != null && v.kind == STR ? v.str : def;
  }

  /** An integer field, or `def` when absent. */
  getInt(key: string, def: i64 = 0): i64 {
    const v = this.get(key);
    return v != null && v.kind == INT ? v.int : def;
  }

  /** A boolean field, or `def` when absent. */
  getBool(key: string, def: bool = false): bool {
    const v = this.get(key);
    return v != null && v.kind == BOOL ? v.int != 0 : def;
  }

  /** Whether a map has `key` with a non-nil value. */
  has(key: string): bool {
    const v = this.get(key);
    return v != null && v.kind != NIL;
  }
}

class Reader {
  constructor(public p: usize, public end: usize) {}
  ok: bool = true;

  need(n: usize): bool {
    if (this.p + n > this.end) this.ok = false;
    return this.ok;
  }
  u8(): u32 {
    if (!this.need(1)) return 0;
    const v = <u32>load<u8>(this.p);
    this.p += 1;
    return v;
  }
  u16(): u32 {
    if (!this.need(2)) return 0;
    const v = <u32>bswap<u16>(load<u16>(this.p));
    this.p += 2;
    return v;
  }
  u32(): u32 {
    if (!this.need(4)) return 0;
    const v = bswap<u32>(load<u32>(this.p));
    this.p += 4;
    return v;
  }
  u64(): u64 {
    if (!this.need(8)) return 0;
    const v = bswap<u64>(load<u64>(this.p));
    this.p += 8;
    return v;
  }
  str(n: u32): string {
    if (!this.need(<usize>n)) return "";
    const s = String.UTF8.decodeUnsafe(this.p, <usize>n);
    this.p += <usize>n;
    return s;
  }

  value(depth: i32): Value {
    const v = new Value();
    if (depth > 32) {
      this.ok = false;
      return v;
    }
    const b = this.u8();
    if (!this.ok) return v;
    if (b <= 0x7f) { v.kind = INT; v.int = <i64>b; }
    else if (b >= 0xe0) { v.kind = INT; v.int = <i64>(<i8>b); }
    else if ((b & 0xe0) == 0xa0) { v.kind = STR; v.str = this.str(b & 0x1f); }
    else if ((b & 0xf0) == 0x90) { this.array(v, b & 0x0f, depth); }
    else if ((b & 0xf0) == 0x80) { this.map(v, b & 0x0f, depth); }
    else if (b == 0xc0) { v.kind = NIL; }
    else if (b == 0xc2 || b == 0xc3) { v.kind = BOOL; v.int = b == 0xc3 ? 1 : 0; }
    else if (b == 0xcc) { v.kind = INT; v.int = <i64>this.u8(); }
    else if (b == 0xcd) { v.kind = INT; v.int = <i64>this.u16(); }
    else if (b == 0xce) { v.kind = INT; v.int = <i64>this.u32(); }
    else if (b == 0xcf) { v.kind = INT; v.int = <i64>this.u64(); }
    else if (b == 0xd0) { v.kind = INT; v.int = <i64>(<i8>this.u8()); }
    else if (b == 0xd1) { v.kind = INT; v.int = <i64>(<i16>this.u16()); }
    else if (b == 0xd2) { v.kind = INT; v.int = <i64>(<i32>this.u32()); }
    else if (b == 0xd3) { v.kind = INT; v.int = <i64>this.u64(); }
    else if (b == 0xca) { v.kind = FLOAT; v.float = <f64>reinterpret<f32>(this.u32()); }
    else if (b == 0xcb) { v.kind = FLOAT; v.float = reinterpret<f64>(this.u64()); }
    else if (b == 0xd9) { v.kind = STR; v.str = this.str(this.u8()); }
    else if (b == 0xda) { v.kind = STR; v.str = this.str(this.u16()); }
    else if (b == 0xdb) { v.kind = STR; v.str = this.str(this.u32()); }
    else if (b == 0xc4 || b == 0xc5 || b == 0xc6) {
      const n = b == 0xc4 ? this.u8() : b == 0xc5 ? this.u16() : this.u32();
      v.kind = BIN;
      if (this.need(<usize>n)) this.p += <usize>n;
    }
    else if (b == 0xdc) { this.array(v, this.u16(), depth); }
    else if (b == 0xdd) { this.array(v, this.u32(), depth); }
    else if (b == 0xde) { this.map(v, this.u16(), depth); }
    else if (b == 0xdf) { this.map(v, this.u32(), depth); }
    else { this.ok = false; } // ext types are not part of the ABI
    return v;
  }

  array(v: Value, n: u32, depth: i32): void {
    v.kind = ARRAY;
    for (let i: u32 = 0; i < n && this.ok; i++) v.items.push(this.value(depth + 1));
  }

  map(v: Value, n: u32, depth: i32): void {
    v.kind = MAP;
    for (let i: u32 = 0; i < n && this.ok; i++) {
      const k = this.value(depth + 1);
      const val = this.value(depth + 1);
      v.keys.push(k.kind == STR ? k.str : "");
      v.items.push(val);
    }
  }
}

/** Decodes `len` bytes of MessagePack at `ptr`; null when malformed. Does not free. */
export function decode(ptr: usize, len: i32): Value | null {
  const r = new Reader(ptr, ptr + <usize>len);
  const v = r.value(0);
  return r.ok && r.p == r.end ? v : null;
}

/** Decodes the payload the host passed to `init` or a hook and frees its buffer
 *  (from `alloc`). Traps on a malformed payload, which the host never sends. */
export function payload(ptr: i32, len: i32): Value {
  const v = decode(<usize>ptr, len);
  heap.free(<usize>ptr);
  if (v == null) {
    log(LOG_ERROR, "undecodable payload");
    unreachable();
  }
  return changetype<Value>(v);
}

// ---- MessagePack out: decisions -----------------------------------------------------

// The decision stays here until the next call (the host reads it right after the hook).
const OUT = new Uint8Array(4096);
let outLen: i32 = 0;

function put(b: u32): void {
  if (outLen < OUT.length) OUT[outLen] = <u8>b;
  outLen++;
}

function putStr(s: string, max: i32): void {
  let b = Uint8Array.wrap(utf8(s));
  if (b.length > max) b = b.subarray(0, max); // the ABI's limits; may cut a character
  const n = b.length;
  if (n < 32) put(0xa0 | n);
  else if (n < 256) { put(0xd9); put(n); }
  else { put(0xda); put(n >> 8); put(n & 0xff); }
  for (let i = 0; i < n; i++) put(b[i]);
}

function putInt(v: i64): void {
  put(0xd3);
  for (let s = 56; s >= 0; s -= 8) put(<u32>((v >> s) & 0xff));
}

function finish(): i64 {
  if (outLen > OUT.length) {
    log(LOG_ERROR, "decision too large");
    unreachable();
  }
  return (<i64>OUT.dataStart << 32) | <i64>outLen;
}

/** Allow (what a hook returns to let the request go on). */
export function allow(): i64 {
  return 0;
}

/** Refuse the request: the client gets `{"error": message, "code": code, "status": status}`.
 *  `code`: UPPER_SNAKE; `status`: 403 or 429. */
export function deny(code: string, message: string, status: i32 = 403): i64 {
  outLen = 0;
  put(0x84);
  putStr("decision", 64); putStr("deny", 64);
  putStr("code", 64); putStr(code, 64);
  putStr("message", 64); putStr(message, 1024);
  putStr("status", 64); putInt(<i64>status);
  return finish();
}

/** Ban the license, for `durationSecs` (0: for good). */
export function ban(reason: string, durationSecs: i64 = 0): i64 {
  outLen = 0;
  put(durationSecs > 0 ? 0x83 : 0x82);
  putStr("decision", 64); putStr("ban", 64);
  putStr("reason", 64); putStr(reason, 1024);
  if (durationSecs > 0) { putStr("duration_secs", 64); putInt(durationSecs); }
  return finish();
}

/** Record an event tagged `tag` (`a-z 0-9 _ - . :`); the request goes on. */
export function flag(tag: string): i64 {
  outLen = 0;
  put(0x82);
  putStr("decision", 64); putStr("flag", 64);
  putStr("tag", 64); putStr(tag, 64);
  return finish();
}

/** Add `delta` to the request's risk score. */
export function risk(delta: i64): i64 {
  outLen = 0;
  put(0x82);
  putStr("decision", 64); putStr("risk", 64);
  putStr("delta", 64); putInt(delta);
  return finish();
}
