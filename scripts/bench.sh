#!/usr/bin/env bash
# Times `idemwatch read` against the floor, a bare libpcap loop that only counts packets
# (examples/pcap_count.rs), on the same generated capture, alternating runs, and prints the
# medians and ratios, with peak RSS. A second floor, the same loop hashing every TCP payload
# byte once with SHA-256 (what the hashing the contract asks for cannot go below), gives the
# second ratio ("vs SHA").
#
#   bash scripts/bench.sh [SIZE] [RUNS]      # defaults: 1G, 5
#
# The capture is made by examples/workload.rs (seed 7) in $BENCH_DIR (default target/bench)
# and reused while it exists. Run on an otherwise idle machine; the file should be in the page
# cache (the first run warms it).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1G}
RUNS=${2:-5}
DIR=${BENCH_DIR:-target/bench}
mkdir -p "$DIR"
FILE="$DIR/workload-$SIZE.pcap"

cargo build --release --quiet --bin idemwatch --example pcap_count --example workload
BIN=target/release/idemwatch
FLOOR=target/release/examples/pcap_count
if [ ! -f "$FILE" ]; then
    echo "generating $FILE ..." >&2
    target/release/examples/workload --seed 7 --size "$SIZE" --out "$FILE"
fi
cat "$FILE" > /dev/null

# time_of CMD...: prints "seconds maxrss_kb" of one run (stdout of CMD discarded).
time_of() {
    /usr/bin/time -f "%e %M" -o "$DIR/.time" "$@" > /dev/null 2> /dev/null
    cat "$DIR/.time"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A T R
CASES=(floor floor_sha one many floor_stdin stdin stdin_many)
for _ in $(seq "$RUNS"); do
    for c in "${CASES[@]}"; do
        case $c in
            floor) out=$(time_of "$FLOOR" "$FILE") ;;
            floor_sha) out=$(time_of "$FLOOR" --sha256 "$FILE") ;;
            one) out=$(time_of "$BIN" read -q --threads 1 "$FILE") ;;
            many) out=$(time_of "$BIN" read -q "$FILE") ;;
            floor_stdin) out=$(time_of sh -c "cat '$FILE' | $FLOOR -") ;;
            stdin) out=$(time_of sh -c "cat '$FILE' | $BIN read -q --threads 1 -") ;;
            stdin_many) out=$(time_of sh -c "cat '$FILE' | $BIN read -q -") ;;
        esac
        T[$c]+="${out% *}"$'\n'
        R[$c]+="${out#* }"$'\n'
    done
done

med() { printf '%s' "${T[$1]}" | median; }
rss() { printf '%s' "${R[$1]}" | sort -n | tail -1; }
floor=$(med floor)
floor_sha=$(med floor_sha)
printf '%-34s %8s %8s %9s %10s\n' "case ($SIZE, $RUNS runs)" "median s" "ratio" "vs SHA" "max RSS MB"
for c in "${CASES[@]}"; do
    m=$(med "$c")
    base=$floor
    case $c in stdin*) base=$(med floor_stdin) ;; esac
    ratio=$(awk -v a="$m" -v b="$base" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
    # The second floor: the loop plus one SHA-256 pass over every payload byte, which the
    # contract's hashing cannot go below (file cases only; stdin adds the pipe to both).
    vs_sha=$(awk -v a="$m" -v b="$floor_sha" 'BEGIN {printf "%.2fx", (b > 0 ? a / b : 0)}')
    case $c in stdin* | floor_stdin) vs_sha="-" ;; esac
    case $c in
        floor) label="libpcap counting loop" ;;
        floor_sha) label="loop + SHA-256 of every payload" ;;
        one) label="idemwatch read --threads 1" ;;
        many) label="idemwatch read (threads: $(nproc))" ;;
        floor_stdin) label="libpcap loop, stdin" ;;
        stdin) label="idemwatch read --threads 1 -, stdin" ;;
        stdin_many) label="idemwatch read -, stdin ($(nproc) thr)" ;;
    esac
    printf '%-34s %8s %8s %9s %10s\n' "$label" "$m" "${ratio}x" "$vs_sha" "$(( $(rss "$c") / 1024 ))"
done
"$BIN" read --stats --threads 1 "$FILE" 2>&1 >/dev/null | tail -1
