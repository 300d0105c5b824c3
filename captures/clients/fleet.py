#!/usr/bin/env python3
"""fleet: two gateways (ports 18081 and 18082) behind a load balancer, one backend behind both.

usage: fleet.py GW1_BASE GW2_BASE
server.py runs once with --also-port: both ports share its idempotency store.
Every request carries `Host: api.example.test` (the public name both gateways
see behind the load balancer) and the same Bearer credential: one scope.
One keep-alive session per gateway, JSON bodies, 0.2 s between steps.
1  POST /v1/charges {amount 1000}, key K_RETRY, gw1           -> 200 ch X
   the same request and key, gw2                              -> 200 ch X (replayed)      plain retry
2  POST /v1/charges {amount 2000}, key K_CONFLICT, gw1        -> 200
   the same key with amount 2500, gw2                         -> 400 idempotency_error   key_conflict
3  POST /v1/charges {amount 3000}, key K_REPLAY, gw1          -> 200 ch Y
   the same request and key, gw2, X-Test-Mode: no-idempotency -> 200 ch Z (a NEW id)     replay_mismatch
4  POST /v1/refunds {charge, amount 500}, key K_REFUND, gw1   -> 200 re A
   POST /v1/refunds {another charge, amount 700}, NO key, gw2 -> 200 re B                missing_key
The alerts are those of one idemwatch over both ports, or of the gateway 2
instance when the instances share what they learn (keys and keyed endpoints);
gateway 1 alone sees only first uses, gateway 2 alone only first uses and a
keyless POST to an endpoint it never saw keyed: no alert on either.
"""
import sys
import time

from common import session, show

if len(sys.argv) < 3:
    sys.exit("usage: %s GW1_BASE GW2_BASE   (e.g. http://127.0.0.1:18081 http://127.0.0.1:18082)" % sys.argv[0])
GW1 = sys.argv[1].rstrip("/")
GW2 = sys.argv[2].rstrip("/")
HOST = "api.example.test"

K_RETRY = "f1ee7000-0001-4000-8000-000000000001"
K_CONFLICT = "f1ee7000-0002-4000-8000-000000000002"
K_REPLAY = "f1ee7000-0003-4000-8000-000000000003"
K_REFUND = "f1ee7000-0004-4000-8000-000000000004"


def gateway():
    s = session()
    s.headers["Host"] = HOST
    return s


g1, g2 = gateway(), gateway()

c = {"amount": 1000, "currency": "usd", "description": "Fleet order 1"}
show(g1.post(GW1 + "/v1/charges", json=c, headers={"Idempotency-Key": K_RETRY}), "1 gw1 create")
show(g2.post(GW2 + "/v1/charges", json=c, headers={"Idempotency-Key": K_RETRY}), "1 gw2 retry")
time.sleep(0.2)

c = {"amount": 2000, "currency": "usd", "description": "Fleet order 2"}
show(g1.post(GW1 + "/v1/charges", json=c, headers={"Idempotency-Key": K_CONFLICT}), "2 gw1 create")
c = dict(c, amount=2500)
show(g2.post(GW2 + "/v1/charges", json=c, headers={"Idempotency-Key": K_CONFLICT}), "2 gw2 other amount")
time.sleep(0.2)

c = {"amount": 3000, "currency": "usd", "description": "Fleet order 3"}
show(g1.post(GW1 + "/v1/charges", json=c, headers={"Idempotency-Key": K_REPLAY}), "3 gw1 create")
show(g2.post(GW2 + "/v1/charges", json=c, headers={"Idempotency-Key": K_REPLAY, "X-Test-Mode": "no-idempotency"}),
     "3 gw2 retry, not replayed")
time.sleep(0.2)

show(g1.post(GW1 + "/v1/refunds", json={"charge": "ch_3FleetRefundExample00001", "amount": 500},
             headers={"Idempotency-Key": K_REFUND}), "4 gw1 keyed refund")
show(g2.post(GW2 + "/v1/refunds", json={"charge": "ch_3FleetRefundExample00002", "amount": 700}),
     "4 gw2 keyless refund")
g1.close()
g2.close()
