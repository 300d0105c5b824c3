#!/bin/sh
# ipv6: the server listens on ::1; curl and requests talk to http://[::1]:PORT.
#  curl, one connection: POST /v1/charges key K -> 200, same again -> replayed,
#                        GET /v1/charges?limit=2 (chunked response)
#  requests (clients/ipv6-requests.py): conflict (400), keyless duplicate pair
# usage: ipv6.sh BASE_URL   (e.g. http://[::1]:8080)
set -eu
B=$1
SK=sk_test_4eC39HqLyjWDarjtT1zdp7dc
W='%{http_code} %{url_effective}\n'
K='Idempotency-Key: 6f6f6f6f-0000-4000-8000-000000000006'
curl -g -sS -o /dev/null -w "$W" -u "$SK:" -H "$K" -d amount=1600 -d currency=usd -d 'description=Order 13001' "$B/v1/charges" \
  --next -g -sS -o /dev/null -w "$W" -u "$SK:" -H "$K" -d amount=1600 -d currency=usd -d 'description=Order 13001' "$B/v1/charges" \
  --next -g -sS -o /dev/null -w "$W" -u "$SK:" "$B/v1/charges?limit=2"
python3 "$(dirname "$0")/ipv6-requests.py" "$B"
