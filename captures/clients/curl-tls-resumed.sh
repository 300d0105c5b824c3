#!/bin/sh
# curl-tls-resumed: the key-conflict story in one curl invocation (--next), each
# transfer on its own connection (`Connection: close`); curl keeps the TLS
# session of the first connection and resumes it on the next ones.
# usage: curl-tls-resumed.sh BASE_URL [CURL TLS OPTIONS...]
set -eu
B=$1
shift
SK=sk_test_4eC39HqLyjWDarjtT1zdp7dc
K=7e1a5c00-7151-4c0a-8e11-5ca1ab1e0002
W='%{http_code} %{url_effective} conn=%{num_connects}\n'
O="-k --http1.1 -sS -o /dev/null -H Connection:close -u $SK:"

# shellcheck disable=SC2086
curl $O -w "$W" "$@" -H "Idempotency-Key: $K" -d amount=1000 -d currency=usd "$B/v1/charges" \
  --next $O -w "$W" "$@" -H "Idempotency-Key: $K" -d amount=1500 -d currency=usd "$B/v1/charges" \
  --next $O -w "$W" "$@" -d amount=1000 -d currency=usd "$B/v1/charges"
