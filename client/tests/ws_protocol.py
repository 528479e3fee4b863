"""Speaks the session WebSocket protocol of docs/api.md ("Session WebSocket") with the
`websockets` package from PyPI, and plain HTTP (urllib) for the seed-000 calls around it.

    python3 ws_protocol.py URL API_KEY LICENSE_KEY    # the license allows 2 devices, 2 sessions

Exits non-zero (with the failed expectation) unless every step behaves as documented.
"""

import asyncio
import json
import sys
import urllib.error
import urllib.request

import websockets

URL, API_KEY, LICENSE = sys.argv[1:4]
WS_URL = URL.replace("http://", "ws://", 1) + "/api/license/session/ws"


def post(path, body):
    req = urllib.request.Request(
        URL + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": API_KEY},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def expect(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}", flush=True)


def start_session(device):
    status, body = post("/api/license/activate", {"license_key": LICENSE, "hardware_hash": device})
    expect(status == 200, f"activate {device}: {status} {body}")
    status, body = post("/api/license/session/start",
                        {"license_key": LICENSE, "hardware_hash": device, "version": "1.0.0"})
    expect(status == 200, f"start on {device}: {status} {body}")
    return body["session_token"]


async def recv(ws):
    frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
    print(f"<- {frame}", flush=True)
    return frame


async def main():
    first = start_session("py-device-1")
    second = start_session("py-device-2")

    # A handshake without a live session is refused before any upgrade, with the JSON error.
    try:
        async with websockets.connect(WS_URL, additional_headers={
            "X-API-Key": API_KEY, "X-Session-Token": "00000000-0000-4000-8000-000000000000",
            "X-License-Key": LICENSE}):
            expect(False, "a handshake with an unknown session is refused")
    except websockets.exceptions.InvalidStatus as e:
        expect(e.response.status_code == 404, f"unknown session: HTTP {e.response.status_code}")
        body = json.loads(e.response.body)
        expect(body["code"] == "SESSION_NOT_FOUND", f"unknown session code {body}")

    headers = {"X-API-Key": API_KEY, "X-Session-Token": first, "X-License-Key": LICENSE,
               "X-App-Version": "1.0.0"}
    async with websockets.connect(WS_URL, additional_headers=headers) as ws:
        f = await recv(ws)
        expect(f["type"] == "heartbeat_ok" and f["session_token"] == first,
               "the handshake's heartbeat is answered first")
        expect(f["heartbeat_interval_secs"] == 1, "it tells the interval")
        f = await recv(ws)
        expect(f["type"] == "update_available" and f["latest_version"] == "2.0.0",
               "an older X-App-Version gets update_available")

        await ws.send(json.dumps({"type": "heartbeat", "session_token": first, "id": 1}))
        f = await recv(ws)
        expect(f == {**f, "type": "heartbeat_ok", "id": 1, "session_token": first},
               "a heartbeat frame without license_key for a carried session")

        # A second session joins the same connection with its license key.
        await ws.send(json.dumps({"type": "heartbeat", "session_token": second,
                                  "license_key": LICENSE, "id": "two"}))
        f = await recv(ws)
        expect(f["type"] == "heartbeat_ok" and f["id"] == "two" and f["session_token"] == second,
               "a second session on the same connection")

        # Both sessions and a bad entry in one frame: one answer frame, in order, each
        # entry answered as if it had come alone.
        await ws.send(json.dumps({"type": "heartbeats", "heartbeats": [
            {"session_token": first, "id": "b1"},
            {"session_token": "not-a-uuid", "license_key": LICENSE, "id": "b2"},
            {"session_token": second, "id": "b3"}]}))
        f = await recv(ws)
        expect(f["type"] == "heartbeat_results" and len(f["results"]) == 3,
               "a heartbeats frame is answered by one heartbeat_results frame")
        r = f["results"]
        expect(r[0]["type"] == "heartbeat_ok" and r[0]["id"] == "b1"
               and r[0]["session_token"] == first and r[0]["heartbeat_interval_secs"] == 1,
               "the first entry's heartbeat_ok")
        expect(r[1]["type"] == "error" and r[1]["id"] == "b2"
               and r[1]["code"] == "VALIDATION_ERROR" and r[1]["status"] == 400,
               "a bad entry fails alone")
        expect(r[2]["type"] == "heartbeat_ok" and r[2]["id"] == "b3"
               and r[2]["session_token"] == second, "the third entry's heartbeat_ok")

        await ws.send(json.dumps({"type": "heartbeats", "heartbeats": []}))
        f = await recv(ws)
        expect(f["type"] == "error" and f["code"] == "VALIDATION_ERROR" and "id" not in f,
               "an empty heartbeats frame is refused as a whole")

        await ws.send("not json")
        f = await recv(ws)
        expect(f["type"] == "error" and f["code"] == "INVALID_JSON" and f["status"] == 400,
               "a malformed frame is an INVALID_JSON error frame")

        await ws.send(json.dumps({"type": "heartbeat", "session_token": "not-a-uuid",
                                  "license_key": LICENSE, "id": 3}))
        f = await recv(ws)
        expect(f["type"] == "error" and f["code"] == "VALIDATION_ERROR" and f["id"] == 3,
               "a bad token is a VALIDATION_ERROR error frame with the id")

        # Ending a carried session (here over HTTP) is pushed at once.
        status, body = post("/api/license/session/end",
                            {"session_token": second, "license_key": LICENSE})
        expect(status == 200, f"end the second session over HTTP: {status}")
        f = await recv(ws)
        expect(f["type"] == "session_ended" and f["session_token"] == second
               and f["reason"] == "client_end", "session_ended is pushed")

        await ws.send(json.dumps({"type": "heartbeat", "session_token": second,
                                  "license_key": LICENSE, "id": 4}))
        f = await recv(ws)
        expect(f["type"] == "error" and f["code"] == "SESSION_EXPIRED" and f["status"] == 410,
               "a heartbeat of an ended session: SESSION_EXPIRED, as over HTTP")

        # When the last carried session ends, the server closes the connection (1000).
        status, _ = post("/api/license/session/end", {"session_token": first, "license_key": LICENSE})
        expect(status == 200, "end the first session")
        f = await recv(ws)
        expect(f["type"] == "session_ended" and f["session_token"] == first, "pushed too")
        try:
            await asyncio.wait_for(ws.recv(), timeout=10)
            expect(False, "the connection closes")
        except websockets.exceptions.ConnectionClosedOK as e:
            expect(e.rcvd.code == 1000, f"closed with 1000: {e.rcvd}")
    print("protocol ok", flush=True)


asyncio.run(main())
