#!/bin/bash
# Re-record the HTTP/2 captures in captures/h2/ (NAME.pcap, + NAME.keys, the
# client's NSS key log, for the TLS ones), then rebuild h2/TSHARK.json (what
# tshark sees per connection and per stream) with h2/tshark_streams.py.
#
#   sudo bash captures/record_h2.sh            # everything
#   sudo bash captures/record_h2.sh NAME...    # only these; their TSHARK.json entries are replaced
#
# Every recording has its own fresh backend: server.py (HTTP/1.1, real
# idempotency store, its request log is "server_logged") behind nginx 1.22
# (proxy_pass over HTTP/1.1 with a keepalive upstream) or behind h2_server.py
# (Python h2, for what nginx cannot do).  Only the client-facing port is captured.
#
#   curl-h2-tls              curl --http2 over TLS, one connection (--next): 6 keyed POSTs with the
#                            same Authorization/headers (HPACK dynamic table reused); the last reuses
#                            the first key with another amount (400 idempotency_error)
#   curl-h2-prior-knowledge  cleartext nginx `listen ... http2`, curl --http2-prior-knowledge, one
#                            connection; the 3rd request carries a 20 KB X-Pad header: its header
#                            block goes as HEADERS + CONTINUATION
#   httpx-story-h1           clients/httpx-h2-story.py over HTTP/1.1 (cleartext nginx)
#   httpx-story-h2           the same story, httpx http2=True http1=False on http:// (prior knowledge)
#   httpx-story-h2-tls       the same story over TLS (ALPN h2), httpx writes SSLKEYLOGFILE
#   h2c-upgrade              curl --http2 on http:// against h2_server.py: the first request is sent
#                            as HTTP/1.1 with Upgrade: h2c + HTTP2-Settings, answered 101, its response
#                            on stream 1; then more requests on the same connection (streams 3, 5, ..)
#   refused-stream           Go net/http over TLS against h2_server.py --refuse-once: a keyed POST is
#                            answered RST_STREAM(REFUSED_STREAM), Go retries it itself (same key)
#   refused-stream-new-key   python h2 client: the refused request is retried under a NEW key
#   goaway                   Go net/http over TLS against h2_server.py --goaway-batch 3: three
#                            concurrent keyed POSTs, the server answers the first, sends
#                            GOAWAY(last_stream_id = that stream, NO_ERROR) and closes; Go retries
#                            the other two on a new connection
#   go-h2-tls                Go net/http over TLS against nginx, one connection, two CONCURRENT
#                            POSTs with the same key (the first slow=800: the second gets 409)
#   node-h2-tls              Node's http2 client over TLS against nginx, keyed POSTs on one connection
#
# Needs: root, tcpdump, nginx (http2), curl with nghttp2, python3 with httpx[http2] and h2,
# go (>= 1.19), node (>= 18), openssl, tshark.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE/h2
CLIENTS=$HERE/clients
WORK=$(mktemp -d /tmp/idemwatch-record-h2.XXXXXX)
MANIFEST=$WORK/manifest.tsv
: >"$MANIFEST"
SPID= NPID= HPID= TPID=
cleanup() {
    [ -n "$HPID" ] && kill "$HPID" 2>/dev/null || true
    [ -n "$NPID" ] && kill "$NPID" 2>/dev/null || true
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true
    [ -n "$TPID" ] && kill -INT "$TPID" 2>/dev/null || true
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "record_h2.sh: capturing needs root" >&2; exit 2; }
mkdir -p "$OUT"

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
    -subj /CN=api.example.com -addext subjectAltName=DNS:api.example.com,IP:127.0.0.1 2>/dev/null

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() {  # wait_for FILE TEXT SECONDS
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "record_h2.sh: timed out waiting for '$2' in $1" >&2
    cat "$1" >&2 || true
    return 1
}

# start_backend NAME: server.py on a free port, log $WORK/NAME.log.
start_backend() {
    SPORT=$(free_port)
    python3 "$HERE/server.py" "$SPORT" --log "$WORK/$1.log" 2>"$WORK/$1.server.err" &
    SPID=$!
    wait_for "$WORK/$1.server.err" "listening on" 10
}

# start_nginx NAME tls|h2|h1 [PAGE]: nginx on FPORT in front of server.py; with PAGE, it also
# serves that HTML file at / itself.
start_nginx() {
    local listen page=""
    FPORT=$(free_port)
    [ -n "${3:-}" ] && page="location = / { rewrite ^ /$(basename "$3") last; }
        location = /$(basename "$3") { root $(dirname "$3"); }
        location = /favicon.ico { return 204; }"
    case $2 in
        tls) listen="listen 127.0.0.1:$FPORT ssl http2;" ;;
        h2) listen="listen 127.0.0.1:$FPORT http2;" ;;
        h1) listen="listen 127.0.0.1:$FPORT;" ;;
    esac
    mkdir -p "$WORK/$1.nginx"
    cat >"$WORK/$1.nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/$1.nginx/nginx.pid;
error_log $WORK/$1.nginx/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $WORK/$1.nginx;
    proxy_temp_path $WORK/$1.nginx;
    fastcgi_temp_path $WORK/$1.nginx;
    uwsgi_temp_path $WORK/$1.nginx;
    scgi_temp_path $WORK/$1.nginx;
    # Room for the 20 KB header of curl-h2-prior-knowledge (HEADERS + CONTINUATION).
    http2_max_field_size 64k;
    http2_max_header_size 64k;
    large_client_header_buffers 4 64k;
    proxy_buffer_size 64k;
    proxy_buffers 8 64k;
    upstream api { server 127.0.0.1:$SPORT; keepalive 8; }
    server {
        $listen
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        $page
        location / {
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
        }
    }
}
CONF
    nginx -c "$WORK/$1.nginx/nginx.conf" 2>"$WORK/$1.nginx.err" &
    NPID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>/dev/tcp/127.0.0.1/$FPORT) 2>/dev/null && return 0
        sleep 0.05
    done
    echo "record_h2.sh: nginx did not start" >&2; cat "$WORK/$1.nginx.err" "$WORK/$1.nginx/error.log" >&2; return 1
}

# start_h2server NAME ARGS...: h2_server.py on FPORT forwarding to server.py.
start_h2server() {
    local name=$1
    shift
    FPORT=$(free_port)
    python3 "$HERE/h2_server.py" "$FPORT" --backend "127.0.0.1:$SPORT" "$@" 2>"$WORK/$name.h2server.err" &
    HPID=$!
    wait_for "$WORK/$name.h2server.err" "listening on" 10
}

start_capture() {  # start_capture NAME
    rm -f "$OUT/$1.pcap"
    tcpdump -i lo -s 0 -U --immediate-mode -w "$OUT/$1.pcap" "tcp port $FPORT" 2>"$WORK/$1.cap.err" &
    TPID=$!
    wait_for "$WORK/$1.cap.err" "listening on" 10
    sleep 0.3
}

# stop_all NAME DECODE(tls|h2|auto) HOW: stop front, backend, capture; add the manifest line.
stop_all() {
    sleep 0.3
    [ -n "$HPID" ] && { kill "$HPID" 2>/dev/null || true; wait "$HPID" 2>/dev/null || true; HPID=; }
    [ -n "$NPID" ] && { kill "$NPID" 2>/dev/null || true; wait "$NPID" 2>/dev/null || true; NPID=; }
    kill "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=
    sleep 0.5
    kill -INT "$TPID"
    wait "$TPID" || true
    TPID=
    chmod 644 "$OUT/$1.pcap"
    [ "$2" = tls ] && chmod 644 "$OUT/$1.keys"
    if grep -q "Traceback" "$WORK/$1.server.err" "$WORK/$1.h2server.err" 2>/dev/null; then
        echo "record_h2.sh: server error in $1" >&2; return 1
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$WORK/$1.log" "$2" "$FPORT" "$3" >>"$MANIFEST"
}

run_client() {  # run_client NAME CMD...: the client's output kept in the work dir
    local name=$1
    shift
    "$@" >"$WORK/$name.client.out" 2>&1 || { echo "record_h2.sh: client failed for $name:" >&2; cat "$WORK/$name.client.out" >&2; return 1; }
    sed 's/^/   | /' "$WORK/$name.client.out" | head -12
}

AUTH='Authorization: Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc'

rec_curl_h2_tls() {
    local n=curl-h2-tls
    start_backend $n; start_nginx $n tls; start_capture $n
    rm -f "$OUT/$n.keys"
    local b="https://api.example.com:$FPORT/v1/charges" c=() i
    local common=(--http2 -sS -k -H "$AUTH" -H 'Stripe-Version: 2024-06-20' -H 'Content-Type: application/json')
    for i in 1 2 3 4 5; do
        c+=("${common[@]}" -H "Idempotency-Key: c0de0002-0000-4000-8000-00000000000$i" \
            -d "{\"amount\":${i}00,\"currency\":\"usd\",\"customer\":\"cus_H2Curl0001\"}" "$b" --next)
    done
    c+=("${common[@]}" -H "Idempotency-Key: c0de0002-0000-4000-8000-000000000001" \
        -d '{"amount":999,"currency":"usd","customer":"cus_H2Curl0001"}' "$b")
    run_client $n env SSLKEYLOGFILE="$OUT/$n.keys" curl --resolve "api.example.com:$FPORT:127.0.0.1" "${c[@]}"
    stop_all $n tls "tcpdump -i lo; nginx 1.22 (listen ssl http2) -> server.py; curl 7.88 --http2 --next x6 (record_h2.sh)"
}

rec_curl_h2_prior_knowledge() {
    # Against h2_server.py, not nginx: nginx 1.22 announces SETTINGS_MAX_FRAME_SIZE 16777215,
    # so curl sends even a 30 KB header block in one HEADERS frame; h2_server.py keeps the
    # default 16384 and the big block goes as HEADERS + CONTINUATION.
    local n=curl-h2-prior-knowledge
    start_backend $n; start_h2server $n; start_capture $n
    local b="http://127.0.0.1:$FPORT" pad
    # 30000 random letters/digits: HPACK's Huffman code cannot shrink them under 16 KiB.
    pad=$(python3 -c "import random, string; random.seed(7); print(''.join(random.choice(string.ascii_letters + string.digits) for _ in range(30000)))")
    local common=(--http2-prior-knowledge -sS -H "$AUTH")
    # curl 7.88.1 cannot reuse a prior-knowledge connection (the 2nd request on it fails with
    # "Error in the HTTP2 framing layer"), so one curl, one connection per request.
    {
        curl "${common[@]}" -H 'Idempotency-Key: c0de0003-0000-4000-8000-000000000001' -d amount=300 -d currency=usd "$b/v1/charges"
        curl "${common[@]}" -H 'Idempotency-Key: c0de0003-0000-4000-8000-000000000001' -d amount=300 -d currency=usd "$b/v1/charges"
        curl "${common[@]}" -H 'Idempotency-Key: c0de0003-0000-4000-8000-000000000002' -H "X-Pad: $pad" -d amount=400 -d currency=usd "$b/v1/charges"
        curl "${common[@]}" "$b/v1/charges?limit=2"
    } >"$WORK/$n.client.out" 2>&1
    stop_all $n h2 "tcpdump -i lo; h2_server.py (prior knowledge) -> server.py; curl 7.88 --http2-prior-knowledge x4 (one connection each), the 3rd with a 30000-byte X-Pad header (record_h2.sh)"
}

rec_h2c_upgrade() {
    local n=h2c-upgrade
    start_backend $n; start_h2server $n; start_capture $n
    local b="http://127.0.0.1:$FPORT/v1/charges"
    local common=(--http2 -sS -H "$AUTH" -H 'Content-Type: application/json')
    run_client $n curl "${common[@]}" -H 'Idempotency-Key: c0de0004-0000-4000-8000-000000000001' -d '{"amount":410,"currency":"usd"}' "$b" --next \
        "${common[@]}" -H 'Idempotency-Key: c0de0004-0000-4000-8000-000000000001' -d '{"amount":410,"currency":"usd"}' "$b" --next \
        "${common[@]}" -H 'Idempotency-Key: c0de0004-0000-4000-8000-000000000001' -d '{"amount":420,"currency":"usd"}' "$b" --next \
        --http2 -sS -H "$AUTH" "$b?limit=1"
    stop_all $n auto "tcpdump -i lo; h2_server.py (h2c upgrade) -> server.py; curl 7.88 --http2 on http:// --next x4 (record_h2.sh)"
}

rec_httpx_story() {  # rec_httpx_story NAME h1|h2|tls
    local n=$1 mode=$2 base
    case $mode in
        h1) start_backend $n; start_nginx $n h1; base="http://127.0.0.1:$FPORT" ;;
        h2) start_backend $n; start_nginx $n h2; base="http://127.0.0.1:$FPORT" ;;
        tls) start_backend $n; start_nginx $n tls; base="https://127.0.0.1:$FPORT"; rm -f "$OUT/$n.keys" ;;
    esac
    start_capture $n
    if [ "$mode" = tls ]; then
        run_client $n env SSLKEYLOGFILE="$OUT/$n.keys" python3 "$CLIENTS/httpx-h2-story.py" "$base" h2
        stop_all $n tls "tcpdump -i lo; nginx 1.22 (listen ssl http2) -> server.py; clients/httpx-h2-story.py BASE h2 (httpx http2=True, ALPN h2)"
    else
        run_client $n python3 "$CLIENTS/httpx-h2-story.py" "$base" "$mode"
        stop_all $n "$([ "$mode" = h2 ] && echo h2 || echo auto)" "tcpdump -i lo; nginx 1.22 ($([ "$mode" = h2 ] && echo 'listen http2, cleartext' || echo 'HTTP/1.1')) -> server.py; clients/httpx-h2-story.py BASE $mode"
    fi
}

rec_refused_stream() {
    local n=refused-stream
    start_backend $n; start_h2server $n --tls "$WORK/cert.pem" "$WORK/key.pem"; start_capture $n
    rm -f "$OUT/$n.keys"
    run_client $n env SSLKEYLOGFILE="$OUT/$n.keys" "$GOH2" refused "https://127.0.0.1:$FPORT"
    stop_all $n tls "tcpdump -i lo; h2_server.py --tls (refuse-once) -> server.py; clients/go-h2 refused BASE ($GOVERSION net/http)"
}

rec_refused_stream_new_key() {
    local n=refused-stream-new-key
    start_backend $n; start_h2server $n; start_capture $n
    run_client $n python3 "$CLIENTS/h2-refused-new-key.py" "http://127.0.0.1:$FPORT"
    stop_all $n h2 "tcpdump -i lo; h2_server.py (prior knowledge, refuse-once) -> server.py; clients/h2-refused-new-key.py BASE (httpx http2, prior knowledge)"
}

rec_goaway() {
    local n=goaway
    start_backend $n; start_h2server $n --tls "$WORK/cert.pem" "$WORK/key.pem"; start_capture $n
    rm -f "$OUT/$n.keys"
    run_client $n env SSLKEYLOGFILE="$OUT/$n.keys" "$GOH2" goaway "https://127.0.0.1:$FPORT"
    stop_all $n tls "tcpdump -i lo; h2_server.py --tls (goaway-batch=3) -> server.py; clients/go-h2 goaway BASE ($GOVERSION net/http)"
}

rec_go_h2_tls() {
    local n=go-h2-tls
    start_backend $n; start_nginx $n tls; start_capture $n
    rm -f "$OUT/$n.keys"
    run_client $n env SSLKEYLOGFILE="$OUT/$n.keys" "$GOH2" nginx "https://127.0.0.1:$FPORT"
    stop_all $n tls "tcpdump -i lo; nginx 1.22 (listen ssl http2) -> server.py; clients/go-h2 nginx BASE ($GOVERSION net/http)"
}

rec_node_h2_tls() {
    local n=node-h2-tls
    start_backend $n; start_nginx $n tls; start_capture $n
    rm -f "$OUT/$n.keys"
    run_client $n env SSLKEYLOGFILE="$OUT/$n.keys" node "$CLIENTS/node-h2-tls.js" "https://127.0.0.1:$FPORT"
    stop_all $n tls "tcpdump -i lo; nginx 1.22 (listen ssl http2) -> server.py; clients/node-h2-tls.js BASE (node $(node --version) http2)"
}

rec_chromium() {
    # Headless Chromium loads a page from nginx (ALPN h2) whose script POSTs with fetch(): a
    # key, its retry, a conflicting reuse, two identical keyless POSTs, then two concurrent
    # POSTs with one key (each held 400 ms by server.py: whichever comes second finds the key
    # in flight and gets 409). The page's title gives the
    # statuses.
    local n=chromium-h2-tls
    start_backend $n; start_nginx $n tls "$CLIENTS/chromium-h2.html"; start_capture $n
    rm -f "$OUT/$n.keys"
    run_client $n env SSLKEYLOGFILE="$OUT/$n.keys" timeout 60 chromium --headless=new --no-sandbox \
        --disable-gpu --ignore-certificate-errors --virtual-time-budget=15000 \
        --host-resolver-rules="MAP api.example.com 127.0.0.1" --dump-dom "https://api.example.com:$FPORT/"
    grep -q "<title>done " "$WORK/$n.client.out" || { echo "record_h2.sh: the page did not finish" >&2; return 1; }
    stop_all $n tls "tcpdump -i lo; nginx 1.22 (listen ssl http2, the page at /) -> server.py; headless $(chromium --version 2>/dev/null | tail -1) with SSLKEYLOGFILE, clients/chromium-h2.html"
}

ALL=(curl-h2-tls curl-h2-prior-knowledge httpx-story-h1 httpx-story-h2 httpx-story-h2-tls
     h2c-upgrade refused-stream refused-stream-new-key goaway go-h2-tls node-h2-tls chromium-h2-tls)
[ $# -gt 0 ] && ALL=("$@")
case " ${ALL[*]} " in
    *" refused-stream "* | *" goaway "* | *" go-h2-tls "*)
        GOH2=$WORK/go-h2
        (cd "$CLIENTS/go-h2" && GOFLAGS=-mod=mod GOPROXY=off go build -o "$GOH2" .)
        GOVERSION=$(go env GOVERSION) ;;
esac
for name in "${ALL[@]}"; do
    echo "== $name"
    case $name in
        curl-h2-tls) rec_curl_h2_tls ;;
        curl-h2-prior-knowledge) rec_curl_h2_prior_knowledge ;;
        httpx-story-h1) rec_httpx_story $name h1 ;;
        httpx-story-h2) rec_httpx_story $name h2 ;;
        httpx-story-h2-tls) rec_httpx_story $name tls ;;
        h2c-upgrade) rec_h2c_upgrade ;;
        refused-stream) rec_refused_stream ;;
        refused-stream-new-key) rec_refused_stream_new_key ;;
        goaway) rec_goaway ;;
        go-h2-tls) rec_go_h2_tls ;;
        node-h2-tls) rec_node_h2_tls ;;
        chromium-h2-tls) rec_chromium ;;
        *) echo "record_h2.sh: unknown recording $name" >&2; exit 2 ;;
    esac
done
echo "== h2/TSHARK.json"
python3 "$OUT/tshark_streams.py" "$OUT/TSHARK.json" "$MANIFEST"
