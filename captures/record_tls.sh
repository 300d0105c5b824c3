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
# $SSLKEYLOGFILE = tls/NAME.keys (curl and urllib3 both honour it).  The
# *-lost-segment scenario also needs iproute2 (`ip netns`) and /dev/net/tun.
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
LPID=
# Where record() runs things: loopback here, or the two ends of lossy_link.py.
HOST=127.0.0.1
IFACE=lo
IN_CLIENT=()
IN_SERVER=()

cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true
    [ -n "$TPID" ] && kill -INT "$TPID" 2>/dev/null || true
    [ -n "$LPID" ] && kill "$LPID" 2>/dev/null || true
    ip netns del iwrec-client 2>/dev/null || true
    ip netns del iwrec-server 2>/dev/null || true
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
    -subj /CN=api.example.com -addext subjectAltName=DNS:api.example.com,IP:127.0.0.1,IP:10.9.0.2 2>/dev/null

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
    base="https://$HOST:$port"
    out=$OUT/$name.pcap
    keys=$OUT/$name.keys
    log=$WORK/$name.log
    rm -f "$out" "$keys" "$log"
    echo "== $name (port $port${sargs:+, server $sargs})"

    # shellcheck disable=SC2086
    "${IN_SERVER[@]}" python3 "$HERE/server.py" "$port" --bind "$HOST" --log "$log" \
        --tls "$WORK/cert.pem" "$WORK/key.pem" $sargs \
        2>"$WORK/$name.server.err" &
    SPID=$!
    wait_for "$WORK/$name.server.err" "listening on" 10

    # Same settings as record.sh (-U --immediate-mode: nothing lost on SIGINT).
    if [ "$CAPTURE" = tcpdump ]; then
        "${IN_CLIENT[@]}" tcpdump -i "$IFACE" -s 0 -U --immediate-mode -B 16384 -Z root -w "$out" \
            "tcp port $port" 2>"$WORK/$name.cap.err" &
    else
        "${IN_CLIENT[@]}" dumpcap -i "$IFACE" -P -q -w "$out" -f "tcp port $port" 2>"$WORK/$name.cap.err" &
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
    (cd "$CLIENTS" && SSLKEYLOGFILE=$keys "${IN_CLIENT[@]}" "${args[@]}") >"$WORK/$name.client.out" 2>&1 || {
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
    printf '%s\t%s\t%s\n' "$name" "$log" "$CAPTURE -i $IFACE${LINK_HOW:+ ($LINK_HOW)}; server.py --tls${sargs:+ $sargs}; clients/${args[*]#./}" >>"$MANIFEST"
}

# TLS 1.3 0-RTT: openssl s_server -early_data (server.py cannot: Python's ssl
# has no early data); s_client makes a full handshake with a POST and saves the
# session, then resumes it with a second POST (same key, another amount) as
# early data.  s_server prints what it receives: that is the server log here,
# turned into server.py's log lines by the connections' client ports in order
# (s_server serves one connection at a time).
record_0rtt() {
    local name=$1 port base out keys log
    port=$(free_port)
    out=$OUT/$name.pcap
    keys=$OUT/$name.keys
    log=$WORK/$name.log
    rm -f "$out" "$keys" "$log"
    echo "== $name (port $port, openssl s_server -early_data)"
    local k=7e1a5c00-7151-4c0a-8e11-5ca1ab1e0005 b
    for b in 1000 1500; do
        printf 'POST /v1/charges HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nIdempotency-Key: %s\r\nContent-Type: application/json\r\nContent-Length: 35\r\nConnection: close\r\n\r\n{"amount": %s, "currency": "usd"}' \
            "$port" "$k" "$b" >"$WORK/req$b.txt"
    done
    # Its input stays open (at its end s_server stops); stopped below.
    openssl s_server -accept "127.0.0.1:$port" -cert "$WORK/cert.pem" -key "$WORK/key.pem" \
        -tls1_3 -early_data < <(sleep 60) >"$WORK/$name.server.out" 2>&1 &
    SPID=$!
    wait_for "$WORK/$name.server.out" "ACCEPT" 10
    if [ "$CAPTURE" = tcpdump ]; then
        tcpdump -i lo -s 0 -U --immediate-mode -B 16384 -Z root -w "$out" "tcp port $port" \
            2>"$WORK/$name.cap.err" &
        TPID=$!
        wait_for "$WORK/$name.cap.err" "listening on" 10
    else
        dumpcap -i lo -P -q -w "$out" -f "tcp port $port" 2>"$WORK/$name.cap.err" &
        TPID=$!
        wait_for "$WORK/$name.cap.err" "Capturing on" 10
    fi
    sleep 0.3
    # Not -quiet: it implies -ign_eof, and s_client must close when its input ends.
    (cat "$WORK/req1000.txt"; sleep 1) | openssl s_client -connect "127.0.0.1:$port" -tls1_3 \
        -sess_out "$WORK/sess.pem" -keylogfile "$keys" >"$WORK/$name.client1.out" 2>&1
    sleep 1 | openssl s_client -connect "127.0.0.1:$port" -tls1_3 -sess_in "$WORK/sess.pem" \
        -early_data "$WORK/req1500.txt" -keylogfile "$keys" >"$WORK/$name.client2.out" 2>&1
    grep -q "Early data was accepted" "$WORK/$name.client2.out" || {
        echo "record_tls.sh: $name: the early data was not accepted" >&2
        cat "$WORK/$name.client2.out" >&2
        return 1
    }
    echo "   | early data accepted"
    sleep 0.5
    kill -TERM "$SPID"
    wait "$SPID" || true
    SPID=
    sleep 0.5
    kill -INT "$TPID"
    wait "$TPID" || true
    TPID=
    chmod 644 "$out" "$keys"
    python3 - "$WORK/$name.server.out" "$out" "$log" <<'PY'
import json, re, subprocess, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
ports = subprocess.run(["tshark", "-r", sys.argv[2], "-Y", "tls.handshake.type == 1", "-T", "fields",
                        "-e", "tcp.srcport"], check=True, capture_output=True, text=True).stdout.split()
reqs = re.findall(r"^(POST|GET) (\S+) HTTP/1\.1\r?\n(.*?)\r?\n\r?\n", text, re.S | re.M)
assert len(reqs) == len(ports) == 2, (reqs, ports)
with open(sys.argv[3], "w") as f:
    for i, ((method, uri, head), port) in enumerate(zip(reqs, ports)):
        key = re.search(r"^Idempotency-Key: *(\S+)", head, re.M | re.I)
        f.write(json.dumps({"t_start": i, "seq": i, "client_port": int(port), "method": method, "uri": uri,
                            "idempotency_key": key.group(1) if key else None}) + "\n")
PY
    printf '%s\t%s\t%s\n' "$name" "$log" "$CAPTURE -i lo; openssl s_server -tls1_3 -early_data; openssl s_client -tls1_3 -sess_out, then -sess_in -early_data (POST as 0-RTT data)" >>"$MANIFEST"
}

# record_lossy NAME N SERVER-ARGS CLIENT...: as record, but client and server in
# two network namespaces joined by lossy_link.py (MTU 576, so flights span
# several segments), which drops the server's Nth segment with payload once;
# captured on the client's end, where the segments after it arrive before its
# retransmission.  (No netem or iptables needed: the kernel here has neither.)
record_lossy() {
    local name=$1 nth=$2 ns
    shift 2
    for ns in iwrec-client iwrec-server; do ip netns add "$ns"; done
    python3 "$HERE/lossy_link.py" iwrec-client iwrec-server "$nth" >"$WORK/$name.link.out" 2>&1 &
    LPID=$!
    wait_for "$WORK/$name.link.out" "ready" 10
    ip netns exec iwrec-client ip addr add 10.9.0.1 peer 10.9.0.2 dev iwtun
    ip netns exec iwrec-server ip addr add 10.9.0.2 peer 10.9.0.1 dev iwtun
    for ns in iwrec-client iwrec-server; do
        ip netns exec "$ns" ip link set iwtun up mtu 576
        ip netns exec "$ns" ip link set lo up
    done
    HOST=10.9.0.2 IFACE=iwtun IN_CLIENT=(ip netns exec iwrec-client) IN_SERVER=(ip netns exec iwrec-server)
    LINK_HOW="server's segment $nth with payload dropped once by lossy_link.py"
    record "$name" "$@"
    HOST=127.0.0.1 IFACE=lo IN_CLIENT=() IN_SERVER=() LINK_HOW=
    kill "$LPID"
    wait "$LPID" || true
    LPID=
    grep -q dropped "$WORK/$name.link.out" || { echo "record_tls.sh: $name: nothing dropped" >&2; return 1; }
    sed 's/^/   link: /' "$WORK/$name.link.out"
    for ns in iwrec-client iwrec-server; do ip netns del "$ns"; done
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
# RSA key exchange (no forward secrecy): the CLIENT_RANDOM master secret decrypts it alike.
scenario curl-tls12-rsa-kex "--tls-max 1.2 --ciphers AES128-GCM-SHA256" sh ./curl-tls.sh BASE $T12
scenario requests-tls13 "" python3 requests-tls.py BASE
scenario requests-tls12 "--tls-max 1.2" python3 requests-tls.py BASE
scenario curl-tls12-resumed "--tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256" sh ./curl-tls-resumed.sh BASE $T12
# TLS 1.2 by ticket (server.py issues tickets; curl sends no session_ticket
# extension, Python's ssl does), and by session ID with Python too.
scenario python-tls12-ticket-resumed "--tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256" \
    python3 python-tls-resumed.py BASE
scenario python-tls12-id-resumed "--tls-max 1.2 --ciphers ECDHE-RSA-AES256-GCM-SHA384 --no-tickets" \
    python3 python-tls-resumed.py BASE
scenario curl-tls13-missing-key "" sh ./curl-tls.sh BASE $T13 --tls13-ciphers TLS_AES_128_GCM_SHA256
if want openssl-tls13-early-data; then record_0rtt openssl-tls13-early-data; fi
# The server's second segment (inside its encrypted first flight) lost once.
if want curl-tls13-lost-segment; then
    record_lossy curl-tls13-lost-segment 2 "" sh ./curl-tls.sh BASE $T13 --tls13-ciphers TLS_AES_128_GCM_SHA256
fi
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

# A second key log per resumed capture, NAME.full-only.keys: only the first
# connection's lines (by its ClientHello random), as writers that log full
# handshakes only (server side, older NSS) give it; the resumed connections are
# then decrypted through the session ID or ticket they resumed.
for name in curl-tls12-resumed python-tls12-ticket-resumed python-tls12-id-resumed; do
    want "$name" || continue
    first=$(tshark -r "$OUT/$name.pcap" -Y 'tls.handshake.type == 1' \
        -T fields -e tls.handshake.random 2>/dev/null | head -1 | tr -d :)
    [ -n "$first" ] || { echo "record_tls.sh: no ClientHello in $name.pcap" >&2; exit 1; }
    grep -i " $first " "$OUT/$name.keys" >"$OUT/$name.full-only.keys"
    chmod 644 "$OUT/$name.full-only.keys"
    echo "   $name.full-only.keys: the lines of client random $first only"
done

python3 "$OUT/tshark_requests.py" "$OUT/TSHARK.json" "$MANIFEST"
