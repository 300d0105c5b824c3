#!/usr/bin/env python3
"""Write h2/TSHARK.json: what tshark sees in each HTTP/2 capture, per connection and per stream.

usage: tshark_streams.py OUT.json MANIFEST.tsv      (called by record_h2.sh)
MANIFEST lines: name <TAB> server-log <TAB> decode <TAB> server-port <TAB> how-recorded
decode: tls (-o tls.keylog_file:NAME.keys), h2 (cleartext prior knowledge:
-d tcp.port==PORT,http2), auto (HTTP/1.1, or h2c upgrade, which tshark follows by itself).

tshark -T pdml is read (not -T json, whose objects repeat keys when a frame has several
headers).  The script checks that the API requests answered on the wire (streams to /v1/ with a
final :status, HTTP/1.1 responses) are as many as server.py logged, and that every
TLS connection was decrypted; it exits 1 otherwise.  Entries of OUT.json not in the
manifest are kept.
"""
import collections
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

FRAME_TYPES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS", 5: "PUSH_PROMISE",
               6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION"}
ERRORS = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
          "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
          "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
SETTINGS = {1: "HEADER_TABLE_SIZE", 2: "ENABLE_PUSH", 3: "MAX_CONCURRENT_STREAMS", 4: "INITIAL_WINDOW_SIZE",
            5: "MAX_FRAME_SIZE", 6: "MAX_HEADER_LIST_SIZE", 8: "ENABLE_CONNECT_PROTOCOL",
            9: "NO_RFC7540_PRIORITIES"}
KEY_HEADERS = ("idempotency-key", "x-idempotency-key")

DOC = ("Written by record_h2.sh (h2/tshark_streams.py) from tshark 4.0 -T pdml: TLS captures with "
       "-o tls.keylog_file:NAME.keys, cleartext prior-knowledge ones with -d tcp.port==SERVER_PORT,http2, "
       "HTTP/1.1 and h2c-upgrade ones as tshark decodes them by itself (it follows the 101 Switching Protocols). "
       "Per capture: decode (tls|h2|auto), server_port, recorded_with, server_logged (requests server.py "
       "logged: the only requests processed; a refused stream, or a stream above a GOAWAY's last_stream_id, "
       "is never forwarded), answered (streams/requests to /v1/ with a final status on the wire; checked equal to "
       "server_logged), connections in capture order. Per connection: client_port, protocol ('h2', "
       "'h2c-upgrade': HTTP/1.1 request with Upgrade: h2c then HTTP/2, 'http/1.1', null: nothing decoded, e.g. a "
       "spare TLS connection Go closed after its handshake), keys_in_log (TLS: the key log has its ClientHello "
       "random; null for cleartext), client_settings and "
       "server_settings (the first non-ACK SETTINGS of each side, by name), goaway (every GOAWAY: sender, "
       "last_stream_id, error), frame_counts (per sender and frame type), streams (HTTP/2) or requests "
       "(HTTP/1.1). Per stream: stream_id; method, path, authority (request pseudo-headers as sent; for "
       "the upgraded request of h2c-upgrade, its HTTP/1.1 request line and Host, upgraded_from_http1 true); "
       "idempotency_key (the first Idempotency-Key / X-Idempotency-Key value as sent, or null); status (final "
       ":status, null if none); rst_stream (null or the first RST_STREAM on the stream: {sender, error}); rst_streams (all of them, in order: h2_server.py answers DATA that arrives after its REFUSED_STREAM with another RST_STREAM(STREAM_CLOSED)); client_frames and server_frames (frame "
       "types on that stream in wire order, with flags: ES end_stream, EH end_headers, P padded, PRI priority). "
       "Per HTTP/1.1 request: the same fields with stream_id null (status paired in order).")


def free_tshark(args):
    out = subprocess.run(["tshark"] + args, check=True, capture_output=True).stdout
    return ET.fromstring(out)


def fields(elem, name):
    return [f for f in elem.iter("field") if f.get("name") == name]


def first(elem, name):
    for f in elem.iter("field"):
        if f.get("name") == name:
            return f.get("show")
    return None


def direct(elem, name):
    for f in elem:
        if f.get("name") == name:
            return f.get("show")
    return None


def new_stream(sid):
    return collections.OrderedDict([("stream_id", sid), ("method", None), ("path", None), ("authority", None),
                                    ("idempotency_key", None), ("status", None), ("rst_stream", None), ("rst_streams", []),
                                    ("client_frames", []), ("server_frames", [])])


def flag_text(ftype, flags):
    out = []
    if ftype in (0, 1) and flags & 0x1:
        out.append("ES")
    if ftype in (1, 9) and flags & 0x4:
        out.append("EH")
    if ftype in (0, 1) and flags & 0x8:
        out.append("P")
    if ftype == 1 and flags & 0x20:
        out.append("PRI")
    name = FRAME_TYPES.get(ftype, "TYPE_%d" % ftype)
    return name + ("(" + ",".join(out) + ")" if out else "")


def capture_entry(capdir, name, log, decode, port, how):
    pcap = os.path.join(capdir, name + ".pcap")
    args = ["-r", pcap, "-Y", "http2 or http", "-T", "pdml"]
    if decode == "tls":
        args += ["-o", "tls.keylog_file:" + os.path.join(capdir, name + ".keys")]
    elif decode == "h2":
        args += ["-d", "tcp.port==%d,http2" % port]
    root = free_tshark(args)
    conns = collections.OrderedDict()
    # every TCP connection, also those tshark shows nothing for (so an undecrypted one is seen)
    syn = free_tshark(["-r", pcap, "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0", "-T", "pdml"])
    randoms, hello_random = set(), {}
    if decode == "tls":
        with open(os.path.join(capdir, name + ".keys")) as f:
            randoms = {ln.split()[1].lower() for ln in f if len(ln.split()) == 3}
        hello = free_tshark(["-r", pcap, "-Y", "tls.handshake.type == 1", "-T", "pdml"])
        hello_random = {int(first(p, "tcp.srcport")): (first(p, "tls.handshake.random") or "").replace(":", "").lower()
                        for p in hello.iter("packet")}
    for pkt in syn.iter("packet"):
        cport = int(first(pkt, "tcp.srcport"))
        conns[cport] = collections.OrderedDict([
            ("client_port", cport), ("protocol", None),
            ("keys_in_log", hello_random.get(cport) in randoms if decode == "tls" else None),
            ("client_settings", None), ("server_settings", None),
            ("goaway", []), ("frame_counts", {"client": {}, "server": {}}), ("streams", collections.OrderedDict()),
            ("requests", []), ("pending_status", [])])
    for pkt in root.iter("packet"):
        sport, dport = int(first(pkt, "tcp.srcport")), int(first(pkt, "tcp.dstport"))
        from_client = dport == port
        c = conns.get(sport if from_client else dport)
        if c is None:
            continue
        side = "client" if from_client else "server"
        for proto in pkt.iter("proto"):
            if proto.get("name") == "http":
                http1(c, proto, from_client)
            elif proto.get("name") == "http2":
                for fr in fields(proto, "http2.stream"):
                    h2frame(c, fr, side)
    out = []
    answered = 0
    for c in conns.values():
        if c["protocol"] in ("h2", "h2c-upgrade"):
            c["streams"] = list(c["streams"].values())
            answered += sum(1 for s in c["streams"] if s["status"] is not None and api(s["path"]))
            del c["requests"]
        else:
            for r in c["requests"]:
                del r["client_frames"], r["server_frames"], r["rst_streams"]
            answered += sum(1 for r in c["requests"] if r["status"] is not None and api(r["path"]))
            del c["streams"], c["client_settings"], c["server_settings"], c["goaway"], c["frame_counts"]
        del c["pending_status"]
        out.append(c)
    with open(log) as f:
        logged = sum(1 for ln in f if ln.strip())
    problems = []
    if answered != logged:
        problems.append("%d requests answered on the wire, server.py logged %d" % (answered, logged))
    for c in out:
        # A TLS connection whose secrets are logged but which carries no HTTP/2 at all is real:
        # Go dials one connection per waiting request and closes the spare after its handshake.
        if not c.get("streams") and not c.get("requests") and not c["keys_in_log"]:
            problems.append("connection from port %d: nothing decoded" % c["client_port"])
    entry = collections.OrderedDict([
        ("decode", decode), ("keys", name + ".keys" if decode == "tls" else None), ("server_port", port),
        ("recorded_with", how), ("server_logged", logged), ("answered", answered),
        ("connection_count", len(out)), ("stream_count", sum(len(c.get("streams", c.get("requests", []))) for c in out)),
        ("connections", out)])
    return entry, problems


def h2frame(c, fr, side):
    ftype = int(direct(fr, "http2.type") or -1)
    if ftype < 0:  # the connection preface ("Magic")
        c["protocol"] = c["protocol"] or "h2"
        return
    c["protocol"] = c["protocol"] or "h2"
    sid = int(direct(fr, "http2.streamid"))
    flags = int(direct(fr, "http2.flags"), 16)
    tname = FRAME_TYPES.get(ftype, "TYPE_%d" % ftype)
    counts = c["frame_counts"][side]
    counts[tname] = counts.get(tname, 0) + 1
    if ftype == 4 and not flags & 0x1:
        key = side + "_settings"
        if c[key] is None:
            vals = collections.OrderedDict()
            for st in fields(fr, "http2.settings"):
                sid_ = direct(st, "http2.settings.id")
                val = [f.get("show") for f in st if f.get("name") != "http2.settings.id"]
                if sid_ is not None and val:
                    vals[SETTINGS.get(int(sid_, 0), sid_)] = int(val[0], 0)
            c[key] = vals
        return
    if ftype == 7:
        err = int(first(fr, "http2.goaway.error") or 0)
        c["goaway"].append(collections.OrderedDict([("sender", side), ("last_stream_id", int(first(fr, "http2.goaway.last_stream_id"))),
                                                    ("error", ERRORS[err] if err < len(ERRORS) else err)]))
        return
    if sid == 0:
        return
    s = c["streams"].get(sid)
    if s is None:
        s = c["streams"][sid] = new_stream(sid)
    s[side + "_frames"].append(flag_text(ftype, flags))
    if ftype == 3:
        err = int(first(fr, "http2.rst_stream.error") or 0)
        rst = collections.OrderedDict([("sender", side), ("error", ERRORS[err] if err < len(ERRORS) else err)])
        s["rst_stream"] = s["rst_stream"] or rst
        s["rst_streams"].append(rst)
    for h in fields(fr, "http2.header"):
        hn, hv = direct(h, "http2.header.name"), direct(h, "http2.header.value")
        if hn is None:
            continue
        hv = hv if hv is not None else ""
        if side == "client":
            if hn == ":method":
                s["method"] = hv
            elif hn == ":path":
                s["path"] = hv
            elif hn == ":authority":
                s["authority"] = hv
            elif hn.lower() in KEY_HEADERS and s["idempotency_key"] is None:
                s["idempotency_key"] = hv
        elif hn == ":status" and not hv.startswith("1"):
            s["status"] = int(hv)


def http1(c, proto, from_client):
    if from_client and first(proto, "http.request.method") is not None:
        r = new_stream(None)
        r["method"] = first(proto, "http.request.method")
        r["path"] = first(proto, "http.request.uri")
        r["authority"] = first(proto, "http.host")
        upgrade = False
        for ln in fields(proto, "http.request.line"):
            hn, _, hv = (ln.get("show") or "").partition(":")
            if hn.strip().lower() in KEY_HEADERS and r["idempotency_key"] is None:
                r["idempotency_key"] = hv.strip()
            if hn.strip().lower() == "upgrade" and "h2c" in hv.lower():
                upgrade = True
        if upgrade:
            c["protocol"] = "h2c-upgrade"
            s = new_stream(1)
            for k in ("method", "path", "authority", "idempotency_key"):
                s[k] = r[k]
            s["upgraded_from_http1"] = True
            c["streams"][1] = s
        else:
            c["protocol"] = c["protocol"] or "http/1.1"
            c["requests"].append(r)
            c["pending_status"].append(r)
    elif not from_client and first(proto, "http.response.code") is not None:
        code = int(first(proto, "http.response.code"))
        if code >= 200 and c["pending_status"]:
            c["pending_status"].pop(0)["status"] = code


def api(path):
    """server.py's paths: what the front serves itself (chromium's page) is not logged there."""
    return (path or "").startswith("/v1/")


def main():
    out_path, manifest = sys.argv[1], sys.argv[2]
    capdir = os.path.dirname(os.path.abspath(out_path))
    doc = {"_doc": DOC, "captures": {}}
    if os.path.exists(out_path):
        with open(out_path) as f:
            doc = json.load(f)
        doc["_doc"] = DOC
    bad = False
    with open(manifest) as f:
        for line in f:
            if not line.strip():
                continue
            name, log, decode, port, how = line.rstrip("\n").split("\t")
            entry, problems = capture_entry(capdir, name, log, decode, int(port), how)
            doc["captures"][name + ".pcap"] = entry
            for p in problems:
                print("tshark_streams.py: %s: %s" % (name, p), file=sys.stderr)
                bad = True
            print("   %s: %d connections, %d streams/requests, %d answered, server logged %d"
                  % (name, entry["connection_count"], entry["stream_count"], entry["answered"], entry["server_logged"]))
    doc["captures"] = dict(sorted(doc["captures"].items()))
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.chmod(out_path, 0o644)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
