#!/usr/bin/env python3
"""Fake Stripe-like payment API used to record the test captures of idemwatch.

Python stdlib only.  HTTP/1.1 with keep-alive, JSON or form-urlencoded request
bodies, `Content-Encoding: gzip`/`deflate` request bodies, chunked request
bodies, `Expect: 100-continue`.  Responses are JSON with a top-level "id";
list and search endpoints answer chunked, the others with Content-Length.

Idempotency (Stripe v1 semantics, keys on POST and PATCH only):
  * the store maps (scope, key) -> (request fingerprint, stored response);
    scope = Authorization header + connected account (Stripe-Context, else
    Stripe-Account); fingerprint = method, path, decoded and canonicalised
    parameters (JSON key order and form parameter order do not matter);
  * same key + same request after completion: stored response replayed with
    `Idempotent-Replayed: true`;
  * same key + different request: 400 idempotency_error;
  * same key while the first request is still running: 409 idempotency_error;
  * keys: `Idempotency-Key` or `X-Idempotency-Key`, bare or quoted
    (IETF structured-field string); empty, longer than 255 bytes or given on
    more than one header line: 400 invalid_request_error (nothing stored).

Misbehaviour switches, from `--mode M` (repeatable, whole server) or from a
request header `X-Test-Mode: M[, M...]` (that request only):
  accept-conflict   a conflicting request is run again: 200 with a new id
  replay-conflict   a conflicting request gets the stored response, replayed
  no-idempotency    keys are ignored: every request creates a new resource
  drift             a replay has the same id but a different "created" field
  slow=MS           sleep MS milliseconds before answering (key held in flight)
  fail-first        the first attempt of a key answers 503 with
                    `Stripe-Should-Retry: true` and stores nothing; the
                    next attempt with that key runs normally
  error-first       the first attempt of a key answers 500 (api_error, no
                    Stripe-Should-Retry header) and stores nothing; the next
                    attempt with that key runs normally
  busy-first        the first attempt of a key answers 409 idempotency_error
                    ("in progress") with `Stripe-Should-Retry: true` and
                    stores nothing, as if another gateway held the key
  drop-first        the first attempt of a key is read completely, then the
                    server closes the connection without any response
                    (FIN, no bytes); nothing is stored, the next attempt with
                    that key runs normally
  The *-first switches count attempts per (scope, key); for a request without
  a key, per (scope, method, path, canonical parameters).

With `--also-port N` the same API, store and log are served on port N as
well: two gateways in front of one backend whose idempotency store they share
(a request's port is in its log line as server_port).

With `--tls CERT KEY` it speaks HTTPS instead (Python `ssl`, HTTP/1.1 only);
`--tls-max 1.2` caps the protocol version, `--ciphers LIST` sets the
TLS 1.2 suites (OpenSSL names) and `--no-tickets` issues no TLS 1.2 session
tickets (clients then resume by session ID).  Python cannot choose TLS 1.3 suites, so
record_tls.sh forces those client-side (curl `--tls13-ciphers`).

Every handled request is appended as one JSON line to --log (see LOG FIELDS in
README.md); record.sh turns those lines into EXPECTED.json.
"""

import argparse
import gzip
import hashlib
import json
import random
import socket
import string
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

KEY_HEADERS = ("idempotency-key", "x-idempotency-key")
IDEMPOTENT_METHODS = ("POST", "PATCH")
MAX_KEY_LEN = 255
ALNUM = string.ascii_letters + string.digits

STATE_LOCK = threading.Lock()
LOG_LOCK = threading.Lock()
STORE = {}  # (scope, key) -> Entry
FAILED_ONCE = set()  # (scope, key) that already had their fail-first 503
FIRST_DONE = set()  # (switch, identity) that already had their *-first treatment
FIRST_SWITCHES = ("drop-first", "error-first", "busy-first")
RESOURCES = {}  # id -> object
SEQ = [0]
RNG = random.Random()
SERVER_MODES = []
LOG_FILE = None


class Entry:
    def __init__(self, fingerprint):
        self.fingerprint = fingerprint
        self.running = True
        self.response = None  # (status, obj, chunked)
        self.replays = 0


def rid(prefix, n):
    with STATE_LOCK:
        return prefix + "".join(RNG.choice(ALNUM) for _ in range(n))


def unquote_key(raw):
    v = raw.strip(" \t")
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        inner = v[1:-1]
        out, i = [], 0
        while i < len(inner):
            if inner[i] == "\\" and i + 1 < len(inner):
                i += 1
            out.append(inner[i])
            i += 1
        return "".join(out)
    return v


def parse_modes(value):
    modes = {}
    for tok in value.split(","):
        tok = tok.strip()
        if not tok:
            continue
        if "=" in tok:
            k, v = tok.split("=", 1)
            modes[k.strip()] = v.strip()
        else:
            modes[tok] = True
    return modes


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakepay/1.0"
    sys_version = ""
    timeout = 60

    # -- plumbing ---------------------------------------------------------
    def log_message(self, fmt, *args):
        sys.stderr.write("server: %s %s\n" % (self.address_string(), fmt % args))

    def parse_request(self):
        self._t_start = time.time()
        self._interim = []
        ok = super().parse_request()
        return ok

    def handle_expect_100(self):
        self._interim.append(100)
        return super().handle_expect_100()

    def do_GET(self):
        self.dispatch()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunk size")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while True:  # trailer section
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after chunk data
            return b"".join(parts), True
        cl = self.headers.get("Content-Length")
        if cl is not None:
            return self.rfile.read(int(cl)), False
        return b"", False

    # -- request handling ---------------------------------------------------
    def dispatch(self):
        raw_uri = self.requestline.split(" ")[1] if " " in self.requestline else self.path
        rec = {
            "t_start": round(self._t_start, 6),
            "client_ip": self.client_address[0],
            "client_port": self.client_address[1],
            "server_ip": self.connection.getsockname()[0],
            "server_port": self.connection.getsockname()[1],
            "method": self.command,
            "host": self.headers.get("Host"),
            "uri": raw_uri,
            "http_version": self.request_version,
        }
        if hasattr(self.connection, "cipher"):  # --tls: what this connection negotiated
            rec["tls_version"] = self.connection.version()
            rec["tls_cipher"] = self.connection.cipher()[0]
            rec["tls_resumed"] = self.connection.session_reused
        body, chunked = self.read_body()
        rec["request_body_len"] = len(body)
        rec["request_chunked"] = chunked
        rec["request_content_encoding"] = self.headers.get("Content-Encoding")
        rec["request_content_type"] = self.headers.get("Content-Type")
        rec["expect_100"] = (self.headers.get("Expect") or "").lower() == "100-continue"
        rec["interim_statuses"] = list(self._interim)
        key_lines = [[k, v] for (k, v) in self.headers.items() if k.lower() in KEY_HEADERS]
        rec["idempotency_key_headers"] = key_lines
        key = unquote_key(key_lines[0][1]) if key_lines else None
        rec["idempotency_key"] = key

        modes = dict((m, True) if "=" not in m else tuple(m.split("=", 1)) for m in SERVER_MODES)
        modes.update(parse_modes(self.headers.get("X-Test-Mode") or ""))
        rec["modes"] = sorted("%s=%s" % (k, v) if v is not True else k for k, v in modes.items())

        status, obj, chunked_resp, extra, outcome = self.process(body, key, key_lines, modes)
        if status is None:  # drop-first: no response at all, close the connection
            rec.update(status=None, response_body_len=None, response_chunked=None, resource_id=None,
                       replayed=False, outcome=outcome, response_written=False)
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            rec["t_end"] = round(time.time(), 6)
            with LOG_LOCK:
                SEQ[0] += 1
                rec["seq"] = SEQ[0]
                LOG_FILE.write(json.dumps(rec) + "\n")
                LOG_FILE.flush()
            return
        payload = (json.dumps(obj, indent=2) + "\n").encode()
        rec["status"] = status
        rec["response_body_len"] = len(payload)
        rec["response_chunked"] = chunked_resp
        rec["resource_id"] = obj.get("id") if isinstance(obj, dict) else None
        rec["replayed"] = extra.get("Idempotent-Replayed") == "true"
        rec["outcome"] = outcome
        rec["response_written"] = self.write_response(status, payload, chunked_resp, extra)
        rec["t_end"] = round(time.time(), 6)
        with LOG_LOCK:
            SEQ[0] += 1
            rec["seq"] = SEQ[0]
            LOG_FILE.write(json.dumps(rec) + "\n")
            LOG_FILE.flush()

    def write_response(self, status, payload, chunked, extra):
        reason = self.responses.get(status, ("Unknown",))[0]
        head = ["HTTP/1.1 %d %s" % (status, reason),
                "Server: fakepay/1.0",
                "Date: " + self.date_time_string(),
                "Content-Type: application/json"]
        for k, v in extra.items():
            head.append("%s: %s" % (k, v))
        if chunked:
            head.append("Transfer-Encoding: chunked")
            # split the body into chunks of at most 512 bytes
            framed = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 512]), payload[i:i + 512])
                              for i in range(0, len(payload), 512)) + b"0\r\n\r\n"
        else:
            head.append("Content-Length: %d" % len(payload))
            framed = payload
        if self.close_connection:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + framed
        try:
            self.wfile.write(data)  # one write: one segment on loopback
            self.wfile.flush()
            return True
        except OSError:
            self.close_connection = True
            return False

    def decode_params(self, body):
        enc = (self.headers.get("Content-Encoding") or "").strip().lower()
        if enc == "gzip":
            body = gzip.decompress(body)
        elif enc == "deflate":
            body = zlib.decompress(body)
        elif enc not in ("", "identity"):
            raise ValueError("unsupported content encoding " + enc)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not body:
            return {}
        if ctype == "application/json":
            return json.loads(body.decode("utf-8"))
        if ctype == "application/x-www-form-urlencoded" or ctype == "":
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        return {"_raw_sha256": hashlib.sha256(body).hexdigest()}

    def process(self, body, key, key_lines, modes):
        method = self.command
        path = urlsplit(self.path).path
        extra = {"Request-Id": rid("req_", 14)}
        if key_lines and method in IDEMPOTENT_METHODS:
            extra["Idempotency-Key"] = key_lines[0][1].strip()
        try:
            params = self.decode_params(body)
        except Exception as e:  # noqa: BLE001
            return 400, err("invalid_request_error", "could not decode body: %s" % e), False, extra, "bad_body"

        if "slow" in modes:
            slow_ms = int(modes["slow"])
        else:
            slow_ms = 0

        use_keys = key_lines and method in IDEMPOTENT_METHODS and "no-idempotency" not in modes
        if key_lines and method in IDEMPOTENT_METHODS:
            if len(key_lines) > 1:
                return 400, err("invalid_request_error",
                                "Only one Idempotency-Key header may be sent"), False, extra, "invalid_key"
            if key == "":
                return 400, err("invalid_request_error",
                                "Idempotency-Key must not be empty"), False, extra, "invalid_key"
            if len(key.encode()) > MAX_KEY_LEN:
                return 400, err("invalid_request_error",
                                "Idempotency-Key is too long (max %d)" % MAX_KEY_LEN), False, extra, "invalid_key"

        if not use_keys:
            if slow_ms:
                time.sleep(slow_ms / 1000.0)
            scope = (self.headers.get("Authorization"),
                     self.headers.get("Stripe-Context") or self.headers.get("Stripe-Account"))
            first = self.first_attempt_failure(modes, (scope, canonical([method, path, params])), extra)
            if first is not None:
                return first
            status, obj, chunked = self.route(method, path, params)
            return status, obj, chunked, extra, "no_key" if not key_lines else "key_ignored"

        scope = (self.headers.get("Authorization"),
                 self.headers.get("Stripe-Context") or self.headers.get("Stripe-Account"))
        fp = canonical([method, path, params])
        skey = (scope, key)
        with STATE_LOCK:
            entry = STORE.get(skey)
            if entry is None:
                entry = Entry(fp)
                STORE[skey] = entry
                action = "first"
            elif entry.running:
                action = "in_flight"
            elif entry.fingerprint != fp:
                action = "conflict"
            else:
                action = "replay"
                entry.replays += 1

        if action == "in_flight":
            return 409, err("idempotency_error",
                            "There is currently another in-progress request using this "
                            "Idempotency Key (that probably means you submitted twice, and the "
                            "other request is still going through): %s. Please try again later."
                            % key), False, extra, "in_flight"

        if action == "conflict":
            if "accept-conflict" in modes:
                if slow_ms:
                    time.sleep(slow_ms / 1000.0)
                status, obj, chunked = self.route(method, path, params)
                return status, obj, chunked, extra, "conflict_accepted"
            if "replay-conflict" in modes:
                status, obj, chunked = entry.response
                extra["Idempotent-Replayed"] = "true"
                return status, obj, chunked, extra, "conflict_replayed"
            return 400, err("idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other than "
                            "'%s' if you meant to execute a different request." % key), False, extra, "conflict"

        if action == "replay":
            status, obj, chunked = entry.response
            if "drift" in modes and isinstance(obj, dict):
                obj = dict(obj)
                obj["created"] = obj.get("created", 0) + entry.replays
            extra["Idempotent-Replayed"] = "true"
            if slow_ms:
                time.sleep(slow_ms / 1000.0)
            return status, obj, chunked, extra, "replayed"

        # first request with this key
        if slow_ms:
            time.sleep(slow_ms / 1000.0)
        first = self.first_attempt_failure(modes, skey, extra)
        if first is not None:
            with STATE_LOCK:
                del STORE[skey]
            return first
        if "fail-first" in modes and skey not in FAILED_ONCE:
            with STATE_LOCK:
                FAILED_ONCE.add(skey)
                del STORE[skey]
            extra["Stripe-Should-Retry"] = "true"
            return 503, err("api_error", "Service temporarily unavailable, please retry."), False, extra, "failed_not_stored"
        status, obj, chunked = self.route(method, path, params)
        with STATE_LOCK:
            if 200 <= status < 300 or status >= 500:
                entry.response = (status, obj, chunked)
                entry.running = False
            else:  # validation errors are not stored (Stripe does the same)
                del STORE[skey]
        return status, obj, chunked, extra, "created"

    def first_attempt_failure(self, modes, ident, extra):
        """drop-first / error-first / busy-first: the failure for the first attempt, else None."""
        for sw in FIRST_SWITCHES:
            if sw not in modes:
                continue
            with STATE_LOCK:
                if (sw, ident) in FIRST_DONE:
                    continue
                FIRST_DONE.add((sw, ident))
            if sw == "drop-first":
                return None, None, False, extra, "dropped"
            if sw == "error-first":
                return 500, err("api_error", "An unknown error occurred."), False, extra, "failed_not_stored"
            extra["Stripe-Should-Retry"] = "true"
            return 409, err("idempotency_error",
                            "There is currently another in-progress request using this "
                            "Idempotency Key. Please try again later."), False, extra, "in_flight"
        return None

    # -- the fake API -------------------------------------------------------
    def route(self, method, path, params):
        now = int(time.time())
        parts = [p for p in path.split("/") if p]
        if method == "POST" and path == "/v1/charges":
            amount = to_int(params.get("amount"))
            if amount is None or amount <= 0:
                return 400, err("invalid_request_error", "Missing required param: amount."), False
            obj = {"id": rid("ch_3", 23), "object": "charge", "amount": amount,
                   "amount_captured": amount, "currency": params.get("currency", "usd"),
                   "customer": params.get("customer"), "description": params.get("description"),
                   "paid": True, "status": "succeeded", "created": now, "livemode": False,
                   "metadata": sub_params(params, "metadata")}
            return store_obj(obj)
        if method == "POST" and path == "/v1/customers":
            obj = {"id": rid("cus_", 14), "object": "customer", "email": params.get("email"),
                   "name": params.get("name"), "created": now, "livemode": False,
                   "metadata": sub_params(params, "metadata")}
            return store_obj(obj)
        if method == "POST" and path == "/v1/payment_intents":
            amount = to_int(params.get("amount"))
            obj = {"id": rid("pi_3", 23), "object": "payment_intent", "amount": amount,
                   "currency": params.get("currency", "usd"), "status": "requires_payment_method",
                   "client_secret": "pi_secret_fake", "created": now, "livemode": False,
                   "metadata": sub_params(params, "metadata")}
            return store_obj(obj)
        if method == "POST" and path == "/v1/refunds":
            obj = {"id": rid("re_3", 23), "object": "refund", "charge": params.get("charge"),
                   "amount": to_int(params.get("amount")), "status": "succeeded", "created": now}
            return store_obj(obj)
        if method in ("POST", "PATCH") and len(parts) == 3 and parts[:2] == ["v1", "customers"]:
            obj = dict(RESOURCES.get(parts[2]) or {"id": parts[2], "object": "customer",
                                                    "created": now, "livemode": False})
            for k, v in params.items():
                if k in ("email", "name", "description", "phone"):
                    obj[k] = v
            obj["metadata"] = dict(obj.get("metadata") or {}, **sub_params(params, "metadata"))
            return store_obj(obj)
        if method == "GET" and len(parts) == 3 and parts[0] == "v1":
            obj = RESOURCES.get(parts[2])
            if obj is None:
                kind = {"charges": "charge", "customers": "customer",
                        "payment_intents": "payment_intent", "refunds": "refund"}.get(parts[1])
                if kind is None:
                    return 404, err("invalid_request_error", "Unrecognized request URL."), False
                obj = {"id": parts[2], "object": kind, "created": now, "livemode": False}
            return 200, obj, False
        if method == "GET" and len(parts) == 2 and parts[0] == "v1":
            q = dict(parse_qsl(urlsplit(self.path).query))
            limit = to_int(q.get("limit")) or 3
            data = [{"id": "ch_3ListItem%014d" % i, "object": "charge", "amount": 100 * (i + 1),
                     "currency": "usd", "status": "succeeded"} for i in range(min(limit, 20))]
            return 200, {"id": "list_" + parts[1], "object": "list", "url": path,
                         "has_more": False, "data": data}, True
        if method == "POST" and path == "/search":
            term = str(params.get("q", ""))
            hits = [{"id": "doc_%d" % i, "title": "%s result %d" % (term, i)} for i in range(5)]
            return 200, {"id": rid("srch_", 12), "object": "search_result", "query": term,
                         "hits": hits}, True
        if method == "POST" and path == "/login":
            if params.get("username") and params.get("password"):
                return 200, {"id": rid("sess_", 16), "object": "session",
                             "token": "tok_fake_" + rid("", 16)}, False
            return 401, err("authentication_error", "bad credentials"), False
        return 404, err("invalid_request_error", "Unrecognized request URL (%s: %s)." % (method, path)), False


def store_obj(obj):
    with STATE_LOCK:
        RESOURCES[obj["id"]] = obj
    return 200, obj, False


def sub_params(params, name):
    if isinstance(params.get(name), dict):
        return params[name]
    pre = name + "["
    return {k[len(pre):-1]: v for k, v in params.items() if k.startswith(pre) and k.endswith("]")}


def to_int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def err(kind, msg):
    return {"error": {"type": kind, "message": msg}}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def shutdown_request(self, request):
        # --tls: send close_notify first; OpenSSL drops a session closed without it from the
        # server's cache, and clients could not resume it
        if hasattr(request, "unwrap"):
            try:
                request.unwrap()
            except OSError:
                pass
        super().shutdown_request(request)


class Server6(Server):
    address_family = socket.AF_INET6


def tls_context(cert, key, tls_max, ciphers, no_tickets=False):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if no_tickets:  # TLS 1.2 resumption by session ID only (the server keeps the sessions)
        ctx.options |= ssl.OP_NO_TICKET
    ctx.load_cert_chain(cert, key)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls_max == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        ctx.set_ciphers(ciphers)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def main():
    global LOG_FILE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("port", type=int)
    ap.add_argument("--bind", default="127.0.0.1", help="127.0.0.1 or ::1")
    ap.add_argument("--log", required=True, help="append one JSON line per handled request")
    ap.add_argument("--mode", action="append", default=[],
                    help="accept-conflict | replay-conflict | no-idempotency | drift | slow=MS | fail-first | "
                         "error-first | busy-first | drop-first")
    ap.add_argument("--seed", type=int, default=None, help="seed for generated ids")
    ap.add_argument("--also-port", type=int, action="append", default=[], metavar="N",
                    help="serve the same API, with the same idempotency store and log, on port N too "
                         "(repeatable): several gateways in front of one backend")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS with this PEM certificate and key")
    ap.add_argument("--tls-max", choices=("1.2", "1.3"), help="highest TLS version offered (with --tls)")
    ap.add_argument("--ciphers", help="TLS 1.2 cipher suites, OpenSSL names (with --tls)")
    ap.add_argument("--no-tickets", action="store_true",
                    help="issue no TLS 1.2 session tickets: clients resume by session ID (with --tls)")
    a = ap.parse_args()
    if a.seed is not None:
        RNG.seed(a.seed)
    SERVER_MODES.extend(a.mode)
    LOG_FILE = open(a.log, "a", encoding="utf-8")
    cls = Server6 if ":" in a.bind else Server
    httpd = cls((a.bind, a.port), Handler)
    others = [cls((a.bind, p), Handler) for p in a.also_port]
    if a.tls:
        ctx = tls_context(a.tls[0], a.tls[1], a.tls_max, a.ciphers, a.no_tickets)
        for srv in [httpd] + others:
            # the handshake runs in accept(), on the serving thread: fine for the small TLS scenarios
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    for o in others:
        threading.Thread(target=o.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        sys.stderr.write("server: also listening on %s port %d\n" % (a.bind, o.server_address[1]))
    sys.stderr.write("server: listening on %s port %d\n" % (a.bind, a.port))
    sys.stderr.flush()
    try:
        httpd.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        for o in others:
            o.shutdown()
            o.server_close()


if __name__ == "__main__":
    import signal

    def _term(*_):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, _term)
    main()
