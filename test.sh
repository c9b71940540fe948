#!/usr/bin/env bash
# The weavers test suite, set-up included. Run as root (the integration
# tests build their own network namespaces and remove them):
#
#   sudo ./test.sh                 # install what is missing, build, run every test
#   sudo ./test.sh --deps-only     # only install what is missing
#   sudo ./test.sh -- NAME         # extra arguments go to `cargo test`
#
# It installs, with apt-get and only when missing: iproute2 (ip netns, link,
# addr), nftables (the lab's underlay filter), iputils-ping (ICMP checks),
# tcpdump (for looking at captures by hand when a test fails), chromium
# (the headless-browser test of the AEX view, tests/tests/aex_view.rs) and
# ethtool (wire-sized packets on the underlay for tests/tests/aex_loss.rs).
# Then `cargo build --workspace && cargo test --workspace --no-fail-fast`
# with CI=true, so a lab that cannot be built fails instead of skipping.
# `.ci/run` calls this script.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(iproute2 nftables iputils-ping tcpdump chromium ethtool)

deps_only=false
if [ "${1:-}" = "--deps-only" ]; then
    deps_only=true
    shift
fi

if [ "$(id -u)" != 0 ]; then
    echo "test.sh: run as root (sudo ./test.sh): the tests make network namespaces" >&2
    exit 1
fi

# The packages of PACKAGES that dpkg does not list as installed.
missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
            echo "$p"
        fi
    done
}

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        echo "test.sh: install these packages first (no apt-get here): ${missing[*]}" >&2
        exit 1
    fi
    echo "test.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
if $deps_only; then
    exit 0
fi

# /usr/sbin holds ip and nft; a root PATH has it, a minimal one may not.
export PATH="$PATH:/usr/sbin:/sbin"
export CI=true

# Under sudo, root's PATH lacks the invoking user's rustup: use it (with
# root's own CARGO_HOME, so nothing in the user's home becomes root's).
if ! command -v cargo >/dev/null && [ -n "${SUDO_USER:-}" ]; then
    user_home="$(getent passwd "$SUDO_USER" | cut -d: -f6)"
    if [ -x "$user_home/.cargo/bin/cargo" ]; then
        export PATH="$PATH:$user_home/.cargo/bin"
        [ -d "$user_home/.rustup" ] && export RUSTUP_HOME="${RUSTUP_HOME:-$user_home/.rustup}"
    fi
fi
if ! command -v cargo >/dev/null; then
    echo "test.sh: cargo not found (install Rust with rustup, or run sudo env \"PATH=\$PATH\" ./test.sh)" >&2
    exit 1
fi

cargo --version
cargo build --workspace && cargo test --workspace --no-fail-fast "$@"
