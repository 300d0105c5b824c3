#!/usr/bin/env bash
# The cost of decryption: times `idemwatch read -q` on the generated workload in plaintext and
# over TLS 1.3 with its key log (examples/workload.rs, seed 7, the same story: `--size` counts
# the plaintext capture's bytes in both modes, so the TLS file is a little larger), alternating
# runs, and prints the medians, the ratio TLS/plaintext (goal: at most 1.3x) and peak RSS.
#
#   bash scripts/tls_bench.sh [SIZE] [RUNS] [THREADS]     # defaults: 1G, 5, all cores
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
PLAIN="$DIR/workload-$SIZE.pcap"
TLS="$DIR/workload-tls-$SIZE.pcap"

cargo build --release --quiet --bin idemwatch --example workload
BIN=$TARGET/release/idemwatch
GEN=$TARGET/release/examples/workload
if [ ! -f "$PLAIN" ]; then
    echo "generating $PLAIN ..." >&2
    "$GEN" --seed 7 --size "$SIZE" --out "$PLAIN"
fi
if [ ! -f "$TLS" ] || [ ! -f "$TLS.keys" ]; then
    echo "generating $TLS ..." >&2
    "$GEN" --seed 7 --size "$SIZE" --tls --keylog "$TLS.keys" --out "$TLS"
fi
cat "$PLAIN" "$TLS" "$TLS.keys" > /dev/null

# time_of CMD...: prints "seconds maxrss_kb" of one run (stdout and stderr of CMD discarded).
time_of() {
    /usr/bin/time -f "%e %M" -o "$DIR/.time-tls" "$@" > /dev/null 2> /dev/null
    cat "$DIR/.time-tls"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A T R
CASES=(plain tls)
for _ in $(seq "$RUNS"); do
    for c in "${CASES[@]}"; do
        case $c in
            plain) out=$(time_of "$BIN" read -q --threads "$THREADS" "$PLAIN") ;;
            tls) out=$(time_of "$BIN" read -q --threads "$THREADS" --tls-keylog "$TLS.keys" "$TLS") ;;
        esac
        T[$c]+="${out% *}"$'\n'
        R[$c]+="${out#* }"$'\n'
    done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

med() { printf '%s' "${T[$1]}" | median; }
rss() { printf '%s' "${R[$1]}" | sort -n | tail -1; }
mb() { echo $(( $(stat -c %s "$1") / 1048576 )); }
printf '%-44s %8s %10s %10s\n' "case ($SIZE, $RUNS runs, $THREADS threads)" "median s" "file MB" "max RSS MB"
printf '%-44s %8s %10s %10s\n' "plaintext" "$(med plain)" "$(mb "$PLAIN")" "$(( $(rss plain) / 1024 ))"
printf '%-44s %8s %10s %10s\n' "TLS 1.3, --tls-keylog ($(mb "$TLS.keys") MB key log)" "$(med tls)" "$(mb "$TLS")" "$(( $(rss tls) / 1024 ))"
awk -v a="$(med tls)" -v b="$(med plain)" \
    'BEGIN {printf "ratio TLS/plaintext: %.2fx (goal: at most 1.30x)\n", (b > 0 ? a / b : 0)}'
echo "runs (s): plaintext $(printf '%s' "${T[plain]}" | tr '\n' ' ')| TLS $(printf '%s' "${T[tls]}" | tr '\n' ' ')"
"$BIN" read --stats --threads "$THREADS" --tls-keylog "$TLS.keys" "$TLS" 2>&1 >/dev/null | grep -v warning | tail -2
