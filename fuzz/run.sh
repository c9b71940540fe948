#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each (default 60).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#   FUZZ_RUNS=10000000 fuzz/run.sh 1800      # each: 10 M executions or 30 minutes, whichever first
#
# Installs cargo-fuzz when it is missing (crates.io); needs the nightly
# toolchain (`rustup toolchain install nightly`). Builds the targets with
# debug assertions and overflow checks on, so arithmetic that overflows on
# a received value is a crash too.
#
# Corpus: the committed seeds in fuzz/corpus/TARGET are read; what the
# fuzzer finds goes to fuzz/work/TARGET (not committed, kept across runs).
# A crash leaves its input in fuzz/artifacts/TARGET/; commit it to
# fuzz/regressions/TARGET/ once fixed (the crates' tests replay that
# folder). The last status line of each target (executions, coverage)
# goes to fuzz/out/summary.tsv (or $FUZZ_SUMMARY, relative to fuzz/, so that
# two runs side by side keep separate tables).
#
# Exits non-zero if any target crashed (or failed to build).
set -uo pipefail
cd "$(dirname "$0")"

secs=${1:-60}
shift || true
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//' | sort)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked || exit 2
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "the nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 2
fi

echo "building ${#targets[@]} targets" >&2
for t in "${targets[@]}"; do
    cargo +nightly fuzz build --debug-assertions "$t" || { echo "build of $t failed" >&2; exit 2; }
done

summary=${FUZZ_SUMMARY:-out/summary.tsv}
mkdir -p out
printf 'target\tseconds\texecutions\tcoverage\tfeatures\tcorpus\tresult\n' > "$summary"
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "work/$t" "artifacts/$t"
    log="out/$t.log"
    echo "== $t (${secs}s)" >&2
    cargo +nightly fuzz run --debug-assertions "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$secs" ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} -timeout=20 -rss_limit_mb=2048 -max_len=16384 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    # The last "#N ... cov: X ft: Y corp: Z" line.
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
    cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.*corp: ([0-9]+).*/\1/p' <<<"$last")
    result=ok
    if [ $rc -ne 0 ]; then
        result=crash
        failed+=("$t")
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -n 5 >&2
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$secs" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result" \
        >> "$summary"
    echo "   $result: ${execs:-?} executions, cov ${cov:-?}" >&2
done

column -t -s $'\t' "$summary" >&2 || cat "$summary" >&2
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
