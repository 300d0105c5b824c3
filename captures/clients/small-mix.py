#!/usr/bin/env python3
"""small-mix: a short mix, recorded as any-sll2.pcap (tcpdump -i any: LINUX_SLL2)
and as nsec.pcap (tcpdump -i lo --time-stamp-precision=nano).

1  POST /v1/charges, key K   -> 200 created
2  same request, same key    -> 200 replayed
3  POST /v1/charges, key K, different amount -> 400 idempotency_error
4  GET /v1/charges?limit=2   -> 200 (chunked response)
5  POST /v1/charges without key, twice       -> 200, 200 (keyless duplicate)
"""
from common import base_url, session, show

B = base_url()
K = "a2a2a2a2-0000-4000-8000-0000000000a2"
s = session()
c = {"amount": 3100, "currency": "usd", "description": "Order 12001"}
show(s.post(B + "/v1/charges", json=c, headers={"Idempotency-Key": K}), "create")
show(s.post(B + "/v1/charges", json=c, headers={"Idempotency-Key": K}), "retry")
show(s.post(B + "/v1/charges", json=dict(c, amount=3200), headers={"Idempotency-Key": K}), "conflict")
show(s.get(B + "/v1/charges?limit=2"), "list")
d = {"amount": 3300, "currency": "usd", "description": "Order 12002"}
show(s.post(B + "/v1/charges", json=d), "keyless")
show(s.post(B + "/v1/charges", json=d), "keyless duplicate")
s.close()
