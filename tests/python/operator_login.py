#!/usr/bin/env python3
"""Seed 001's operator login from Python, with the `cryptography` package (PyPI) and the
standard library, as docs/api.md shows it. Run by tests/tests/credentials.rs:

    echo "$PASSWORD" | python3 tests/python/operator_login.py http://127.0.0.1:8080 root

Logs in (challenge, RSA-OAEP SHA-256 encryption of "{nonce}:{ts}:{password}", login), uses
the token on /api/auth/me and an admin route, logs out, and checks the token is refused
afterwards and a wrong password is refused. Exits non-zero on any surprise.
"""

import base64
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def call(base, method, path, body=None, token=None):
    """Returns (status, parsed JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def login(base, username, password):
    """The whole login: returns (status, body) of POST /api/auth/login."""
    status, c = call(base, "GET", "/api/auth/challenge?" + urllib.parse.urlencode({"username": username}))
    if status != 200:
        raise SystemExit(f"challenge: {status} {c}")
    public_key = serialization.load_pem_public_key(c["public_key"].encode())
    ts = int(time.time())
    encrypted = public_key.encrypt(
        f"{c['nonce']}:{ts}:{password}".encode(),
        padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    return call(base, "POST", "/api/auth/login", {
        "username": username,
        "encrypted_password": base64.b64encode(encrypted).decode(),
        "login_nonce": c["nonce"],
        "key_id": c["key_id"],
        "challenge_ts": ts,
    })


def expect(what, got, want):
    if got != want:
        raise SystemExit(f"{what}: expected {want!r}, got {got!r}")


def main():
    base, username = sys.argv[1].rstrip("/"), sys.argv[2]
    password = sys.stdin.readline().rstrip("\n")

    status, body = login(base, username, password)
    expect("login", status, 200)
    token = body["token"]
    status, me = call(base, "GET", "/api/auth/me", token=token)
    expect("me", (status, me["username"]), (200, username))
    print(f"logged in as {me['username']} ({me['role']})")

    status, body = call(base, "GET", "/api/admin/security", token=token)
    expect("admin route with the token", status, 200)

    status, body = call(base, "POST", "/api/auth/logout", {}, token=token)
    expect("logout", (status, body), (200, {"logged_out": True}))
    status, body = call(base, "GET", "/api/admin/security", token=token)
    expect("admin route after logout", (status, body.get("code")), (401, "UNAUTHENTICATED"))
    print(f"token refused after logout: {status} {body['code']}")

    status, body = login(base, username, password + "-wrong")
    expect("wrong password", (status, body.get("code")), (401, "INVALID_CREDENTIALS"))
    print("wrong password refused: INVALID_CREDENTIALS")


if __name__ == "__main__":
    main()
