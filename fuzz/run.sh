#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each one for a bounded time from its seeds
# (fuzz/seeds/TARGET, when present) with the dictionary fuzz/websocket.dict.
#
# Usage: [JOBS=N] fuzz/run.sh [SECONDS] [TARGET...]
#   SECONDS  fuzzing time per target (default 30)
#   TARGET   targets to run (default: every target `cargo fuzz list` shows)
#   JOBS     targets fuzzed at the same time (default 1; one core each)
#
# Prints, per target, the CPU time, the executions and libFuzzer's final coverage line. Exits non-zero when
# the build fails or any target crashes, leaks, times out on an input or runs out of memory;
# the failing input is left in fuzz/artifacts/TARGET/. The working corpus lives in
# fuzz/target/fuzz-run/corpus/TARGET (git-ignored) and carries over between runs.
set -uo pipefail

secs="${1:-30}"
if [[ $# -gt 0 ]]; then
    shift
fi
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [[ "$secs" -lt 1 ]]; then
    echo "run.sh: SECONDS must be a positive integer, got '$secs'" >&2
    exit 2
fi

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$fuzz_dir" || exit 2

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz"
    cargo install --locked cargo-fuzz || exit 2
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "run.sh: no fuzz targets found" >&2
    exit 2
fi

# Debug assertions (and overflow checks) on: the same flags for build and run, so `run` does
# not rebuild.
build_flags=(--debug-assertions)

echo "run.sh: building all fuzz targets"
if ! cargo +nightly fuzz build "${build_flags[@]}"; then
    echo "run.sh: build failed" >&2
    exit 1
fi

jobs_max="${JOBS:-1}"
if ! [[ "$jobs_max" =~ ^[0-9]+$ ]] || [[ "$jobs_max" -lt 1 ]]; then
    echo "run.sh: JOBS must be a positive integer, got '$jobs_max'" >&2
    exit 2
fi

work="$fuzz_dir/target/fuzz-run"
mkdir -p "$work"

# Runs one target; leaves its log in $work/TARGET.log, its exit code in $work/TARGET.rc and its
# CPU time (user + system seconds) in $work/TARGET.cpu.
run_one() {
    local t="$1"
    local corpus="$work/corpus/$t"
    mkdir -p "$corpus"
    local dirs=("$corpus")
    if [[ -d "seeds/$t" ]]; then
        dirs+=("seeds/$t")
    fi
    local log="$work/$t.log"
    local timer=()
    if [[ -x /usr/bin/time ]]; then
        timer=(/usr/bin/time -f "%U %S" -o "$work/$t.cpu")
    fi
    # libFuzzer stops itself after -max_total_time; the outer timeout only guards against a
    # wedged process.
    "${timer[@]}" timeout --kill-after=30 $((secs + 300)) \
        cargo +nightly fuzz run "${build_flags[@]}" "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" \
        -dict=websocket.dict \
        -timeout=10 \
        -rss_limit_mb=2048 \
        -print_final_stats=1 \
        >"$log" 2>&1
    echo $? >"$work/$t.rc"
}

rm -f "$work"/*.rc "$work"/*.cpu
running=0
for t in "${targets[@]}"; do
    if [[ $running -ge $jobs_max ]]; then
        wait -n
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait

failed=()
printf '%-22s %9s %12s  %s\n' "target" "cpu_s" "executions" "final coverage"
for t in "${targets[@]}"; do
    log="$work/$t.log"
    rc="$(cat "$work/$t.rc" 2>/dev/null || echo 1)"
    cpu="$(awk '{printf "%.0f", $(NF-1) + $NF}' "$work/$t.cpu" 2>/dev/null | tail -n 1)"
    execs="$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log" | tail -n 1)"
    cov="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 | sed -E 's/[[:space:]]+/ /g')"
    printf '%-22s %9s %12s  %s\n' "$t" "${cpu:-?}" "${execs:-?}" "${cov:-(no final line)}"
    if [[ $rc -ne 0 ]]; then
        failed+=("$t")
        echo "---- $t failed (exit $rc); log $log; last lines:"
        tail -n 40 "$log"
        grep -E 'Test unit written to' "$log" || true
        echo "---- reproduce: cargo +nightly fuzz run ${build_flags[*]} $t fuzz/artifacts/$t/<file>"
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "run.sh: FAILED: ${failed[*]}"
    exit 1
fi
echo "run.sh: all ${#targets[@]} targets ran ${secs}s each without a crash"
