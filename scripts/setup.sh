#!/usr/bin/env bash
# Installs what idemwatch needs to build and test on Debian/Ubuntu: libpcap's headers (the
# `pcap` crate links libpcap), pkg-config, systemd-analyze and python3 for the tests, dpkt for
# the capture tools, and a Rust toolchain when none is installed.
# Safe to run again: it installs only what is missing.
set -euo pipefail

need=()
dpkg -s libpcap-dev >/dev/null 2>&1 || need+=(libpcap-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v cc >/dev/null 2>&1 || need+=(gcc)
# For the tests: systemd-analyze checks the units, python3 runs the fake API, curl and nginx
# are the client and the gateway of the mirror tests, redis-server the fleet tests' store.
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# The capture tools (captures/*.py, scripts/fuzz_seeds.py) read pcap and pcapng with dpkt.
dpkg -s python3-dpkt >/dev/null 2>&1 || need+=(python3-dpkt)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
# The fleet tests start their own Redis on loopback.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# The manual page test renders it with man(1).
command -v man >/dev/null 2>&1 || need+=(man-db)
# The jq recipes of docs/SHIPPING.md are run by a test.
command -v jq >/dev/null 2>&1 || need+=(jq)
# The TLS tests inject key logs into pcapng files with Wireshark's editcap.
command -v editcap >/dev/null 2>&1 || need+=(wireshark-common)
# The workload test checks the generated HTTP/2 capture with tshark, an independent reader.
command -v tshark >/dev/null 2>&1 || need+=(tshark)
# The report test renders the page in headless Chromium.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q "${need[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    # Debian's own cargo is too old for this crate (edition 2024): use rustup.
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    echo "setup: Rust installed; run '. \$HOME/.cargo/env' or open a new shell" >&2
fi
