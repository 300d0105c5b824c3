#!/usr/bin/env python3
"""requests-key-conflict: a key reused for a different request; the server rejects it (400).

1  POST /v1/charges {amount 1000}, key K            -> 200 created
2  POST /v1/charges {amount 2000}, same key K       -> 400 idempotency_error (different body)
3  POST /v1/refunds {...}, same key K               -> 400 idempotency_error (different path)
4  POST /v1/charges {amount 1000}, same key K       -> 200 replayed (stored result unchanged)
5  PATCH /v1/customers/cus_... form email=a, key K2 -> 200 created
6  PATCH same path, form email=b, same key K2       -> 400 idempotency_error
"""
from common import base_url, session, show

B = base_url()
K = "c0ffee00-1111-4222-8333-444455556666"
K2 = "c0ffee00-aaaa-4bbb-8ccc-ddddeeeeffff"
s = session()
first = {"amount": 1000, "currency": "usd", "customer": "cus_NffrFeUfNV2Hib", "description": "Order 3001"}
second = {"amount": 2000, "currency": "usd", "customer": "cus_NffrFeUfNV2Hib", "description": "Order 3001"}
show(s.post(B + "/v1/charges", json=first, headers={"Idempotency-Key": K}), "create")
show(s.post(B + "/v1/charges", json=second, headers={"Idempotency-Key": K}), "conflict: body")
show(s.post(B + "/v1/refunds", json={"charge": "ch_3NxConflictExample0000001", "amount": 1000},
            headers={"Idempotency-Key": K}), "conflict: path")
show(s.post(B + "/v1/charges", json=first, headers={"Idempotency-Key": K}), "retry of the original")
show(s.patch(B + "/v1/customers/cus_NffrFeUfNV2Hib", data={"email": "a@example.com"},
             headers={"Idempotency-Key": K2}), "patch")
show(s.patch(B + "/v1/customers/cus_NffrFeUfNV2Hib", data={"email": "b@example.com"},
             headers={"Idempotency-Key": K2}), "patch conflict")
s.close()
