#!/usr/bin/env python3
"""late-retry: the same keyed request again 1.5 s later (a late retry when idemwatch runs with --window 1s).

1  POST /v1/charges JSON, key L                   -> 200 created (id A)
   ... 1.5 s ...
2  the same request, same key L, same connection  -> 200 replayed (id A)
With `--window 1s` the second request arrives after the window (1 s) but within
twice the window (2 s), whether the window is counted from the first request or
from its response: late_retry.  With the default window (24 h) it is a plain retry.
"""
import time

from common import base_url, session, show

B = base_url()
L = "1a7e0000-0000-4000-8000-00000000a7e1"
c = {"amount": 4500, "currency": "usd", "customer": "cus_NffrFeUfNV2Hib", "description": "Order 16001"}
s = session()
show(s.post(B + "/v1/charges", json=c, headers={"Idempotency-Key": L}), "create")
time.sleep(1.5)
show(s.post(B + "/v1/charges", json=c, headers={"Idempotency-Key": L}), "retry 1.5 s later")
s.close()
