#!/usr/bin/env python3
"""requests-invalid-keys: malformed Idempotency-Key headers (server answers 400 to each).

requests Session (one keep-alive connection):
1  POST /v1/charges, "Idempotency-Key: " (empty value)            -> 400
2  POST /v1/charges, key of 300 bytes                             -> 400
3  POST /v1/charges, key of 256 bytes                             -> 400
4  POST /v1/charges, key of 255 bytes (the longest valid one)     -> 200
5  POST /v1/charges, "X-Idempotency-Key: <uuid>" (other name, valid) -> 200
http.client (stdlib, one connection), where requests cannot send it:
6  POST /v1/charges with two Idempotency-Key header lines         -> 400
7  POST /v1/charges with Idempotency-Key and X-Idempotency-Key    -> 400
"""
import http.client
import json
from urllib.parse import urlsplit

from common import SK_A, base_url, session, show

B = base_url()
s = session()
c = {"amount": 1100, "currency": "usd", "description": "Order 10001"}
show(s.post(B + "/v1/charges", json=c, headers={"Idempotency-Key": ""}), "empty key")
unit = "0123456789abcdef" * 19  # 304 characters
show(s.post(B + "/v1/charges", json=c, headers={"Idempotency-Key": unit[:300]}), "300-byte key")
show(s.post(B + "/v1/charges", json=c, headers={"Idempotency-Key": unit[:256]}), "256-byte key")
show(s.post(B + "/v1/charges", json=c, headers={"Idempotency-Key": unit[:255]}), "255-byte key")
show(s.post(B + "/v1/charges", json=c, headers={"X-Idempotency-Key": "e1e2e3e4-0005-4000-8000-000000000005"}),
     "X-Idempotency-Key")
s.close()

u = urlsplit(B)
conn = http.client.HTTPConnection(u.hostname, u.port)
body = json.dumps(c).encode()
for label, lines in (("two Idempotency-Key lines",
                      [("Idempotency-Key", "e1e2e3e4-0006-4000-8000-000000000006"),
                       ("Idempotency-Key", "e1e2e3e4-0007-4000-8000-000000000007")]),
                     ("two key header names",
                      [("Idempotency-Key", "e1e2e3e4-0008-4000-8000-000000000008"),
                       ("X-Idempotency-Key", "e1e2e3e4-0009-4000-8000-000000000009")])):
    conn.putrequest("POST", "/v1/charges")
    conn.putheader("Authorization", "Bearer " + SK_A)
    conn.putheader("Content-Type", "application/json")
    for k, v in lines:
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    r = conn.getresponse()
    data = r.read()
    print("%-28s POST /v1/charges -> %d %s" % (label, r.status, json.loads(data)["error"]["type"]))
conn.close()
