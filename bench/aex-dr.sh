#!/usr/bin/env bash
# AEX disaster recovery, end to end: the demo with a DR site, production
# failed at a random moment mid-load, N times per mode. Each run is audited
# on the DR journal: acknowledged orders lost (rpo_orders, must be 0),
# failovers, RTO (failure to the new primary's first sequenced input).
#
#   sudo bench/aex-dr.sh [--runs N] [--modes "hot pilot"] [--duration S] [--rate R]
#   sudo bench/aex-dr.sh --overhead N [--duration S] [--rate R]
#
# Writes bench/results/aex-dr.md and aex-dr.json. With --overhead, instead:
# N pairs of runs without and with a hot standby (no failure), alternated,
# for what synchronous replication adds to order-to-ack latency and how far
# the standby trails (records sequenced, not yet durable at DR, sampled
# once a second); writes bench/results/aex-dr-overhead.md.
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
overhead=0
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --modes) modes="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --overhead) overhead="$2"; shift 2 ;;
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
if [ "$overhead" -gt 0 ]; then
    : >"$tmp/pairs.jsonl"
    for n in $(seq 1 "$overhead"); do
        for dr in none hot; do
            echo "bench/aex-dr.sh: overhead pair $n, DR $dr" >&2
            rm -f "$tmp/s.json"
            flags=()
            [ "$dr" = hot ] && flags=(--dr hot)
            target/release/demo --duration "$duration" --rate "$rate" --view-port 0 "${flags[@]}" \
                --summary-json "$tmp/s.json" || true
            python3 - "$dr" "$n" "$tmp/s.json" >>"$tmp/pairs.jsonl" <<'PY'
import json, sys
dr, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    s = json.load(open(path))
except Exception as e:
    s = {"error": str(e)}
print(json.dumps({"dr": dr, "pair": n, "orders_acked": s.get("orders_acked"), "orders_sent": s.get("orders_sent"),
                  "lat": s.get("ack_latency_us") or {}, "lag": s.get("dr_lag_records"), "audit_ok": s.get("audit_ok")}))
PY
        done
    done
    python3 - "$tmp/pairs.jsonl" "$out/aex-dr-overhead.md" "$rate" <<'PY'
import json, sys, datetime
runs = [json.loads(l) for l in open(sys.argv[1])]
lines = [f"# What synchronous replication costs ({datetime.date.today()}, {float(sys.argv[3]) * 10000:.0f} orders/s)", "",
         "| pair | DR | acked / sent | p50 us | p99 us | p99.9 us | standby lag, records (mean / max) | audit |",
         "|---|---|---|---|---|---|---|---|"]
for r in runs:
    lat, lag = r["lat"], r.get("lag") or {}
    lag_s = f"{lag.get('mean', 0):.1f} / {lag.get('max', '-')}" if lag else "-"
    lines.append(f"| {r['pair']} | {r['dr']} | {r['orders_acked']} / {r['orders_sent']} | {lat.get('p50')} | {lat.get('p99')} "
                 f"| {lat.get('p999')} | {lag_s} | {r['audit_ok']} |")
def med(dr, q):
    v = sorted(r["lat"].get(q) for r in runs if r["dr"] == dr and r["lat"].get(q) is not None)
    return v[len(v) // 2] if v else None
lines += ["", f"Median p50: {med('none', 'p50')} us without DR, {med('hot', 'p50')} us with the hot standby; "
          f"median p99: {med('none', 'p99')} vs {med('hot', 'p99')} us."]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
    exit 0
fi
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
