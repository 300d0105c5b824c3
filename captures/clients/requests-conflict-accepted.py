#!/usr/bin/env python3
"""requests-conflict-accepted: server started with --mode accept-conflict.

1  POST /v1/charges {amount 3000}, key K  -> 200 created, id A
2  POST /v1/charges {amount 3500}, key K  -> 200 with a NEW id B (the server ran it twice)
3  POST /v1/charges {amount 3000}, key K  -> 200 replayed, id A
"""
from common import base_url, session, show

B = base_url()
K = "a11ce000-0000-4000-8000-00000000c0de"
s = session()
a = {"amount": 3000, "currency": "usd", "description": "Order 5001"}
b = {"amount": 3500, "currency": "usd", "description": "Order 5001"}
show(s.post(B + "/v1/charges", json=a, headers={"Idempotency-Key": K}), "create")
show(s.post(B + "/v1/charges", json=b, headers={"Idempotency-Key": K}), "conflict, accepted")
show(s.post(B + "/v1/charges", json=a, headers={"Idempotency-Key": K}), "retry of the original")
s.close()
