#!/usr/bin/env python3
"""search-only: keyless POSTs repeated identically, to endpoints that never saw a key (nothing may fire).

One keep-alive requests Session, 0.2 s between requests:
1-3  POST /search JSON {"q": "chargeback policy"}, three times     -> 200 each (chunked)
4-6  POST /login form username=demo&password=...,  three times    -> 200 each
7    POST /search JSON {"q": "refund"}                             -> 200
"""
import time

from common import base_url, session, show

B = base_url()
s = session()
for i in range(3):
    show(s.post(B + "/search", json={"q": "chargeback policy"}), "search")
    time.sleep(0.2)
for i in range(3):
    show(s.post(B + "/login", data={"username": "demo", "password": "not-a-real-password"}), "login")
    time.sleep(0.2)
show(s.post(B + "/search", json={"q": "refund"}), "search, other query")
s.close()
