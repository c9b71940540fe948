#!/bin/sh
# The weavers image's entrypoint (/usr/local/bin/weavers-entrypoint), as the
# DaemonSet in weavers.yaml runs it:
#
#   weavers-entrypoint install-cni   the init container: copies the CNI plugin
#                                    to $CNI_BIN_DIR and writes
#                                    $CNI_CONF_DIR/10-weavers.conflist
#   weavers-entrypoint daemon [ARG]  weaversd in the foreground; its settings
#                                    come from WEAVERS_* variables (the
#                                    password file from the Secret, the name
#                                    from the node's)
#   weavers-entrypoint expose        the postStart hook: once the daemon
#                                    answers, `weavers expose` (an overlay
#                                    address for the node, so it reaches its
#                                    pods and they get a gateway and DNS)
#   weavers-entrypoint live          the liveness probe: exits 0 when the
#                                    daemon answers on its control socket
#
# Paths (the defaults are the DaemonSet's mounts):
#   WEAVERS_IMAGE_BIN  /usr/local/bin               where the binaries are
#   CNI_BIN_DIR        /host/opt/cni/bin            the node's /opt/cni/bin
#   CNI_CONF_DIR       /host/etc/cni/net.d          the node's /etc/cni/net.d
#   WEAVERS_SOCKET     /run/weavers/weavers.sock    the node's (the plugin runs there)
set -eu

bin="${WEAVERS_IMAGE_BIN:-/usr/local/bin}"
socket="${WEAVERS_SOCKET:-/run/weavers/weavers.sock}"

install_cni() {
    cni_bin="${CNI_BIN_DIR:-/host/opt/cni/bin}"
    cni_conf="${CNI_CONF_DIR:-/host/etc/cni/net.d}"
    case "$socket" in
        *'"'* | *'\'*) echo "weavers-entrypoint: WEAVERS_SOCKET may not hold quotes or backslashes" >&2; exit 1 ;;
    esac
    mkdir -p "$cni_bin" "$cni_conf"
    # Each file appears whole or not at all: a runtime never runs a plugin
    # or reads a conflist half written.
    cp "$bin/weavers-cni" "$cni_bin/.weavers-cni.new"
    chmod 0755 "$cni_bin/.weavers-cni.new"
    mv -f "$cni_bin/.weavers-cni.new" "$cni_bin/weavers-cni"
    cat >"$cni_conf/.10-weavers.conflist.new" <<CONF
{
  "cniVersion": "1.0.0",
  "cniVersions": ["1.0.0", "1.1.0"],
  "name": "weavers",
  "plugins": [
    {
      "type": "weavers-cni",
      "socket": "$socket",
      "defaultRoute": true
    }
  ]
}
CONF
    chmod 0644 "$cni_conf/.10-weavers.conflist.new"
    mv -f "$cni_conf/.10-weavers.conflist.new" "$cni_conf/10-weavers.conflist"
    echo "weavers-entrypoint: installed $cni_bin/weavers-cni and $cni_conf/10-weavers.conflist" >&2
}

case "${1:-}" in
    install-cni)
        install_cni
        ;;
    daemon)
        shift
        export WEAVERS_SOCKET="$socket"
        # The ConfigMap's "peers" may be empty (a first node): no --peer at
        # all, rather than one empty peer the daemon cannot resolve.
        [ -n "${WEAVERS_PEER:-}" ] || unset WEAVERS_PEER
        exec "$bin/weaversd" "$@"
        ;;
    expose)
        # The daemon starts alongside this hook; the range may still be
        # being shared out: retry both for up to 2 minutes.
        deadline=$(($(date +%s) + 120))
        until "$bin/weavers" --socket "$socket" expose; do
            if [ "$(date +%s)" -ge "$deadline" ]; then
                echo "weavers-entrypoint: weavers expose did not succeed in 120 s" >&2
                exit 1
            fi
            sleep 1
        done
        ;;
    live)
        exec "$bin/weavers" --socket "$socket" status >/dev/null
        ;;
    *)
        echo "usage: weavers-entrypoint install-cni | daemon [WEAVERSD ARGS] | expose | live" >&2
        exit 2
        ;;
esac
