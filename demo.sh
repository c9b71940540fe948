#!/usr/bin/env bash
# The weavers demo: AEX, the reference exchange, on a 4-host weavers lab in
# network namespaces (see tests/src/bin/demo/main.rs). Builds everything in
# release mode first. Needs root.
#
#   sudo ./demo.sh                                   # live screen until Ctrl-C; view on http://127.0.0.1:8080
#   sudo ./demo.sh --duration 60 --summary-json s.json   # headless: writes the summary
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
cargo build --workspace --release --quiet
export WEAVERS_BIN_DIR="$PWD/target/release"
exec target/release/demo "$@"
