#!/usr/bin/env python3
"""A small HTTP/2 front for server.py, for the h2/ recordings nginx cannot make.

    python3 h2_server.py PORT --backend 127.0.0.1:SPORT [--tls CERT KEY]

Python `h2` (server side), plain sockets, one thread per connection.  Every
request is forwarded to server.py over HTTP/1.1 (one keep-alive backend
connection per client connection), so the answers carry server.py's real
idempotency behaviour and server.py's log lists what was processed.

It speaks, on one port:
  * HTTP/2 with prior knowledge (the client starts with the connection preface);
  * HTTP/1.1 `Upgrade: h2c` + `HTTP2-Settings` (RFC 7540 3.2): answered
    `101 Switching Protocols`; the upgrading request becomes stream 1 and its
    response goes there; the connection then carries HTTP/2;
  * with --tls, HTTP/2 over TLS (ALPN h2).
SETTINGS are h2's defaults (SETTINGS_MAX_FRAME_SIZE 16384), so a client's
header block larger than 16 KiB is sent as HEADERS + CONTINUATION.

Misbehaviour, per request with the header `X-H2-Test` (also forwarded; server.py ignores it):
  refuse-once[=TAG]  the first request carrying this exact header value is
                     answered RST_STREAM(REFUSED_STREAM) as soon as its HEADERS
                     arrive (never forwarded); later ones are served
  goaway-batch=N     requests carrying it are held until N of them are complete
                     on the connection (or 2 s passed); the lowest stream is
                     answered, then GOAWAY(last_stream_id = that stream,
                     NO_ERROR) and the connection is closed, the others never
                     forwarded.  Once per server run; later ones are served.
"""
import argparse
import http.client
import socket
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te", "http2-settings"}
LOCK = threading.Lock()
REFUSED = set()
GOAWAY_DONE = [False]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Conn:
    def __init__(self, sock, backend, peer):
        self.sock = sock
        self.backend = backend
        self.peer = peer
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self.reqs = {}  # stream id -> [headers, body bytearray]
        self.held = []  # goaway-batch streams, complete, waiting
        self.held_since = None
        self.bconn = None
        self.closed = False

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def run(self, buffered=b""):
        """Read the first bytes: HTTP/2 preface, or an HTTP/1.1 request (h2c upgrade)."""
        data = buffered
        while len(data) < len(PREFACE) and PREFACE.startswith(data):
            chunk = self.sock.recv(65536)
            if not chunk:
                return
            data += chunk
        if data.startswith(PREFACE):
            self.h2.initiate_connection()
            self.flush()
            self.loop(data)
            return
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        hdrs = []
        for ln in lines[1:]:
            name, _, value = ln.partition(":")
            hdrs.append((name.strip().lower(), value.strip()))
        hd = dict(hdrs)
        if "h2c" not in hd.get("upgrade", "").lower() or "http2-settings" not in hd:
            self.sock.sendall(b"HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        length = int(hd.get("content-length", "0"))
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                return
            rest += chunk
        body, rest = rest[:length], rest[length:]
        self.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        self.h2.initiate_upgrade_connection(hd["http2-settings"])
        self.flush()
        req = [(":method", method), (":path", target), (":authority", hd.get("host", "")), (":scheme", "http")]
        req += [(k, v) for k, v in hdrs if k not in HOP and k != "host"]
        self.reqs[1] = [req, bytearray(body)]
        self.complete(1)
        self.loop(rest)

    def loop(self, data):
        self.sock.settimeout(0.1)
        while not self.closed:
            if data:
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError as e:
                    log("protocol error from", self.peer, e)
                    self.flush()
                    return
                for ev in events:
                    self.event(ev)
                    if self.closed:
                        return
                self.flush()
            if self.held and time.time() - self.held_since > 2.0:
                self.release_batch()
                return
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                data = b""
                continue
            except OSError:
                return
            if not data:
                return

    def event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            hdrs = list(ev.headers)
            test = dict(hdrs).get("x-h2-test", "")
            if test.startswith("refuse-once"):
                with LOCK:
                    first = test not in REFUSED
                    REFUSED.add(test)
                if first:
                    log("refusing stream", ev.stream_id, test)
                    self.h2.reset_stream(ev.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                    return
            self.reqs[ev.stream_id] = [hdrs, bytearray()]
            if ev.stream_ended:
                self.complete(ev.stream_id)
        elif isinstance(ev, h2.events.DataReceived):
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if ev.stream_id in self.reqs:
                self.reqs[ev.stream_id][1] += ev.data
            if ev.stream_ended:
                self.complete(ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self.complete(ev.stream_id)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.closed = True

    def complete(self, sid):
        if sid not in self.reqs or self.reqs[sid] is None:
            return
        hdrs, body = self.reqs[sid]
        self.reqs[sid] = None
        test = dict(hdrs).get("x-h2-test", "")
        if test.startswith("goaway-batch=") and not GOAWAY_DONE[0]:
            self.held.append((sid, hdrs, bytes(body)))
            self.held_since = self.held_since or time.time()
            if len(self.held) >= int(test.split("=", 1)[1]):
                self.release_batch()
            return
        self.answer(sid, hdrs, bytes(body))

    def release_batch(self):
        GOAWAY_DONE[0] = True
        self.held.sort()
        sid, hdrs, body = self.held[0]
        self.answer(sid, hdrs, body)
        log("goaway after stream", sid, "not processed:", [h[0] for h in self.held[1:]])
        self.h2.close_connection(error_code=h2.errors.ErrorCodes.NO_ERROR, last_stream_id=sid)
        self.flush()
        self.closed = True

    def answer(self, sid, hdrs, body):
        status, rhdrs, payload = self.forward(hdrs, body)
        out = [(":status", str(status))]
        out += [(k, v) for k, v in rhdrs if k not in HOP and k != "content-length"]
        out.append(("content-length", str(len(payload))))
        self.h2.send_headers(sid, out, end_stream=not payload)
        if payload:
            self.h2.send_data(sid, payload, end_stream=True)
        self.flush()

    def forward(self, hdrs, body):
        pseudo = {k: v for k, v in hdrs if k.startswith(":")}
        for attempt in (1, 2):
            if self.bconn is None:
                self.bconn = http.client.HTTPConnection(*self.backend, timeout=30)
            try:
                self.bconn.putrequest(pseudo.get(":method", "GET"), pseudo.get(":path", "/"),
                                      skip_host=True, skip_accept_encoding=True)
                self.bconn.putheader("Host", pseudo.get(":authority", ""))
                names = set()
                for k, v in hdrs:
                    if not k.startswith(":") and k not in HOP:
                        self.bconn.putheader(k, v)
                        names.add(k)
                if "content-length" not in names and (body or pseudo.get(":method") in ("POST", "PUT", "PATCH")):
                    self.bconn.putheader("Content-Length", str(len(body)))
                self.bconn.endheaders(body or None)
                resp = self.bconn.getresponse()
                payload = resp.read()
                return resp.status, [(k.lower(), v) for k, v in resp.getheaders()], payload
            except (OSError, http.client.HTTPException):
                self.bconn.close()
                self.bconn = None
                if attempt == 2:
                    return 502, [("content-type", "application/json")], b'{"error":{"type":"api_error"}}\n'
        raise AssertionError("unreachable")


def serve(sock, backend, peer):
    c = Conn(sock, backend, peer)
    try:
        c.run()
    except OSError as e:
        log("connection", peer, e)
    finally:
        try:
            sock.close()
        except OSError:
            pass
        if c.bconn is not None:
            c.bconn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("port", type=int)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--backend", required=True, help="server.py address HOST:PORT")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="HTTP/2 over TLS (ALPN h2)")
    a = ap.parse_args()
    bhost, _, bport = a.backend.rpartition(":")
    ctx = None
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*a.tls)
        ctx.set_alpn_protocols(["h2"])
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.bind, a.port))
    ls.listen(16)
    log("h2_server.py listening on %s:%d%s" % (a.bind, a.port, " (TLS)" if ctx else ""))
    while True:
        s, peer = ls.accept()
        if ctx is not None:
            try:
                s = ctx.wrap_socket(s, server_side=True)
            except (ssl.SSLError, OSError) as e:
                log("handshake", peer, e)
                s.close()
                continue
        threading.Thread(target=serve, args=(s, (bhost, int(bport)), peer), daemon=True).start()


if __name__ == "__main__":
    main()
