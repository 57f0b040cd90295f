#!/usr/bin/env bash
# Brings the inputs worth keeping from fuzz runs into the checked-in corpus: libFuzzer's
# merge (the `cargo fuzz cmin` algorithm) keeps only inputs that reach coverage the
# checked-in corpus does not, and of those the KEEP smallest are copied into
# fuzz/corpus/<target>/ (named by their SHA-1, as libFuzzer names them).
#
#   bench/fuzz/merge.sh bench/out/fuzz-20261127T160000Z [more run directories...]
#
# Each argument is a run directory of bench/fuzz/run.sh (its corpus/<target>/ is read).
# Knobs (environment): TARGETS (default: every target with new inputs), KEEP (40 per target),
# SANITIZER (none; as the runs were built), NICE (19).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FUZZ=$(cd "$HERE/../../fuzz" && pwd)
KEEP=${KEEP:-40}
SANITIZER=${SANITIZER:-none}
NICE=${NICE:-19}
[[ $# -ge 1 ]] || {
    echo "usage: $0 RUN_DIR..." >&2
    exit 2
}
runs=()
for dir in "$@"; do runs+=("$(cd "$dir" && pwd)"); done
if [[ -z "${TARGETS:-}" ]]; then
    TARGETS=$(for dir in "${runs[@]}"; do ls "$dir/corpus"; done | sort -u | tr '\n' ' ')
fi

cd "$FUZZ"
export RUSTC_BOOTSTRAP=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in $TARGETS; do
    sources=()
    for dir in "${runs[@]}"; do
        [[ -d "$dir/corpus/$target" ]] && sources+=("$dir/corpus/$target")
    done
    [[ ${#sources[@]} -gt 0 ]] || continue
    merged="$work/$target"
    mkdir -p "$merged"
    cp corpus/"$target"/* "$merged"/
    nice -n "$NICE" cargo fuzz run --sanitizer "$SANITIZER" "$target" "$merged" \
        "${sources[@]}" -- -merge=1 >"$work/$target.log" 2>&1 || {
        tail -5 "$work/$target.log" >&2
        exit 1
    }
    # New files only, smallest first.
    added=0
    while read -r _ file; do
        if [[ ! -e "corpus/$target/$file" ]] && ((added < KEEP)); then
            cp "$merged/$file" "corpus/$target/$file"
            added=$((added + 1))
        fi
    done < <(cd "$merged" && find . -type f -printf '%s %P\n' | sort -n)
    new=$(($(find "$merged" -type f | wc -l) - $(find "corpus/$target" -type f | wc -l) + added))
    echo "$target: $new inputs add coverage, kept the $added smallest"
done
