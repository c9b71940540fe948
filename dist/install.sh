#!/usr/bin/env bash
# Installs weaversd and weavers from this checkout: builds release binaries,
# copies them to /usr/local/bin, the unit to /etc/systemd/system and an
# example config to /etc/weavers (never overwriting an existing one).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p weaversd -p weavers
install -m 0755 target/release/weaversd target/release/weavers /usr/local/bin/
install -m 0644 dist/weaversd.service /etc/systemd/system/weaversd.service
install -d -m 0700 /etc/weavers
[ -e /etc/weavers/weaversd.toml ] || install -m 0600 dist/weaversd.toml /etc/weavers/weaversd.toml
if [ ! -e /etc/weavers/password ]; then
    echo "Now put the network password in /etc/weavers/password (chmod 600), the same on every host" >&2
    echo "(on the first: umask 077; weavers password generate > /etc/weavers/password)," >&2
fi
echo "then: systemctl daemon-reload && systemctl enable --now weaversd" >&2
