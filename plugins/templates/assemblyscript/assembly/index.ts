// {{name}}: a Tessera policy plugin in AssemblyScript. It refuses activations and session
// starts from machines whose name contains one of the configured substrings, e.g. virtual
// machines named so.
//
// Config (`[plugins.config]`):
//   deny_machine_names = ["vm", "sandbox"]   # substrings, case-insensitive; none: allow all
// Unknown keys are refused.
//
// The machine name is what the client sent (`machine_name` of `POST /api/license/activate`;
// a session start carries the name its device was activated with). A match gets 403
// MACHINE_NOT_ALLOWED; an event without a machine name, and an activation the server
// already refused, are allowed.
//
// To make it yours: change `check`, export more hooks (the names in ABI.md: on_request,
// on_heartbeat, ...; each takes (ptr, len) and returns a decision), and update tests/.
// ./tessera.ts is the SDK (ABI v1), copied from the Tessera tree; keep it as it is.

import { MAP, ARRAY, STR, payload, allow, deny, log, LOG_ERROR } from "./tessera";

export { alloc, tessera_policy_abi_v1 } from "./tessera";

// Parsed config; state that must outlive a call goes in the KV (kvIncr, kvSet), not here.
let denyNames: string[] = [];

function refuse(why: string): i32 {
  log(LOG_ERROR, "{{name}} config: " + why);
  return 1;
}

export function init(ptr: i32, len: i32): i32 {
  const config = payload(ptr, len);
  if (config.kind != MAP) return refuse("must be a table");
  denyNames = [];
  for (let i = 0; i < config.keys.length; i++) {
    const key = config.keys[i];
    const v = config.items[i];
    if (key == "deny_machine_names") {
      if (v.kind != ARRAY) return refuse("deny_machine_names: must be a list of strings");
      for (let j = 0; j < v.items.length; j++) {
        const item = v.items[j];
        const s = item.kind == STR ? item.str.trim().toLowerCase() : "";
        if (s.length == 0) return refuse("deny_machine_names: entries must be non-empty strings");
        denyNames.push(s);
      }
    } else {
      return refuse("unknown key `" + key + "` (known: deny_machine_names)");
    }
  }
  return 0;
}

function check(machineName: string): i64 {
  if (machineName.length == 0) return allow();
  const name = machineName.toLowerCase();
  for (let i = 0; i < denyNames.length; i++) {
    if (name.includes(denyNames[i])) {
      return deny(
        "MACHINE_NOT_ALLOWED",
        "machines named like `" + denyNames[i] + "` may not use this license",
        403,
      );
    }
  }
  return allow();
}

export function on_activate(ptr: i32, len: i32): i64 {
  const ev = payload(ptr, len);
  // An activation the server already refused is its business.
  if (ev.getStr("outcome", "ok") != "ok") return allow();
  return check(ev.getStr("machine_name"));
}

export function on_session_start(ptr: i32, len: i32): i64 {
  const ev = payload(ptr, len);
  return check(ev.getStr("machine_name"));
}
