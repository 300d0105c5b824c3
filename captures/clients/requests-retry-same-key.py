#!/usr/bin/env python3
"""requests-retry-same-key: plain retries, the mechanism working (no alert expected).

1-3  POST /v1/charges (JSON), key K1, three times: on the same keep-alive
     connection, then from a new Session (new connection, as after a drop).
     200 created, then 200 replayed twice (same id, Idempotent-Replayed: true).
4-5  PATCH /v1/customers/cus_... (form body), quoted IETF key, twice: created, replayed.
6-7  POST /v1/payment_intents, key K3, through urllib3 Retry(status_forcelist=[503]):
     the server fails the first attempt (503, Stripe-Should-Retry), urllib3
     resends the same request with the same key: 503 then 200 (nothing stored from the 503).
8    GET /v1/charges/ch_... of the created charge (no key).
"""
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from common import base_url, session, show

B = base_url()
K1 = "7c4a8d09-ca37-4f1b-9d7e-0f6a1c2b3d4e"
K2 = '"8e03978e-40d5-43e8-bc93-6894a57f9324"'
K3 = "b6f1c2d3-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
charge = {"amount": 2500, "currency": "usd", "customer": "cus_NffrFeUfNV2Hib",
          "description": "Order 2001", "metadata": {"order_id": "2001"}}

s = session()
r = show(s.post(B + "/v1/charges", json=charge, headers={"Idempotency-Key": K1}), "create")
show(s.post(B + "/v1/charges", json=charge, headers={"Idempotency-Key": K1}), "retry, same connection")
s2 = session()
show(s2.post(B + "/v1/charges", json=charge, headers={"Idempotency-Key": K1}), "retry, new connection")
s2.close()

upd = {"email": "jenny.rosen@example.com", "metadata[tier]": "gold"}
show(s.patch(B + "/v1/customers/cus_NffrFeUfNV2Hib", data=upd, headers={"Idempotency-Key": K2}), "patch, quoted key")
show(s.patch(B + "/v1/customers/cus_NffrFeUfNV2Hib", data=upd, headers={"Idempotency-Key": K2}), "patch retry")

s3 = session()
s3.mount("http://", HTTPAdapter(max_retries=Retry(total=2, allowed_methods=None, status_forcelist=[503],
                                                  backoff_factor=0.1, respect_retry_after_header=False)))
pi = {"amount": 7300, "currency": "usd", "payment_method_types": ["card"]}
show(s3.post(B + "/v1/payment_intents", json=pi,
             headers={"Idempotency-Key": K3, "X-Test-Mode": "fail-first"}), "urllib3 retry after 503")
s3.close()

show(s.get(B + "/v1/charges/" + r.json()["id"]), "get")
s.close()
