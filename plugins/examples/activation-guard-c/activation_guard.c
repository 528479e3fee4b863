/* activation-guard (C): which networks may activate and start sessions, and how many
 * distinct addresses may activate one license within a window. The same policy as
 * ../activation-guard-as, written against plugins/sdk-c/tessera_plugin.h.
 *
 * Config ([plugins.config]):
 *   allow = ["10.0.0.0/8", "2001:db8::/32"]  # CIDR networks allowed to activate and start
 *                                            # sessions; empty or absent: every address.
 *                                            # Others get 403 NETWORK_NOT_ALLOWED.
 *   max_addresses = 3                        # distinct addresses that may activate one
 *   window_secs = 3600                       # license within the window; the next one
 *                                            # gets 429 ACTIVATION_VELOCITY.
 * Unknown keys are refused (at most 256 networks). Events without an address are allowed.
 *
 * The velocity window is fixed: it starts with the first address admitted and lasts
 * window_secs; an address admitted in it stays admitted until its own key expires.
 * Counters are durable KV keys, so a restart keeps them.
 */
#include "../../sdk-c/tessera_plugin.h"

#define MAX_NETWORKS 256

typedef struct { uint8_t addr[16]; int32_t bits; } network;

static network networks[MAX_NETWORKS];
static int32_t network_count;
static int64_t max_addresses = 3;
static int64_t window_ms = 3600000;

/* ---- addresses ------------------------------------------------------------------------ */

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool contains_char(tp_str s, char c) {
    for (int32_t i = 0; i < s.len; i++) if (s.ptr[i] == c) return true;
    return false;
}

/* a.b.c.d into out[0..4]. */
static bool parse_v4(tp_str s, uint8_t *out) {
    int32_t i = 0;
    for (int part = 0; part < 4; part++) {
        int32_t start = i, n = 0;
        while (i < s.len && s.ptr[i] >= '0' && s.ptr[i] <= '9' && i - start < 3) n = n * 10 + (s.ptr[i++] - '0');
        int32_t digits = i - start;
        if (digits == 0 || n > 255 || (digits > 1 && s.ptr[start] == '0')) return false;
        out[part] = (uint8_t)n;
        if (part < 3) {
            if (i >= s.len || s.ptr[i] != '.') return false;
            i++;
        }
    }
    return i == s.len;
}

/* Colon-separated hex groups (and, if allowed, a trailing a.b.c.d) into words; count or -1. */
static int parse_groups(tp_str s, bool v4_tail, uint16_t *words, int max) {
    int n = 0;
    if (s.len == 0) return 0;
    int32_t i = 0;
    for (;;) {
        int32_t start = i;
        while (i < s.len && s.ptr[i] != ':') i++;
        tp_str g = { s.ptr + start, i - start };
        if (v4_tail && i == s.len && contains_char(g, '.')) {
            uint8_t b[4];
            if (n + 2 > max || !parse_v4(g, b)) return -1;
            words[n++] = (uint16_t)(b[0] << 8 | b[1]);
            words[n++] = (uint16_t)(b[2] << 8 | b[3]);
            return n;
        }
        if (g.len == 0 || g.len > 4 || n >= max) return -1;
        uint32_t w = 0;
        for (int32_t j = 0; j < g.len; j++) {
            int d = hex_digit(g.ptr[j]);
            if (d < 0) return -1;
            w = w << 4 | (uint32_t)d;
        }
        words[n++] = (uint16_t)w;
        if (i == s.len) return n;
        i++; /* the ':' */
        if (i == s.len) return -1;
    }
}

/* An IPv4 or IPv6 address as 16 bytes (IPv4 as ::ffff:a.b.c.d). */
static bool parse_addr(tp_str s, uint8_t *out) {
    memset(out, 0, 16);
    if (!contains_char(s, ':')) {
        out[10] = 0xff;
        out[11] = 0xff;
        return parse_v4(s, out + 12);
    }
    uint16_t words[8] = { 0 };
    int32_t dbl = -1;
    for (int32_t i = 0; i + 1 < s.len; i++) {
        if (s.ptr[i] == ':' && s.ptr[i + 1] == ':') {
            if (dbl >= 0) return false;
            dbl = i;
            i++;
        }
    }
    if (dbl >= 0) {
        uint16_t head[8], tail[8];
        tp_str hs = { s.ptr, dbl }, ts = { s.ptr + dbl + 2, s.len - dbl - 2 };
        int h = parse_groups(hs, false, head, 8), t = parse_groups(ts, true, tail, 8);
        if (h < 0 || t < 0 || h + t > 7) return false;
        for (int i = 0; i < h; i++) words[i] = head[i];
        for (int i = 0; i < t; i++) words[8 - t + i] = tail[i];
    } else if (parse_groups(s, true, words, 8) != 8) {
        return false;
    }
    for (int i = 0; i < 8; i++) {
        out[2 * i] = (uint8_t)(words[i] >> 8);
        out[2 * i + 1] = (uint8_t)words[i];
    }
    return true;
}

/* a.b.c.d/n or x:y::z/n (a bare address is a /32 or /128). */
static bool parse_network(tp_str s, network *net) {
    int32_t slash = -1;
    for (int32_t i = 0; i < s.len; i++) if (s.ptr[i] == '/') { slash = i; break; }
    tp_str a = { s.ptr, slash >= 0 ? slash : s.len };
    if (!parse_addr(a, net->addr)) return false;
    bool v4 = !contains_char(a, ':');
    int32_t max = v4 ? 32 : 128, bits = max;
    if (slash >= 0) {
        int32_t n = s.len - slash - 1;
        if (n < 1 || n > 3) return false;
        bits = 0;
        for (int32_t i = slash + 1; i < s.len; i++) {
            if (s.ptr[i] < '0' || s.ptr[i] > '9') return false;
            bits = bits * 10 + (s.ptr[i] - '0');
        }
        if (bits > max) return false;
    }
    net->bits = v4 ? bits + 96 : bits;
    return true;
}

static bool network_contains(const network *net, const uint8_t *a) {
    int32_t bits = net->bits;
    for (int i = 0; i < 16 && bits > 0; i++, bits -= 8) {
        uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));
        if ((a[i] & mask) != (net->addr[i] & mask)) return false;
    }
    return true;
}

static bool allowed(tp_str ip) {
    if (network_count == 0) return true;
    uint8_t a[16];
    if (!parse_addr(ip, a)) return false;
    for (int32_t i = 0; i < network_count; i++) if (network_contains(&networks[i], a)) return true;
    return false;
}

/* ---- init ------------------------------------------------------------------------------ */

static int32_t refuse(tp_str why, tp_str detail) {
    tp_text t = { .len = 0 };
    tp_text_add_c(&t, "activation-guard config: ");
    tp_text_add(&t, why);
    tp_text_add(&t, detail);
    tp_log(TP_LOG_ERROR, tp_text_str(&t));
    TP_DONE();
    return 1;
}

static const tp_str NONE = { "", 0 };

TP_EXPORT("init") int32_t init(int32_t ptr, int32_t len) {
    tp_reader r = tp_payload(ptr, len);
    int64_t n = tp_read_map(&r);
    if (n < 0) return refuse(tp_cstr("must be a table"), NONE);
    for (int64_t i = 0; i < n && r.ok; i++) {
        tp_str key;
        if (!tp_read_str(&r, &key)) return refuse(tp_cstr("keys must be strings"), NONE);
        if (tp_eq(key, "allow")) {
            int64_t items = tp_read_array(&r);
            if (items < 0) return refuse(tp_cstr("allow: must be a list of CIDR networks"), NONE);
            for (int64_t j = 0; j < items; j++) {
                tp_str s = NONE;
                if (!tp_read_str(&r, &s) || network_count >= MAX_NETWORKS
                    || !parse_network(s, &networks[network_count])) {
                    tp_text t = { .len = 0 };
                    tp_text_add_c(&t, "`");
                    tp_text_add(&t, s);
                    tp_text_add_c(&t, network_count >= MAX_NETWORKS ? "`: more than 256 networks" : "` is not a CIDR network");
                    return refuse(tp_cstr("allow: "), tp_text_str(&t));
                }
                network_count++;
            }
        } else if (tp_eq(key, "max_addresses")) {
            if (!tp_read_int(&r, &max_addresses) || max_addresses < 1)
                return refuse(tp_cstr("max_addresses: must be an integer >= 1"), NONE);
        } else if (tp_eq(key, "window_secs")) {
            int64_t secs;
            if (!tp_read_int(&r, &secs) || secs < 1 || secs > 31536000)
                return refuse(tp_cstr("window_secs: must be an integer from 1 to 31536000"), NONE);
            window_ms = secs * 1000;
        } else {
            tp_text t = { .len = 0 };
            tp_text_add_c(&t, "unknown key `");
            tp_text_add(&t, key);
            tp_text_add_c(&t, "` (known: allow, max_addresses, window_secs)");
            return refuse(tp_text_str(&t), NONE);
        }
    }
    if (!r.ok) return refuse(tp_cstr("undecodable"), NONE);
    TP_DONE();
    return 0;
}

/* ---- hooks ----------------------------------------------------------------------------- */

typedef struct { tp_str ip, license_key, outcome; } event;

static bool read_event(int32_t ptr, int32_t len, event *ev) {
    tp_reader r = tp_payload(ptr, len);
    ev->ip = NONE;
    ev->license_key = NONE;
    ev->outcome = tp_cstr("ok");
    int64_t n = tp_read_map(&r);
    for (int64_t i = 0; i < n && r.ok; i++) {
        tp_str key;
        if (!tp_read_str(&r, &key)) { tp_skip(&r); continue; }
        if (tp_eq(key, "ip") && !tp_peek_nil(&r)) tp_read_str(&r, &ev->ip);
        else if (tp_eq(key, "license_key")) tp_read_str(&r, &ev->license_key);
        else if (tp_eq(key, "outcome")) tp_read_str(&r, &ev->outcome);
        else tp_skip(&r); /* fields this plugin does not use, including ones added later */
    }
    return r.ok && n >= 0;
}

static int64_t not_allowed(tp_str ip) {
    tp_text t = { .len = 0 };
    tp_text_add_c(&t, "this network may not use the license (");
    tp_text_add(&t, ip);
    tp_text_add_c(&t, ")");
    int64_t d = tp_deny("NETWORK_NOT_ALLOWED", tp_text_str(&t), 403);
    TP_DONE();
    return d;
}

TP_EXPORT("on_activate") int64_t on_activate(int32_t ptr, int32_t len) {
    event ev;
    if (!read_event(ptr, len, &ev)) __builtin_trap();
    /* A refused activation is the server's business; an event without an address, too. */
    if (ev.ip.len == 0 || !tp_eq(ev.outcome, "ok")) { TP_DONE(); return tp_allow(); }
    if (!allowed(ev.ip)) return not_allowed(ev.ip);
    tp_text seen = { .len = 0 }, count = { .len = 0 };
    tp_text_add_c(&seen, "addr:");
    tp_text_add(&seen, ev.license_key);
    tp_text_add_c(&seen, "|");
    tp_text_add(&seen, ev.ip);
    tp_text_add_c(&count, "count:");
    tp_text_add(&count, ev.license_key);
    int64_t result = tp_allow();
    if (tp_kv_incr(tp_text_str(&seen), 1, window_ms, TP_KV_DURABLE) == 1
        && tp_kv_incr(tp_text_str(&count), 1, window_ms, TP_KV_DURABLE) > max_addresses) {
        /* Refused: this address was not admitted, so it neither counts nor stays seen. */
        tp_kv_incr(tp_text_str(&count), -1, window_ms, TP_KV_DURABLE);
        tp_kv_delete(tp_text_str(&seen), TP_KV_DURABLE);
        result = tp_deny("ACTIVATION_VELOCITY",
                         tp_cstr("too many addresses activated this license recently; try again later"), 429);
    }
    TP_DONE();
    return result;
}

TP_EXPORT("on_session_start") int64_t on_session_start(int32_t ptr, int32_t len) {
    event ev;
    if (!read_event(ptr, len, &ev)) __builtin_trap();
    if (ev.ip.len == 0 || allowed(ev.ip)) { TP_DONE(); return tp_allow(); }
    return not_allowed(ev.ip);
}
