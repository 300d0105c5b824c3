#!/usr/bin/env python3
"""Alert latency of `idemwatch mirror` with and without the shared store: the time from the
client reading the mirror's 204 to a conflicting request to the key_conflict alert appearing in
the output file.

    python3 scripts/fleet_latency.py REDIS_URL [ROUNDS]

Starts target/release/idemwatch mirror (plaintext, loopback) twice: alone, then with
--store REDIS_URL; each round sends a conflicting pair on one connection.
"""
import http.client, json, os, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
url = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def measure(extra, tag):
    work = tempfile.mkdtemp()
    port = free_port()
    out = os.path.join(work, "out.json")
    errp = os.path.join(work, "err")
    p = subprocess.Popen([os.path.join(ROOT, "target/release/idemwatch"), "-v", "mirror",
                          "--listen", f"127.0.0.1:{port}", "--insecure-plaintext", "-o", out] + extra,
                         stderr=open(errp, "w"))
    try:
        for _ in range(100):
            if "mirror listening" in open(errp).read():
                break
            time.sleep(0.05)
        lat = []
        for i in range(rounds):
            c = http.client.HTTPConnection("127.0.0.1", port)
            key = f"lat-{tag}-{i}-{time.time()}"
            for amount in (1, 2):
                c.request("POST", "/v1/charges", body=json.dumps({"amount": amount}),
                          headers={"Host": "api.example.com", "Content-Type": "application/json",
                                   "Idempotency-Key": key})
                c.getresponse().read()
            t0 = time.monotonic()
            while True:
                text = open(out).read() if os.path.exists(out) else ""
                if key in text:
                    break
                if time.monotonic() - t0 > 5:
                    raise SystemExit(f"{tag}: no alert for {key}")
                time.sleep(0.0005)
            lat.append((time.monotonic() - t0) * 1000)
            c.close()
        return lat
    finally:
        p.terminate(); p.wait()


alone = measure([], "alone")
shared = measure(["--store", url, "--store-instance", "latency"], "shared")
for tag, lat in (("no store", alone), ("redis store", shared)):
    lat.sort()
    print(f"alert latency, {tag}: median {statistics.median(lat):.2f} ms, "
          f"max {lat[-1]:.2f} ms over {len(lat)} rounds")
