#!/usr/bin/env python3
"""httpx-retries: the `httpx` library (sync Client, keep-alive), application retries with the SAME key.

1  GET /v1/charges?limit=2                       (opens connection A; chunked response)
2  POST /v1/charges JSON, key K1, X-Test-Mode: drop-first
   -> the server reads the request and closes connection A without answering;
      httpx raises RemoteProtocolError ("Server disconnected without sending a response")
3  the same POST, same key K1, on a new connection B          -> 200 created (id A)
4  POST /v1/payment_intents JSON, key K2, X-Test-Mode: error-first -> 500 api_error (not stored)
5  the same POST, same key K2 (connection B, kept alive)      -> 200 created (id B)
6  the POST of 3 once more, same key K1                       -> 200 replayed (id A)
No alert expected: every retry re-uses the key of its first attempt, and no
first attempt had a stored result before its retry (dropped, 500).
"""
import sys
import time

import httpx

from common import SK_A, base_url

B = base_url()
K1 = "a7f3c2e1-0001-4d5e-9f60-11aa22bb33cc"
K2 = "a7f3c2e1-0002-4d5e-9f60-11aa22bb33cc"
charge = {"amount": 4100, "currency": "usd", "customer": "cus_NffrFeUfNV2Hib", "description": "Order 14001"}
pi = {"amount": 4200, "currency": "usd", "payment_method_types": ["card"], "metadata": {"order_id": "14002"}}


def show(label, r):
    body = r.json()
    print("%-30s %s %s -> %d %s%s" % (label, r.request.method, r.request.url.raw_path.decode(), r.status_code,
                                      body.get("id") or body.get("error", {}).get("type", ""),
                                      " (replayed)" if r.headers.get("Idempotent-Replayed") else ""))
    sys.stdout.flush()
    return r


with httpx.Client(base_url=B, headers={"Authorization": "Bearer " + SK_A}, timeout=10.0) as c:
    show("list", c.get("/v1/charges", params={"limit": 2}))
    h1 = {"Idempotency-Key": K1, "X-Test-Mode": "drop-first"}
    for attempt in range(3):
        try:
            r = show("charge attempt %d" % (attempt + 1), c.post("/v1/charges", json=charge, headers=h1))
            break
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError) as e:
            print("charge attempt %d: %s: %s" % (attempt + 1, type(e).__name__, e))
            time.sleep(0.2)
    else:
        sys.exit("no answer after 3 attempts")
    h2 = {"Idempotency-Key": K2, "X-Test-Mode": "error-first"}
    for attempt in range(3):
        r = show("payment intent attempt %d" % (attempt + 1), c.post("/v1/payment_intents", json=pi, headers=h2))
        if r.status_code < 500:
            break
        time.sleep(0.2)
    show("charge again", c.post("/v1/charges", json=charge, headers=h1))
