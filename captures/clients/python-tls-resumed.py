#!/usr/bin/env python3
"""python-tls-resumed: the key-conflict story over HTTPS, one connection per request, each
resuming the first connection's TLS session (Python's ssl, `session=`).

The client offers a session ticket (OpenSSL's default): against a server that issues
tickets it resumes by ticket, against one that does not (server.py --no-tickets) by session
ID. Secrets go to $SSLKEYLOGFILE (set by record_tls.sh), one line per connection.

1  POST /v1/charges {amount 1000}, key K   -> 200 created
2  POST /v1/charges {amount 1500}, key K   -> 400 idempotency_error
3  POST /v1/charges {amount 1000}, no key  -> 200 (a new charge)
"""
import os
import socket
import ssl
import sys
from urllib.parse import urlsplit

u = urlsplit(sys.argv[1])
K = "7e1a5c00-7151-4c0a-8e11-5ca1ab1e0004"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the certificate is a throwaway self-signed one
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
ctx.keylog_filename = os.environ["SSLKEYLOGFILE"]
session = None
for amount, key in [(1000, K), (1500, K), (1000, None)]:
    body = ('{"amount": %d, "currency": "usd"}' % amount).encode()
    head = "POST /v1/charges HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n" % u.netloc
    head += "Content-Length: %d\r\nConnection: close\r\n" % len(body)
    if key:
        head += "Idempotency-Key: %s\r\n" % key
    raw = socket.create_connection((u.hostname, u.port))
    with ctx.wrap_socket(raw, server_hostname=u.hostname, session=session) as s:
        s.sendall(head.encode() + b"\r\n" + body)
        resp = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            resp += chunk
        print("%s resumed=%s" % (resp.split(b"\r\n", 1)[0].decode(), s.session_reused))
        if session is None:
            session = s.session
