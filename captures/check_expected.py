#!/usr/bin/env python3
"""Independent check of EXPECTED.json against the capture files (stdlib and dpkt).

Reads each capture (pcap in either byte order, us or ns; pcapng: pcaputil.py), decodes the
link layer (Ethernet, Linux SLL, Linux SLL2, null/loopback, raw IP), IPv4 and
IPv6, reassembles TCP per direction (by sequence number, dropping duplicates),
parses HTTP/1.1 requests and responses (Content-Length and chunked bodies,
1xx interim responses) and compares the transactions found on the wire with
the ones the server logged, connection by connection.

usage: check_expected.py EXPECTED.json CAPTURE_DIR [NAME...]
exit 0 when everything matches, 1 otherwise.
"""

import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaputil  # noqa: E402

FIELDS = ("method", "host", "uri", "request_body_len", "status",
          "response_body_len", "idempotency_key", "client_port", "server_port",
          "request_chunked", "response_chunked", "interim_statuses")
KEY_HEADERS = (b"idempotency-key", b"x-idempotency-key")


# -- capture files (pcaputil.py reads them) -----------------------------------
read_frames = pcaputil.read_frames
LINKTYPE_NAMES = pcaputil.LINKTYPE_NAMES


def link_payload(lt, b):
    """Return (ethertype-ish, ip bytes)."""
    if lt == 1:
        et = struct.unpack("!H", b[12:14])[0]
        off = 14
        while et in (0x8100, 0x88A8):
            et = struct.unpack("!H", b[off + 2:off + 4])[0]
            off += 4
        return et, b[off:]
    if lt == 113:
        return struct.unpack("!H", b[14:16])[0], b[16:]
    if lt == 276:
        return struct.unpack("!H", b[0:2])[0], b[20:]
    if lt == 0:
        fam = struct.unpack("=I", b[:4])[0]
        return (0x0800 if fam == 2 else 0x86DD), b[4:]
    if lt in (12, 101):
        return (0x0800 if b[0] >> 4 == 4 else 0x86DD), b
    raise ValueError("unsupported linktype %d" % lt)


def tcp_segments(path):
    for lt, ts, frame in read_frames(path):
        et, ip = link_payload(lt, frame)
        if et == 0x0800:
            ihl = (ip[0] & 15) * 4
            total = struct.unpack("!H", ip[2:4])[0]
            if ip[9] != 6:
                continue
            src, dst = ip[12:16], ip[16:20]
            tcp = ip[ihl:total]
            fam = 4
        elif et == 0x86DD:
            if ip[6] != 6:
                continue  # no extension headers on our loopback traffic
            plen = struct.unpack("!H", ip[4:6])[0]
            src, dst = ip[8:24], ip[24:40]
            tcp = ip[40:40 + plen]
            fam = 6
        else:
            continue
        sport, dport, seq, _ack = struct.unpack("!HHII", tcp[:12])
        doff = (tcp[12] >> 4) * 4
        flags = tcp[13]
        yield ts, fam, src, sport, dst, dport, seq, flags, tcp[doff:]


def server_ports(entry):
    """The server ports of an EXPECTED.json entry: server_ports when several, else server_port."""
    return entry.get("server_ports") or [entry["server_port"]]


def streams(path, server_port):
    """Return {conn: {"c2s": bytes, "s2c": bytes, "client_port": p, "server_port": p, "start": ts}}.

    server_port: one port or a list of ports."""
    ports = {server_port} if isinstance(server_port, int) else set(server_port)
    conns = {}
    for ts, fam, src, sport, dst, dport, seq, flags, payload in tcp_segments(path):
        if dport in ports:
            key = (src, sport, dst, dport)
            d = "c2s"
        elif sport in ports:
            key = (dst, dport, src, sport)
            d = "s2c"
        else:
            continue
        c = conns.setdefault(key, {"client_port": key[1], "start": ts, "c2s": {}, "s2c": {},
                                   "isn": {}})
        if flags & 0x02:  # SYN
            c["isn"][d] = seq + 1
            continue
        if payload:
            c[d].setdefault(seq, payload)  # first copy wins: retransmissions dropped
    out = {}
    for key, c in conns.items():
        res = {"client_port": c["client_port"], "server_port": key[3], "start": c["start"]}
        for d in ("c2s", "s2c"):
            segs = c[d]
            if not segs:
                res[d] = b""
                continue
            nxt = c["isn"].get(d, min(segs))
            buf = bytearray()
            for seq in sorted(segs, key=lambda s: (s - nxt) & 0xFFFFFFFF):
                p = segs[seq]
                rel = (seq - nxt) & 0xFFFFFFFF
                if rel > 0x7FFFFFFF:  # starts before nxt: overlap
                    skip = (nxt - seq) & 0xFFFFFFFF
                    if skip >= len(p):
                        continue
                    p = p[skip:]
                elif rel > 0:
                    raise ValueError("gap in stream %r" % (key,))
                buf += p
                nxt = (nxt + len(p)) & 0xFFFFFFFF
            res[d] = bytes(buf)
        out[key] = res
    return out


# -- HTTP --------------------------------------------------------------------
def parse_head(buf, off):
    end = buf.find(b"\r\n\r\n", off)
    if end < 0:
        raise ValueError("incomplete head at %d" % off)
    lines = buf[off:end].split(b"\r\n")
    headers = []
    for ln in lines[1:]:
        name, _, value = ln.partition(b":")
        headers.append((name.strip().lower(), value.strip(b" \t")))
    return lines[0], headers, end + 4


def hget(headers, name):
    for n, v in headers:
        if n == name:
            return v
    return None


def read_body(buf, off, headers, allow_eof):
    te = hget(headers, b"transfer-encoding")
    if te is not None and b"chunked" in te.lower():
        total = 0
        while True:
            eol = buf.index(b"\r\n", off)
            size = int(buf[off:eol].split(b";")[0].strip(), 16)
            off = eol + 2
            if size == 0:
                while True:
                    eol = buf.index(b"\r\n", off)
                    blank = eol == off
                    off = eol + 2
                    if blank:
                        break
                return total, off, True
            total += size
            off += size + 2
    cl = hget(headers, b"content-length")
    if cl is not None:
        n = int(cl)
        if off + n > len(buf):
            raise ValueError("truncated body")
        return n, off + n, False
    if allow_eof:
        return len(buf) - off, len(buf), False
    return 0, off, False


def unquote(v):
    v = v.strip(" \t")
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        inner, out, i = v[1:-1], [], 0
        while i < len(inner):
            if inner[i] == "\\" and i + 1 < len(inner):
                i += 1
            out.append(inner[i])
            i += 1
        return "".join(out)
    return v


def http_transactions(conn, server_port):
    c2s, s2c = conn["c2s"], conn["s2c"]
    reqs, off = [], 0
    while off < len(c2s):
        line, headers, off = parse_head(c2s, off)
        method, uri, _ver = line.decode("latin-1").split(" ", 2)
        blen, off, chunked = read_body(c2s, off, headers, False)
        keys = [v.decode("latin-1") for n, v in headers if n in KEY_HEADERS]
        host = hget(headers, b"host")
        reqs.append({"method": method, "uri": uri,
                     "host": host.decode("latin-1") if host is not None else None,
                     "request_body_len": blen, "request_chunked": chunked,
                     "idempotency_key": unquote(keys[0]) if keys else None,
                     "client_port": conn["client_port"], "server_port": server_port})
    resps, off, interim = [], 0, []
    while off < len(s2c):
        line, headers, off = parse_head(s2c, off)
        status = int(line.split(b" ")[1])
        if 100 <= status < 200:
            interim.append(status)
            continue
        if status in (204, 304):
            blen, chunked = 0, False
        else:
            blen, off, chunked = read_body(s2c, off, headers, True)
        resps.append({"status": status, "response_body_len": blen, "response_chunked": chunked,
                      "interim_statuses": interim})
        interim = []
    if len(resps) > len(reqs):
        raise ValueError("more responses than requests on port %d" % conn["client_port"])
    out = []
    for i, r in enumerate(reqs):
        t = dict(r)
        t.update(resps[i] if i < len(resps) else
                 {"status": None, "response_body_len": None, "response_chunked": None,
                  "interim_statuses": []})
        out.append(t)
    return out


def check(name, entry, capdir):
    path = os.path.join(capdir, name)
    txs = entry["transactions"]
    ports = server_ports(entry)
    problems = []
    lts = {lt for lt, _, _ in read_frames(path)}
    want_lt = entry.get("linktype")
    if want_lt and {LINKTYPE_NAMES.get(x, str(x)) for x in lts} != {want_lt}:
        problems.append("linktype %s, expected %s" % (lts, want_lt))
    wire = {}
    for conn in streams(path, ports).values():
        wire.setdefault(conn["client_port"], []).extend(http_transactions(conn, conn["server_port"]))
    logged = {}
    for t in txs:
        logged.setdefault(t["client_port"], []).append(t)
    if set(wire) != set(logged):
        problems.append("connections differ: wire %s logged %s" % (sorted(wire), sorted(logged)))
    n = 0
    for port in sorted(set(wire) & set(logged)):
        w, lg = wire[port], logged[port]
        if len(w) != len(lg):
            problems.append("port %d: %d transactions on the wire, %d logged" % (port, len(w), len(lg)))
            continue
        for a, b in zip(w, lg):
            n += 1
            for f in FIELDS:
                if a.get(f) != b.get(f):
                    problems.append("port %d %s %s: %s wire=%r logged=%r"
                                    % (port, b["method"], b["uri"][:40], f, a.get(f), b.get(f)))
    if len(txs) != entry.get("transaction_count", len(txs)):
        problems.append("transaction_count mismatch")
    return n, problems


def main():
    exp = json.load(open(sys.argv[1]))
    capdir = sys.argv[2]
    names = sys.argv[3:] or sorted(exp["captures"])
    bad = False
    for name in names:
        try:
            n, problems = check(name, exp["captures"][name], capdir)
        except Exception as e:  # noqa: BLE001
            n, problems = 0, ["error: %r" % (e,)]
        status = "ok" if not problems else "MISMATCH"
        print("%-36s %5d transactions  %s" % (name, n, status))
        for p in problems[:20]:
            print("    " + p)
        bad |= bool(problems)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
