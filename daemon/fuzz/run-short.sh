#!/bin/sh
# Runs every gatewayd fuzz target for a short while and fails if any of them finds a crash
# (a panic, an assertion of the target, or a memory error under AddressSanitizer).
#
#   daemon/fuzz/run-short.sh            # 25 s per target
#   FUZZ_SECONDS=600 daemon/fuzz/run-short.sh
#   FUZZ_TARGETS="ws_frames" daemon/fuzz/run-short.sh
#   FUZZ_RUNS=1000000 daemon/fuzz/run-short.sh   # this many inputs per target instead of a time
#
# cargo-fuzz needs nightly compiler flags (-Zsanitizer, sanitizer coverage); on a stable
# toolchain RUSTC_BOOTSTRAP=1 unlocks them. cargo-fuzz is installed from crates.io if missing.
# Each target starts from daemon/fuzz/seeds/TARGET (committed) and the inputs found so far in
# daemon/fuzz/corpus/TARGET (not committed); crashes land in daemon/fuzz/artifacts/TARGET.
# Inputs that crashed before are kept in daemon/fuzz/regressions/TARGET and replayed first.
# Replay one with `cargo fuzz run TARGET FILE` from daemon/.
set -u
cd "$(dirname "$0")/.." || exit 2 # daemon/
export RUSTC_BOOTSTRAP=1
seconds=${FUZZ_SECONDS:-25}
targets=${FUZZ_TARGETS:-"ws_frames connect_params config_loader http_routes control_api"}
if [ -n "${FUZZ_RUNS:-}" ]; then
    budget="-runs=$FUZZ_RUNS"
else
    budget="-max_total_time=$seconds"
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz..."
    cargo install cargo-fuzz --version "^0.13" --locked || exit 2
fi
cargo fuzz build || exit 2

failed=""
for t in $targets; do
    # Inputs that crashed before: each runs once, and must not crash any more.
    for input in fuzz/regressions/"$t"/*; do
        [ -f "$input" ] || continue
        echo "=== $t: replaying $input"
        if ! cargo fuzz run "$t" "$input" >"fuzz/$t.replay.log" 2>&1; then
            failed="$failed $t($(basename "$input"))"
            grep -E "panicked|ERROR|SUMMARY" "fuzz/$t.replay.log" | head -n 5
        fi
    done
    echo "=== $t: ${FUZZ_RUNS:+$FUZZ_RUNS inputs}${FUZZ_RUNS:-${seconds}s}"
    mkdir -p "fuzz/corpus/$t"
    if ! cargo fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        "$budget" -dict="fuzz/dicts/$t.dict" -print_final_stats=1 \
        2>"fuzz/$t.log"; then
        failed="$failed $t"
        grep -E "panicked|ERROR|SUMMARY|Failing input|fuzz/artifacts/" "fuzz/$t.log" | head -n 10
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb)' "fuzz/$t.log"
done
if [ -n "$failed" ]; then
    echo "FAILED:$failed (inputs in daemon/fuzz/artifacts/ and daemon/fuzz/regressions/)"
    exit 1
fi
echo "all fuzz targets ran ${FUZZ_RUNS:+$FUZZ_RUNS inputs}${FUZZ_RUNS:-${seconds}s} without a crash"
