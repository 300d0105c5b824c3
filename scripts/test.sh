#!/usr/bin/env bash
# Every check of the project, installing what is missing: the test suite, each fuzz target for
# FUZZ_SECONDS (default 30; 0 skips them), and the dependency policy of deny.toml.
#   bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

# cargo-deny, when missing, builds alongside the tests and the fuzzers (their link steps and the
# fuzzers leave a core idle).
deny_pid=""
deny_log=$(mktemp)
if ! cargo deny --version >/dev/null 2>&1; then
    cargo install cargo-deny --version 0.20.2 --locked -j 1 >"$deny_log" 2>&1 &
    deny_pid=$!
fi
# The package test (CI, as root) needs cargo-deb: built alongside the tests as well.
deb_pid=""
deb_log=$(mktemp)
package_test=false
if [ "${CI:-}" = true ] && [ "$(id -u)" = 0 ]; then
    package_test=true
    if ! cargo deb --version >/dev/null 2>&1; then
        cargo install cargo-deb --version 3.8.0 --locked -j 1 >"$deb_log" 2>&1 &
        deb_pid=$!
    fi
fi
test_status=0
cargo test --release --locked || test_status=$?
if [ "$test_status" != 0 ]; then
    [ -n "$deny_pid" ] && kill "$deny_pid" 2>/dev/null
    [ -n "$deb_pid" ] && kill "$deb_pid" 2>/dev/null
    exit "$test_status"
fi
fuzz_status=0
if [ "${FUZZ_SECONDS:-30}" != 0 ]; then
    bash scripts/fuzz.sh "${FUZZ_SECONDS:-30}" || fuzz_status=$?
fi
if [ -n "$deny_pid" ] && ! wait "$deny_pid"; then
    tail -20 "$deny_log" >&2
    echo "test: installing cargo-deny failed" >&2
    exit 1
fi
rm -f "$deny_log"
# Advisories need the RustSec database from the network; licences, bans and sources do not.
# cargo-deny reads every crate of the lock file, those of other platforms too: fetch them first.
cargo fetch --locked --quiet
cargo deny --offline check bans licenses sources
# The Debian package, installed and removed for real: only in CI (as root), since it changes
# the system; elsewhere `sudo bash scripts/package_test.sh` runs it.
if [ "$package_test" = true ]; then
    if [ -n "$deb_pid" ] && ! wait "$deb_pid"; then
        tail -20 "$deb_log" >&2
        echo "test: installing cargo-deb failed" >&2
        exit 1
    fi
    bash scripts/package_test.sh
fi
rm -f "$deb_log"
exit "$fuzz_status"
