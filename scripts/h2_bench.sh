#!/usr/bin/env bash
# The cost of HTTP/2: times `idemwatch read -q` on the generated workload as HTTP/1.1 and as
# HTTP/2 with prior knowledge (examples/workload.rs --h2, seed 7, the same story: `--size`
# counts the HTTP/1.1 capture's bytes in both modes, so the h2 file is smaller, its header
# blocks HPACK-compressed), alternating runs, and prints the medians, the ratio h2/HTTP/1.1,
# peak RSS, and each file's transactions and alerts from `--stats` next to the ground truth
# (a line says MISMATCH when they differ).
#
#   bash scripts/h2_bench.sh [SIZE] [RUNS] [THREADS]     # defaults: 1G, 5, all cores
#
# The captures are made in $BENCH_DIR (default $CARGO_TARGET_DIR/bench, else target/bench) and
# reused while they exist. Run on an otherwise idle machine (the load average is printed); the
# files should be in the page cache (each is read once first).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1G}
RUNS=${2:-5}
THREADS=${3:-$(nproc)}
TARGET=${CARGO_TARGET_DIR:-target}
DIR=${BENCH_DIR:-$TARGET/bench}
mkdir -p "$DIR"
H1="$DIR/workload-$SIZE.pcap"
H2="$DIR/workload-h2-$SIZE.pcap"

cargo build --release --quiet --bin idemwatch --example workload
BIN=$TARGET/release/idemwatch
GEN=$TARGET/release/examples/workload
if [ ! -f "$H1" ] || [ ! -f "$H1.json" ]; then
    echo "generating $H1 ..." >&2
    "$GEN" --seed 7 --size "$SIZE" --out "$H1"
fi
if [ ! -f "$H2" ] || [ ! -f "$H2.json" ]; then
    echo "generating $H2 ..." >&2
    "$GEN" --seed 7 --size "$SIZE" --h2 --out "$H2"
fi
cat "$H1" "$H2" > /dev/null

# time_of CMD...: prints "seconds maxrss_kb" of one run (stdout and stderr of CMD discarded).
time_of() {
    /usr/bin/time -f "%e %M" -o "$DIR/.time-h2" "$@" > /dev/null 2> /dev/null
    cat "$DIR/.time-h2"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A T R
CASES=(h1 h2)
for _ in $(seq "$RUNS"); do
    for c in "${CASES[@]}"; do
        case $c in
            h1) out=$(time_of "$BIN" read -q --threads "$THREADS" "$H1") ;;
            h2) out=$(time_of "$BIN" read -q --threads "$THREADS" "$H2") ;;
        esac
        T[$c]+="${out% *}"$'\n'
        R[$c]+="${out#* }"$'\n'
    done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

med() { printf '%s' "${T[$1]}" | median; }
rss() { printf '%s' "${R[$1]}" | sort -n | tail -1; }
mb() { echo $(( $(stat -c %s "$1") / 1048576 )); }
# counts FILE: "transactions alerts" as idemwatch reads FILE (its --stats line).
counts() {
    "$BIN" read --stats --threads "$THREADS" "$1" 2> /dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    v = json.loads(line)
    if v.get("event_type") == "stats":
        print(v["stats"]["http_transactions"], v["stats"]["alerts"])'
}
# truth FILE: "transactions alerts" of the generator's sidecar.
truth() {
    python3 -c 'import json, sys; v = json.load(open(sys.argv[1])); print(v["transactions"], v["total_alerts"])' "$1.json"
}
read -r h1_tx h1_al <<< "$(counts "$H1")"
read -r h2_tx h2_al <<< "$(counts "$H2")"
read -r want_tx want_al <<< "$(truth "$H1")"
if [ "$(truth "$H2")" != "$want_tx $want_al" ]; then
    echo "the two sidecars disagree: HTTP/1.1 $want_tx $want_al, h2 $(truth "$H2")" >&2
    exit 1
fi

printf '%-34s %8s %8s %10s %12s %8s\n' "case ($SIZE, $RUNS runs, $THREADS threads)" "median s" "file MB" "max RSS MB" "transactions" "alerts"
printf '%-34s %8s %8s %10s %12s %8s\n' "HTTP/1.1" "$(med h1)" "$(mb "$H1")" "$(( $(rss h1) / 1024 ))" "$h1_tx" "$h1_al"
printf '%-34s %8s %8s %10s %12s %8s\n' "HTTP/2, prior knowledge" "$(med h2)" "$(mb "$H2")" "$(( $(rss h2) / 1024 ))" "$h2_tx" "$h2_al"
printf '%-34s %8s %8s %10s %12s %8s\n' "ground truth (both)" "" "" "" "$want_tx" "$want_al"
awk -v a="$(med h2)" -v b="$(med h1)" \
    'BEGIN {printf "ratio h2/HTTP/1.1: %.2fx\n", (b > 0 ? a / b : 0)}'
echo "runs (s): HTTP/1.1 $(printf '%s' "${T[h1]}" | tr '\n' ' ')| h2 $(printf '%s' "${T[h2]}" | tr '\n' ' ')"
if [ "$h1_tx $h1_al" != "$want_tx $want_al" ] || [ "$h2_tx $h2_al" != "$want_tx $want_al" ]; then
    echo "MISMATCH: HTTP/1.1 reads as $h1_tx transactions, $h1_al alerts; h2 as $h2_tx, $h2_al; truth $want_tx, $want_al"
fi
