#!/usr/bin/env python3
"""Alert latency of `idemwatch live` on a quiet link: the time from the client reading the
response to a conflicting request to the key_conflict alert appearing in the output file.

    sudo python3 scripts/live_latency.py [ROUNDS]      # needs root (capture on lo)

Starts captures/server.py and target/release/idemwatch (build it first) on loopback; each
round sends one conflicting pair on a fresh connection, then waits 2 s of silence.
"""
import http.client, json, os, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

work = tempfile.mkdtemp()
port = free_port()
api = subprocess.Popen([sys.executable, os.path.join(ROOT, "captures/server.py"), str(port),
                        "--bind", "127.0.0.1", "--log", os.path.join(work, "server.log")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
out = os.path.join(work, "out.json")
err = open(os.path.join(work, "err"), "w")
live = subprocess.Popen([os.path.join(ROOT, "target/release/idemwatch"), "live", "-v", "-i", "lo",
                         "-o", out, "--stats-interval", "0", "--", "tcp", "port", str(port)],
                        stderr=err)
try:
    for _ in range(100):
        if "capturing" in open(os.path.join(work, "err")).read():
            break
        time.sleep(0.1)
    time.sleep(0.5)
    lat = []
    for i in range(rounds):
        c = http.client.HTTPConnection("127.0.0.1", port)
        for amount in (1, 2):
            c.request("POST", "/v1/charges", body=json.dumps({"amount": amount}),
                      headers={"Content-Type": "application/json", "Idempotency-Key": f"lat-{i}"})
            c.getresponse().read()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5:
            with open(out) as f:
                if f'"key":"lat-{i}"' in f.read():
                    lat.append(time.monotonic() - t0)
                    break
            time.sleep(0.001)
        c.close()
        time.sleep(2)
    ms = sorted(x * 1000 for x in lat)
    print(f"{len(ms)}/{rounds} alerts; latency ms: min {ms[0]:.1f}, median {statistics.median(ms):.1f}, max {ms[-1]:.1f}")
finally:
    live.terminate(); api.terminate(); live.wait(); api.wait()
