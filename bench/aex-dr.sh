#!/usr/bin/env bash
# AEX disaster recovery, end to end: the demo with a DR site, production
# failed at a random moment mid-load, N times per mode. Each run is audited
# on the DR journal: acknowledged orders lost (rpo_orders, must be 0),
# failovers, RTO (failure to the new primary's first sequenced input).
#
#   sudo bench/aex-dr.sh [--runs N] [--modes "hot pilot"] [--duration S] [--rate R]
#
# Writes bench/results/aex-dr.md and aex-dr.json.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "bench/aex-dr.sh: run as root: the lab makes network namespaces" >&2
    exit 1
fi
runs=10
modes="hot pilot"
duration=20
rate=1
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --modes) modes="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        *) echo "usage: bench/aex-dr.sh [--runs N] [--modes \"hot pilot\"] [--duration S] [--rate R]" >&2; exit 2 ;;
    esac
done
export PATH="$PATH:/usr/sbin:/sbin"
cargo build --workspace --release --quiet
export WEAVERS_BIN_DIR="$PWD/target/release"
out=bench/results
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/runs.jsonl"
for mode in $modes; do
    for n in $(seq 1 "$runs"); do
        kill_after=$(( 5 + RANDOM % (duration - 8) ))
        echo "bench/aex-dr.sh: $mode run $n: production fails after $kill_after s" >&2
        rm -f "$tmp/s.json"
        target/release/demo --duration "$duration" --rate "$rate" --view-port 0 --dr "$mode" \
            --kill-primary-after "$kill_after" --summary-json "$tmp/s.json" || true
        python3 - "$mode" "$n" "$kill_after" "$tmp/s.json" >>"$tmp/runs.jsonl" <<'PY'
import json, sys
mode, n, k, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
try:
    s = json.load(open(path))
except Exception as e:
    s = {"error": str(e)}
keep = ["orders_sent", "orders_acked", "rpo_orders", "rto_ms", "failovers", "audit_ok", "ack_latency_us", "error"]
print(json.dumps({"mode": mode, "run": n, "kill_after_s": k, **{x: s.get(x) for x in keep}}))
PY
    done
done
python3 - "$tmp/runs.jsonl" "$out/aex-dr.json" "$out/aex-dr.md" "$rate" <<'PY'
import json, sys, datetime
runs = [json.loads(l) for l in open(sys.argv[1])]
json.dump(runs, open(sys.argv[2], "w"), indent=2)
rate = float(sys.argv[4]) * 10000
lines = [f"# AEX disaster recovery ({datetime.date.today()}, {rate:.0f} orders/s offered)", "",
         "| mode | run | failed after s | orders acked | rpo_orders | failovers | rto_ms | audit |",
         "|---|---|---|---|---|---|---|---|"]
for r in runs:
    lines.append(f"| {r['mode']} | {r['run']} | {r['kill_after_s']} | {r.get('orders_acked')} | {r.get('rpo_orders')} "
                 f"| {r.get('failovers')} | {r.get('rto_ms')} | {r.get('audit_ok')} |")
for mode in sorted({r["mode"] for r in runs}):
    rs = [r for r in runs if r["mode"] == mode]
    rto = sorted(r["rto_ms"] for r in rs if isinstance(r.get("rto_ms"), int))
    ok = sum(1 for r in rs if r.get("rpo_orders") == 0 and r.get("audit_ok") is True and r.get("failovers") == 1)
    lines.append("")
    lines.append(f"{mode}: {ok}/{len(rs)} runs with rpo_orders 0, one failover and a clean audit; "
                 f"rto_ms min {rto[0] if rto else '-'}, median {rto[len(rto)//2] if rto else '-'}, max {rto[-1] if rto else '-'}")
open(sys.argv[3], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
