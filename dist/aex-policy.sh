#!/usr/bin/env bash
# AEX's sample policy for a network authority (`weavers ca`): one
# certificate per host, by the role it plays in the exchange.
#
#   dist/aex-policy.sh CA_DIR ROLE NAME PUBLIC_KEY [DAYS] > NAME.crt
#
# ROLE     publishes to          subscribes to          may register
# engine   market data (MD)      orders (ORDERS)        *.orders.aex, *.md.aex (aex register), NAME
# dr       as engine: the disaster-recovery site takes over from it
# gateway  orders (ORDERS)       market data (MD)       NAME
# md       nothing               market data (MD)       NAME  (recorder, live view)
#
# So only engines publish market data and only gateways publish orders: a
# gateway's host cannot fake a trade print, a recorder's host cannot send an
# order, and no host but an engine's may answer for a symbol's group name.
# The group ranges are those of exchange/symbols.txt (override with
# AEX_ORDERS and AEX_MD). Reports and re-requests are unicast, not groups.
set -euo pipefail

usage() { echo "usage: $0 CA_DIR engine|dr|gateway|md NAME PUBLIC_KEY [DAYS]" >&2; exit 2; }
[ $# -ge 4 ] && [ $# -le 5 ] || usage
dir=$1 role=$2 name=$3 key=$4 days=${5:-365}
orders=${AEX_ORDERS:-239.192.1.0/24}
md=${AEX_MD:-239.192.2.0/24}
weavers=${WEAVERS:-weavers}

case "$role" in
    engine | dr) args=(--publish "$md" --subscribe "$orders" --names "*.orders.aex,*.md.aex,$name") ;;
    gateway) args=(--publish "$orders" --subscribe "$md" --names "$name") ;;
    md) args=(--publish "" --subscribe "$md" --names "$name") ;;
    *) usage ;;
esac
exec "$weavers" ca sign "$dir" --name "$name" --public-key "$key" --days "$days" "${args[@]}"
