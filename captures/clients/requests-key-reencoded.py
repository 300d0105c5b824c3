#!/usr/bin/env python3
"""requests-key-reencoded: same key, same parameters, different bytes.

The server compares canonical parameters (like Stripe), so every retry here is
replayed (200, Idempotent-Replayed: true).
1  POST /v1/charges JSON {"amount":1500,"currency":"eur",...}, key K1   -> created
2  same key, same JSON object with the members in another order        -> replayed  (re-encoded)
3  same key, same JSON pretty-printed (whitespace only)                -> replayed  (re-encoded)
4  POST /v1/customers form a=1&b=2, key K2                             -> created
5  same key, the form parameters in another order                      -> replayed  (re-encoded)
6  POST /v1/payment_intents JSON, key K3                               -> created
7  same key, the same JSON bytes gzip-compressed (Content-Encoding: gzip):
   same bytes after content decoding                                   -> replayed  (plain retry)
"""
import gzip

from common import base_url, session, show

B = base_url()
K1 = "d1e2f3a4-0001-4b5c-8d6e-7f8091a2b3c4"
K2 = "d1e2f3a4-0002-4b5c-8d6e-7f8091a2b3c4"
K3 = "d1e2f3a4-0003-4b5c-8d6e-7f8091a2b3c4"
J = {"Content-Type": "application/json"}
F = {"Content-Type": "application/x-www-form-urlencoded"}
s = session()
show(s.post(B + "/v1/charges", headers=dict(J, **{"Idempotency-Key": K1}),
            data=b'{"amount":1500,"currency":"eur","description":"Order 4001"}'), "create")
show(s.post(B + "/v1/charges", headers=dict(J, **{"Idempotency-Key": K1}),
            data=b'{"description":"Order 4001","currency":"eur","amount":1500}'), "member order")
show(s.post(B + "/v1/charges", headers=dict(J, **{"Idempotency-Key": K1}),
            data=b'{\n  "amount": 1500,\n  "currency": "eur",\n  "description": "Order 4001"\n}'), "whitespace")
show(s.post(B + "/v1/customers", headers=dict(F, **{"Idempotency-Key": K2}),
            data=b"email=jenny.rosen%40example.com&name=Jenny+Rosen&metadata[vip]=true"), "form")
show(s.post(B + "/v1/customers", headers=dict(F, **{"Idempotency-Key": K2}),
            data=b"metadata[vip]=true&name=Jenny+Rosen&email=jenny.rosen%40example.com"), "form order")
body = b'{"amount":8800,"currency":"usd","metadata":{"order_id":"4002"}}'
show(s.post(B + "/v1/payment_intents", headers=dict(J, **{"Idempotency-Key": K3}), data=body), "pi")
show(s.post(B + "/v1/payment_intents", headers=dict(J, **{"Idempotency-Key": K3, "Content-Encoding": "gzip"}),
            data=gzip.compress(body, 6, mtime=0)), "pi gzip")
s.close()
