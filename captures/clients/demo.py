#!/usr/bin/env python3
"""demo: one short capture that shows most alert kinds with idemwatch's default options.

One server in its default mode; the misbehaviour is chosen per request with
X-Test-Mode.  One credential (Bearer sk_test_4eC...): one scope.
The `stripe` library (max_network_retries=2, one keep-alive connection, form bodies):
1  Charge.create(amount=1000, key D1)                          -> 200 ch A
2  Charge.create(amount=2000, same key D1)                     -> 400 idempotency_error     key_conflict
3  Charge.create(amount=3000, key D2)                          -> 200 ch B
4  Charge.create(amount=3500, same key D2), accept-conflict    -> 200 ch C (a NEW id)       key_conflict + conflict_accepted
5  Charge.create(amount=4000, key D3), no-idempotency          -> 200 ch D
6  the same call again (same key D3), no-idempotency           -> 200 ch E (another id)    replay_mismatch
7  Charge.create(amount=4500, key of 300 bytes)                -> 400 invalid_request_error invalid_key
`requests` (JSON bodies):
8  POST /v1/charges without key                                -> 200                       missing_key
9  the same body again, 0.2 s later                            -> 200 (charged twice)       missing_key + keyless_duplicate
10 POST /v1/charges key D4, X-Test-Mode: slow=1500, client timeout 0.5 s: the client gives up
11 the same body with a NEW key D5, new connection             -> 200                       key_churn (D5; D4 still in flight)
   the server answers 10 late (200, another id); the client kernel resets.
"""
import sys
import time

import requests
import stripe

from common import SK_A, session, show

B = sys.argv[1].rstrip("/")
stripe.api_key = SK_A
stripe.api_base = B
stripe.max_network_retries = 2
stripe.enable_telemetry = False

D1 = "de300000-0001-4000-8000-000000000001"
D2 = "de300000-0002-4000-8000-000000000002"
D3 = "de300000-0003-4000-8000-000000000003"
D4 = "de300000-0004-4000-8000-000000000004"
D5 = "de300000-0005-4000-8000-000000000005"
LONG = ("de300000-0006-4000-8000-000000000006." * 9)[:300]  # 300 bytes
assert len(LONG) == 300


def charge(label, amount, description, key, mode=None):
    try:
        extra = {"headers": {"X-Test-Mode": mode}} if mode else {}
        ch = stripe.Charge.create(amount=amount, currency="usd", source="tok_visa", description=description,
                                  idempotency_key=key, **extra)
        print("%-34s -> %s" % (label, ch.id))
    except stripe.StripeError as e:
        print("%-34s -> %d %s" % (label, e.http_status, type(e).__name__))
    sys.stdout.flush()


charge("1 create", 1000, "Demo order 1", D1)
charge("2 same key, other amount", 2000, "Demo order 1", D1)
charge("3 create", 3000, "Demo order 2", D2)
charge("4 same key, other amount, accepted", 3500, "Demo order 2", D2, "accept-conflict")
charge("5 create (server ignores keys)", 4000, "Demo order 3", D3, "no-idempotency")
charge("6 retry (server ignores keys)", 4000, "Demo order 3", D3, "no-idempotency")
charge("7 300-byte key", 4500, "Demo order 4", LONG)

s = session()
d = {"amount": 5000, "currency": "usd", "description": "Demo order 5"}
show(s.post(B + "/v1/charges", json=d), "8 keyless")
time.sleep(0.2)
show(s.post(B + "/v1/charges", json=d), "9 keyless again")
s.close()

c = {"amount": 6000, "currency": "usd", "description": "Demo order 6"}
s = session()
t0 = time.time()
try:
    s.post(B + "/v1/charges", json=c, timeout=0.5, headers={"Idempotency-Key": D4, "X-Test-Mode": "slow=1500"})
    print("unexpected: no timeout")
except requests.exceptions.ReadTimeout:
    print("10 timed out after %.2fs" % (time.time() - t0))
s.close()
s = session()
show(s.post(B + "/v1/charges", json=c, headers={"Idempotency-Key": D5}), "11 retry with a fresh key")
s.close()
time.sleep(max(0.0, 2.0 - (time.time() - t0)))
