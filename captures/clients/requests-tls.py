#!/usr/bin/env python3
"""requests-tls: the key-conflict story over HTTPS with requests, one keep-alive connection.

urllib3 writes the session secrets to $SSLKEYLOGFILE (set by record_tls.sh); the
TLS version is the server's choice (record_tls.sh caps it with --tls-max).

1  POST /v1/charges {amount 1000}, key K   -> 200 created
2  POST /v1/charges {amount 1500}, key K   -> 400 idempotency_error
3  POST /v1/charges {amount 1000}, no key  -> 200 (a new charge)
"""
import warnings

from common import base_url, session, show

B = base_url()
K = "7e1a5c00-7151-4c0a-8e11-5ca1ab1e0003"
warnings.filterwarnings("ignore")  # verify=False: the certificate is a throwaway self-signed one
s = session()
s.verify = False
s.trust_env = False  # else REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment would override verify
show(s.post(B + "/v1/charges", json={"amount": 1000, "currency": "usd"}, headers={"Idempotency-Key": K}), "create")
show(s.post(B + "/v1/charges", json={"amount": 1500, "currency": "usd"}, headers={"Idempotency-Key": K}), "conflict")
show(s.post(B + "/v1/charges", json={"amount": 1000, "currency": "usd"}), "keyless")
s.close()
