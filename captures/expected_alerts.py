#!/usr/bin/env python3
"""Write ALERTS.json: the alerts the product spec (SPEC.md) requires for every capture.

A small reference model of the spec's tracker, stdlib and dpkt, independent of the
Rust code: it reads each capture named in EXPECTED.json (server port(s) from there),
reassembles TCP with packet timestamps (check_expected.py's decoder), parses
HTTP/1.1, and applies the rules of the spec's "Kinds", "Scope", "Request
identity" and "Watched endpoints" sections.  The result was checked by hand for
every small capture (see the "why" of each entry); for bulk.pcap it is the only
practical oracle.  Choices where the spec is open are listed in OPEN below and in
the "why" texts; the README of captures/ repeats them.

usage: expected_alerts.py [--check] EXPECTED.json CAPTURE_DIR OUT.json
  --check: do not write, compare with the existing OUT.json (kind, key, order)
"""
import bisect
import gzip
import json
import os
import sys
import zlib
from datetime import datetime, timezone
from urllib.parse import parse_qsl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_expected as ce  # noqa: E402

KEY_HEADERS = ("idempotency-key", "x-idempotency-key")
WATCHED_METHODS = ("POST", "PATCH")
NOT_STORED = (401, 403, 408, 409, 425, 429)
DEFAULTS = {"window": 24 * 3600.0, "churn": 60.0, "dup": 60.0, "canon_limit": 64 * 1024}
# order of the kinds raised for one request (request side first, then response side)
KIND_ORDER = ("invalid_key", "key_conflict", "key_reencoded", "late_retry", "concurrent_reuse", "key_churn",
              "missing_key", "keyless_duplicate", "conflict_accepted", "conflict_replayed",
              "replay_mismatch", "replay_drift")

OPTIONS = {"late-retry.pcap": ["--window", "1s"]}

OPEN = [
    "Windows are counted from the request time of the key's first use (not from its response, not from "
    "the last use); the 60 s key_churn window from the end (response or server close) of the earlier "
    "attempt; the 60 s keyless_duplicate window between the two request times.",
    "A retry is compared with the stored result (replay_mismatch / replay_drift) only when that stored "
    "result existed when the retry's request arrived; a retry that was in flight while the first was still "
    "running (e.g. answered 409) is not compared.",
    "replay_mismatch for 'a 2xx turned into an error' is taken as: stored 2xx, retry answered 4xx other "
    "than a rejection of a key_reencoded request; a 5xx/409/429 to a retry is not judged.",
    "An unanswered first attempt (server closed the connection without a response) ends its flight at the "
    "server's FIN/RST; a later retry with the same key is a plain retry (no stored result yet).",
    "key_churn compares keyed requests only (a keyless request is not 'a different key'); the key_churn "
    "alert is raised once per new request even if several earlier attempts match.",
    "The watched-endpoint table is not per scope: a keyed request of any credential teaches (host, method, "
    "path template); a key header with an empty or otherwise invalid value teaches it too ('valid or not').",
    "After a late_retry the key starts a new life with that request as its first use.",
    "Several alerts for one request are listed in the order " + ", ".join(KIND_ORDER) +
    "; a consumer should compare them per request as a multiset.",
]

WHY = {
    "any-sll2.pcap": "small-mix over LINUX_SLL2: the keyed retry is plain; the same key with amount 3200 is a "
                     "key_conflict (400); the first keyless POST /v1/charges (keyed before) is missing_key, the "
                     "second identical one missing_key + keyless_duplicate.",
    "nsec.pcap": "small-mix with nanosecond timestamps: same alerts as any-sll2.pcap.",
    "story-plain.pcap": "The story also recorded over https (tls/story-tls.pcap): K retried with the same "
                        "body is plain (replayed); K with amount 5100 is a key_conflict (400); the first "
                        "keyless POST /v1/charges (keyed before) is missing_key, the identical second one "
                        "missing_key + keyless_duplicate.",
    "bulk.pcap": "Computed by expected_alerts.py: key_conflict for every changed-description reuse (400), "
                 "missing_key for every keyless POST /v1/charges after the first keyed POST /v1/charges of the "
                 "capture (any scope), keyless_duplicate when it repeats the same worker's previous keyless body "
                 "within 60 s; retries of keyed requests are plain (same bytes, replayed); /search and /login "
                 "never keyed: quiet.",
    "curl-basic.pcap": "Only first uses and one plain form retry (replayed); keyless POST /search and /login "
                       "were never keyed: no alert.",
    "curl-chunked-expect.pcap": "Plain retries only: the gzip retry has identical decoded bytes, and the "
                                "chunked body re-sent with Content-Length has the same decoded bytes. Key D "
                                "carries the same canonical body as key B but B ended 200, so it is not "
                                "key_churn.",
    "requests-retry-same-key.pcap": "Plain retries only (same key, same bytes, same id); the 503 first attempt "
                                    "is not a stored result, so its same-key retry answered 200 is not compared.",
    "requests-retry-same-key.pcapng": "Same transactions as requests-retry-same-key.pcap: no alert.",
    "requests-key-conflict.pcap": "Key K reused with another amount (400) and on /v1/refunds (400): two "
                                  "key_conflict; the original retried is a plain replay; PATCH key K2 with "
                                  "another email: key_conflict. All conflicts rejected, so no response-side kind.",
    "requests-key-reencoded.pcap": "Same canonical request in other bytes: members reordered and re-indented "
                                   "JSON (key K1, twice), form parameters reordered (K2): key_reencoded each; "
                                   "the gzip-only difference (K3) has identical decoded bytes: plain retry.",
    "requests-conflict-accepted.pcap": "The conflicting amount is answered 200 with a new id: key_conflict + "
                                       "conflict_accepted; the original retried gets the stored id: plain.",
    "requests-conflict-replayed.pcap": "The conflicting amount is answered 200 with the stored id and "
                                       "Idempotent-Replayed: key_conflict + conflict_replayed.",
    "requests-no-idempotency.pcap": "Same key, same request, first answer 200 (stored result), retry answered "
                                    "200 with another id: replay_mismatch, for the bare key and for the quoted "
                                    "key (reported unquoted).",
    "requests-replay-drift.pcap": "Replays keep the id and status but 'created' differs from the stored body "
                                  "each time: replay_drift twice.",
    "requests-key-churn.pcap": "K2 carries K1's request while K1 is still in flight (the client FIN does not end "
                               "it; the server answers 1.5 s after): key_churn with key K2; K4 repeats K3's "
                               "request after K3's 503: key_churn with key K4.",
    "requests-keyless-duplicate.pcap": "POST /v1/charges was keyed first; the two keyless copies are missing_key "
                                       "and missing_key + keyless_duplicate; /search, /login and /v1/customers "
                                       "were never keyed: quiet.",
    "requests-invalid-keys.pcap": "Empty value (key \"\", not tracked), 300- and 256-byte keys, two "
                                  "Idempotency-Key lines and Idempotency-Key + X-Idempotency-Key (key = first "
                                  "value): invalid_key each. The 255-byte key and X-Idempotency-Key alone are "
                                  "valid. All keys differ; the requests share one body but none ended unanswered, "
                                  "5xx or 409 (400 and 200), so no key_churn.",
    "requests-concurrent.pcap": "The second copy of key K arrives while the first (slow=800) is in flight: "
                                "concurrent_reuse (server 409); its retry 1.2 s later gets the stored id: plain.",
    "stripe-sdk.pcap": "The SDK's retry after 503 keeps the key (plain), the application retry is replayed, the "
                       "refund carries an SDK-generated key: no alert.",
    "ipv6.pcap": "curl and requests send the same Basic credential and Host, so one scope: the requests copy of "
                 "key K with amount 1700 is key_conflict (400); the keyless pair to the keyed /v1/charges is "
                 "missing_key, then missing_key + keyless_duplicate.",
    "httpx-retries.pcap": "httpx: K1's first attempt was read and its connection closed without an answer; the "
                          "retry with K1 on a new connection is a plain retry; K2's 500 is not a stored result, "
                          "so its same-key retry (200) is plain; K1 again is replayed with the same id. No alert.",
    "raw-pipelined-chunked.pcap": "Three pipelined keyed POSTs with distinct keys (one chunked, with a chunk "
                                  "extension and a trailer) are first uses; the keyless POST /v1/charges after "
                                  "them is missing_key (POST /v1/charges was keyed by the first pipelined request).",
    "late-retry.pcap": "With --window 1s the same request and key 1.5 s after the first is after the window and "
                       "within twice the window: late_retry. (With the default 24 h window it is a plain retry "
                       "and nothing fires.)",
    "get-only.pcap": "Only GETs, none with a key: no alert (GET is never a watched method).",
    "search-only.pcap": "Keyless POST /search and /login repeated identically within a second, but no request "
                        "with a key ever reached them: not watched, no alert.",
    "stripe-sdk-retry.pcap": "stripe SDK retries with the first attempt's key after a dropped connection (twice, "
                             "one with an SDK-generated key), after a 409 and after a 500: plain retries, no "
                             "stored result before them. No alert.",
    "demo.pcap": "D1 reused with another amount (400): key_conflict; D2 reused with another amount answered 200 "
                 "with a new id: key_conflict + conflict_accepted; D3 retried, answered with another id: "
                 "replay_mismatch; a 300-byte key: invalid_key; two identical keyless POST /v1/charges: "
                 "missing_key, then missing_key + keyless_duplicate; D5 repeats D4's request while D4 (slow, "
                 "client timed out) is in flight: key_churn with key D5.",
    "fleet.pcap": "Two gateways (ports 18081, 18082), one backend sharing its store, every request with Host "
                  "api.example.test and one credential, so one scope over both ports: K_RETRY sent again through "
                  "gateway 2 is replayed with the same id (plain retry); K_CONFLICT with amount 2500 through "
                  "gateway 2 is key_conflict (400); K_REPLAY retried through gateway 2 gets another id "
                  "(no-idempotency): replay_mismatch; the keyless POST /v1/refunds through gateway 2 after the "
                  "keyed one through gateway 1 is missing_key. Every alert is about a gateway 2 request; "
                  "each port on its own raises nothing.",
}


# -- TCP with timestamps ------------------------------------------------------
class Dir:
    def __init__(self):
        self.segs = {}
        self.isn = None
        self.fin = None  # first FIN or RST time
        self.buf = b""
        self.offs = []
        self.tss = []

    def build(self):
        if not self.segs:
            return
        nxt = self.isn if self.isn is not None else min(self.segs)
        buf = bytearray()
        for seq in sorted(self.segs, key=lambda s: (s - nxt) & 0xFFFFFFFF):
            ts, p = self.segs[seq]
            rel = (seq - nxt) & 0xFFFFFFFF
            if rel > 0x7FFFFFFF:
                skip = (nxt - seq) & 0xFFFFFFFF
                if skip >= len(p):
                    continue
                p = p[skip:]
            elif rel > 0:
                raise ValueError("gap in stream")
            self.offs.append(len(buf))
            self.tss.append(ts)
            buf += p
            nxt = (nxt + len(p)) & 0xFFFFFFFF
        self.buf = bytes(buf)

    def ts_at(self, off):
        i = bisect.bisect_right(self.offs, off) - 1
        return self.tss[max(i, 0)]


def connections(path, server_port):
    ports = {server_port} if isinstance(server_port, int) else set(server_port)
    conns = {}
    first_ts = None
    for ts, fam, src, sport, dst, dport, seq, flags, payload in ce.tcp_segments(path):
        if first_ts is None:
            first_ts = ts
        if dport in ports:
            key, d = (src, sport, dst, dport), "c2s"
        elif sport in ports:
            key, d = (dst, dport, src, sport), "s2c"
        else:
            continue
        c = conns.setdefault(key, {"c2s": Dir(), "s2c": Dir(), "ip": src if d == "c2s" else dst,
                                   "port": key[1], "fam": fam})
        dd = c[d]
        if flags & 0x02:
            dd.isn = seq + 1
            continue
        if payload:
            dd.segs.setdefault(seq, (ts, payload))
        if flags & 0x05 and dd.fin is None:  # FIN or RST
            dd.fin = ts
    for c in conns.values():
        c["c2s"].build()
        c["s2c"].build()
    return conns, first_ts


def parse_message(buf, off, is_request, allow_eof):
    end = buf.find(b"\r\n\r\n", off)
    if end < 0:
        return None
    lines = buf[off:end].split(b"\r\n")
    headers = []
    for ln in lines[1:]:
        name, _, value = ln.partition(b":")
        headers.append((name.strip().lower().decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    start_line = lines[0].decode("latin-1")
    p = end + 4
    h = {}
    for n, v in headers:
        h.setdefault(n, v)
    if not is_request:
        status = int(start_line.split(" ")[1])
        if 100 <= status < 200 or status in (204, 304):
            return start_line, headers, b"", off, p
    te = h.get("transfer-encoding", "").lower()
    if "chunked" in te:
        body = bytearray()
        while True:
            eol = buf.index(b"\r\n", p)
            size = int(buf[p:eol].split(b";")[0].strip(), 16)
            p = eol + 2
            if size == 0:
                while True:
                    eol = buf.index(b"\r\n", p)
                    blank = eol == p
                    p = eol + 2
                    if blank:
                        break
                break
            body += buf[p:p + size]
            p += size + 2
        return start_line, headers, bytes(body), off, p
    if "content-length" in h:
        n = int(h["content-length"])
        return start_line, headers, buf[p:p + n], off, p + n
    if allow_eof:
        return start_line, headers, buf[p:], off, len(buf)
    return start_line, headers, b"", off, p


def transactions(path, server_port):
    conns, first_ts = connections(path, server_port)
    txs = []
    for c in conns.values():
        c2s, s2c = c["c2s"], c["s2c"]
        reqs, off = [], 0
        while off < len(c2s.buf):
            m = parse_message(c2s.buf, off, True, False)
            if m is None:
                break
            line, headers, body, start, off = m
            method, target, _ = line.split(" ", 2)
            reqs.append({"method": method, "target": target, "headers": headers, "body": body,
                         "t_req": c2s.ts_at(start), "src_port": c["port"], "src_ip": c["ip"]})
        resps, off = [], 0
        while off < len(s2c.buf):
            m = parse_message(s2c.buf, off, False, True)
            if m is None:
                break
            line, headers, body, start, off = m
            status = int(line.split(" ")[1])
            if 100 <= status < 200:
                continue
            resps.append({"status": status, "headers": headers, "body": body, "t_resp": s2c.ts_at(off - 1)})
        for i, r in enumerate(reqs):
            r["resp"] = resps[i] if i < len(resps) else None
            if r["resp"] is not None:
                r["t_end"] = r["resp"]["t_resp"]
                r["unanswered"] = False
            elif s2c.fin is not None and s2c.fin >= r["t_req"]:
                r["t_end"] = s2c.fin  # server closed or reset without a response
                r["unanswered"] = True
            else:
                r["t_end"] = None  # still in flight at the end of the capture
                r["unanswered"] = True
            txs.append(r)
    txs.sort(key=lambda r: (r["t_req"], r["src_port"]))
    return txs, first_ts


# -- request identity ---------------------------------------------------------
def hdr(headers, name):
    for n, v in headers:
        if n == name:
            return v
    return None


def unquote_key(v):
    v = v.strip(" \t")
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        inner, out, i = v[1:-1], [], 0
        while i < len(inner):
            if inner[i] == "\\" and i + 1 < len(inner):
                i += 1
            out.append(inner[i])
            i += 1
        return "".join(out), True
    return v, False


def decode_body(r):
    body = r["body"]
    enc = (hdr(r["headers"], "content-encoding") or "").strip().lower()
    if enc == "gzip":
        return gzip.decompress(body)
    if enc == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -15)
    return body


def canonical(r, decoded, limit):
    if len(decoded) > limit:
        return ("bytes", decoded)
    ctype = (hdr(r["headers"], "content-type") or "").split(";")[0].strip().lower()
    if ctype == "application/json" or ctype.endswith("+json"):
        try:
            obj = json.loads(decoded.decode("utf-8"))
        except ValueError:
            return ("bytes", decoded)

        def no_floats(o):
            if isinstance(o, float):
                raise ValueError("float: RFC 8785 number formatting not modelled")
            if isinstance(o, dict):
                for v in o.values():
                    no_floats(v)
            if isinstance(o, list):
                for v in o:
                    no_floats(v)
        no_floats(obj)
        return ("json", json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    if ctype == "application/x-www-form-urlencoded":
        pairs = parse_qsl(decoded.decode("utf-8"), keep_blank_values=True)
        return ("form", tuple(sorted(pairs, key=lambda kv: kv[0])))
    return ("bytes", decoded)


def path_identity(target):
    path, _, q = target.partition("?")
    return path + ("?" + "&".join(sorted(q.split("&"))) if q else "")


def fold(seg):
    if seg.isdigit():
        return "{id}"
    hexd = "0123456789abcdefABCDEF"
    parts = seg.split("-")
    if [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(all(ch in hexd for ch in p) for p in parts):
        return "{id}"
    if len(seg) >= 16 and all(ch in hexd for ch in seg):
        return "{id}"
    word, us, rest = seg.partition("_")
    if us and word.isalpha() and len(rest) >= 8 and any(ch.isdigit() or ch.isupper() for ch in rest):
        return word + "_{id}"
    return seg


def template(target):
    path = target.partition("?")[0]
    return "/".join(fold(s) if s else s for s in path.split("/"))


def resource_id(resp):
    try:
        obj = json.loads(resp["body"])
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            return obj["id"]
    except ValueError:
        pass
    return hdr(resp["headers"], "location")


def replayed(resp):
    return (hdr(resp["headers"], "idempotent-replayed") or "").strip().lower() == "true"


# -- the tracker --------------------------------------------------------------
def analyse(path, server_port, opts):
    W, CHURN, DUP, LIMIT = opts["window"], opts["churn"], opts["dup"], opts["canon_limit"]
    txs, first_ts = transactions(path, server_port)
    for i, r in enumerate(txs):
        r["i"] = i
        h = r["headers"]
        host = hdr(h, "host")
        auth = hdr(h, "authorization")
        acct = hdr(h, "stripe-context") or hdr(h, "stripe-account")
        r["scope"] = (host, auth, acct)
        r["decoded"] = decode_body(r)
        r["canon"] = canonical(r, r["decoded"], LIMIT)
        r["ident"] = (r["method"], path_identity(r["target"]), r["canon"])
        lines = [(n, v) for n, v in h if n in KEY_HEADERS]
        r["key_lines"] = lines
        r["key"] = unquote_key(lines[0][1])[0] if lines else None
        r["alerts"] = []

    events = []
    for r in txs:
        events.append((r["t_req"], 1, r["i"], "req"))
        if r["resp"] is not None:
            events.append((r["resp"]["t_resp"], 0, r["i"], "resp"))
    events.sort()

    keys = {}  # (scope, key) -> entry
    learned = {}  # (host, method, template) -> last time a keyed request reached it
    keyless = []  # earlier keyless requests (for keyless_duplicate)
    keyed = []  # earlier tracked keyed requests (for key_churn)

    for t, _, i, what in events:
        r = txs[i]
        if what == "req":
            lines, key = r["key_lines"], r["key"]
            if lines:
                learned[(r["scope"][0], r["method"], template(r["target"]))] = t
                bad = len(lines) > 1 or key == "" or len(key.encode("utf-8")) > 255
                quoted = unquote_key(lines[0][1])[1]
                lo = 0x20 if quoted else 0x21
                if not bad and any(not (lo <= ord(ch) <= 0x7E) for ch in key):
                    bad = True
                if bad:
                    r["alerts"].append("invalid_key")
            if lines and key != "":
                sk = (r["scope"], key)
                e = keys.get(sk)
                if e is not None and t - e["first"]["t_req"] > 2 * W:
                    e = None  # expired
                if e is None:
                    keys[sk] = {"first": r, "stored": None, "txs": [r]}
                    r["role"] = "first"
                else:
                    f = e["first"]
                    late = t - f["t_req"] > W
                    if late:
                        if r["ident"] == f["ident"]:
                            r["alerts"].append("late_retry")
                        keys[sk] = {"first": r, "stored": None, "txs": [r]}
                        r["role"] = "late"
                        r["entry"] = keys[sk]
                    else:
                        if r["ident"] != f["ident"]:
                            r["alerts"].append("key_conflict")
                            r["role"] = "conflict"
                        else:
                            if r["decoded"] != f["decoded"]:
                                r["alerts"].append("key_reencoded")
                                r["reencoded"] = True
                            r["role"] = "retry"
                            r["stored_at_req"] = e["stored"]
                        if any(o is not r and (o["t_end"] is None or o["t_end"] > t) for o in e["txs"]):
                            r["alerts"].append("concurrent_reuse")
                        e["txs"].append(r)
                        r["entry"] = e
                if r.get("role") == "first":
                    r["entry"] = keys[sk]
                # key_churn
                for o in keyed:
                    if o["key"] == key or o["scope"] != r["scope"] or o["ident"] != r["ident"]:
                        continue
                    running = o["t_end"] is None or o["t_end"] > t
                    ended_bad = (o["t_end"] is not None and t - o["t_end"] <= CHURN and
                                 (o["unanswered"] or o["resp"]["status"] >= 500 or o["resp"]["status"] == 409))
                    if running or ended_bad:
                        r["alerts"].append("key_churn")
                        break
                keyed.append(r)
            elif not lines and r["method"] in WATCHED_METHODS:
                ep = (r["scope"][0], r["method"], template(r["target"]))
                if ep in learned and t - learned[ep] <= W:
                    r["alerts"].append("missing_key")
                    if any(o["scope"] == r["scope"] and o["ident"] == r["ident"] and t - o["t_req"] <= DUP
                           for o in keyless):
                        r["alerts"].append("keyless_duplicate")
                keyless.append(r)
        else:  # response complete
            resp = r["resp"]
            e = r.get("entry")
            if e is None:
                continue
            st = resp["status"]
            role = r.get("role")
            if role in ("first", "retry", "late") and e["stored"] is None and 200 <= st < 500 \
                    and st not in NOT_STORED:
                e["stored"] = r  # the key's stored result (role implies the key's own identity)
                continue
            if role == "conflict" and 200 <= st < 300:
                s = e["stored"]
                if s is None:
                    continue  # nothing stored to compare with (not in these captures)
                a, b = resource_id(resp), resource_id(s["resp"])
                if a is not None or b is not None:
                    same = a == b
                else:
                    same = resp["body"] == s["resp"]["body"]
                if same or replayed(resp):
                    r["alerts"].append("conflict_replayed")
                else:
                    r["alerts"].append("conflict_accepted")
            elif role == "retry" and r.get("stored_at_req") is not None:
                s = r["stored_at_req"]["resp"]
                if 200 <= s["status"] < 300 and 400 <= st < 500:
                    rejected = st in (400, 409, 422)
                    if not (r.get("reencoded") and rejected):
                        r["alerts"].append("replay_mismatch")
                elif st < 500 and st not in NOT_STORED:
                    if resource_id(resp) != resource_id(s) or (st // 100 != s["status"] // 100):
                        r["alerts"].append("replay_mismatch")
                    elif resp["body"] != s["body"]:
                        r["alerts"].append("replay_drift")

    out = []
    for r in txs:
        for k in sorted(r["alerts"], key=KIND_ORDER.index):
            ts = datetime.fromtimestamp(r["t_req"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            a = {"kind": k, "key": r["key"]}
            if k == "invalid_key" and len(r["key_lines"]) > 1:
                a["all_keys"] = [unquote_key(v)[0] for _, v in r["key_lines"]]
            a.update(method=r["method"], path=r["target"], src_port=r["src_port"], request_ts=ts)
            out.append(a)
    return out, len(txs)


def parse_opts(args):
    o = dict(DEFAULTS)
    i = 0
    while i < len(args):
        if args[i] == "--window":
            v = args[i + 1]
            mult = {"s": 1, "m": 60, "h": 3600, "d": 86400}
            o["window"] = float(v[:-1]) * mult[v[-1]] if v[-1] in mult else float(v)
            i += 2
        else:
            raise ValueError("option not modelled: " + args[i])
    return o


def main():
    argv = sys.argv[1:]
    check = argv and argv[0] == "--check"
    if check:
        argv = argv[1:]
    exp_path, capdir, out_path = argv
    exp = json.load(open(exp_path))["captures"]
    caps = {}
    for name in sorted(exp):
        opts = OPTIONS.get(name, [])
        alerts, n = analyse(os.path.join(capdir, name), ce.server_ports(exp[name]), parse_opts(opts))
        if n != exp[name]["transaction_count"]:
            sys.exit("%s: %d transactions parsed, EXPECTED.json has %d" % (name, n, exp[name]["transaction_count"]))
        caps[name] = {"options": opts, "alerts": alerts, "why": WHY.get(name, "")}
        kinds = {}
        for a in alerts:
            kinds[a["kind"]] = kinds.get(a["kind"], 0) + 1
        print("%-34s %s" % (name, ", ".join("%s x%d" % kv for kv in sorted(kinds.items())) or "-"))
    doc = ("The alerts SPEC.md requires for each capture, with the options given ([] = defaults), in the "
           "order of the request each alert is about (request_ts: time of the request's first byte; several "
           "alerts for one request are listed request-side first and should be compared as a multiset). "
           "kind and key are the contract; method, path, src_port and request_ts only identify the request "
           "(they change when a capture is re-recorded). Written by expected_alerts.py, a reference model of "
           "the spec; checked by hand for every capture except bulk.pcap. Where the spec is open: " +
           " ".join(OPEN))
    if check:
        old = json.load(open(out_path))["captures"]
        bad = False
        for name, c in caps.items():
            a = [(x["kind"], x["key"]) for x in c["alerts"]]
            b = [(x["kind"], x["key"]) for x in old.get(name, {}).get("alerts", [])]
            if a != b or name not in old:
                print("DIFFERS: " + name)
                bad = True
        sys.exit(1 if bad else 0)
    parts = ['{\n  "_doc": %s,\n  "open_questions": %s,\n  "captures": {' % (json.dumps(doc), json.dumps(OPEN))]
    names = sorted(caps)
    for i, name in enumerate(names):
        c = caps[name]
        al = ",\n".join("        " + json.dumps(a) for a in c["alerts"])
        parts.append('\n    %s: {"options": %s, "why": %s,\n      "alerts": [%s]}%s'
                     % (json.dumps(name), json.dumps(c["options"]), json.dumps(c["why"]),
                        ("\n" + al + "\n      ") if al else "", "," if i < len(names) - 1 else ""))
    parts.append("\n  }\n}\n")
    text = "".join(parts)
    json.loads(text)
    with open(out_path + ".tmp", "w") as f:
        f.write(text)
    os.replace(out_path + ".tmp", out_path)


if __name__ == "__main__":
    main()
