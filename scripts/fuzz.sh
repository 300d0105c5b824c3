#!/usr/bin/env bash
# Runs the fuzz targets (all, or those named) for SECONDS each (default 60), starting from the
# committed seeds (fuzz/seeds/TARGET, made by scripts/fuzz_seeds.py from captures/) and the
# corpus earlier runs grew (fuzz/corpus/TARGET, not committed).
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
# Installs cargo-fuzz when missing. With a stable toolchain RUSTC_BOOTSTRAP=1 lets it pass the
# sanitizer flags. Optimised, with debug assertions and overflow checks on (-O -a), as the
# tests are: the wire arithmetic must never overflow. A crash, a leak, an input slower than
# 10 s or over 2 GiB fails the run; the input lands in fuzz/artifacts/TARGET/ and `cargo fuzz run -O -a TARGET FILE` replays it.
# Each line reports the executions and the coverage when the corpus was loaded and at the end:
# a target whose coverage no longer grows over a run has reached its plateau.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS=${1:-60}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(decode_frame reassembly http_session mirror_request capture_file config_file state_file store_record tls_keylog tls_record h2_frame h2_hpack h2_session)
fi
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
cargo fuzz build -O -a
failed=()
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t"
    max_len=4096
    [ "$t" = capture_file ] && max_len=65536
    [ "$t" = config_file ] && max_len=16384
    log=$(mktemp)
    if cargo fuzz run -O -a "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECS" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
        cov0=$(grep -m1 'INITED' "$log" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || echo '?')
        cov1=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
        corpus=$(find "corpus/$t" -type f | wc -l)
        echo "$t: ok, $runs executions in $SECS s, coverage $cov0 -> $cov1, corpus $corpus inputs"
    else
        echo "$t: FAILED"
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -8
        failed+=("$t")
    fi
    rm -f "$log"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz targets that failed: ${failed[*]}" >&2
    exit 1
fi
