#!/usr/bin/env bash
# Mirrored requests through real nginx: wrk POSTs keyed JSON requests to nginx, which proxies
# them to a static backend and mirrors each to `idemwatch mirror` over TLS. Prints wrk's rate
# and latency percentiles with the mirror on, with nginx's mirror directive off, and with
# idemwatch stopped, and idemwatch's CPU time and peak memory for the "on" run.
#
#   bash scripts/mirror_bench.sh [SECONDS] [CONNECTIONS]      # needs nginx, wrk, openssl
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-32}
for t in nginx wrk openssl; do
    command -v $t >/dev/null || [ -x /usr/sbin/$t ] || { echo "install $t" >&2; exit 2; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release --quiet --bin idemwatch
W=$(mktemp -d)
cleanup() { kill "${IPID:-}" "${NPID:-}" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
cd "$W"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -subj /CN=bench-ca -days 1 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 1 -extfile ext 2>/dev/null
mkdir -p ngx
conf() { # $1: with mirror (1/0)
    local m=""
    [ "$1" = 1 ] && m="mirror /m; mirror_request_body on;"
    cat > nginx.conf <<NGX
daemon off; user root; worker_processes 1; pid $W/nginx.pid; error_log $W/nginx.err error;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $W/ngx/b; proxy_temp_path $W/ngx/p;
  fastcgi_temp_path $W/ngx/f; uwsgi_temp_path $W/ngx/u; scgi_temp_path $W/ngx/s;
  upstream api { server 127.0.0.1:18302; keepalive 32; }
  upstream mirror { server 127.0.0.1:18303; keepalive 32; }
  server { listen 127.0.0.1:18301;
    location / { $m proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location = /m { internal; proxy_pass https://mirror\$request_uri; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Host \$host;
      proxy_ssl_trusted_certificate $W/ca.pem; proxy_ssl_verify on; proxy_ssl_name localhost;
      proxy_ssl_session_reuse on;
      proxy_connect_timeout 200ms; proxy_send_timeout 500ms; proxy_read_timeout 500ms; } }
  server { listen 127.0.0.1:18302; location / { return 200 '{"id":"ch_1"}'; } } }
NGX
}
cat > post.lua <<'LUA'
local n = 0
request = function()
  n = n + 1
  local body = '{"amount":' .. n .. ',"currency":"usd"}'
  return wrk.format("POST", "/v1/charges", {["Host"] = "api.example.com",
    ["Content-Type"] = "application/json", ["Idempotency-Key"] = "bench-" .. n}, body)
end
LUA
run() { # $1: label
    wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s post.lua http://127.0.0.1:18301/ > wrk.out
    local rate p50 p99
    rate=$(awk '/Requests\/sec/ {print $2}' wrk.out)
    p50=$(awk '$1=="50%" {print $2}' wrk.out)
    p99=$(awk '$1=="99%" {print $2}' wrk.out)
    printf '%-28s %10s req/s   p50 %8s   p99 %8s\n' "$1" "$rate" "$p50" "$p99"
}
cd - >/dev/null
target/release/idemwatch mirror --listen 127.0.0.1:18303 --cert "$W/srv.pem" --key "$W/srv.key" -q \
    -o /dev/null 2>"$W/idem.err" &
IPID=$!
cd "$W"
conf 1; "$NGINX" -p "$W/ngx" -c "$W/nginx.conf" & NPID=$!; sleep 1
t0=$(awk '{print $14+$15}' /proc/$IPID/stat)
run "mirror on"
t1=$(awk '{print $14+$15}' /proc/$IPID/stat)
hz=$(getconf CLK_TCK)
echo "idemwatch: $(( (t1 - t0) * 100 / hz / SECS )) % of one core, peak RSS $(awk '/VmHWM/ {print $2, $3}' /proc/$IPID/status)"
kill "$IPID"; wait "$IPID" 2>/dev/null || true; IPID=
run "mirror on, idemwatch stopped"
kill "$NPID"; wait "$NPID" 2>/dev/null || true
conf 0; "$NGINX" -p "$W/ngx" -c "$W/nginx.conf" & NPID=$!; sleep 1
run "mirror off"
