#!/usr/bin/env bash
# Builds the Debian package: target/debian/idemwatch_VERSION-1_ARCH.deb.
#   bash scripts/package.sh
# The man page and completions come from the built binary (`idemwatch generate`), so they
# match its --help; the units are the ones in systemd/ with the packaged binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install cargo-deb --version 3.8.0 --locked
fi
cargo build --release --locked --bin idemwatch
BIN=target/release/idemwatch
A=target/deb-assets
rm -rf "$A" && mkdir -p "$A"
"$BIN" generate man | gzip -9n > "$A/idemwatch.1.gz"
"$BIN" generate completions bash > "$A/idemwatch.bash"
"$BIN" generate completions zsh > "$A/_idemwatch"
"$BIN" generate completions fish > "$A/idemwatch.fish"
for u in idemwatch.service idemwatch@.service; do
    sed 's#/usr/local/bin/idemwatch#/usr/bin/idemwatch#g' "systemd/$u" > "$A/$u"
done
# The release profile keeps line tables for profiling; the package does not need them.
cargo deb --no-build --locked --strip
