#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target of the project for a fixed time
# each, one after the other, and prints per target the time it ran, the
# inputs libFuzzer executed (its final `stat::number_of_executed_units`)
# and the result.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 60 seconds, every target
#   nice -n 19 scripts/fuzz.sh 600            what docs/RELIABILITY.md reports
#
# Targets: proto/fuzz (frame_decoder, frame_roundtrip), xlreg/fuzz
# (xlreg_hello, xlreg_session_frames, xlreg_log_replay) and actors/fuzz
# (sync_session).
#
# Toolchain: cargo-fuzz passes nightly-only flags to rustc (-Zsanitizer=...).
# The machine has the stable toolchain, whose rust-std ships the ASan
# runtime, so RUSTC_BOOTSTRAP=1 lets stable rustc take those flags; no
# nightly is needed. FUZZ_TOOLCHAIN=nightly uses `cargo +nightly` instead,
# FUZZ_SANITIZER=none builds without ASan (faster, finds panics only).
# Targets are built in release mode with debug assertions (overflow checks
# on). Corpora grow in <crate>/fuzz/corpus/<target>, crashing inputs land in
# <crate>/fuzz/artifacts/<target> (both git-ignored); the full libFuzzer
# output of each run is kept in target/fuzz-logs/<target>.log.
#
# Exit status: 0 when every target ran its time without a crash, 1 if any
# target crashed or failed to build.

set -uo pipefail

duration="${1:-60}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
logs="$root/target/fuzz-logs"
mkdir -p "$logs"
sanitizer="${FUZZ_SANITIZER:-address}"
if [[ -n "${FUZZ_TOOLCHAIN:-}" ]]; then
    cargo=(cargo "+$FUZZ_TOOLCHAIN" fuzz)
else
    export RUSTC_BOOTSTRAP=1
    cargo=(cargo fuzz)
fi

declare -A crate_of=(
    [frame_decoder]=proto [frame_roundtrip]=proto
    [xlreg_hello]=xlreg [xlreg_session_frames]=xlreg [xlreg_log_replay]=xlreg
    [sync_session]=actors
)
order=(frame_decoder frame_roundtrip xlreg_hello xlreg_session_frames xlreg_log_replay sync_session)
if [[ $# -gt 0 ]]; then order=("$@"); fi

build() {
    local crate="$1"
    echo "building $crate/fuzz (sanitizer $sanitizer)" >&2
    (cd "$root/$crate" && "${cargo[@]}" build --release --debug-assertions --sanitizer "$sanitizer") \
        >"$logs/build-$crate.log" 2>&1
}

declare -A built=()
results=()
failed=0
for target in "${order[@]}"; do
    crate="${crate_of[$target]:-}"
    if [[ -z "$crate" ]]; then
        echo "unknown target $target" >&2
        exit 2
    fi
    if [[ -z "${built[$crate]:-}" ]]; then
        if ! build "$crate"; then
            echo "build of $crate/fuzz failed; see $logs/build-$crate.log" >&2
            tail -20 "$logs/build-$crate.log" >&2
            results+=("$target - - BUILD-FAILED")
            failed=1
            continue
        fi
        built[$crate]=1
    fi
    log="$logs/$target.log"
    echo "running $target for ${duration}s (log: $log)" >&2
    start=$(date +%s)
    (cd "$root/$crate" && "${cargo[@]}" run --release --debug-assertions --sanitizer "$sanitizer" \
        "$target" -- -max_total_time="$duration" -timeout=25 -print_final_stats=1) \
        >"$log" 2>&1
    status=$?
    took=$(($(date +%s) - start))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    if [[ $status -eq 0 ]]; then
        result=ok
    else
        artifact=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -1 | sed 's/Test unit written to //')
        result="CRASH(exit $status${artifact:+, $artifact})"
        failed=1
    fi
    results+=("$target ${took} ${execs:-?} $result")
done

printf '%-22s %8s %14s  %s\n' target seconds executions result
for line in "${results[@]}"; do
    read -r t s e r <<<"$line"
    printf '%-22s %8s %14s  %s\n' "$t" "$s" "$e" "$r"
done
exit $failed
