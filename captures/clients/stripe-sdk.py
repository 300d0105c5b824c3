#!/usr/bin/env python3
"""stripe-sdk: the official `stripe` Python library against the fake API over plain http.

stripe.api_base = BASE_URL, api_key sk_test_..., max_network_retries = 2.
The SDK sends form bodies (metadata[k]=v), Authorization: Bearer, Stripe-Version.
1  Customer.create(idempotency_key=K1)                          -> 200 cus_...
2  Charge.create(idempotency_key=K2)                            -> 200 ch_...
3  Charge.create, same params, same K2 (an application retry)   -> 200 replayed
4  PaymentIntent.create(idempotency_key=K3), server fails the first attempt with
   503 + Stripe-Should-Retry: true; the SDK retries by itself with the same key
   after its backoff (0.5 s or more)                            -> 503, then 200
5  Refund.create without idempotency_key: since max_network_retries > 0 the SDK
   generates a random UUID key itself (the only key that changes between recordings)
6  Customer.modify(cus_NffrFeUfNV2Hib, idempotency_key=K4)     -> POST /v1/customers/cus_...
7  Charge.retrieve(ch_...)                                      -> GET, no key
"""
import sys

import stripe

from common import SK_A

stripe.api_key = SK_A
stripe.api_base = sys.argv[1].rstrip("/")
stripe.max_network_retries = 2
stripe.enable_telemetry = False

K1 = "5d7c0a1e-51de-4a4b-8c1f-000000000001"
K2 = "5d7c0a1e-51de-4a4b-8c1f-000000000002"
K3 = "5d7c0a1e-51de-4a4b-8c1f-000000000003"
K4 = "5d7c0a1e-51de-4a4b-8c1f-000000000004"

cus = stripe.Customer.create(email="jenny.rosen@example.com", name="Jenny Rosen",
                             metadata={"signup": "sdk"}, idempotency_key=K1)
print("customer", cus.id)
params = dict(amount=2000, currency="usd", customer="cus_NffrFeUfNV2Hib", source="tok_visa",
              description="SDK charge", metadata={"order_id": "6735"})
ch = stripe.Charge.create(idempotency_key=K2, **params)
print("charge", ch.id)
ch2 = stripe.Charge.create(idempotency_key=K2, **params)
print("charge again", ch2.id, "same" if ch2.id == ch.id else "DIFFERENT")
pi = stripe.PaymentIntent.create(amount=4400, currency="usd", payment_method_types=["card"],
                                 idempotency_key=K3, headers={"X-Test-Mode": "fail-first"})
print("payment intent after SDK retry", pi.id)
re = stripe.Refund.create(charge="ch_3NxSdkExample000000000001", amount=500)
print("refund (SDK-generated key)", re.id)
cu = stripe.Customer.modify("cus_NffrFeUfNV2Hib", metadata={"tier": "gold"}, idempotency_key=K4)
print("customer modified", cu.id)
print("retrieved", stripe.Charge.retrieve(ch.id).id)
