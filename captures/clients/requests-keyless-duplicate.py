#!/usr/bin/env python3
"""requests-keyless-duplicate: a keyed endpoint later called twice without a key.

1    POST /v1/charges with key K (the endpoint becomes "watched")  -> 200
2-3  POST /v1/charges WITHOUT key, same body, 0.2 s apart           -> 200 id A, 200 id B
4-5  POST /search without key, same body twice (never keyed: quiet) -> 200, 200
6-7  POST /login without key, same body twice (never keyed: quiet)  -> 200, 200
8-9  POST /v1/customers without key, same body twice (endpoint never keyed
     in this capture: not watched in "learned" mode)                -> 200, 200
"""
import time

from common import base_url, session, show

B = base_url()
s = session()
show(s.post(B + "/v1/charges", json={"amount": 500, "currency": "usd", "description": "Order 9000"},
            headers={"Idempotency-Key": "4e7b1a2c-9000-4000-8000-000000009000"}), "keyed")
dup = {"amount": 1999, "currency": "usd", "customer": "cus_NffrFeUfNV2Hib", "description": "Order 9001"}
show(s.post(B + "/v1/charges", json=dup), "keyless")
time.sleep(0.2)
show(s.post(B + "/v1/charges", json=dup), "keyless duplicate")
for _ in range(2):
    show(s.post(B + "/search", json={"q": "invoice 9001"}), "search")
for _ in range(2):
    show(s.post(B + "/login", data={"username": "demo", "password": "not-a-real-password"}), "login")
for _ in range(2):
    show(s.post(B + "/v1/customers", data={"email": "dup@example.com"}), "customers, never keyed")
s.close()
