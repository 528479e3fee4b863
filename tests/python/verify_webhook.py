#!/usr/bin/env python3
"""Verifies a Tessera webhook delivery with the Standard Webhooks reference package
(`standardwebhooks` on PyPI), as a receiver would. Run by tests/tests/webhooks.rs:

    echo '{"secret": "whsec_…", "headers": {"webhook-id": …}, "body": "…"}' \
        | python3 tests/python/verify_webhook.py

Prints `verified <type>` and exits 0 when the signature checks out; prints the error and
exits 1 when it does not. It also checks that a body changed by one byte is refused, so a
verifier that accepts everything cannot pass.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main():
    given = json.load(sys.stdin)
    wh = Webhook(given["secret"])
    body = given["body"].encode()
    try:
        payload = wh.verify(body, given["headers"])
    except WebhookVerificationError as e:
        print(f"refused: {e}")
        return 1
    try:
        wh.verify(body + b" ", given["headers"])
        print("a changed body verified")
        return 1
    except WebhookVerificationError:
        pass
    kind = payload.get("type") or ("discord" if "embeds" in payload else "?")
    print(f"verified {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
