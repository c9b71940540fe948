#!/usr/bin/env bash
# The weavers bench: weavers against the bare underlay, wireguard-go,
# boringtun, kernel VXLAN with head-end replication and VXLAN over
# wireguard-go, on the namespace lab of the tests. Prints a markdown table
# and writes bench/results/latest.md and latest.json.
#
#   sudo bench/run.sh [--quick] [--runs N] [--systems underlay,weavers,...]
#                     [--json FILE] [--md FILE] [--underlay-loss PCT,PCT,...]
#                     [--underlay-rtt MS] [--tcp-cc cubic|bbr|reno]
#
# --underlay-rtt MS (with --underlay-loss) lengthens h1's round trips by MS
# through a delay line; --tcp-cc runs the TCP streams with that congestion
# control (else the machine's default, bbr here).
#
# Installs its tools (Debian packages; boringtun-cli with cargo into
# target/bench-tools, skipped if that fails), builds weavers in release mode
# and runs target/release/bench. About 20 minutes; --quick about 4 (one run,
# shorter trials: for development, not for comparison). All traffic stays in
# the lab's namespaces; everything the bench starts or makes is removed when
# it ends, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "bench/run.sh: run as root (sudo bench/run.sh): the lab makes network namespaces" >&2
    exit 1
fi
export PATH="$PATH:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

pkgs=(iperf iperf3 sockperf wireguard-go wireguard-tools iproute2 nftables iputils-ping coreutils ethtool)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench/run.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# boringtun (the stronger userspace WireGuard) is not packaged: build it.
bt=target/bench-tools/bin/boringtun-cli
if [ ! -x "$bt" ]; then
    echo "bench/run.sh: cargo install boringtun-cli 0.7.1 (about a minute)" >&2
    if ! timeout 900 cargo install --quiet --locked boringtun-cli --version 0.7.1 --root target/bench-tools; then
        echo "bench/run.sh: boringtun-cli did not install; the bench skips it" >&2
    fi
fi

cargo build --release --workspace --quiet
export WEAVERS_BIN_DIR="$PWD/target/release"
target/release/bench --boringtun "$bt" "$@"
# The chart beside the table: bench/results/dataplane.svg (FILE.svg for --json FILE.json).
# A loss run (--underlay-loss) writes its own report (loss.md/json), not drawn.
json=bench/results/latest.json svg=bench/results/dataplane.svg prev= loss=0
for a in "$@"; do [ "$prev" = --json ] && json=$a svg=${a%.json}.svg; [ "$a" = --underlay-loss ] && loss=1; prev=$a; done
if [ $loss = 0 ]; then
    cargo run --release --quiet -p weavers-chart -- dataplane "$json" "$svg"
fi
