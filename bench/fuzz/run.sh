#!/usr/bin/env bash
# The long fuzz run: every cargo-fuzz target of fuzz/Cargo.toml for a fixed budget of
# executions, one target after another (one core), then a markdown table of libFuzzer's
# final stats: executions, time, exec/s, corpus size, new inputs, crashes.
#
#   bench/fuzz/run.sh                      # every target, 10^7 executions each
#   RUNS=1000000 TARGETS="wire_frames multipart" bench/fuzz/run.sh
#
# Knobs (environment):
#   RUNS       executions per target (libFuzzer -runs), 10000000
#   MAX_TIME   cap in seconds per target (libFuzzer -max_total_time), 0 = no cap
#   DEADLINE   a UTC time (HH:MM) when the whole run must end: each target's cap is cut to
#              what remains, and targets not started by then are listed as not run
#   TARGETS    space-separated targets, in this order; default: every [[bin]] of fuzz/Cargo.toml
#   SANITIZER  cargo fuzz --sanitizer: none (default) or address. otad's code has no
#              `unsafe`, so the address sanitizer mostly costs speed (about 2x here)
#   NICE       niceness of the fuzzer, 19
#   OUT        where logs, new inputs and crash inputs go, bench/out/fuzz-<UTC time>
#
# The checked-in corpus fuzz/corpus/<target>/ is read, never written: new inputs go to
# $OUT/corpus/<target>/ and crash inputs to $OUT/artifacts/<target>/. A crash stops that
# target (libFuzzer's default) and the run goes on with the next. Exit status: 1 if any
# target crashed or failed to run, else 0. See bench/fuzz/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FUZZ="$ROOT/fuzz"

RUNS=${RUNS:-10000000}
MAX_TIME=${MAX_TIME:-0}
DEADLINE=${DEADLINE:-}
SANITIZER=${SANITIZER:-none}
NICE=${NICE:-19}
OUT=${OUT:-$ROOT/bench/out/fuzz-$(date -u +%Y%m%dT%H%M%SZ)}
if [[ -z "${TARGETS:-}" ]]; then
    # The name of every [[bin]] section, in file order.
    TARGETS=$(awk '/^\[/ { bin = ($0 == "[[bin]]") } bin && /^name = / { gsub(/"/, "", $3); print $3 }' \
        "$FUZZ/Cargo.toml" | tr '\n' ' ')
fi

mkdir -p "$OUT"
# The script works from fuzz/, so a relative OUT is made absolute first.
OUT=$(cd "$OUT" && pwd)
cd "$FUZZ"
# cargo-fuzz needs nightly-only flags; the build machine has stable only.
export RUSTC_BOOTSTRAP=1

echo "building the fuzz targets (sanitizer: $SANITIZER)" >&2
nice -n "$NICE" cargo fuzz build --sanitizer "$SANITIZER" >"$OUT/build.log" 2>&1 || {
    tail -20 "$OUT/build.log" >&2
    exit 1
}

# One table row per target, from libFuzzer's log.
#   Done N runs in T second(s)                -> executions, time
#   stat::average_exec_per_sec / new_units_added
#   the last status line's "corp: U/S"       -> corpus units and size
row() {
    local target=$1 log=$2 status=$3
    local runs secs rate added corpus crashes note
    runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *\([0-9]*\)/\1/p' "$log" | tail -1)
    added=$(sed -n 's/^stat::new_units_added: *\([0-9]*\)/\1/p' "$log" | tail -1)
    runs=${runs:-$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$log" | tail -1)}
    corpus=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2)
    crashes=$(find "$OUT/artifacts/$target" -type f \
        \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    if [[ "$status" != 0 && "$crashes" == 0 ]]; then
        note="failed (exit $status), see $log"
    elif [[ "$crashes" != 0 ]]; then
        note="stopped at a crash"
    elif [[ "${runs:-0}" -ge "$RUNS" ]]; then
        note="budget reached"
    else
        note="time cap reached"
    fi
    printf '| `%s` | %s | %s | %s | %s | %s | %s | %s |\n' "$target" "${runs:-?}" \
        "${secs:-?}" "${rate:-?}" "${corpus:-?}" "${added:-?}" "$crashes" "$note"
}

failed=0
rows=()
end_at=0
if [[ -n "$DEADLINE" ]]; then
    end_at=$(date -u -d "$DEADLINE" +%s)
fi
for target in $TARGETS; do
    cap=$MAX_TIME
    if [[ "$end_at" != 0 ]]; then
        left=$((end_at - $(date -u +%s)))
        if ((left < 5)); then
            rows+=("$(printf '| `%s` | 0 | 0 | - | - | - | 0 | not run (deadline %s) |' "$target" "$DEADLINE")")
            echo "${rows[-1]}" >&2
            continue
        fi
        if [[ "$cap" == 0 ]] || ((left < cap)); then
            cap=$left
        fi
    fi
    mkdir -p "$OUT/corpus/$target" "$OUT/artifacts/$target"
    log="$OUT/$target.log"
    echo "$(date -u +%H:%M:%S) $target: up to $RUNS executions, cap ${cap} s" >&2
    status=0
    nice -n "$NICE" cargo fuzz run --sanitizer "$SANITIZER" "$target" \
        "$OUT/corpus/$target" "corpus/$target" -- \
        -runs="$RUNS" -max_total_time="$cap" -print_final_stats=1 \
        -artifact_prefix="$OUT/artifacts/$target/" >"$log" 2>&1 || status=$?
    rows+=("$(row "$target" "$log" "$status")")
    echo "${rows[-1]}" >&2
    [[ "$status" == 0 ]] || failed=1
done

{
    echo "Fuzz run of $(date -u +%Y-%m-%d), $(nproc) cores, sanitizer $SANITIZER, RUNS=$RUNS," \
        "MAX_TIME=$MAX_TIME, DEADLINE=${DEADLINE:-none}, nice $NICE, commit $(git -C "$ROOT" rev-parse --short HEAD)"
    echo
    echo "| target | executions | time (s) | exec/s | corpus (units/bytes) | new units | crashes | ended |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    printf '%s\n' "${rows[@]}"
} | tee "$OUT/report.md"
exit "$failed"
