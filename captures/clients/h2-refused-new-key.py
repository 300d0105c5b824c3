#!/usr/bin/env python3
"""h2-refused-new-key: a client that retries a REFUSED_STREAM under a NEW Idempotency-Key.

    h2-refused-new-key.py BASE     (http://: HTTP/2 with prior knowledge; httpx http1=False)

Against h2_server.py, one connection:
1  POST /v1/charges key K1 {amount 600}, X-H2-Test: refuse-once=newkey
   -> RST_STREAM(REFUSED_STREAM) on its HEADERS: never processed.  httpx does not retry it;
   the application catches the error and
2  sends the same body again under a fresh key K2 (same X-H2-Test, served now) -> 200 created
3  the same request with K2 again (a plain retry)                                -> 200 replayed
"""
import sys

import httpx

base = sys.argv[1].rstrip("/")
client = httpx.Client(http1=False, http2=True, headers={"Authorization": "Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc"})
body = {"amount": 600, "currency": "usd", "customer": "cus_NewKeyAfterRst"}
test = {"X-H2-Test": "refuse-once=newkey"}
try:
    r = client.post(base + "/v1/charges", json=body, headers=dict(test, **{"Idempotency-Key": "2ef05ed0-0000-4000-8000-00000000000a"}))
    print("unexpected answer", r.status_code)
except httpx.HTTPError as e:
    print("first attempt failed:", type(e).__name__, e)
for label in ("new key", "retry"):
    r = client.post(base + "/v1/charges", json=body, headers=dict(test, **{"Idempotency-Key": "2ef05ed0-0000-4000-8000-00000000000b"}))
    print(r.http_version, r.status_code, label, r.json().get("id"), r.headers.get("idempotent-replayed"))
client.close()
