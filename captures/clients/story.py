#!/usr/bin/env python3
"""story: one client story told twice, over http (story-plain.pcap, record.sh) and over https
(tls/story-tls.pcap and its key log, record_tls.sh): the same requests, so the same alerts.

One keep-alive connection (requests.Session), Idempotency-Key K:
1  POST /v1/charges {amount 4200}, key K  -> 200 created
2  POST /v1/charges {amount 4200}, key K  -> 200 replayed (a plain retry: no alert)
3  POST /v1/charges {amount 5100}, key K  -> 400 idempotency_error (key_conflict)
4  POST /v1/charges {amount 990}, no key  -> 200 (missing_key)
5  POST /v1/charges {amount 990}, no key  -> 200, another charge (missing_key, keyless_duplicate)

Over https, urllib3 writes the session secrets to $SSLKEYLOGFILE (set by record_tls.sh), and
the ClientHello names api.example.com (SNI) although the URL is the loopback address.
"""
import warnings

import requests.adapters

from common import base_url, session, show


class ApiSni(requests.adapters.HTTPAdapter):
    """TLS to the loopback address with SNI api.example.com, as to the real API's name."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs["server_hostname"] = "api.example.com"
        super().init_poolmanager(*args, **kwargs)


B = base_url()
K = "5707e1a5-0b0e-4a7d-9c55-7a1e5b07e000"
warnings.filterwarnings("ignore")  # verify=False: the https certificate is a throwaway self-signed one
s = session()
s.mount("https://", ApiSni())
s.verify = False
s.trust_env = False  # else REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment would override verify
charge = {"amount": 4200, "currency": "usd", "customer": "cus_StoryB0thWays01", "description": "Order 7001"}
show(s.post(B + "/v1/charges", json=charge, headers={"Idempotency-Key": K}), "create")
show(s.post(B + "/v1/charges", json=charge, headers={"Idempotency-Key": K}), "retry")
show(s.post(B + "/v1/charges", json=dict(charge, amount=5100), headers={"Idempotency-Key": K}), "conflict")
keyless = {"amount": 990, "currency": "usd", "customer": "cus_StoryB0thWays01", "description": "Tip"}
show(s.post(B + "/v1/charges", json=keyless), "keyless")
show(s.post(B + "/v1/charges", json=keyless), "keyless again")
s.close()
