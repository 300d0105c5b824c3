#!/usr/bin/env bash
# Fleet mode, measured: `idemwatch read --threads 1` on one generated capture with no shared
# store, with the in-process store (`--store memory`) and with a local Redis (`--store
# redis://`), alternating runs; medians, requests per second, round trips; then the Redis
# memory per tracked key, and the alert latency a mirror adds with the store
# (scripts/fleet_latency.py).
#
#   bash scripts/fleet_bench.sh [TRANSACTIONS] [RUNS]     # defaults: 200000, 5
#
# Needs redis-server (scripts/setup.sh installs it); starts its own on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
TX=${1:-200000}
RUNS=${2:-5}
DIR=${BENCH_DIR:-target/bench}
mkdir -p "$DIR"
FILE="$DIR/fleet-$TX.pcap"

cargo build --release --quiet --bin idemwatch --example workload
BIN=target/release/idemwatch
[ -f "$FILE" ] || target/release/examples/workload --seed 11 --transactions "$TX" --out "$FILE"
cat "$FILE" > /dev/null

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
RPID=$!
trap 'kill $RPID 2>/dev/null || true' EXIT
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
URL="redis://127.0.0.1:$PORT/0"
CLI="redis-cli -p $PORT"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A T
CASES=(none memory redis)
for _ in $(seq "$RUNS"); do
    for c in "${CASES[@]}"; do
        case $c in
            none) args=() ;;
            memory) args=(--store memory) ;;
            redis) $CLI flushall >/dev/null; args=(--store "$URL" --store-instance bench) ;;
        esac
        /usr/bin/time -f "%e %M" -o "$DIR/.time" "$BIN" read -q --threads 1 --stats "${args[@]}" "$FILE" \
            > "$DIR/fleet-$c.json"
        T[$c]+="$(cut -d' ' -f1 "$DIR/.time")"$'\n'
    done
done
REQ=$(jq -r 'select(.event_type=="stats") | .stats.http_requests' "$DIR/fleet-none.json")
printf '%-10s %9s %12s %12s %10s\n' "store" "median s" "requests/s" "round trips" "ops"
for c in "${CASES[@]}"; do
    m=$(printf '%s' "${T[$c]}" | median)
    rt=$(jq -r 'select(.event_type=="stats") | .stats.store_round_trips' "$DIR/fleet-$c.json")
    ops=$(jq -r 'select(.event_type=="stats") | .stats.store_ops' "$DIR/fleet-$c.json")
    printf '%-10s %9s %12.0f %12s %10s\n' "$c" "$m" "$(echo "$REQ / $m" | bc -l)" "$rt" "$ops"
done
# Same alerts whatever the store (one instance: the store only adds round trips).
for c in memory redis; do
    if ! cmp -s <(jq -c 'select(.event_type=="alert")' "$DIR/fleet-none.json") \
                <(jq -c 'select(.event_type=="alert") | del(.original.observer)' "$DIR/fleet-$c.json"); then
        echo "alerts differ between no store and $c" >&2
        exit 1
    fi
done
echo "alerts: identical with every store ($(jq -c 'select(.event_type=="alert")' "$DIR/fleet-none.json" | wc -l))"

# Memory: what the last Redis run left, per record.
KEYS=$($CLI dbsize)
USED=$($CLI info memory | awk -F: '/^used_memory:/ {print $2+0}')
$CLI flushall >/dev/null
EMPTY=$($CLI info memory | awk -F: '/^used_memory:/ {print $2+0}')
echo "redis: $KEYS keys, $(( (USED - EMPTY) / (KEYS > 0 ? KEYS : 1) )) bytes per key (used_memory $USED - $EMPTY empty)"

python3 scripts/fleet_latency.py "$URL" 20
