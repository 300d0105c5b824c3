#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), seeded from captures/.
#   bash scripts/fuzz.sh [SECONDS]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); with a stable toolchain RUSTC_BOOTSTRAP=1 lets
# it pass the sanitizer flags. Crashes land in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS=${1:-60}
export RUSTC_BOOTSTRAP=1
mkdir -p corpus/capture_file corpus/decode_frame corpus/http_session
cp -n ../captures/*.pcap ../captures/*.pcapng corpus/capture_file/ 2>/dev/null || true
for t in decode_frame http_session capture_file; do
    echo "== $t ($SECS s)"
    cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$SECS" -max_len=65536 2>&1 | tail -3
done
