#!/usr/bin/env bash
# Builds the Debian package weavers_VERSION_ARCH.deb with dpkg-deb (no other
# tool): weaversd and weavers in /usr/bin, the CNI plugin in /usr/lib/cni
# (linked from /opt/cni/bin, where container runtimes look), the systemd
# unit (not enabled or started: it needs the network password first), the
# config file /etc/weavers/weaversd.toml (a conffile), the CNI conflist as
# an example in /usr/share/weavers/cni, man pages and bash/zsh/fish
# completions.
#
#   dist/deb/build.sh [--bin-dir DIR] [--out DIR]
#
# Without --bin-dir it builds the release binaries first; --out defaults to
# target/deb. Prints the package's path.
set -euo pipefail

bin_dir=""
out="target/deb"
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) bin_dir="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "usage: $0 [--bin-dir DIR] [--out DIR]" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"
[ -z "$bin_dir" ] || bin_dir="$(cd "$bin_dir" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."

if [ -z "$bin_dir" ]; then
    cargo build --release --quiet -p weaversd -p weavers -p weavers-cni
    bin_dir="$PWD/target/release"
fi
version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
arch="$(dpkg --print-architecture)"
[ -n "$version" ] || { echo "$0: no version in Cargo.toml" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pkg="$work/weavers"

install -D -m 0755 "$bin_dir/weaversd" "$pkg/usr/bin/weaversd"
install -D -m 0755 "$bin_dir/weavers" "$pkg/usr/bin/weavers"
install -D -m 0755 "$bin_dir/weavers-cni" "$pkg/usr/lib/cni/weavers-cni"
if command -v strip >/dev/null; then
    strip --strip-unneeded "$pkg/usr/bin/weaversd" "$pkg/usr/bin/weavers" "$pkg/usr/lib/cni/weavers-cni"
fi
install -d -m 0755 "$pkg/opt/cni/bin"
ln -s /usr/lib/cni/weavers-cni "$pkg/opt/cni/bin/weavers-cni"

install -d -m 0755 "$pkg/lib/systemd/system"
sed 's#/usr/local/bin/weaversd#/usr/bin/weaversd#' dist/weaversd.service >"$pkg/lib/systemd/system/weaversd.service"
chmod 0644 "$pkg/lib/systemd/system/weaversd.service"
install -d -m 0700 "$pkg/etc/weavers"
install -m 0600 dist/weaversd.toml "$pkg/etc/weavers/weaversd.toml"
install -D -m 0644 dist/cni/10-weavers.conflist "$pkg/usr/share/weavers/cni/10-weavers.conflist"

WEAVERS_BIN_DIR="$bin_dir" dist/gen-docs.sh "$work/docs" weaversd weavers >/dev/null
install -d -m 0755 "$pkg/usr/share/man/man1"
for page in "$work"/docs/man1/*.1; do
    gzip -9n <"$page" >"$pkg/usr/share/man/man1/$(basename "$page").gz"
done
chmod 0644 "$pkg"/usr/share/man/man1/*
for b in weaversd weavers; do
    install -D -m 0644 "$work/docs/completions/bash/$b" "$pkg/usr/share/bash-completion/completions/$b"
    install -D -m 0644 "$work/docs/completions/zsh/_$b" "$pkg/usr/share/zsh/vendor-completions/_$b"
    install -D -m 0644 "$work/docs/completions/fish/$b.fish" "$pkg/usr/share/fish/vendor_completions.d/$b.fish"
done
install -D -m 0644 dist/deb/copyright "$pkg/usr/share/doc/weavers/copyright"

install -d -m 0755 "$pkg/DEBIAN"
for s in postinst prerm postrm; do
    install -m 0755 "dist/deb/$s" "$pkg/DEBIAN/$s"
done
echo /etc/weavers/weaversd.toml >"$pkg/DEBIAN/conffiles"
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: weavers
Version: $version
Architecture: $arch
Maintainer: weavers developers <weavers@localhost>
Depends: libc6, libgcc-s1
Section: net
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
Description: encrypted layer-2 overlay on which IP multicast works
 weaversd joins hosts in different clouds and data centres into one
 encrypted layer-2 network (Noise over UDP) on which IP multicast works and
 reaches only the hosts with listeners (IGMP/MLD snooping, gossiped
 membership). Includes the weavers command line and the weavers-cni CNI
 plugin.
CONTROL

deb="$out/weavers_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
