#!/usr/bin/env python3
"""requests-concurrent: two threads send the same keyed request at the same moment.

Two Sessions (two connections), released together by a barrier, same key and
body, X-Test-Mode: slow=800 so the first one stays in flight:
  the first to arrive -> 200 after 0.8 s; the other -> 409 at once.
The thread that got 409 retries 1.2 s later without the slow switch -> 200 replayed.
"""
import threading
import time

from common import base_url, session, show

B = base_url()
K = "c0c0c0c0-0000-4000-8000-00000000c0c0"
c = {"amount": 2200, "currency": "usd", "customer": "cus_NffrFeUfNV2Hib", "description": "Order 11001"}
barrier = threading.Barrier(2)
lock = threading.Lock()


def worker(name):
    s = session()
    s.get(B + "/v1/customers/cus_NffrFeUfNV2Hib")  # open the connection first
    barrier.wait()
    r = s.post(B + "/v1/charges", json=c, headers={"Idempotency-Key": K, "X-Test-Mode": "slow=800"})
    with lock:
        show(r, name)
    if r.status_code == 409:
        time.sleep(1.2)
        r = s.post(B + "/v1/charges", json=c, headers={"Idempotency-Key": K})
        with lock:
            show(r, name + " retry")
    s.close()


ts = [threading.Thread(target=worker, args=("thread-%d" % i,)) for i in (1, 2)]
for t in ts:
    t.start()
for t in ts:
    t.join()
