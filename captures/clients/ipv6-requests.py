#!/usr/bin/env python3
"""Second half of the ipv6 scenario (see ipv6.sh).

1  POST /v1/charges, key K (the curl one), amount 1700  -> 400 idempotency_error
2  POST /v1/payment_intents, quoted IETF key Q          -> 200
3-4 POST /v1/charges without key, same body twice       -> 200, 200
"""
from common import SK_A, base_url, session, show

B = base_url()
s = session()
# Basic auth with the same secret, as curl -u sends it: the same scope as the curl half.
del s.headers["Authorization"]
s.auth = (SK_A, "")
show(s.post(B + "/v1/charges", data={"amount": "1700", "currency": "usd", "description": "Order 13001"},
            headers={"Idempotency-Key": "6f6f6f6f-0000-4000-8000-000000000006"}), "conflict")
show(s.post(B + "/v1/payment_intents", json={"amount": 5000, "currency": "usd"},
            headers={"Idempotency-Key": '"6f6f6f6f-0000-4000-8000-000000000007"'}), "quoted key")
d = {"amount": 1800, "currency": "usd", "description": "Order 13002"}
show(s.post(B + "/v1/charges", json=d), "keyless")
show(s.post(B + "/v1/charges", json=d), "keyless duplicate")
s.close()
