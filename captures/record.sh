#!/bin/bash
# Re-record every capture in captures/ from scratch, then rebuild EXPECTED.json
# from the fake server's own request log and check it against the captures,
# and rewrite ALERTS.json (expected_alerts.py: the alerts the spec requires).
#
#   sudo bash captures/record.sh            # all scenarios
#   sudo bash captures/record.sh NAME...    # only these (e.g. curl-basic ipv6); EXPECTED.json is updated in place
#
# Needs: root (tcpdump), tcpdump, curl (>= 7.82 for --json), python3 with
# `requests`, `stripe` and `httpx` (pip install requests stripe httpx).  All traffic stays on
# 127.0.0.1 / ::1.  Per scenario: start server.py on a free loopback port, start
# tcpdump and wait for "listening on", run the scenario's clients, stop the
# server (so the connections close inside the capture), stop tcpdump with
# SIGINT and wait for it.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

HERE=$(cd "$(dirname "$0")" && pwd)
CLIENTS=$HERE/clients
WORK=$(mktemp -d /tmp/idemwatch-record.XXXXXX)
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
    echo "record.sh: tcpdump needs root; run: sudo bash captures/record.sh" >&2
    exit 2
fi
for tool in tcpdump curl python3; do
    command -v "$tool" >/dev/null || { echo "record.sh: $tool not found" >&2; exit 2; }
done

free_port() {  # free_port 4|6
    python3 - "$1" <<'PY'
import socket, sys
fam, addr = (socket.AF_INET6, "::1") if sys.argv[1] == "6" else (socket.AF_INET, "127.0.0.1")
s = socket.socket(fam)
s.bind((addr, 0))
print(s.getsockname()[1])
PY
}

wait_for() {  # wait_for FILE TEXT SECONDS
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "record.sh: timed out waiting for '$2' in $1" >&2
    cat "$1" >&2 || true
    return 1
}

# record NAME IFACE FAMILY "SERVER-ARGS" "TCPDUMP-ARGS" CLIENT [ARGS...]
# Client arguments: BASE is replaced by the base URL, WORK by a scratch dir.
# FIXED_PORTS="P1 P2" (environment): the server listens on P1 and, with
# --also-port, on P2 (one backend, one idempotency store: two gateways); tcpdump
# takes both ports; BASE2 is replaced by the base URL of P2.
record() {
    local name=$1 iface=$2 fam=$3 sargs=$4 targs=$5
    shift 5
    local port port2= bind base base2= out log filter
    if [ -n "${FIXED_PORTS:-}" ]; then
        read -r port port2 <<<"$FIXED_PORTS"
    else
        port=$(free_port "$fam")
    fi
    filter="tcp port $port"
    if [ -n "$port2" ]; then
        filter="tcp port $port or tcp port $port2"
        sargs="${sargs:+$sargs }--also-port $port2"
    fi
    if [ "$fam" = 6 ]; then bind=::1; base="http://[::1]:$port"; else bind=127.0.0.1; base="http://127.0.0.1:$port"; fi
    if [ -n "$port2" ]; then
        if [ "$fam" = 6 ]; then base2="http://[::1]:$port2"; else base2="http://127.0.0.1:$port2"; fi
    fi
    out=$HERE/$name.pcap
    log=$WORK/$name.log
    rm -f "$out" "$log"
    echo "== $name (port $port${port2:+ and $port2}, -i $iface${targs:+ $targs}${sargs:+, server $sargs})"

    # shellcheck disable=SC2086
    python3 "$HERE/server.py" "$port" --bind "$bind" --log "$log" $sargs 2>"$WORK/$name.server.err" &
    SPID=$!
    wait_for "$WORK/$name.server.err" "listening on" 10

    # -U and --immediate-mode: every packet is written at once (with TPACKET_V3
    # and no immediate mode the last block can be lost on SIGINT).  -Z root:
    # keep root as the file owner.  -B: 16 MiB kernel buffer, nothing dropped.
    # shellcheck disable=SC2086
    tcpdump -i "$iface" -s 0 -U --immediate-mode -B 16384 -Z root $targs -w "$out" "$filter" \
        2>"$WORK/$name.tcpdump.err" &
    TPID=$!
    wait_for "$WORK/$name.tcpdump.err" "listening on" 10
    sleep 0.3

    local args=() a
    for a in "$@"; do
        if [ -n "$base2" ]; then a=${a//BASE2/$base2}; fi
        a=${a//BASE/$base}
        a=${a//WORK/$WORK\/$name.files}
        args+=("$a")
    done
    (cd "$CLIENTS" && "${args[@]}") >"$WORK/$name.client.out" 2>&1 || {
        echo "record.sh: client failed for $name:" >&2
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
    grep -E "captured|dropped" "$WORK/$name.tcpdump.err" | sed 's/^/   tcpdump: /'
    if grep -q "Traceback\|Exception occurred" "$WORK/$name.server.err"; then
        echo "record.sh: server error in $name:" >&2
        cat "$WORK/$name.server.err" >&2
        return 1
    fi
    local script=
    for a in "$@"; do case $a in *.sh | *.py) script=${a#./}; break ;; esac; done
    printf '%s\t%s\t-\t%s\n' "$name.pcap" "$log" \
        "tcpdump -i $iface${targs:+ $targs}; server.py${sargs:+ $sargs}; clients/$script" >>"$MANIFEST"
}

# derive NEW FROM: a pcapng copy of a recorded capture (same transactions)
to_pcapng() {
    local from=$1 new=$2 tool
    if command -v editcap >/dev/null; then
        editcap -F pcapng "$HERE/$from" "$HERE/$new"
        tool="editcap -F pcapng"
    else
        python3 "$HERE/pcap2pcapng.py" "$HERE/$from" "$HERE/$new"
        tool="pcap2pcapng.py (editcap not installed)"
    fi
    local log
    log=$(awk -F'\t' -v f="$from" '$1 == f { print $2 }' "$MANIFEST")
    printf '%s\t%s\t%s\t%s\n' "$new" "$log" "$from" "converted from $from with $tool" >>"$MANIFEST"
    echo "== $new (from $from, $tool)"
}

want() {  # is scenario $1 selected?
    [ ${#SELECTED[@]} = 0 ] && return 0
    local s
    for s in "${SELECTED[@]}"; do [ "$s" = "$1" ] && return 0; done
    return 1
}
scenario() {  # scenario NAME ...: record NAME ... if selected
    want "$1" || return 0
    record "$@"
}
SELECTED=("$@")
# The Python modules the selected scenarios use (stripe and httpx only for their own).
modules=requests
if want stripe-sdk || want stripe-sdk-retry; then modules+=", stripe"; fi
if want httpx-retries; then modules+=", httpx"; fi
python3 -c "import $modules" || { echo "record.sh: pip install ${modules//,/}" >&2; exit 2; }
if [ ${#SELECTED[@]} = 0 ]; then  # everything from scratch
    rm -f "$HERE"/*.pcap "$HERE"/*.pcapng "$HERE/EXPECTED.json"
fi

scenario curl-basic lo 4 "" "" sh ./curl-basic.sh BASE
scenario curl-chunked-expect lo 4 "" "" sh ./curl-chunked-expect.sh BASE WORK
scenario requests-retry-same-key lo 4 "" "" python3 requests-retry-same-key.py BASE
if want requests-retry-same-key; then
    to_pcapng requests-retry-same-key.pcap requests-retry-same-key.pcapng
fi
scenario requests-key-conflict lo 4 "" "" python3 requests-key-conflict.py BASE
scenario requests-key-reencoded lo 4 "" "" python3 requests-key-reencoded.py BASE
scenario requests-conflict-accepted lo 4 "--mode accept-conflict" "" python3 requests-conflict-accepted.py BASE
scenario requests-conflict-replayed lo 4 "--mode replay-conflict" "" python3 requests-conflict-replayed.py BASE
scenario requests-no-idempotency lo 4 "--mode no-idempotency" "" python3 requests-no-idempotency.py BASE
scenario requests-replay-drift lo 4 "--mode drift" "" python3 requests-replay-drift.py BASE
scenario requests-key-churn lo 4 "" "" python3 requests-key-churn.py BASE
scenario requests-keyless-duplicate lo 4 "" "" python3 requests-keyless-duplicate.py BASE
scenario requests-invalid-keys lo 4 "" "" python3 requests-invalid-keys.py BASE
scenario requests-concurrent lo 4 "" "" python3 requests-concurrent.py BASE
scenario stripe-sdk lo 4 "" "" python3 stripe-sdk.py BASE
scenario any-sll2 any 4 "" "" python3 small-mix.py BASE
scenario nsec lo 4 "" "--time-stamp-precision=nano" python3 small-mix.py BASE
scenario ipv6 lo 6 "" "" sh ./ipv6.sh BASE
scenario bulk lo 4 "" "" python3 bulk.py BASE 6 350
scenario httpx-retries lo 4 "" "" python3 httpx-retries.py BASE
scenario raw-pipelined-chunked lo 4 "" "" python3 raw-pipelined-chunked.py BASE
scenario late-retry lo 4 "" "" python3 late-retry.py BASE
scenario get-only lo 4 "" "" python3 get-only.py BASE
scenario search-only lo 4 "" "" python3 search-only.py BASE
scenario stripe-sdk-retry lo 4 "" "" python3 stripe-sdk-retry.py BASE
scenario demo lo 4 "" "" python3 demo.py BASE
# The story record_tls.sh also records over https (tls/story-tls.pcap): the same alerts both ways.
scenario story-plain lo 4 "" "" python3 story.py BASE
FIXED_PORTS="18081 18082" scenario fleet lo 4 "" "" python3 fleet.py BASE BASE2

python3 "$HERE/make_expected.py" "$HERE/EXPECTED.json" "$MANIFEST"
echo "== checking EXPECTED.json against the captures (check_expected.py)"
names=$(cut -f1 "$MANIFEST")
# shellcheck disable=SC2086
python3 "$HERE/check_expected.py" "$HERE/EXPECTED.json" "$HERE" $names
echo "== ALERTS.json: the alerts the spec requires (expected_alerts.py)"
python3 "$HERE/expected_alerts.py" "$HERE/EXPECTED.json" "$HERE" "$HERE/ALERTS.json"
du -ch "$HERE"/*.pcap "$HERE"/*.pcapng "$HERE/EXPECTED.json" 2>/dev/null | tail -1
