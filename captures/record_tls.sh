#!/bin/bash
# Re-record the HTTPS captures in captures/tls/ (NAME.pcap + NAME.keys), then
# rebuild tls/TSHARK.json (what tshark decrypts with each key log) and check it
# against the fake server's own request log.
#
#   sudo bash captures/record_tls.sh            # all TLS scenarios
#   sudo bash captures/record_tls.sh NAME...    # only these; their TSHARK.json entries are replaced
#
# Needs: root, tcpdump (or Wireshark's dumpcap, writing classic pcap), curl
# built with OpenSSL, python3 with `requests`, openssl, tshark.  Same steps as
# record.sh, over HTTPS: server.py --tls with a throwaway self-signed
# certificate made here (not committed), clients write their TLS secrets to
# $SSLKEYLOGFILE = tls/NAME.keys (curl and urllib3 both honour it).
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE/tls
CLIENTS=$HERE/clients
WORK=$(mktemp -d /tmp/idemwatch-record-tls.XXXXXX)
MANIFEST=$WORK/manifest.tsv
: >"$MANIFEST"
SPID=
TPID=

cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true
    [ -n "$TPID" ] && kill -INT "$TPID" 2>/dev/null || true
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [ "$(id -u)" != 0 ]; then
    echo "record_tls.sh: capturing needs root; run: sudo bash captures/record_tls.sh" >&2
    exit 2
fi
for tool in curl python3 openssl tshark; do
    command -v "$tool" >/dev/null || { echo "record_tls.sh: $tool not found" >&2; exit 2; }
done
if command -v tcpdump >/dev/null; then CAPTURE=tcpdump
elif command -v dumpcap >/dev/null; then CAPTURE=dumpcap
else echo "record_tls.sh: tcpdump (or dumpcap) not found" >&2; exit 2; fi
python3 -c 'import requests' || { echo "record_tls.sh: pip install requests" >&2; exit 2; }
mkdir -p "$OUT"

# A throwaway certificate for this run only.
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
    echo "record_tls.sh: timed out waiting for '$2' in $1" >&2
    cat "$1" >&2 || true
    return 1
}

# record NAME "SERVER-ARGS" CLIENT [ARGS...]: BASE in the client arguments is
# replaced by the https base URL.
record() {
    local name=$1 sargs=$2
    shift 2
    local port base out keys log
    port=$(free_port)
    base="https://127.0.0.1:$port"
    out=$OUT/$name.pcap
    keys=$OUT/$name.keys
    log=$WORK/$name.log
    rm -f "$out" "$keys" "$log"
    echo "== $name (port $port${sargs:+, server $sargs})"

    # shellcheck disable=SC2086
    python3 "$HERE/server.py" "$port" --log "$log" --tls "$WORK/cert.pem" "$WORK/key.pem" $sargs \
        2>"$WORK/$name.server.err" &
    SPID=$!
    wait_for "$WORK/$name.server.err" "listening on" 10

    # Same settings as record.sh (-U --immediate-mode: nothing lost on SIGINT).
    if [ "$CAPTURE" = tcpdump ]; then
        tcpdump -i lo -s 0 -U --immediate-mode -B 16384 -Z root -w "$out" "tcp port $port" \
            2>"$WORK/$name.cap.err" &
    else
        dumpcap -i lo -P -q -w "$out" -f "tcp port $port" 2>"$WORK/$name.cap.err" &
    fi
    TPID=$!
    if [ "$CAPTURE" = tcpdump ]; then
        wait_for "$WORK/$name.cap.err" "listening on" 10
    else
        wait_for "$WORK/$name.cap.err" "Capturing on" 10
    fi
    sleep 0.3

    local args=() a
    for a in "$@"; do args+=("${a//BASE/$base}"); done
    (cd "$CLIENTS" && SSLKEYLOGFILE=$keys "${args[@]}") >"$WORK/$name.client.out" 2>&1 || {
        echo "record_tls.sh: client failed for $name:" >&2
        cat "$WORK/$name.client.out" >&2
        return 1
    }
    sed 's/^/   | /' "$WORK/$name.client.out" | head -12

    sleep 0.3
    kill -TERM "$SPID"
    wait "$SPID" || true
    SPID=
    sleep 0.5
    kill -INT "$TPID"
    wait "$TPID" || true
    TPID=
    chmod 644 "$out" "$keys"
    if grep -q "Traceback\|Exception occurred" "$WORK/$name.server.err"; then
        echo "record_tls.sh: server error in $name:" >&2
        cat "$WORK/$name.server.err" >&2
        return 1
    fi
    printf '%s\t%s\t%s\n' "$name" "$log" "$CAPTURE -i lo; server.py --tls${sargs:+ $sargs}; clients/${args[*]#./}" >>"$MANIFEST"
}

want() {
    [ ${#SELECTED[@]} = 0 ] && return 0
    local s
    for s in "${SELECTED[@]}"; do [ "$s" = "$1" ] && return 0; done
    return 1
}
scenario() {
    want "$1" || return 0
    record "$@"
}
SELECTED=("$@")

T13="--tlsv1.3"
T12="--tlsv1.2 --tls-max 1.2"
scenario curl-tls13-aes128 "" sh ./curl-tls.sh BASE $T13 --tls13-ciphers TLS_AES_128_GCM_SHA256
scenario curl-tls13-aes256 "" sh ./curl-tls.sh BASE $T13 --tls13-ciphers TLS_AES_256_GCM_SHA384
scenario curl-tls13-chacha "" sh ./curl-tls.sh BASE $T13 --tls13-ciphers TLS_CHACHA20_POLY1305_SHA256
# TLS 1.2: the server offers only the one suite, curl only TLS 1.2
scenario curl-tls12-aes128 "--tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256" sh ./curl-tls.sh BASE $T12
scenario curl-tls12-aes256 "--tls-max 1.2 --ciphers ECDHE-RSA-AES256-GCM-SHA384" sh ./curl-tls.sh BASE $T12
scenario curl-tls12-chacha "--tls-max 1.2 --ciphers ECDHE-RSA-CHACHA20-POLY1305" sh ./curl-tls.sh BASE $T12
scenario requests-tls13 "" python3 requests-tls.py BASE
scenario requests-tls12 "--tls-max 1.2" python3 requests-tls.py BASE
scenario curl-tls12-resumed "--tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256" sh ./curl-tls-resumed.sh BASE $T12
scenario curl-tls13-missing-key "" sh ./curl-tls.sh BASE $T13 --tls13-ciphers TLS_AES_128_GCM_SHA256
# record.sh records the same story over http (story-plain.pcap): the same alerts both ways.
scenario story-tls "" python3 story.py BASE
if want curl-tls13-missing-key; then
    # Drop the first connection's secrets from the key log (lines name the
    # connection by its ClientHello random): tshark and idemwatch can then
    # decrypt only the second connection.
    first=$(tshark -r "$OUT/curl-tls13-missing-key.pcap" -Y 'tls.handshake.type == 1' \
        -T fields -e tls.handshake.random 2>/dev/null | head -1)
    [ -n "$first" ] || { echo "record_tls.sh: no ClientHello in curl-tls13-missing-key.pcap" >&2; exit 1; }
    grep -vi " $first " "$OUT/curl-tls13-missing-key.keys" >"$WORK/keys" || true
    cat "$WORK/keys" >"$OUT/curl-tls13-missing-key.keys"
    echo "   dropped the key log lines of client random $first"
fi

python3 "$OUT/tshark_requests.py" "$OUT/TSHARK.json" "$MANIFEST"
