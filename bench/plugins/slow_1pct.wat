;; Bench plugin (issue 21, item 4): on_heartbeat allows 99 calls out of 100 and on every
;; 100th call of an instance spins until the plugin's timeout interrupts it (fail mode open:
;; the heartbeat is then allowed too). The count lives in a mutable global, so it is per
;; instance; a timed-out instance is discarded and its fresh successor counts from 0 again,
;; which keeps the slow calls at exactly 1 % of each hook thread's heartbeats.
;; Used by bench/slow_plugin.sh; modelled on plugins/host/tests/fixtures/infinite_loop.wat.
(module
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 1024))
  (global $calls (mut i32) (i32.const 0))
  (func (export "tessera_policy_abi_v1"))
  ;; one scratch region: the host never holds two buffers of one instance
  (func (export "alloc") (param $len i32) (result i32) (global.get $heap))
  (func (export "init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "on_heartbeat") (param i32 i32) (result i64)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (if (i32.eqz (i32.rem_u (global.get $calls) (i32.const 100)))
      (then (loop $spin (br $spin))))
    ;; allow
    (i64.const 0))
)
