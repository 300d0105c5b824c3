#!/usr/bin/env python3
"""requests-conflict-replayed: server started with --mode replay-conflict.

1  POST /v1/charges {amount 4000}, key K  -> 200 created, id A
2  POST /v1/charges {amount 4500}, key K  -> 200 id A, Idempotent-Replayed: true
   (the new amount is silently dropped)
"""
from common import base_url, session, show

B = base_url()
K = "b0b0b0b0-0000-4000-8000-0000000000b0"
s = session()
show(s.post(B + "/v1/charges", json={"amount": 4000, "currency": "usd", "description": "Order 5101"},
            headers={"Idempotency-Key": K}), "create")
show(s.post(B + "/v1/charges", json={"amount": 4500, "currency": "usd", "description": "Order 5101"},
            headers={"Idempotency-Key": K}), "conflict, replayed")
s.close()
