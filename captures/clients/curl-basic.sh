#!/bin/sh
# curl-basic: GETs and keyed POSTs over one keep-alive connection (one curl
# invocation, several URLs joined with --next), then a second connection that
# ends with "Connection: close".
# usage: curl-basic.sh BASE_URL
set -eu
B=$1
SK=sk_test_4eC39HqLyjWDarjtT1zdp7dc
W='%{http_code} %{url_effective}\n'

# connection 1: 8 requests, keep-alive
curl -sS -o /dev/null -w "$W" -u "$SK:" "$B/v1/charges?limit=3" \
  --next -sS -o /dev/null -w "$W" -u "$SK:" -H 'Idempotency-Key: 5d2b9f3e-1c4a-4e8b-9f6d-2a7c0e1b3d55' \
      -d amount=2000 -d currency=usd -d source=tok_visa -d 'description=Order 1001' "$B/v1/charges" \
  --next -sS -o /dev/null -w "$W" -u "$SK:" -H 'Idempotency-Key: 5d2b9f3e-1c4a-4e8b-9f6d-2a7c0e1b3d55' \
      -d amount=2000 -d currency=usd -d source=tok_visa -d 'description=Order 1001' "$B/v1/charges" \
  --next -sS -o /dev/null -w "$W" -u "$SK:" "$B/v1/charges/ch_3NxBasicExample00000000001" \
  --next -sS -o /dev/null -w "$W" -u "$SK:" -H 'Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"' \
      --json '{"email":"jenny.rosen@example.com","name":"Jenny Rosen"}' "$B/v1/customers" \
  --next -sS -o /dev/null -w "$W" -u "$SK:" -X PATCH -H 'Idempotency-Key: 0b9d6c1e-7a3f-4c2d-8e5b-9f1a2c3d4e5f' \
      --json '{"metadata":{"tier":"gold"}}' "$B/v1/customers/cus_NffrFeUfNV2Hib" \
  --next -sS -o /dev/null -w "$W" --json '{"q":"refund policy"}' "$B/search" \
  --next -sS -o /dev/null -w "$W" -d username=demo -d password=not-a-real-password "$B/login"

# connection 2: a refund with a key, then a GET that closes the connection
curl -sS -o /dev/null -w "$W" -u "$SK:" -H 'Idempotency-Key: 3f6e2a1b-9c8d-4e7f-a0b1-c2d3e4f5a6b7' \
      -d charge=ch_3NxBasicExample00000000001 -d amount=500 "$B/v1/refunds" \
  --next -sS -o /dev/null -w "$W" -u "$SK:" -H 'Connection: close' "$B/v1/customers/cus_NffrFeUfNV2Hib"
