#!/usr/bin/env bash
# The mesh at growing sizes: for each N, a fresh namespace lab of N hosts
# whose daemons (release build) know only h1 at start. Measures the time to
# a full mesh, idle underlay bytes/s per host, the daemons' CPU and memory
# while idle, join to first multicast datagram, failure detection after a
# kill -9, and the recovery of a unicast stream when its direct path is
# cut; prints a markdown table with the growth exponent of idle bytes per
# host, and writes bench/results/scale.md and scale.json.
#
#   sudo bench/scale.sh [--sizes 16,64,250] [--quick] [--idle SECS] [--cap SECS] [--soak SECS]
#                       [--wave N] [--arp] [--json FILE] [--md FILE]
#
# Sizes from 4 to 250 hosts (default 16,64,250). --idle: the idle window
# (default 30 s; keep it a multiple of 10 s, the daemons' gossip period,
# whose rounds come in bursts). --cap: the wait for a full mesh (default
# 60 s up to 64 hosts, 120 s above). --arp: hosts resolve each other by ARP
# instead of permanent neighbour entries; the machine's one neighbour table
# (gc_thresh3, often 1024 entries) then overflows past about 32 hosts, which
# stops the mesh whatever the daemons do. --soak SECS: after the idle
# window, leave the mesh alone that long and count the peers any host
# declared down (each a false failure). --quick: 10 s idle windows and
# 30 s caps on the probes, for development. A size of 250 hosts takes
# several minutes and needs a quiet machine (250 daemons on its cores).
# All traffic stays in the lab's namespaces; every daemon is stopped by its
# PID and every namespace removed when a size ends, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "bench/scale.sh: run as root (sudo bench/scale.sh): the lab makes network namespaces" >&2
    exit 1
fi
export PATH="$PATH:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

pkgs=(iproute2 nftables)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench/scale.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo build --release --quiet -p weaversd -p weavers -p weavers-tests --bin weaversd --bin weavers --bin scale
export WEAVERS_BIN_DIR="$PWD/target/release"
target/release/scale "$@"
# The chart beside the table: bench/results/scale.svg (FILE.svg for --json FILE.json).
json=bench/results/scale.json svg=bench/results/scale.svg prev=
for a in "$@"; do [ "$prev" = --json ] && json=$a svg=${a%.json}.svg; prev=$a; done
cargo run --release --quiet -p weavers-chart -- scale "$json" "$svg"
