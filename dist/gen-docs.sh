#!/usr/bin/env bash
# Man pages and shell completions for weaversd, weavers and aex, generated
# from their command-line definitions (clap), into OUTDIR:
#
#   OUTDIR/man1/*.1                          weaversd.1, weavers.1, weavers-peer-ls.1, aex-engine.1, ...
#   OUTDIR/completions/bash/{weaversd,weavers,aex}
#   OUTDIR/completions/zsh/_{weaversd,weavers,aex}
#   OUTDIR/completions/fish/{weaversd,weavers,aex}.fish
#
# Usage: dist/gen-docs.sh OUTDIR [BINARY...]   (default: weaversd weavers aex)
# Uses the binaries in $WEAVERS_BIN_DIR when set, else builds them (debug)
# and uses target/debug. Install, e.g.: man1 -> /usr/share/man/man1,
# bash -> /usr/share/bash-completion/completions, zsh ->
# /usr/share/zsh/vendor-completions, fish -> /usr/share/fish/vendor_completions.d.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 OUTDIR [BINARY...]" >&2
    exit 2
fi
dest="$1"
shift
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(weaversd weavers aex)
for b in "${bins[@]}"; do
    case "$b" in
        weaversd | weavers | aex) ;;
        *) echo "$0: no documents for $b (weaversd, weavers or aex)" >&2; exit 2 ;;
    esac
done
mkdir -p "$dest"
out="$(cd "$dest" && pwd)"
bin=""
[ -z "${WEAVERS_BIN_DIR:-}" ] || bin="$(cd "$WEAVERS_BIN_DIR" && pwd)"
cd "$(dirname "$0")/.."
if [ -z "$bin" ]; then
    cargo build --quiet $(printf -- '-p %s ' "${bins[@]}")
    bin="$PWD/target/debug"
fi
for b in "${bins[@]}"; do
    "$bin/$b" --generate-docs "$out" >/dev/null
done
echo "$(ls "$out/man1" | wc -l) man pages and $(find "$out/completions" -type f | wc -l) completion files in $out"
