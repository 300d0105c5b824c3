#!/usr/bin/env python3
"""raw-pipelined-chunked: a raw socket pipelines three keyed POSTs in ONE send, then a keyless POST.

One TCP connection, bytes written by hand:
  one send() holding three requests:
  1  POST /v1/charges JSON, Content-Length, key P1                  -> 200 created
  2  POST /v1/customers form body, Transfer-Encoding: chunked, key P2, three chunks,
     the first with a chunk extension (`;note=first`), then a trailer field
     (`X-Checksum: none`, announced by `Trailer: X-Checksum`)        -> 200 created
  3  POST /v1/refunds JSON, Content-Length, key P3                  -> 200 created
  the three responses are read (in order, on the same connection);
  4  POST /v1/charges JSON WITHOUT key, `Connection: close`          -> 200 (missing_key:
     /v1/charges was reached by a keyed request before)
"""
import json
import socket
import sys
import time
from urllib.parse import urlsplit

from common import SK_A, base_url

B = base_url()
u = urlsplit(B)
host = u.netloc
auth = "Bearer " + SK_A


def head(method, path, extra):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: " + host, "User-Agent: raw-socket/1.0",
             "Authorization: " + auth] + extra
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(f):
    status = f.readline()
    headers = {}
    while True:
        ln = f.readline()
        if ln in (b"\r\n", b""):
            break
        k, _, v = ln.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        body = b""
        while True:
            n = int(f.readline().split(b";")[0], 16)
            if n == 0:
                f.readline()
                break
            body += f.read(n)
            f.readline()
    else:
        body = f.read(int(headers.get("content-length", "0")))
    obj = json.loads(body)
    print(status.decode().strip(), obj.get("id") or obj.get("error", {}).get("type"),
          "(replayed)" if headers.get("idempotent-replayed") else "")
    sys.stdout.flush()


b1 = json.dumps({"amount": 4300, "currency": "usd", "description": "Order 15001"}).encode()
r1 = head("POST", "/v1/charges", ["Content-Type: application/json", "Idempotency-Key: 9e1a0b2c-0001-4f00-8000-00000000f001",
                                  "Content-Length: %d" % len(b1)]) + b1
parts = [b"email=pipe%40example.com", b"&name=Pipe+Lined", b"&metadata[source]=raw"]
chunked = b"%x;note=first\r\n%s\r\n" % (len(parts[0]), parts[0])
chunked += b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts[1:])
chunked += b"0\r\nX-Checksum: none\r\n\r\n"
r2 = head("POST", "/v1/customers", ["Content-Type: application/x-www-form-urlencoded",
                                    "Idempotency-Key: 9e1a0b2c-0002-4f00-8000-00000000f002",
                                    "Transfer-Encoding: chunked", "Trailer: X-Checksum"]) + chunked
b3 = json.dumps({"charge": "ch_3NxPipelinedExample000001", "amount": 300}).encode()
r3 = head("POST", "/v1/refunds", ["Content-Type: application/json", "Idempotency-Key: 9e1a0b2c-0003-4f00-8000-00000000f003",
                                  "Content-Length: %d" % len(b3)]) + b3
s = socket.create_connection((u.hostname, u.port))
s.sendall(r1 + r2 + r3)
f = s.makefile("rb")
for _ in range(3):
    read_response(f)
time.sleep(0.1)
b4 = json.dumps({"amount": 4400, "currency": "usd", "description": "Order 15002"}).encode()
s.sendall(head("POST", "/v1/charges", ["Content-Type: application/json", "Content-Length: %d" % len(b4),
                                       "Connection: close"]) + b4)
read_response(f)
f.close()
s.close()
