#!/bin/sh
# curl-tls: the key-conflict story over HTTPS, curl -k --http1.1, two connections
# (two invocations): a keyed POST /v1/charges and the same key with another
# amount (400) on the first, a keyless POST /v1/charges on the second.
# usage: curl-tls.sh BASE_URL [CURL TLS OPTIONS...]   (SSLKEYLOGFILE set by record_tls.sh)
set -eu
B=$1
shift
SK=sk_test_4eC39HqLyjWDarjtT1zdp7dc
K=7e1a5c00-7151-4c0a-8e11-5ca1ab1e0001
W='%{http_code} %{url_effective}\n'
C="curl -k --http1.1 -sS -o /dev/null -w"

$C "$W" "$@" -u "$SK:" -H "Idempotency-Key: $K" -d amount=1000 -d currency=usd "$B/v1/charges" \
  --next -k --http1.1 -sS -o /dev/null -w "$W" "$@" -u "$SK:" -H "Idempotency-Key: $K" \
      -d amount=1500 -d currency=usd "$B/v1/charges"
$C "$W" "$@" -u "$SK:" -d amount=1000 -d currency=usd "$B/v1/charges"
