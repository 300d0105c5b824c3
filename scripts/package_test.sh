#!/usr/bin/env bash
# Builds the .deb, installs it with dpkg, checks that everything is where README.md says, that
# man finds the page and systemd-analyze accepts the installed units, that nothing was enabled,
# then removes it. Needs root; changes the system (run by scripts/test.sh only as root in CI).
#   sudo bash scripts/package_test.sh [--test-build]
# (--test-build: see scripts/package.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "package test: $*" >&2; exit 1; }
bash scripts/package.sh "$@"
DEB=$(ls -t "${CARGO_TARGET_DIR:-target}"/debian/idemwatch_*.deb | head -1)
dpkg-deb -f "$DEB" Depends | grep -q "libpcap0.8" || fail "no libpcap dependency"
dpkg -i "$DEB"
for f in /usr/bin/idemwatch /etc/idemwatch/idemwatch.toml /etc/idemwatch/mirror.toml \
    /etc/logrotate.d/idemwatch \
    /usr/lib/systemd/system/idemwatch.service /usr/lib/systemd/system/idemwatch@.service \
    /usr/lib/systemd/system/idemwatch-mirror.service \
    /usr/share/man/man1/idemwatch.1.gz /usr/share/bash-completion/completions/idemwatch \
    /usr/share/zsh/vendor-completions/_idemwatch /usr/share/fish/vendor_completions.d/idemwatch.fish \
    /usr/share/doc/idemwatch/README.md /usr/share/doc/idemwatch/FLEET.md; do
    [ -e "$f" ] || fail "$f is not installed"
done
for c in /etc/idemwatch/idemwatch.toml /etc/idemwatch/mirror.toml; do
    dpkg-query -W -f='${Conffiles}\n' idemwatch | grep -q " $c " || fail "$c is not a conffile"
done
[ "$(man -w idemwatch)" = /usr/share/man/man1/idemwatch.1.gz ] || fail "man -w does not find the page"
man idemwatch 2>/dev/null | grep -q "ALERT KINDS" || fail "man idemwatch does not show the page"
for u in idemwatch.service idemwatch-mirror.service; do
    grep -q '^ExecStart=/usr/bin/idemwatch ' "/usr/lib/systemd/system/$u" \
        || fail "$u does not run the packaged binary"
    systemd-analyze verify "/usr/lib/systemd/system/$u"
done
/usr/bin/idemwatch --version | grep -q "^idemwatch .* (libpcap " || fail "--version"
/usr/bin/idemwatch check-config --config /etc/idemwatch/idemwatch.toml >/dev/null \
    || fail "the packaged configuration does not pass check-config"
# The mirror's default file is the packaged one.
/usr/bin/idemwatch mirror --check-config | grep -q '^# configuration file: /etc/idemwatch/mirror.toml$' \
    || fail "the packaged mirror configuration does not pass mirror --check-config"
for u in idemwatch.service idemwatch-mirror.service; do
    if [ -e "/etc/systemd/system/multi-user.target.wants/$u" ]; then
        fail "installing enabled $u"
    fi
done
dpkg -r idemwatch
[ ! -e /usr/bin/idemwatch ] || fail "the binary stayed after dpkg -r"
for u in idemwatch.service idemwatch-mirror.service; do
    [ ! -e "/usr/lib/systemd/system/$u" ] || fail "$u stayed after dpkg -r"
done
dpkg -P idemwatch
for c in /etc/idemwatch/idemwatch.toml /etc/idemwatch/mirror.toml; do
    [ ! -e "$c" ] || fail "$c stayed after dpkg -P"
done
echo "package test: $(basename "$DEB") installed, checked, removed and purged"
