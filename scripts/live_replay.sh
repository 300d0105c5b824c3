#!/usr/bin/env bash
# Replays a capture onto a veth pair with `tcpreplay --topspeed` (or $REPLAY_RATE, e.g. --mbps=1000) while `idemwatch live` captures
# on the other end, then prints the replay rate and the drops (libpcap's and idemwatch's) from
# idemwatch's last stats line. Needs root, iproute2 and tcpreplay.
#
#   sudo bash scripts/live_replay.sh CAPTURE [BUFFER_SIZE]     # e.g. target/bench/workload-1G.pcap 256M
# KEEP=FILE keeps the events written. THREADS=N passes --threads N (default: idemwatch's own,
# the cores available). The binary is $CARGO_TARGET_DIR/release/idemwatch (default target/),
# or $IDEMWATCH.
set -euo pipefail
cd "$(dirname "$0")/.."
CAP=${1:?usage: live_replay.sh CAPTURE [BUFFER_SIZE]}
BUF=${2:-64M}
command -v tcpreplay >/dev/null || { echo "install tcpreplay (apt-get install tcpreplay)" >&2; exit 2; }
# IDEMWATCH=PATH runs that binary instead (to compare builds).
if [ -n "${IDEMWATCH:-}" ]; then
    BIN=$IDEMWATCH
else
    cargo build --release --quiet --bin idemwatch
    BIN=${CARGO_TARGET_DIR:-target}/release/idemwatch
fi
THREAD_ARGS=()
[ -n "${THREADS:-}" ] && THREAD_ARGS=(--threads "$THREADS")
WORK=$(mktemp -d)
A=iwrep0 B=iwrep1
cleanup() {
    [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true
    ip link del "$A" 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then cp "$WORK/out.json" "$KEEP"; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
ip link add "$A" type veth peer name "$B"
# Jumbo MTU: the replayed frames may exceed 1500 bytes where the capture had offloads.
ip link set "$A" mtu 9000 up
ip link set "$B" mtu 9000 up
"$BIN" live -v -i "$B" --buffer-size "$BUF" --stats-interval 1s "${THREAD_ARGS[@]}" \
    -o "$WORK/out.json" 2>"$WORK/err" &
PID=$!
for _ in $(seq 100); do grep -q capturing "$WORK/err" && break; sleep 0.1; done
echo "threads ${THREADS:-default}, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
tcpreplay ${REPLAY_RATE:---topspeed} -i "$A" "$CAP" 2>&1 | grep -E 'Actual|Rated|Failed' || true
sleep 2
kill -TERM "$PID"
wait "$PID" || true
PID=
python3 - "$WORK/out.json" <<'PY'
import json, sys
stats = [json.loads(l)["stats"] for l in open(sys.argv[1]) if '"event_type":"stats"' in l]
s = stats[-1]
alerts = sum(1 for l in open(sys.argv[1]) if '"event_type":"alert"' in l)
keys = ["capture_kernel_packets", "capture_kernel_drops", "capture_kernel_ifdrops", "packets",
        "flows_evicted", "tcp_gaps", "http_transactions", "fragments_dropped"]
for k in keys:
    print(f"{k:28} {s.get(k)}")
print(f"{'alerts':28} {alerts}")
PY
