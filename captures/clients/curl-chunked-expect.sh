#!/bin/sh
# curl-chunked-expect: request bodies framed every way curl can send them:
# chunked (-H 'Transfer-Encoding: chunked'), a >1 KiB body with
# 'Expect: 100-continue', gzip-compressed bodies (Content-Encoding: gzip),
# chunked + gzip, and a body streamed from a pipe in two pieces (-T -).
# usage: curl-chunked-expect.sh BASE_URL WORKDIR
set -eu
B=$1
D=$2
SK=sk_test_4eC39HqLyjWDarjtT1zdp7dc
W='%{http_code} %{url_effective}\n'
mkdir -p "$D"

# fixed request bodies; gzip with mtime 0 so the compressed bytes are fixed too
python3 - "$D" <<'PY'
import gzip, json, sys
d = sys.argv[1]
charge = {"amount": 4200, "currency": "eur", "customer": "cus_NffrFeUfNV2Hib",
          "description": "chunked upload", "metadata": {"order_id": "7001", "channel": "web"}}
big = {"amount": 99000, "currency": "usd", "description": "large payment intent",
       "metadata": {"line_%02d" % i: "SKU-%05d x %d @ %d.00 USD" % (i * 37, i % 5 + 1, i * 3 + 10)
                    for i in range(60)}}
gz = {"amount": 1234, "currency": "gbp", "description": "gzip-compressed body",
      "metadata": {"order_id": "7002", "note": "compressed " * 20}}
open(d + "/charge.json", "wb").write(json.dumps(charge).encode())
open(d + "/big.json", "wb").write(json.dumps(big).encode())
open(d + "/gz.json.gz", "wb").write(gzip.compress(json.dumps(gz).encode(), 9, mtime=0))
open(d + "/big.json.gz", "wb").write(gzip.compress(json.dumps(big).encode(), 9, mtime=0))
PY

CT='Content-Type: application/json'
# connection 1, keep-alive:
#  1 chunked body (key A)
#  2 >1 KiB body with Expect: 100-continue (key B)       -> 100 then 200
#  3 gzip body (key C)                                    -> 200
#  4 same gzip body, same key C                           -> replayed
#  5 chunked + gzip (key D)
#  6 the body of 1 again with Content-Length, same key A  -> replayed
curl -sS -o /dev/null -w "$W" -u "$SK:" -H "$CT" -H 'Transfer-Encoding: chunked' \
      -H 'Idempotency-Key: 1a2b3c4d-0001-4000-8000-000000000001' --data-binary "@$D/charge.json" "$B/v1/charges" \
  --next -sS -o /dev/null -w "$W" -u "$SK:" -H "$CT" -H 'Expect: 100-continue' \
      -H 'Idempotency-Key: 1a2b3c4d-0002-4000-8000-000000000002' --data-binary "@$D/big.json" "$B/v1/payment_intents" \
  --next -sS -o /dev/null -w "$W" -u "$SK:" -H "$CT" -H 'Content-Encoding: gzip' \
      -H 'Idempotency-Key: 1a2b3c4d-0003-4000-8000-000000000003' --data-binary "@$D/gz.json.gz" "$B/v1/charges" \
  --next -sS -o /dev/null -w "$W" -u "$SK:" -H "$CT" -H 'Content-Encoding: gzip' \
      -H 'Idempotency-Key: 1a2b3c4d-0003-4000-8000-000000000003' --data-binary "@$D/gz.json.gz" "$B/v1/charges" \
  --next -sS -o /dev/null -w "$W" -u "$SK:" -H "$CT" -H 'Content-Encoding: gzip' -H 'Transfer-Encoding: chunked' \
      -H 'Idempotency-Key: 1a2b3c4d-0004-4000-8000-000000000004' --data-binary "@$D/big.json.gz" "$B/v1/payment_intents" \
  --next -sS -o /dev/null -w "$W" -u "$SK:" -H "$CT" \
      -H 'Idempotency-Key: 1a2b3c4d-0001-4000-8000-000000000001' --data-binary "@$D/charge.json" "$B/v1/charges"

# connection 2: body streamed from a pipe in two pieces -> chunked, two chunks (key E)
{ printf '{"amount": 5100, "currency": '; sleep 0.3; printf '"usd", "description": "streamed from a pipe"}'; } |
  curl -sS -o /dev/null -w "$W" -u "$SK:" -H "$CT" -X POST -T - \
      -H 'Idempotency-Key: 1a2b3c4d-0005-4000-8000-000000000005' "$B/v1/charges"
