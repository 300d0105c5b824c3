#!/usr/bin/env python3
"""Write tls/TSHARK.json: what tshark decrypts in each TLS capture with its key log.

usage: tshark_requests.py OUT.json MANIFEST.tsv      (called by record_tls.sh)
MANIFEST lines: capture-name <TAB> server-log <TAB> how-recorded

Per capture, tshark (-o tls.keylog_file:NAME.keys) gives the HTTP requests it
decrypted (method, URI, Idempotency-Key value as sent) and, per TCP connection,
the negotiated TLS version and cipher suite, whether the handshake was a
resumption (no Certificate message, TLS 1.2) and whether the key log holds
the connection's ClientHello random.  The script then checks that, connection
by connection, the requests tshark decrypted are the ones server.py logged,
and that a connection shows no request only when its secrets are missing from
the key log; it exits 1 otherwise.  Entries of OUT.json not in the manifest are
kept (a partial re-recording updates only its own captures).
"""
import collections
import json
import os
import subprocess
import sys

SUITES = {0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384",
          0x1303: "TLS_CHACHA20_POLY1305_SHA256",
          0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
          0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"}
VERSIONS = {0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}


def tshark(pcap, keys, display, fields):
    """One list of values per field, per matching packet (tshark -T json)."""
    # Out-of-order reassembly on (off by default): a lost segment's retransmission then
    # completes its TLS record wherever it comes.
    cmd = ["tshark", "-r", pcap, "-o", "tls.keylog_file:" + keys, "-o", "tcp.reassemble_out_of_order:TRUE",
           "-Y", display, "-T", "json"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = []
    for pkt in json.loads(out or "[]"):
        layer = pkt["_source"]["layers"]
        rows.append([layer.get(f, []) for f in fields])
    return rows


def num(v):
    return int(v, 0)


def key_value(lines):
    """The first Idempotency-Key / X-Idempotency-Key value as sent, or None."""
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip().lower() in ("idempotency-key", "x-idempotency-key"):
            return value.strip()
    return None


def unquote(v):
    if v is not None and len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return v[1:-1]
    return v


def capture_entry(capdir, name, keys_file=None):
    pcap = os.path.join(capdir, name + ".pcap")
    keys = os.path.join(capdir, keys_file or name + ".keys")
    with open(keys) as f:
        logged_randoms = {ln.split()[1].lower() for ln in f if len(ln.split()) == 3}
    conns = collections.OrderedDict()
    for stream, port, rnd in tshark(pcap, keys, "tls.handshake.type == 1",
                                    ["tcp.stream", "tcp.srcport", "tls.handshake.random"]):
        conns[stream[0]] = collections.OrderedDict([
            ("client_port", int(port[0])), ("tls_version", None), ("cipher_suite", None),
            ("resumed", None), ("keys_in_log", rnd[0].replace(":", "").lower() in logged_randoms),
            ("requests_decrypted", 0)])
    for stream, suite, hver, sver in tshark(pcap, keys, "tls.handshake.type == 2",
                                            ["tcp.stream", "tls.handshake.ciphersuite", "tls.handshake.version",
                                             "tls.handshake.extensions.supported_version"]):
        c = conns[stream[0]]
        s = num(suite[0])
        c["cipher_suite"] = SUITES.get(s, "0x%04x" % s)
        c["tls_version"] = VERSIONS.get(num((sver or hver)[0]), (sver or hver)[0])
    certs = {s[0] for (s,) in tshark(pcap, keys, "tls.handshake.type == 11", ["tcp.stream"])}
    for stream, c in conns.items():
        # TLS 1.3 carries the Certificate encrypted: only known when decrypted
        if c["tls_version"] == "TLSv1.2" or c["keys_in_log"]:
            c["resumed"] = stream not in certs
    reqs = []
    for stream, port, frame, method, uri, lines in tshark(
            pcap, keys, "http.request",
            ["tcp.stream", "tcp.srcport", "frame.number", "http.request.method", "http.request.uri",
             "http.request.line"]):
        # one TLS record could in principle hold several requests: tshark then lists them in order
        for i, m in enumerate(method):
            reqs.append(collections.OrderedDict([
                ("method", m), ("path", uri[i]), ("idempotency_key", key_value(lines)),
                ("client_port", int(port[0])), ("frame", int(frame[0]))]))
            conns[stream[0]]["requests_decrypted"] += 1
    return conns, reqs


def check(name, conns, reqs, recs):
    """Problems found comparing tshark's requests with server.py's log, connection by connection."""
    bad = []
    for c in conns.values():
        port = c["client_port"]
        mine = [(r["method"], r["path"], unquote(r["idempotency_key"])) for r in reqs if r["client_port"] == port]
        logged = [(r["method"], r["uri"], r["idempotency_key"]) for r in recs if r["client_port"] == port]
        if not mine and not c["keys_in_log"]:
            continue  # no secrets for this connection: nothing can be decrypted
        if mine != logged:
            bad.append("%s: client port %d: tshark %s, server %s" % (name, port, mine, logged))
        for r in recs:
            if r["client_port"] == port and r.get("tls_cipher") and c["cipher_suite"]:
                if r["tls_version"] != c["tls_version"]:
                    bad.append("%s: port %d: server says %s, tshark %s" % (name, port, r["tls_version"],
                                                                         c["tls_version"]))
                if c["resumed"] is not None and r["tls_resumed"] != c["resumed"]:
                    bad.append("%s: port %d: server says resumed %s, tshark %s" % (name, port, r["tls_resumed"],
                                                                                 c["resumed"]))
    if name.endswith("-resumed") and not any(c["resumed"] for c in conns.values()):
        bad.append("%s: no connection resumed its TLS session" % name)
    if {r["client_port"] for r in recs} != {c["client_port"] for c in conns.values()}:
        bad.append("%s: connections differ between capture and server log" % name)
    return bad


def main():
    out_path, manifest = sys.argv[1], sys.argv[2]
    capdir = os.path.dirname(os.path.abspath(out_path))
    caps = {}
    if os.path.exists(out_path):
        caps = json.load(open(out_path)).get("captures", {})
    problems = []
    for line in open(manifest):
        name, log, how = line.rstrip("\n").split("\t")
        recs = sorted((json.loads(x) for x in open(log) if x.strip()), key=lambda r: (r["t_start"], r["seq"]))
        conns, reqs = capture_entry(capdir, name)
        problems += check(name, conns, reqs, recs)
        undecrypted = [c["client_port"] for c in conns.values() if not c["keys_in_log"]]
        caps[name + ".pcap"] = collections.OrderedDict([
            ("keys", name + ".keys"), ("recorded_with", how),
            ("server_logged", len(recs)), ("tshark_decrypted", len(reqs)),
            ("connections_without_keys", undecrypted),
            ("connections", list(conns.values())), ("requests", reqs)])
        # NAME.full-only.keys (the first connection's lines): Wireshark's session cache
        # decrypts the resumed connections through their session ID or ticket.
        full_only = name + ".full-only.keys"
        if os.path.exists(os.path.join(capdir, full_only)):
            fconns, freqs = capture_entry(capdir, name, full_only)
            if freqs != reqs:
                problems.append("%s: with %s tshark decrypts %d requests, with all keys %d"
                                % (name, full_only, len(freqs), len(reqs)))
            caps[name + ".pcap"]["full_only"] = collections.OrderedDict([
                ("keys", full_only), ("tshark_decrypted", len(freqs)),
                ("connections_without_keys", [c["client_port"] for c in fconns.values()
                                              if not c["keys_in_log"]])])
    doc = ("Written by record_tls.sh (tls/tshark_requests.py). Per TLS capture, the HTTP requests tshark "
           "decrypts with its key log (tshark -r NAME.pcap -o tls.keylog_file:NAME.keys -Y http.request): "
           "method, URI, Idempotency-Key value as sent, client port, frame number of the request's last TLS "
           "record; and per TCP connection the negotiated TLS version and suite (ServerHello), resumed (no "
           "Certificate message; null when unknown), keys_in_log (the key log has its ClientHello random). "
           "full_only: with NAME.full-only.keys (the first connection's lines only), what tshark decrypts "
           "through its session cache (the same requests). "
           "server_logged: requests server.py logged. Checked against server.py's log when written.")
    parts = ['{\n  "_doc": %s,\n  "captures": {' % json.dumps(doc)]
    names = sorted(caps)
    for i, name in enumerate(names):
        c = caps[name]
        meta = ", ".join("%s: %s" % (json.dumps(k), json.dumps(v)) for k, v in c.items()
                         if k not in ("connections", "requests"))
        conl = ",\n".join("      " + json.dumps(x) for x in c["connections"])
        reql = ",\n".join("      " + json.dumps(x) for x in c["requests"])
        parts.append('\n    %s: {%s,\n     "connections": [\n%s\n     ],\n     "requests": [\n%s\n     ]}%s'
                     % (json.dumps(name), meta, conl, reql, "," if i < len(names) - 1 else ""))
    parts.append("\n  }\n}\n")
    text = "".join(parts)
    json.loads(text)
    with open(out_path + ".tmp", "w") as f:
        f.write(text)
    os.replace(out_path + ".tmp", out_path)
    for p in problems:
        print("tshark_requests.py: " + p, file=sys.stderr)
    print("tshark_requests.py: %d captures checked, %d problems" % (len(names), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
