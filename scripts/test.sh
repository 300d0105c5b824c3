#!/usr/bin/env bash
# Every check of the project, installing what is missing: the test suite under the test profile
# (overflow checks and debug assertions on; it also replays every fuzz target's committed seeds),
# then the dependency policy of deny.toml, and in CI (as root) the Debian package.
#   bash scripts/test.sh
# Fuzzing campaigns are a script of their own: bash scripts/fuzz.sh [SECONDS] [TARGET...].
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

# The tools, when missing, build in the background while the tests build and run (the suite
# waits on its daemons and links alone, leaving a core idle), one job each, at a lower priority
# so that they do not hold the tests up, and in cargo's own temporary directory so that they do
# not wait for the lock of the project's. Measured here: cargo-deny about 250 CPU-s, cargo-deb
# (below) about 120. (nice and env exec the install, so that $! is cargo's own pid.)
tool_install=(nice -n 10 env -u CARGO_TARGET_DIR cargo install --locked -j 1)
deny_pid=""
deny_log=$(mktemp)
if ! cargo deny --version >/dev/null 2>&1; then
    "${tool_install[@]}" cargo-deny --version 0.20.2 >"$deny_log" 2>&1 &
    deny_pid=$!
fi
# The package test (CI, as root) needs cargo-deb: built alongside as well, without its built-in
# xz (it then runs the system's xz, which dpkg needs anyway).
deb_pid=""
deb_log=$(mktemp)
package_test=false
if [ "${CI:-}" = true ] && [ "$(id -u)" = 0 ]; then
    package_test=true
    if ! cargo deb --version >/dev/null 2>&1; then
        "${tool_install[@]}" cargo-deb --version 3.8.0 --no-default-features >"$deb_log" 2>&1 &
        deb_pid=$!
    fi
fi
test_status=0
cargo test --locked || test_status=$?
if [ "$test_status" != 0 ]; then
    [ -n "$deny_pid" ] && kill "$deny_pid" 2>/dev/null
    [ -n "$deb_pid" ] && kill "$deb_pid" 2>/dev/null
    exit "$test_status"
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
# the system; elsewhere `sudo bash scripts/package_test.sh` runs it. It packages the binary the
# tests just built (test profile) rather than building a release binary with LTO for it.
if [ "$package_test" = true ]; then
    if [ -n "$deb_pid" ] && ! wait "$deb_pid"; then
        tail -20 "$deb_log" >&2
        echo "test: installing cargo-deb failed" >&2
        exit 1
    fi
    bash scripts/package_test.sh --test-build
fi
rm -f "$deb_log"
