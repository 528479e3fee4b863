// activation-guard (AssemblyScript): which networks may activate and start sessions, and
// how many distinct addresses may activate one license within a window.
//
// Config (`[plugins.config]`):
//   allow = ["10.0.0.0/8", "2001:db8::/32"]  # CIDR networks allowed to activate and start
//                                            # sessions; empty or absent: every address.
//                                            # Others get 403 NETWORK_NOT_ALLOWED.
//   max_addresses = 3                        # distinct addresses that may activate one
//   window_secs = 3600                       # license within the window; the next one
//                                            # gets 429 ACTIVATION_VELOCITY.
// Unknown keys are refused. Events without a client address are allowed.
//
// The velocity window is fixed: it starts with the first address admitted and lasts
// `window_secs`; an address admitted in it stays admitted until its own key expires.
// Counters are durable KV keys, so a restart keeps them.

import {
  Value, MAP, ARRAY, STR, INT, payload, allow, deny, kvIncr, kvDelete, log, LOG_ERROR,
  KV_DURABLE,
} from "../../../sdk-assemblyscript/tessera";
import { Network, parseAddr, parseNetwork } from "./net";

export { alloc, tessera_policy_abi_v1 } from "../../../sdk-assemblyscript/tessera";

let networks: Network[] = [];
let maxAddresses: i64 = 3;
let windowMs: i64 = 3_600_000;

function refuse(why: string): i32 {
  log(LOG_ERROR, "activation-guard config: " + why);
  return 1;
}

export function init(ptr: i32, len: i32): i32 {
  const config = payload(ptr, len);
  if (config.kind != MAP) return refuse("must be a table");
  for (let i = 0; i < config.keys.length; i++) {
    const key = config.keys[i];
    const v = config.items[i];
    if (key == "allow") {
      if (v.kind != ARRAY) return refuse("allow: must be a list of CIDR networks");
      for (let j = 0; j < v.items.length; j++) {
        const item = v.items[j];
        const net = item.kind == STR ? parseNetwork(item.str) : null;
        if (net == null) return refuse("allow: `" + item.str + "` is not a CIDR network");
        networks.push(net);
      }
    } else if (key == "max_addresses") {
      if (v.kind != INT || v.int < 1) return refuse("max_addresses: must be an integer >= 1");
      maxAddresses = v.int;
    } else if (key == "window_secs") {
      if (v.kind != INT || v.int < 1 || v.int > 31_536_000) {
        return refuse("window_secs: must be an integer from 1 to 31536000");
      }
      windowMs = v.int * 1000;
    } else {
      return refuse("unknown key `" + key + "` (known: allow, max_addresses, window_secs)");
    }
  }
  return 0;
}

function allowed(ip: string): bool {
  if (networks.length == 0) return true;
  const a = parseAddr(ip);
  if (a == null) return false;
  for (let i = 0; i < networks.length; i++) {
    if (networks[i].contains(a)) return true;
  }
  return false;
}

function notAllowed(ip: string): i64 {
  return deny("NETWORK_NOT_ALLOWED", "this network may not use the license (" + ip + ")");
}

export function on_activate(ptr: i32, len: i32): i64 {
  const ev = payload(ptr, len);
  const ip = ev.getStr("ip");
  // A refused activation is the server's business; an event without an address, too.
  if (ip.length == 0 || ev.getStr("outcome", "ok") != "ok") return allow();
  if (!allowed(ip)) return notAllowed(ip);
  const license = ev.getStr("license_key");
  const seen = "addr:" + license + "|" + ip;
  if (kvIncr(seen, 1, windowMs, KV_DURABLE) > 1) return allow();
  const count = "count:" + license;
  if (kvIncr(count, 1, windowMs, KV_DURABLE) <= maxAddresses) return allow();
  // Refused: this address was not admitted, so it neither counts nor stays seen.
  kvIncr(count, -1, windowMs, KV_DURABLE);
  kvDelete(seen, KV_DURABLE);
  return deny(
    "ACTIVATION_VELOCITY",
    "too many addresses activated this license recently; try again later",
    429,
  );
}

export function on_session_start(ptr: i32, len: i32): i64 {
  const ev: Value = payload(ptr, len);
  const ip = ev.getStr("ip");
  if (ip.length == 0 || allowed(ip)) return allow();
  return notAllowed(ip);
}
