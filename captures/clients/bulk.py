#!/usr/bin/env python3
"""bulk: a few thousand transactions from several concurrent requests clients.

Each worker thread has its own seeded random generator (fixed request
content), its own API key (three scopes across the workers) and opens a new
keep-alive Session every 10..80 requests.  Mix per request:
  18%  GET /v1/{charges,customers,payment_intents}/<id>   (Content-Length response)
   5%  GET /v1/charges?limit=N                            (chunked response)
  50%  keyed POST (or PATCH /v1/customers/cus_...) with a JSON body of 100 B .. 8 KiB
       (log-uniform), 3% of all requests sent chunked (body from a generator)
   8%  retry of an earlier keyed request: same key, same bytes   -> replayed
   3%  earlier key, different body                               -> 400 conflict
   8%  keyless POST /v1/charges, every second one repeating the previous keyless body
   8%  POST /search or POST /login (keyless, never keyed)
usage: bulk.py BASE_URL [WORKERS] [REQUESTS_PER_WORKER] [SEED]
"""
import json
import random
import sys
import threading
import uuid

from common import SK_A, SK_B, SK_C, base_url, session

B = base_url()
WORKERS = int(sys.argv[2]) if len(sys.argv) > 2 else 6
PER_WORKER = int(sys.argv[3]) if len(sys.argv) > 3 else 350
SEED = int(sys.argv[4]) if len(sys.argv) > 4 else 20261128
ENDPOINTS = [("POST", "/v1/charges", 50), ("POST", "/v1/customers", 15),
             ("POST", "/v1/payment_intents", 20), ("POST", "/v1/refunds", 10),
             ("PATCH", "/v1/customers/cus_", 5)]
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()
counts = {}
lock = threading.Lock()


def ident(rng, n):
    return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def body_for(rng, path, target):
    amount = rng.randint(50, 500000)
    if path == "/v1/charges":
        b = {"amount": amount, "currency": rng.choice(["usd", "eur", "gbp"]),
             "customer": "cus_" + ident(rng, 14), "description": "Order %d" % rng.randint(1, 10 ** 6)}
    elif path == "/v1/customers":
        b = {"email": "user%d@example.com" % rng.randint(1, 10 ** 6), "name": " ".join(rng.sample(WORDS, 2))}
    elif path == "/v1/payment_intents":
        b = {"amount": amount, "currency": "usd", "payment_method_types": ["card"]}
    elif path == "/v1/refunds":
        b = {"charge": "ch_3" + ident(rng, 23), "amount": rng.randint(1, 5000)}
    else:
        b = {"metadata": {"tier": rng.choice(["gold", "silver", "bronze"])}}
    raw = json.dumps(b, separators=(",", ":"))
    pad = target - len(raw) - len(',"shipping":{"notes":""}')
    if pad > 0:
        notes = " ".join(rng.choice(WORDS) for _ in range(pad // 5 + 2))[:pad]
        b["shipping"] = {"notes": notes}
    return json.dumps(b, separators=(",", ":")).encode()


def worker(n):
    rng = random.Random(SEED * 100 + n)
    sk = (SK_A, SK_B, SK_C)[n % 3]
    keyed = []  # (method, path, body, key)
    last_keyless = None
    done = 0
    local = {}
    while done < PER_WORKER:
        s = session(sk)
        for _ in range(min(rng.randint(10, 80), PER_WORKER - done)):
            op = rng.choices(["get", "list", "keyed", "retry", "conflict", "keyless", "other"],
                             [18, 5, 50, 8, 3, 8, 8])[0]
            if op in ("retry", "conflict") and not keyed:
                op = "keyed"
            headers = {"Content-Type": "application/json"}
            if op == "get":
                kind, prefix, ln = rng.choice([("charges", "ch_3", 23), ("customers", "cus_", 14),
                                               ("payment_intents", "pi_3", 23)])
                r = s.get("%s/v1/%s/%s%s" % (B, kind, prefix, ident(rng, ln)))
            elif op == "list":
                r = s.get("%s/v1/charges?limit=%d" % (B, rng.randint(1, 20)))
            elif op == "keyed":
                method, path, _ = rng.choices(ENDPOINTS, [e[2] for e in ENDPOINTS])[0]
                if path.endswith("cus_"):
                    path += ident(rng, 14)
                target = int(round(100 * (8192 / 100) ** rng.random()))
                body = body_for(rng, path, target)
                key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                keyed.append((method, path, body, key))
                headers["Idempotency-Key"] = key
                data = body
                if rng.random() < 0.06:  # ~3% of all requests: chunked upload
                    cut = rng.randint(1, len(body) - 1)
                    data = iter([body[:cut], body[cut:]])
                r = s.request(method, B + path, data=data, headers=headers)
            elif op == "retry":
                method, path, body, key = rng.choice(keyed)
                headers["Idempotency-Key"] = key
                r = s.request(method, B + path, data=body, headers=headers)
            elif op == "conflict":
                method, path, body, key = rng.choice(keyed)
                headers["Idempotency-Key"] = key
                changed = json.loads(body)
                changed["description"] = "changed %d" % rng.randint(1, 10 ** 6)
                r = s.request(method, B + path, data=json.dumps(changed, separators=(",", ":")).encode(),
                              headers=headers)
            elif op == "keyless":
                if last_keyless is not None and rng.random() < 0.5:
                    body, last_keyless = last_keyless, None
                else:
                    body = body_for(rng, "/v1/charges", rng.randint(100, 600))
                    last_keyless = body
                r = s.post(B + "/v1/charges", data=body, headers=headers)
            else:
                if rng.random() < 0.5:
                    r = s.post(B + "/search", data=json.dumps({"q": " ".join(rng.sample(WORDS, 3))}),
                               headers=headers)
                else:
                    r = s.post(B + "/login", data={"username": "user%d" % rng.randint(1, 99),
                                                   "password": "not-a-real-password"})
            r.content  # read the whole response
            local[(op, r.status_code)] = local.get((op, r.status_code), 0) + 1
            done += 1
        s.close()
    with lock:
        for k, v in local.items():
            counts[k] = counts.get(k, 0) + v


threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for (op, status), v in sorted(counts.items()):
    print("%-9s %d %5d" % (op, status, v))
print("total", sum(counts.values()))
