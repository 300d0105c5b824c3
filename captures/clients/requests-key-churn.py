#!/usr/bin/env python3
"""requests-key-churn: the client retries with a FRESH key (the double-charge bug).

1  POST /v1/charges, key K1, X-Test-Mode: slow=1500; client timeout 0.5 s:
   the client gives up (FIN), the server still answers 200 (id A) 1.5 s later
   (the answer is on the wire; the client kernel then resets)
2  POST /v1/charges, same body, new key K2, new connection -> 200 id B (charged twice)
3  POST /v1/payment_intents, key K3, X-Test-Mode: fail-first -> 503 (Stripe-Should-Retry)
4  POST /v1/payment_intents, same body, new key K4          -> 200
The script waits until the server has answered request 1 before it ends.
"""
import time

import requests

from common import base_url, session, show

B = base_url()
c = {"amount": 9900, "currency": "usd", "customer": "cus_NffrFeUfNV2Hib", "description": "Order 8001"}
s = session()
t0 = time.time()
try:
    s.post(B + "/v1/charges", json=c, timeout=0.5,
           headers={"Idempotency-Key": "cc000000-0001-4000-8000-000000000001", "X-Test-Mode": "slow=1500"})
    print("unexpected: no timeout")
except requests.exceptions.ReadTimeout:
    print("attempt 1 timed out after %.2fs" % (time.time() - t0))
s.close()
s = session()
show(s.post(B + "/v1/charges", json=c, headers={"Idempotency-Key": "cc000000-0002-4000-8000-000000000002"}),
     "retry with a fresh key")
pi = {"amount": 1200, "currency": "usd", "metadata": {"order_id": "8002"}}
show(s.post(B + "/v1/payment_intents", json=pi,
            headers={"Idempotency-Key": "cc000000-0003-4000-8000-000000000003", "X-Test-Mode": "fail-first"}),
     "503")
show(s.post(B + "/v1/payment_intents", json=pi, headers={"Idempotency-Key": "cc000000-0004-4000-8000-000000000004"}),
     "retry with a fresh key")
s.close()
time.sleep(max(0.0, 2.0 - (time.time() - t0)))
