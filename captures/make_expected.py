#!/usr/bin/env python3
"""Build EXPECTED.json from the server logs of a recording run (called by record.sh).

usage: make_expected.py OUT.json MANIFEST.tsv
MANIFEST lines: capture-name <TAB> server-log <TAB> derived-from (or -) <TAB> how-recorded
Entries of OUT.json not named in the manifest are kept (so a partial
re-recording updates only its own captures).
"""
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaputil  # noqa: E402

# Per transaction, in this order.  See README.md for the meaning of each field.
FIELDS = ("method", "host", "uri", "request_body_len", "status", "response_body_len",
          "idempotency_key", "idempotency_key_headers", "client_ip", "client_port", "server_port",
          "request_chunked", "request_content_encoding", "expect_100", "interim_statuses",
          "response_chunked", "replayed", "resource_id", "outcome", "response_written")


def file_info(path):
    """(format, link type name, timestamp precision) of a capture file."""
    cap = pcaputil.open_capture(path)
    return cap.format, pcaputil.LINKTYPE_NAMES.get(cap.linktype, str(cap.linktype)), cap.precision


def main():
    out_path, manifest = sys.argv[1], sys.argv[2]
    capdir = os.path.dirname(os.path.abspath(out_path))
    old = {}
    if os.path.exists(out_path):
        try:
            old = json.load(open(out_path)).get("captures", {})
        except ValueError:
            old = {}
    caps = dict(old)
    for line in open(manifest):
        name, log, derived, how = line.rstrip("\n").split("\t")
        recs = [json.loads(x) for x in open(log) if x.strip()]
        recs.sort(key=lambda r: (r["t_start"], r["seq"]))
        fmt, lt, prec = file_info(os.path.join(capdir, name))
        txs = [collections.OrderedDict((f, r[f]) for f in FIELDS) for r in recs]
        caps[name] = collections.OrderedDict([
            ("format", fmt), ("linktype", lt), ("timestamp_precision", prec),
            ("ip_version", 6 if ":" in recs[0]["server_ip"] else 4) if recs else ("ip_version", None),
            ("server_ip", recs[0]["server_ip"] if recs else None),
            ("server_port", recs[0]["server_port"] if recs else None)] +
            # several ports (fleet: one backend behind two gateways): all of them, sorted
            ([("server_ports", sorted({r["server_port"] for r in recs}))]
             if len({r["server_port"] for r in recs}) > 1 else []) + [
            ("derived_from", None if derived == "-" else derived),
            ("recorded_with", how),
            ("transaction_count", len(txs)),
            ("connection_count", len({(t["client_ip"], t["client_port"]) for t in txs})),
            ("transactions", txs)])
    doc = ("Written by record.sh from the fake server's own request log (server.py --log). "
           "One entry per capture file; transactions in the order the server received them "
           "(first byte of the request line). Body lengths: the bytes of the message body as sent, "
           "after removing chunked framing, before any Content-Encoding decoding. "
           "idempotency_key: the first Idempotency-Key / X-Idempotency-Key value, unquoted, or null; "
           "idempotency_key_headers: every key header line [name, value] as sent. "
           "Ids, ports and timestamps change when the captures are re-recorded.")
    # compact: one transaction per line
    parts = ['{\n  "_doc": %s,\n  "captures": {' % json.dumps(doc)]
    names = sorted(caps)
    for i, name in enumerate(names):
        c = caps[name]
        meta = ", ".join("%s: %s" % (json.dumps(k), json.dumps(v)) for k, v in c.items() if k != "transactions")
        txl = ",\n".join("      " + json.dumps(t, separators=(", ", ": ")) for t in c["transactions"])
        parts.append('\n    %s: {%s, "transactions": [\n%s\n    ]}%s'
                     % (json.dumps(name), meta, txl, "," if i < len(names) - 1 else ""))
    parts.append("\n  }\n}\n")
    text = "".join(parts)
    json.loads(text)  # must stay valid JSON
    with open(out_path + ".tmp", "w") as f:
        f.write(text)
    os.replace(out_path + ".tmp", out_path)


if __name__ == "__main__":
    main()
