#!/usr/bin/env bash
# The weavers demo: builds everything, then runs a 4-host lab in network
# namespaces (an encrypted mesh, a ping across it, multicast pruned to the
# hosts that listen) and removes it. Needs root. `./demo.sh --hold` keeps
# the lab up until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then
    echo "demo.sh: run as root (sudo ./demo.sh): the lab makes network namespaces" >&2
    exit 1
fi
export PATH="$PATH:/usr/sbin:/sbin"
command -v ip >/dev/null && command -v nft >/dev/null && command -v ping >/dev/null || {
    echo "demo.sh: installing iproute2, nftables, iputils-ping" >&2
    apt-get install -y --no-install-recommends iproute2 nftables iputils-ping >/dev/null
}
cargo build --workspace --quiet
exec target/debug/demo "$@"
