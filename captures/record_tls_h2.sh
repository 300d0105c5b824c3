#!/bin/bash
# Re-record the HTTP/2-over-TLS captures in captures/tls/ (NAME.pcap + NAME.keys):
# curl --http2 against nginx (http2 on, a fixed JSON answer), the client writing
# its key log. They show that a connection whose ALPN chose h2 is decrypted,
# counted (tls_sessions_h2) and not read as HTTP/1.1, in TLS 1.3 (ALPN in
# EncryptedExtensions, encrypted) and TLS 1.2 (ALPN in the ServerHello).
#
#   sudo bash captures/record_tls_h2.sh
#
# Needs: root, dumpcap (Debian's wireshark-common) or tcpdump, nginx, curl
# built with nghttp2 and OpenSSL, openssl.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE/tls
WORK=$(mktemp -d /tmp/idemwatch-record-h2.XXXXXX)
NPID= TPID=
cleanup() {
    [ -n "$NPID" ] && kill "$NPID" 2>/dev/null || true
    [ -n "$TPID" ] && kill -INT "$TPID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "record_tls_h2.sh: capturing needs root" >&2; exit 2; }

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
    -subj /CN=api.example.com -addext subjectAltName=DNS:api.example.com,IP:127.0.0.1 2>/dev/null
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$WORK/tmp"
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $WORK/tmp;
    server {
        listen 127.0.0.1:$PORT ssl http2;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            default_type application/json;
            return 200 '{"id":"ch_h2","object":"charge"}';
        }
    }
}
CONF
nginx -c "$WORK/nginx.conf" &
NPID=$!
sleep 0.5

record() {  # record NAME CURL-TLS-ARGS...
    local name=$1
    shift
    local out=$OUT/$name.pcap keys=$OUT/$name.keys base="https://api.example.com:$PORT"
    rm -f "$out" "$keys"
    echo "== $name"
    if command -v tcpdump >/dev/null; then
        tcpdump -i lo -s 0 -U -w "$out" "tcp port $PORT" 2>"$WORK/cap.err" &
    else
        dumpcap -i lo -P -q -w "$out" -f "tcp port $PORT" 2>"$WORK/cap.err" &
    fi
    TPID=$!
    sleep 1
    # One connection: a keyed POST, the same key with another amount, a keyless POST.
    SSLKEYLOGFILE=$keys curl -sS --http2 -k "$@" --resolve "api.example.com:$PORT:127.0.0.1" \
        -H 'Authorization: Bearer sk_test_h2' -H 'Idempotency-Key: k-h2-1' \
        -d amount=100 "$base/v1/charges" -o /dev/null --next \
        --http2 -k "$@" -H 'Authorization: Bearer sk_test_h2' -H 'Idempotency-Key: k-h2-1' \
        -d amount=999 "$base/v1/charges" -o /dev/null --next \
        --http2 -k "$@" -H 'Authorization: Bearer sk_test_h2' \
        -d amount=5 "$base/v1/charges" -o /dev/null
    sleep 0.5
    kill -INT "$TPID"
    wait "$TPID" || true
    TPID=
    chmod 644 "$out" "$keys"
}

record curl-h2-tls13 --tlsv1.3
record curl-h2-tls12 --tlsv1.2 --tls-max 1.2
