"""A full client lifecycle through the C ABI from Python (ctypes, standard library only).

    python3 lifecycle.py http://127.0.0.1:8080 AF-2026-... XXXX-XXXX-XXXX-XXXX

The library is found at $TESSERA_CLIENT_LIB, else at target/debug/libtessera_client.so of
this repository (`cargo build -p tessera-client`).
"""

import ctypes
import os
import sys
import time
from pathlib import Path

OK = 0


class Event(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_int),
        ("reason", ctypes.c_char_p),
        ("detail", ctypes.c_char_p),
        ("download_url", ctypes.c_char_p),
    ]


CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(Event))
KINDS = {1: "ended", 2: "degraded", 3: "recovered", 4: "update_available"}


def load():
    default = Path(__file__).resolve().parents[3] / "target" / "debug" / "libtessera_client.so"
    lib = ctypes.CDLL(os.environ.get("TESSERA_CLIENT_LIB", str(default)))
    p, s, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    sigs = {
        "tessera_last_error_code": ([], s),
        "tessera_last_error_message": ([], s),
        "tessera_client_new": ([s, s, ctypes.POINTER(p)], i),
        "tessera_client_free": ([p], None),
        "tessera_activate": ([p, s, s, s, s], i),
        "tessera_verify": ([p, s, s, s, ctypes.POINTER(i)], i),
        "tessera_session_start": ([p, s, s, s, CALLBACK, p, ctypes.POINTER(p)], i),
        "tessera_session_heartbeats": ([p], ctypes.c_uint64),
        "tessera_session_is_valid": ([p], i),
        "tessera_session_end": ([p], i),
        "tessera_session_end_reason": ([p], s),
        "tessera_session_free": ([p], None),
        "tessera_fingerprint_hash": ([ctypes.c_char_p, ctypes.c_size_t], i),
    }
    for name, (args, res) in sigs.items():
        f = getattr(lib, name)
        f.argtypes, f.restype = args, res
    return lib


def check(lib, what, status):
    if status != OK:
        code = lib.tessera_last_error_code().decode()
        msg = lib.tessera_last_error_message().decode()
        raise SystemExit(f"{what} failed: status {status}, code {code}: {msg}")


def main():
    if len(sys.argv) != 4:
        raise SystemExit("usage: lifecycle.py URL API_KEY LICENSE_KEY")
    url, api_key, license_key = (a.encode() for a in sys.argv[1:])
    lib = load()

    buf = ctypes.create_string_buffer(80)
    check(lib, "fingerprint", lib.tessera_fingerprint_hash(buf, len(buf)))
    device = buf.value

    client = ctypes.c_void_p()
    check(lib, "client", lib.tessera_client_new(url, api_key, ctypes.byref(client)))
    check(lib, "activate", lib.tessera_activate(client, license_key, device, b"py-example", b"1.0.0"))
    update = ctypes.c_int(0)
    check(lib, "verify", lib.tessera_verify(client, license_key, device, b"1.0.0", ctypes.byref(update)))
    print(f"verified update_available={update.value}", flush=True)

    # Runs on the library's thread; keep a reference for as long as the session lives.
    @CALLBACK
    def on_event(_user_data, event):
        e = event.contents
        print(f"event {KINDS.get(e.kind, e.kind)} reason={e.reason.decode()} detail={e.detail.decode()}", flush=True)

    session = ctypes.c_void_p()
    check(lib, "session start",
          lib.tessera_session_start(client, license_key, device, b"1.0.0", on_event, None, ctypes.byref(session)))
    print("session started", flush=True)

    deadline = time.monotonic() + 30
    while lib.tessera_session_heartbeats(session) < 3:
        if time.monotonic() > deadline:
            raise SystemExit("no heartbeats")
        time.sleep(0.05)
    print(f"heartbeats {lib.tessera_session_heartbeats(session)} valid {lib.tessera_session_is_valid(session)}", flush=True)

    check(lib, "session end", lib.tessera_session_end(session))
    print(f"ended {lib.tessera_session_end_reason(session).decode()} valid {lib.tessera_session_is_valid(session)}", flush=True)
    lib.tessera_session_free(session)
    lib.tessera_client_free(client)


if __name__ == "__main__":
    main()
