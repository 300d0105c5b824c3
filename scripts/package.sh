#!/usr/bin/env bash
# Builds the Debian package: target/debian/idemwatch_VERSION-1_ARCH.deb.
#   bash scripts/package.sh [--test-build]
# --test-build packages the binary `cargo test` built last (target/debug, test profile) instead
# of building a release one with LTO: the package test in CI, right after the tests, checks the
# packaging, not the optimiser. (A `cargo build` there would compile again: without the
# dev-dependencies some dependencies get fewer features.)
# The man page and completions come from the built binary (`idemwatch generate`), so they
# match its --help; the units are the ones in systemd/ with the packaged binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install cargo-deb --version 3.8.0 --locked
fi
if [ "${1:-}" = --test-build ]; then
    profile=dev
    BIN=${CARGO_TARGET_DIR:-target}/debug/idemwatch
    [ -x "$BIN" ] || { echo "package: no $BIN: run cargo test first" >&2; exit 1; }
else
    profile=release
    cargo build --release --locked --bin idemwatch
    BIN=${CARGO_TARGET_DIR:-target}/release/idemwatch
fi
A=target/deb-assets
rm -rf "$A" && mkdir -p "$A"
"$BIN" generate man | gzip -9n > "$A/idemwatch.1.gz"
"$BIN" generate completions bash > "$A/idemwatch.bash"
"$BIN" generate completions zsh > "$A/_idemwatch"
"$BIN" generate completions fish > "$A/idemwatch.fish"
for u in idemwatch.service idemwatch@.service; do
    sed 's#/usr/local/bin/idemwatch#/usr/bin/idemwatch#g' "systemd/$u" > "$A/$u"
done
# A directory of its own: see systemd-units in Cargo.toml.
mkdir -p "$A/mirror"
sed 's#/usr/local/bin/idemwatch#/usr/bin/idemwatch#g' systemd/idemwatch-mirror.service \
    > "$A/mirror/idemwatch-mirror.service"
# The release profile keeps line tables for profiling; the package does not need them.
# (cargo-deb warns that it is meant for release builds when given the dev profile.)
cargo deb --no-build --locked --strip --profile "$profile"
