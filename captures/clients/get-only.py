#!/usr/bin/env python3
"""get-only: only GETs (nothing may fire), one keep-alive requests Session.

1  GET /v1/charges?limit=3                     (chunked response)
2  GET /v1/charges/ch_3NxGetOnlyExample0000001
3  the same GET again
4  GET /v1/customers/cus_NffrFeUfNV2Hib
5  GET /v1/charges?limit=3 again               (chunked response)
6  GET /v1/payment_intents/pi_3NxGetOnlyExample0000001
"""
from common import base_url, session, show

B = base_url()
s = session()
show(s.get(B + "/v1/charges?limit=3"), "list")
show(s.get(B + "/v1/charges/ch_3NxGetOnlyExample0000001"), "get")
show(s.get(B + "/v1/charges/ch_3NxGetOnlyExample0000001"), "get again")
show(s.get(B + "/v1/customers/cus_NffrFeUfNV2Hib"), "customer")
show(s.get(B + "/v1/charges?limit=3"), "list again")
show(s.get(B + "/v1/payment_intents/pi_3NxGetOnlyExample0000001"), "payment intent")
s.close()
