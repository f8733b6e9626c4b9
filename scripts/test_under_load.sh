#!/usr/bin/env bash
# The whole test suite on a busy machine (issue 28): builds the tests, starts BUSY busy loops (default 2, one per core
# of the reference machine), then runs `swift test --skip-build` RUNS times in a row (default 3), stopping at the first
# failure. The busy loops are killed on exit whatever happens (success, failure, Ctrl-C).
#
#   bash scripts/test_under_load.sh            # 3 runs beside 2 busy loops
#   RUNS=1 bash scripts/test_under_load.sh     # CI
#   RUNS=1 FILTER=GatewayTests bash scripts/test_under_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
RUNS=${RUNS:-3}
BUSY=${BUSY:-2}
FILTER=${FILTER:-}
LOG_DIR=${LOG_DIR:-.build/test-under-load}

case "$RUNS" in '' | *[!0-9]*) echo "test_under_load.sh: RUNS must be a whole number, not '$RUNS'" >&2; exit 2 ;; esac
case "$BUSY" in '' | *[!0-9]*) echo "test_under_load.sh: BUSY must be a whole number, not '$BUSY'" >&2; exit 2 ;; esac

"$SWIFT" build --build-tests

busy_pids=()
stop_busy() {
    for pid in "${busy_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${busy_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    busy_pids=()
}
trap stop_busy EXIT
trap 'stop_busy; exit 130' INT
trap 'stop_busy; exit 143' TERM

for _ in $(seq 1 "$BUSY"); do
    sh -c 'while :; do :; done' &
    busy_pids+=("$!")
done
echo "test-under-load: $BUSY busy loops (pids ${busy_pids[*]}), $RUNS run(s) of swift test --skip-build${FILTER:+ --filter $FILTER}"

mkdir -p "$LOG_DIR"
arguments=(test --skip-build)
[ -n "$FILTER" ] && arguments+=(--filter "$FILTER")
for run in $(seq 1 "$RUNS"); do
    log="$LOG_DIR/run-$run.log"
    started=$(date +%s)
    if "$SWIFT" "${arguments[@]}" >"$log" 2>&1; then
        echo "test-under-load: run $run/$RUNS passed in $(($(date +%s) - started)) s ($(grep -Eo 'Test run with [0-9]+ tests' "$log" | tail -1))"
    else
        status=$?
        echo "test-under-load: run $run/$RUNS FAILED (exit $status) after $(($(date +%s) - started)) s; full log: $log" >&2
        grep -E '✘|error:|failed|recorded an issue' "$log" | head -60 >&2 || true
        exit "$status"
    fi
done
echo "test-under-load: all $RUNS run(s) passed beside $BUSY busy loops"
