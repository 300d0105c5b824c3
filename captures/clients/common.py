"""Shared constants for the Python clients (fake credentials only)."""

import sys

import requests

# Obviously fake test keys (the first one is the key printed in Stripe's public docs).
SK_A = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
SK_B = "sk_test_51FakeAcctB0000000000000000"
SK_C = "sk_test_51FakeAcctC0000000000000000"


def base_url():
    if len(sys.argv) < 2:
        sys.exit("usage: %s BASE_URL   (e.g. http://127.0.0.1:8080)" % sys.argv[0])
    return sys.argv[1].rstrip("/")


def session(sk=SK_A):
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + sk
    return s


def show(r, label=""):
    """One line per response on stdout (record.sh keeps it in its work dir)."""
    rid = ""
    try:
        rid = r.json().get("id") or r.json().get("error", {}).get("type", "")
    except ValueError:
        pass
    print("%-28s %s %s -> %d %s%s" % (label, r.request.method, r.request.path_url, r.status_code, rid,
                                      " (replayed)" if r.headers.get("Idempotent-Replayed") else ""))
    sys.stdout.flush()
    return r
