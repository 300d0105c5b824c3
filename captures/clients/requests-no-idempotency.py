#!/usr/bin/env python3
"""requests-no-idempotency: server started with --mode no-idempotency (keys ignored).

1-2  POST /v1/charges, same key K, same body, twice       -> 200 id A, then 200 id B
3-4  POST /v1/customers, same quoted IETF key, same body  -> 200 id C, then 200 id D
"""
from common import base_url, session, show

B = base_url()
K = "deadbeef-0000-4000-8000-000000000001"
Q = '"deadbeef-0000-4000-8000-000000000002"'
s = session()
c = {"amount": 6000, "currency": "usd", "description": "Order 6001"}
show(s.post(B + "/v1/charges", json=c, headers={"Idempotency-Key": K}), "create")
show(s.post(B + "/v1/charges", json=c, headers={"Idempotency-Key": K}), "retry, not replayed")
cu = {"email": "max.mustermann@example.com", "name": "Max Mustermann"}
show(s.post(B + "/v1/customers", data=cu, headers={"Idempotency-Key": Q}), "create")
show(s.post(B + "/v1/customers", data=cu, headers={"Idempotency-Key": Q}), "retry, not replayed")
s.close()
