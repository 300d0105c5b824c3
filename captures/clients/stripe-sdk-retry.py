#!/usr/bin/env python3
"""stripe-sdk-retry: the `stripe` library's own retries (max_network_retries=2) keep the idempotency key.

stripe.api_base = BASE_URL, Bearer sk_test_..., form bodies.  The SDK retries
connection errors, 409 and 5xx (and whatever `Stripe-Should-Retry: true` asks
for) after a backoff of 0.5 s or more, re-sending the same headers, so the same
Idempotency-Key:
1  Customer.create(idempotency_key=S1), X-Test-Mode: drop-first:
   attempt 1 read by the server, connection closed without an answer;
   the SDK retries on a new connection                       -> 200 cus_...
2  Charge.create(idempotency_key=S2), X-Test-Mode: busy-first:
   409 idempotency_error + Stripe-Should-Retry: true, retried -> 200 ch_...
3  PaymentIntent.create(idempotency_key=S3), X-Test-Mode: error-first:
   500 api_error, retried                                     -> 200 pi_...
4  Refund.create WITHOUT idempotency_key, X-Test-Mode: drop-first: the SDK
   generates one key (a random UUID, changes between recordings) and sends it
   with both attempts: dropped, then                          -> 200 re_...
5  Charge.retrieve(ch_...)                                    -> GET, no key
Nothing may fire: every retry is a plain retry with its first attempt's key.
"""
import sys

import stripe

from common import SK_A

stripe.api_key = SK_A
stripe.api_base = sys.argv[1].rstrip("/")
stripe.max_network_retries = 2
stripe.enable_telemetry = False

S1 = "5d7c0a1e-7e7e-4a4b-8c1f-000000000011"
S2 = "5d7c0a1e-7e7e-4a4b-8c1f-000000000012"
S3 = "5d7c0a1e-7e7e-4a4b-8c1f-000000000013"

cus = stripe.Customer.create(email="retry.me@example.com", name="Retry Me", idempotency_key=S1,
                             headers={"X-Test-Mode": "drop-first"})
print("customer after a dropped connection", cus.id)
ch = stripe.Charge.create(amount=2600, currency="usd", customer=cus.id, source="tok_visa",
                          description="SDK retry after 409", idempotency_key=S2,
                          headers={"X-Test-Mode": "busy-first"})
print("charge after 409", ch.id)
pi = stripe.PaymentIntent.create(amount=2700, currency="usd", payment_method_types=["card"],
                                 idempotency_key=S3, headers={"X-Test-Mode": "error-first"})
print("payment intent after 500", pi.id)
re = stripe.Refund.create(charge=ch.id, amount=100, headers={"X-Test-Mode": "drop-first"})
print("refund (SDK-generated key) after a dropped connection", re.id)
print("retrieved", stripe.Charge.retrieve(ch.id).id)
