/* Tessera policy plugin SDK for C: ABI v1 (plugins/ABI.md) in one header, no libc.
 *
 * Include it in exactly one .c file (the plugin) and build with
 *   clang --target=wasm32-unknown-unknown -O2 -nostdlib -ffreestanding \
 *         -Wl,--no-entry -o plugin.wasm plugin.c
 * It defines the exports every plugin needs (`tessera_policy_abi_v1`, `alloc`) and gives:
 *   - the host functions of module `tessera` (tp_log, tp_now_ms, tp_kv_*, tp_config_get,
 *     tp_metric_incr);
 *   - a MessagePack reader for the payloads of `init` and the hooks (tp_reader);
 *   - decision encoders returning what a hook returns (tp_allow, tp_deny, tp_ban, tp_flag,
 *     tp_risk);
 *   - an arena allocator: `alloc` hands out buffers from it and TP_DONE() (call it before a
 *     hook or `init` returns) frees them all. Copy what must outlive a call (parsed config)
 *     into static storage; plugin state that must outlive an instance goes in the KV.
 * Export your hooks with TP_EXPORT("on_activate") int64_t on_activate(int32_t p, int32_t n).
 */
#ifndef TESSERA_PLUGIN_H
#define TESSERA_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TP_EXPORT(name) __attribute__((export_name(name)))
#define TP_IMPORT(name) __attribute__((import_module("tessera"), import_name(name)))

/* ---- host functions (module `tessera`) -------------------------------------------- */

TP_IMPORT("log") void tp_host_log(int32_t level, const void *ptr, int32_t len);
TP_IMPORT("now_ms") int64_t tp_now_ms(void);
TP_IMPORT("kv_get") int32_t tp_host_kv_get(const void *k, int32_t kl, void *buf, int32_t cap, int32_t flags);
TP_IMPORT("kv_set") int32_t tp_host_kv_set(const void *k, int32_t kl, const void *v, int32_t vl, int64_t ttl_ms, int32_t flags);
TP_IMPORT("kv_incr") int64_t tp_host_kv_incr(const void *k, int32_t kl, int64_t delta, int64_t ttl_ms, int32_t flags);
TP_IMPORT("kv_delete") int32_t tp_host_kv_delete(const void *k, int32_t kl, int32_t flags);
TP_IMPORT("config_get") int32_t tp_host_config_get(const void *k, int32_t kl, void *buf, int32_t cap);
TP_IMPORT("metric_incr") int32_t tp_host_metric_incr(const void *name, int32_t nl, int64_t delta);

enum { TP_LOG_ERROR = 0, TP_LOG_WARN = 1, TP_LOG_INFO = 2, TP_LOG_DEBUG = 3 };
/* KV flags: durable (written through to the server's store); sliding expiry (kv_incr). */
enum { TP_KV_DURABLE = 1, TP_KV_SLIDING = 2 };

/* A byte string that is not NUL-terminated (payload strings point into the payload). */
typedef struct { const char *ptr; int32_t len; } tp_str;

static inline int32_t tp_strlen(const char *s) { int32_t n = 0; while (s[n]) n++; return n; }
static inline tp_str tp_cstr(const char *s) { tp_str r = { s, tp_strlen(s) }; return r; }

/* clang lowers struct copies and loops to these; there is no libc to provide them. */
void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = dst; const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}
void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}
int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++) if (*x != *y) return *x - *y;
    return 0;
}

static inline bool tp_eq(tp_str a, const char *lit) {
    int32_t n = tp_strlen(lit);
    return a.len == n && memcmp(a.ptr, lit, (size_t)n) == 0;
}

static inline void tp_log(int32_t level, tp_str msg) { tp_host_log(level, msg.ptr, msg.len); }
static inline void tp_log_c(int32_t level, const char *msg) { tp_log(level, tp_cstr(msg)); }

/* Reads a KV key into buf (at most cap bytes): its length, -1 if absent; a value longer
 * than cap is not copied (call again with a larger buffer). */
static inline int32_t tp_kv_get(tp_str key, void *buf, int32_t cap, int32_t flags) {
    return tp_host_kv_get(key.ptr, key.len, buf, cap, flags);
}
static inline int32_t tp_kv_set(tp_str key, const void *val, int32_t len, int64_t ttl_ms, int32_t flags) {
    return tp_host_kv_set(key.ptr, key.len, val, len, ttl_ms, flags);
}
/* Adds delta to a counter and returns the new value; ttl_ms from the event time. */
static inline int64_t tp_kv_incr(tp_str key, int64_t delta, int64_t ttl_ms, int32_t flags) {
    return tp_host_kv_incr(key.ptr, key.len, delta, ttl_ms, flags);
}
static inline void tp_kv_delete(tp_str key, int32_t flags) { tp_host_kv_delete(key.ptr, key.len, flags); }
static inline int32_t tp_config_get(tp_str key, void *buf, int32_t cap) {
    return tp_host_config_get(key.ptr, key.len, buf, cap);
}
static inline void tp_metric_incr(const char *name, int64_t delta) {
    tp_host_metric_incr(name, tp_strlen(name), delta);
}

/* ---- memory: the arena behind `alloc` ----------------------------------------------- */

extern unsigned char __heap_base;
static uintptr_t tp_arena_top;

static void *tp_arena_alloc(int32_t len) {
    if (!tp_arena_top) tp_arena_top = (uintptr_t)&__heap_base;
    uintptr_t start = (tp_arena_top + 7u) & ~(uintptr_t)7u;
    uintptr_t end = start + (uintptr_t)(len > 0 ? len : 0);
    uintptr_t have = __builtin_wasm_memory_size(0) * 65536u;
    if (end > have) {
        uintptr_t pages = (end - have + 65535u) / 65536u;
        if (__builtin_wasm_memory_grow(0, pages) == (uintptr_t)-1) __builtin_trap();
    }
    tp_arena_top = end;
    return (void *)start;
}

/* Frees every buffer `alloc` handed out (the payload included): call before returning. */
#define TP_DONE() (tp_arena_top = (uintptr_t)&__heap_base)

TP_EXPORT("tessera_policy_abi_v1") void tessera_policy_abi_v1(void) {}
TP_EXPORT("alloc") void *alloc(int32_t len) { return tp_arena_alloc(len); }

/* ---- MessagePack in ------------------------------------------------------------------- */

typedef struct { const uint8_t *p, *end; bool ok; } tp_reader;

static inline tp_reader tp_payload(int32_t ptr, int32_t len) {
    tp_reader r = { (const uint8_t *)(uintptr_t)ptr, (const uint8_t *)(uintptr_t)ptr + len, true };
    return r;
}

static bool tp_need(tp_reader *r, uint32_t n) {
    if (!r->ok || (uint32_t)(r->end - r->p) < n) r->ok = false;
    return r->ok;
}
static uint64_t tp_be(tp_reader *r, uint32_t n) {
    uint64_t v = 0;
    if (!tp_need(r, n)) return 0;
    for (uint32_t i = 0; i < n; i++) v = (v << 8) | r->p[i];
    r->p += n;
    return v;
}

/* Map header: the number of key/value pairs, -1 (and r->ok = false) if not a map. */
static int64_t tp_read_map(tp_reader *r) {
    if (!tp_need(r, 1)) return -1;
    uint8_t b = *r->p++;
    if ((b & 0xf0) == 0x80) return b & 0x0f;
    if (b == 0xde) return (int64_t)tp_be(r, 2);
    if (b == 0xdf) return (int64_t)tp_be(r, 4);
    r->ok = false;
    return -1;
}

/* Array header: the number of items, -1 (and r->ok = false) if not an array. */
static int64_t tp_read_array(tp_reader *r) {
    if (!tp_need(r, 1)) return -1;
    uint8_t b = *r->p++;
    if ((b & 0xf0) == 0x90) return b & 0x0f;
    if (b == 0xdc) return (int64_t)tp_be(r, 2);
    if (b == 0xdd) return (int64_t)tp_be(r, 4);
    r->ok = false;
    return -1;
}

/* Peeks: is the next value nil? */
static inline bool tp_peek_nil(tp_reader *r) { return r->ok && r->p < r->end && *r->p == 0xc0; }

/* A string (pointing into the payload); false (value skipped) if it is not one. */
static bool tp_read_str(tp_reader *r, tp_str *out);
/* An integer; false (value skipped) if it is not one. */
static bool tp_read_int(tp_reader *r, int64_t *out);
/* Skips one value of any type. */
static void tp_skip(tp_reader *r);

static bool tp_str_len(tp_reader *r, uint8_t b, uint32_t *n) {
    if ((b & 0xe0) == 0xa0) { *n = b & 0x1f; return true; }
    if (b == 0xd9) { *n = (uint32_t)tp_be(r, 1); return r->ok; }
    if (b == 0xda) { *n = (uint32_t)tp_be(r, 2); return r->ok; }
    if (b == 0xdb) { *n = (uint32_t)tp_be(r, 4); return r->ok; }
    return false;
}

static bool tp_read_str(tp_reader *r, tp_str *out) {
    if (!tp_need(r, 1)) return false;
    uint8_t b = *r->p;
    uint32_t n;
    const uint8_t *save = r->p;
    r->p++;
    if (!tp_str_len(r, b, &n)) {
        r->p = save;
        tp_skip(r);
        return false;
    }
    if (!tp_need(r, n)) return false;
    out->ptr = (const char *)r->p;
    out->len = (int32_t)n;
    r->p += n;
    return true;
}

static bool tp_read_int(tp_reader *r, int64_t *out) {
    if (!tp_need(r, 1)) return false;
    uint8_t b = *r->p;
    if (b <= 0x7f) { r->p++; *out = b; return true; }
    if (b >= 0xe0) { r->p++; *out = (int8_t)b; return true; }
    switch (b) {
    case 0xcc: r->p++; *out = (int64_t)tp_be(r, 1); return r->ok;
    case 0xcd: r->p++; *out = (int64_t)tp_be(r, 2); return r->ok;
    case 0xce: r->p++; *out = (int64_t)tp_be(r, 4); return r->ok;
    case 0xcf: r->p++; *out = (int64_t)tp_be(r, 8); return r->ok;
    case 0xd0: r->p++; *out = (int8_t)tp_be(r, 1); return r->ok;
    case 0xd1: r->p++; *out = (int16_t)tp_be(r, 2); return r->ok;
    case 0xd2: r->p++; *out = (int32_t)tp_be(r, 4); return r->ok;
    case 0xd3: r->p++; *out = (int64_t)tp_be(r, 8); return r->ok;
    default: tp_skip(r); return false;
    }
}

static void tp_skip_n(tp_reader *r, uint64_t n) {
    if (tp_need(r, (uint32_t)n)) r->p += n;
}

static void tp_skip_depth(tp_reader *r, int depth) {
    if (depth > 32) { r->ok = false; return; }
    if (!tp_need(r, 1)) return;
    uint8_t b = *r->p++;
    uint64_t n = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return;
    if ((b & 0xe0) == 0xa0) { tp_skip_n(r, b & 0x1f); return; }
    if ((b & 0xf0) == 0x90) { n = b & 0x0f; goto array; }
    if ((b & 0xf0) == 0x80) { n = 2u * (b & 0x0f); goto array; }
    switch (b) {
    case 0xcc: case 0xd0: tp_skip_n(r, 1); return;
    case 0xcd: case 0xd1: tp_skip_n(r, 2); return;
    case 0xce: case 0xd2: case 0xca: tp_skip_n(r, 4); return;
    case 0xcf: case 0xd3: case 0xcb: tp_skip_n(r, 8); return;
    case 0xd9: case 0xc4: tp_skip_n(r, tp_be(r, 1)); return;
    case 0xda: case 0xc5: tp_skip_n(r, tp_be(r, 2)); return;
    case 0xdb: case 0xc6: tp_skip_n(r, tp_be(r, 4)); return;
    case 0xdc: n = tp_be(r, 2); goto array;
    case 0xdd: n = tp_be(r, 4); goto array;
    case 0xde: n = 2u * tp_be(r, 2); goto array;
    case 0xdf: n = 2u * tp_be(r, 4); goto array;
    default: r->ok = false; return; /* ext types are not part of the ABI */
    }
array:
    for (uint64_t i = 0; i < n && r->ok; i++) tp_skip_depth(r, depth + 1);
}

static void tp_skip(tp_reader *r) { tp_skip_depth(r, 0); }

/* ---- MessagePack out: decisions ------------------------------------------------------- */

/* The decision stays here until the next call (the host reads it right after the hook). */
static uint8_t tp_out[4096];
static int32_t tp_out_len;

static void tp_put(uint32_t b) {
    if (tp_out_len < (int32_t)sizeof tp_out) tp_out[tp_out_len] = (uint8_t)b;
    tp_out_len++;
}
static void tp_put_str(tp_str s, int32_t max) {
    int32_t n = s.len > max ? max : s.len; /* the ABI's limits; may cut a UTF-8 character */
    if (n < 32) tp_put(0xa0u | (uint32_t)n);
    else if (n < 256) { tp_put(0xd9); tp_put((uint32_t)n); }
    else { tp_put(0xda); tp_put((uint32_t)n >> 8); tp_put((uint32_t)n & 0xff); }
    for (int32_t i = 0; i < n; i++) tp_put((uint8_t)s.ptr[i]);
}
static void tp_put_key(const char *k) { tp_put_str(tp_cstr(k), 64); }
static void tp_put_int(int64_t v) {
    tp_put(0xd3);
    for (int s = 56; s >= 0; s -= 8) tp_put((uint32_t)((uint64_t)v >> s) & 0xff);
}
static int64_t tp_finish(void) {
    if (tp_out_len > (int32_t)sizeof tp_out) __builtin_trap();
    return (int64_t)(((uint64_t)(uintptr_t)tp_out << 32) | (uint32_t)tp_out_len);
}

/* Allow: the request goes on. */
static inline int64_t tp_allow(void) { return 0; }

/* Refuse the request: the client gets {"error": message, "code": code, "status": status}.
 * code: UPPER_SNAKE; status: 403 or 429. */
static int64_t tp_deny(const char *code, tp_str message, int32_t status) {
    tp_out_len = 0;
    tp_put(0x84);
    tp_put_key("decision"); tp_put_key("deny");
    tp_put_key("code"); tp_put_key(code);
    tp_put_key("message"); tp_put_str(message, 1024);
    tp_put_key("status"); tp_put_int(status);
    return tp_finish();
}

/* Ban the license for duration_secs (0: for good). */
static int64_t tp_ban(tp_str reason, int64_t duration_secs) {
    tp_out_len = 0;
    tp_put(duration_secs > 0 ? 0x83 : 0x82);
    tp_put_key("decision"); tp_put_key("ban");
    tp_put_key("reason"); tp_put_str(reason, 1024);
    if (duration_secs > 0) { tp_put_key("duration_secs"); tp_put_int(duration_secs); }
    return tp_finish();
}

/* Record an event tagged `tag` (a-z 0-9 _ - . :); the request goes on. */
static int64_t tp_flag(const char *tag) {
    tp_out_len = 0;
    tp_put(0x82);
    tp_put_key("decision"); tp_put_key("flag");
    tp_put_key("tag"); tp_put_key(tag);
    return tp_finish();
}

/* Add delta to the request's risk score. */
static int64_t tp_risk(int64_t delta) {
    tp_out_len = 0;
    tp_put(0x82);
    tp_put_key("decision"); tp_put_key("risk");
    tp_put_key("delta"); tp_put_int(delta);
    return tp_finish();
}

/* ---- text building (keys, messages) --------------------------------------------------- */

typedef struct { char buf[1024]; int32_t len; } tp_text;

static inline void tp_text_add(tp_text *t, tp_str s) {
    for (int32_t i = 0; i < s.len && t->len < (int32_t)sizeof t->buf; i++) t->buf[t->len++] = s.ptr[i];
}
static inline void tp_text_add_c(tp_text *t, const char *s) { tp_text_add(t, tp_cstr(s)); }
static inline tp_str tp_text_str(const tp_text *t) { tp_str s = { t->buf, t->len }; return s; }

#endif /* TESSERA_PLUGIN_H */
