#!/usr/bin/env python3
"""httpx-h2-story: one client story, same client library (httpx), over HTTP/1.1 and HTTP/2.

    httpx-h2-story.py BASE h1|h2

h1: httpx.Client(http1=True, http2=False); h2: httpx.Client(http1=False, http2=True), which on an
http:// URL means HTTP/2 with prior knowledge, on https:// ALPN h2 (the key log goes to $SSLKEYLOGFILE).
One connection (httpx keeps it alive), Idempotency-Key K, JSON bodies:
1  POST /v1/charges {amount 4200}, key K   -> 200 created
2  POST /v1/charges {amount 4200}, key K   -> 200 replayed (a plain retry: no alert)
3  POST /v1/charges {amount 5100}, key K   -> 400 idempotency_error (key_conflict)
4  POST /v1/charges {amount 990}, no key   -> 200 (missing_key)
5  the same 1.5 s later, no key            -> 200, another charge (missing_key, keyless_duplicate)
6  GET /v1/charges?limit=2                 -> 200
"""
import os
import ssl
import sys
import time

import httpx

base, mode = sys.argv[1].rstrip("/"), sys.argv[2]
K = "5707e1a5-0b0e-4a7d-9c55-7a1e5b07e0h2"
headers = {"Authorization": "Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc", "User-Agent": "httpx-h2-story"}
# httpx 0.28+ no longer reads $SSLKEYLOGFILE itself: an SSL context that writes it (and trusts
# the throwaway self-signed certificate).
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if os.environ.get("SSLKEYLOGFILE"):
    ctx.keylog_filename = os.environ["SSLKEYLOGFILE"]
client = httpx.Client(http1=(mode == "h1"), http2=(mode != "h1"), verify=ctx, headers=headers)


def show(r, label):
    body = r.json()
    print(r.http_version, r.status_code, label, body.get("id") or body.get("error", {}).get("type"))


charge = {"amount": 4200, "currency": "usd", "customer": "cus_StoryB0thWays01", "description": "Order 7002"}
show(client.post(base + "/v1/charges", json=charge, headers={"Idempotency-Key": K}), "create")
show(client.post(base + "/v1/charges", json=charge, headers={"Idempotency-Key": K}), "retry")
show(client.post(base + "/v1/charges", json=dict(charge, amount=5100), headers={"Idempotency-Key": K}), "conflict")
keyless = {"amount": 990, "currency": "usd", "customer": "cus_StoryB0thWays01", "description": "Tip"}
show(client.post(base + "/v1/charges", json=keyless), "keyless")
time.sleep(1.5)
show(client.post(base + "/v1/charges", json=keyless), "keyless again")
show(client.get(base + "/v1/charges", params={"limit": 2}), "list")
client.close()
