#!/usr/bin/env bash
# `make readme-check`: every command the README and the guides show must work when run twice in a row in the same
# checkout (a newcomer runs commands twice). Each command runs twice; the check fails when the second run fails or
# ends with another exit code than the first. Logs: results/readme-check/NAME.{1,2}.log.
#
# What runs (CI runs the quick set after `make test`):
#   quick:  make demo, make report-check, make demo-llm, and every walk-through block in docs/*.md: a ```sh fence
#           right after a line `<!-- readme-check -->`. Such a block runs as one `bash -euo pipefail` script from the
#           repository root with .build/release on PATH (so `retort` is the freshly built binary); whatever it
#           starts in the background is stopped when it ends. Mark a block only when it finishes in seconds.
#   READMECHECK_ALL=1 adds the slow ones: make test, make test-ray, make bench-gateway, make bench-deploy, make ui-check,
#           make gateway-check, and (when ../shared/bench exists) make bench, bench-peers, bench-search,
#           bench-learning and bench-ray.
#   READMECHECK_ONLY=REGEX keeps the commands whose name matches (e.g. READMECHECK_ONLY='guide-deploy').
# Usage: scripts/readme_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
logs=results/readme-check
mkdir -p "$logs"
export PATH="$root/.build/release:$PATH"

names=()
commands=()
add() { names+=("$1"); commands+=("$2"); }

add "make demo" "make demo"
add "make report-check" "make report-check"
add "make demo-llm" "make demo-llm"

# The marked walk-through blocks of the guides, in file order.
blocks=$logs/blocks
rm -rf "$blocks"
mkdir -p "$blocks"
python3 - "$blocks" docs/guide-search.md $(ls docs/*.md | grep -v guide-search.md) <<'PY' || { echo "readme-check: error: could not read the walk-through blocks in docs/" >&2; exit 1; }
import os, sys
out = sys.argv[1]
count = 0
for path in sys.argv[2:]:
    lines = open(path).read().split("\n")
    index = 0
    while index < len(lines):
        if lines[index].strip() == "<!-- readme-check -->":
            start = index + 1
            if start >= len(lines) or not lines[start].startswith("```sh"):
                sys.exit(f"{path}:{index + 1}: error: <!-- readme-check --> must be followed by a ```sh block")
            end = start + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            if end == len(lines):
                sys.exit(f"{path}:{start + 1}: error: the ```sh block is not closed")
            count += 1
            with open(os.path.join(out, f"{count:03d}@{os.path.basename(path)[:-3]}@{start + 1}.sh"), "w") as handle:
                handle.write(f"# {path} line {start + 1}\n" + "\n".join(lines[start + 1:end]) + "\n")
            index = end
        index += 1
PY
while IFS= read -r file; do
    name=$(basename "$file" .sh)
    name=${name#*@}
    add "${name/@/:}" "bash -euo pipefail $file"
done < <(ls "$blocks"/*.sh 2>/dev/null)

if [ "${READMECHECK_ALL:-0}" = 1 ]; then
    add "make test" "make test"
    add "make test-ray" "make test-ray"
    add "make bench-gateway" "make bench-gateway"
    add "make bench-deploy" "make bench-deploy"
    add "make ui-check" "make ui-check"
    add "make gateway-check" "make gateway-check"
    if [ -d ../shared/bench ]; then
        for target in bench bench-peers bench-search bench-learning bench-ray; do add "make $target" "make $target"; done
    else
        echo "readme-check: ../shared/bench is missing: the bench targets that need it are not run" >&2
    fi
fi

# One run of a command in its own process group, so anything it left running in the background is stopped.
run_once() {
    local command=$1 log=$2
    setsid bash -c "$command" >"$log" 2>&1 </dev/null &
    local pid=$!
    wait "$pid"
    local status=$?
    kill -TERM -- "-$pid" 2>/dev/null && sleep 0.5 && kill -KILL -- "-$pid" 2>/dev/null
    return "$status"
}

make build >"$logs/build.log" 2>&1 || { echo "readme-check: error: make build failed; see $logs/build.log" >&2; exit 1; }

failed=0
checked=0
for index in "${!names[@]}"; do
    name=${names[$index]}
    if [ -n "${READMECHECK_ONLY:-}" ] && ! [[ $name =~ $READMECHECK_ONLY ]]; then continue; fi
    slug=$(printf '%s' "$name" | tr -c 'A-Za-z0-9.-' '_')
    statuses=()
    seconds=()
    for round in 1 2; do
        started=$SECONDS
        run_once "${commands[$index]}" "$logs/$slug.$round.log"
        statuses+=($?)
        seconds+=($((SECONDS - started)))
    done
    checked=$((checked + 1))
    if [ "${statuses[1]}" -ne 0 ] || [ "${statuses[0]}" -ne "${statuses[1]}" ]; then
        failed=$((failed + 1))
        echo "FAIL  $name: exit ${statuses[0]} then ${statuses[1]} (${seconds[0]} s, ${seconds[1]} s); see $logs/$slug.2.log:"
        grep -v '^\s*$' "$logs/$slug.2.log" | tail -n 5 | sed 's/^/      /'
    else
        echo "ok    $name: twice (${seconds[0]} s, ${seconds[1]} s)"
    fi
done
if [ "$failed" -gt 0 ]; then
    echo "readme-check: $failed of $checked commands failed on a second run (logs in $logs/)" >&2
    exit 1
fi
echo "readme-check: all $checked commands work twice in a row"
