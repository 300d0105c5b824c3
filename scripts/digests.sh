#!/usr/bin/env bash
# Digests of what a binary prints, to show that a change leaves the output byte-identical:
# for every capture in captures/ and ../shared/corpus (when present), the first 16 hex digits of
# the SHA-256 of stdout of `read --log-requests --stats` with 1 and 2 workers (with the exit
# code), and of `read --redact-keys`; then the same for each extra capture named (such as the
# generated 1 GB workload of scripts/bench.sh). Run it with the old and the new binary and diff.
#   bash scripts/digests.sh BIN [CAPTURE...] > digests.txt
set -uo pipefail
BIN=$(realpath "$1")
shift
cd "$(dirname "$0")/.."
for f in captures/*.pcap captures/*.pcapng ../shared/corpus/*.pcap ../shared/corpus/*.pcapng "$@"; do
    [ -f "$f" ] || continue
    name=$(basename "$f")
    for t in 1 2; do
        d=$("$BIN" read --log-requests --stats --threads "$t" "$f" 2>/dev/null | sha256sum | cut -c1-16)
        echo "$name t$t rc${PIPESTATUS[0]} $d"
    done
    echo "$name redact $("$BIN" read --redact-keys --threads 2 "$f" 2>/dev/null | sha256sum | cut -c1-16)"
done
