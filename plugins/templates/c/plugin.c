/* {{name}}: a Tessera policy plugin in C. It refuses activations and session starts from
 * machines whose name contains one of the configured substrings, e.g. virtual machines
 * named so.
 *
 * Config ([plugins.config]):
 *   deny_machine_names = ["vm", "sandbox"]  # substrings, case-insensitive (ASCII letters);
 *                                           # none: allow all. At most 64, each at most
 *                                           # 64 bytes. Unknown keys are refused.
 *
 * The machine name is what the client sent (`machine_name` of POST /api/license/activate;
 * a session start carries the name its device was activated with). A match gets 403
 * MACHINE_NOT_ALLOWED; an event without a machine name, and an activation the server
 * already refused, are allowed.
 *
 * To make it yours: change `check`, export more hooks (TP_EXPORT("on_heartbeat") ...; the
 * names are in ABI.md), and update tests/. tessera_plugin.h is the SDK (ABI v1), copied
 * from the Tessera tree; keep it as it is. Call TP_DONE() before every hook and `init`
 * returns: it frees what the call allocated.
 */
#include "tessera_plugin.h"

#define MAX_NAMES 64
#define MAX_NAME_LEN 64

/* Parsed config, in static storage (payload strings die with the call). State that must
 * outlive a call goes in the KV (tp_kv_incr, tp_kv_set), not here. */
static char deny_names[MAX_NAMES][MAX_NAME_LEN];
static int32_t deny_lens[MAX_NAMES];
static int32_t deny_count;

static const tp_str NONE = { "", 0 };

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Whether `hay` contains `needle` (lowercase), ignoring the case of ASCII letters. */
static bool contains_lower(tp_str hay, const char *needle, int32_t n) {
    for (int32_t i = 0; i + n <= hay.len; i++) {
        int32_t j = 0;
        while (j < n && lower(hay.ptr[i + j]) == needle[j]) j++;
        if (j == n) return true;
    }
    return false;
}

/* ---- init ------------------------------------------------------------------------------ */

static int32_t refuse(tp_str why) {
    tp_text t = { .len = 0 };
    tp_text_add_c(&t, "{{name}} config: ");
    tp_text_add(&t, why);
    tp_log(TP_LOG_ERROR, tp_text_str(&t));
    TP_DONE();
    return 1;
}

/* Copies a trimmed, lowercased entry of deny_machine_names into deny_names. */
static bool add_name(tp_str s) {
    while (s.len > 0 && is_space(s.ptr[0])) { s.ptr++; s.len--; }
    while (s.len > 0 && is_space(s.ptr[s.len - 1])) s.len--;
    if (s.len == 0 || s.len > MAX_NAME_LEN || deny_count >= MAX_NAMES) return false;
    for (int32_t i = 0; i < s.len; i++) deny_names[deny_count][i] = lower(s.ptr[i]);
    deny_lens[deny_count++] = s.len;
    return true;
}

TP_EXPORT("init") int32_t init(int32_t ptr, int32_t len) {
    tp_reader r = tp_payload(ptr, len);
    deny_count = 0;
    int64_t n = tp_read_map(&r);
    if (n < 0) return refuse(tp_cstr("must be a table"));
    for (int64_t i = 0; i < n && r.ok; i++) {
        tp_str key;
        if (!tp_read_str(&r, &key)) return refuse(tp_cstr("keys must be strings"));
        if (tp_eq(key, "deny_machine_names")) {
            int64_t items = tp_read_array(&r);
            if (items < 0) return refuse(tp_cstr("deny_machine_names: must be a list of strings"));
            for (int64_t j = 0; j < items; j++) {
                tp_str s = NONE;
                if (!tp_read_str(&r, &s) || !add_name(s))
                    return refuse(tp_cstr("deny_machine_names: entries must be non-empty strings "
                                          "of at most 64 bytes, at most 64 of them"));
            }
        } else {
            tp_text t = { .len = 0 };
            tp_text_add_c(&t, "unknown key `");
            tp_text_add(&t, key);
            tp_text_add_c(&t, "` (known: deny_machine_names)");
            return refuse(tp_text_str(&t));
        }
    }
    if (!r.ok) return refuse(tp_cstr("undecodable"));
    TP_DONE();
    return 0;
}

/* ---- hooks ----------------------------------------------------------------------------- */

typedef struct { tp_str machine_name, outcome; } event;

static bool read_event(int32_t ptr, int32_t len, event *ev) {
    tp_reader r = tp_payload(ptr, len);
    ev->machine_name = NONE;
    ev->outcome = tp_cstr("ok");
    int64_t n = tp_read_map(&r);
    for (int64_t i = 0; i < n && r.ok; i++) {
        tp_str key;
        if (!tp_read_str(&r, &key)) { tp_skip(&r); continue; }
        if (tp_eq(key, "machine_name") && !tp_peek_nil(&r)) tp_read_str(&r, &ev->machine_name);
        else if (tp_eq(key, "outcome")) tp_read_str(&r, &ev->outcome);
        else tp_skip(&r); /* fields this plugin does not use, including ones added later */
    }
    return r.ok && n >= 0;
}

static int64_t check(tp_str machine_name) {
    int64_t result = tp_allow();
    for (int32_t i = 0; i < deny_count && machine_name.len > 0; i++) {
        if (contains_lower(machine_name, deny_names[i], deny_lens[i])) {
            tp_text t = { .len = 0 };
            tp_str entry = { deny_names[i], deny_lens[i] };
            tp_text_add_c(&t, "machines named like `");
            tp_text_add(&t, entry);
            tp_text_add_c(&t, "` may not use this license");
            result = tp_deny("MACHINE_NOT_ALLOWED", tp_text_str(&t), 403);
            break;
        }
    }
    TP_DONE();
    return result;
}

TP_EXPORT("on_activate") int64_t on_activate(int32_t ptr, int32_t len) {
    event ev;
    if (!read_event(ptr, len, &ev)) __builtin_trap();
    /* An activation the server already refused is its business. */
    if (!tp_eq(ev.outcome, "ok")) { TP_DONE(); return tp_allow(); }
    return check(ev.machine_name);
}

TP_EXPORT("on_session_start") int64_t on_session_start(int32_t ptr, int32_t len) {
    event ev;
    if (!read_event(ptr, len, &ev)) __builtin_trap();
    return check(ev.machine_name);
}
