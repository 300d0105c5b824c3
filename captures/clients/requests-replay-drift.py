#!/usr/bin/env python3
"""requests-replay-drift: server started with --mode drift.

1    POST /v1/charges, key K         -> 200 id A
2-3  the same request, same key      -> 200 id A, replayed, but "created" differs each time
"""
from common import base_url, session, show

B = base_url()
K = "d71f7000-0000-4000-8000-000000000d71"
s = session()
c = {"amount": 7000, "currency": "usd", "description": "Order 7001"}
for label in ("create", "retry (drift)", "retry (drift)"):
    show(s.post(B + "/v1/charges", json=c, headers={"Idempotency-Key": K}), label)
s.close()
