#!/usr/bin/env bash
# Runs a full default search on every task in ../shared/bench and prints one Markdown table:
# the recommendation, the search wall time, and the best student's test accuracy beside the teacher's and
# the best peer's (../shared/bench/peers.md). Usage: scripts/bench.sh [BENCH_DIR] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${1:-../shared/bench}
out=${2:-results/bench}
[ -d "$bench" ] || { echo "bench: error: no benchmark folder $bench (the bench tasks live in ../shared/bench; pass another folder as the first argument)" >&2; exit 66; }
[ -x .build/release/retort ] || { echo "bench: error: .build/release/retort is missing; run \`make build\` first" >&2; exit 66; }
mkdir -p "$out"
for task in "$bench"/*/; do
    name=$(basename "$task")
    [ -f "$task/task.json" ] || continue
    kind=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("kind"))' "$task/task.json")
    if [ "$kind" != text ] && [ "$kind" != numeric ]; then
        echo "skipping $name: task kind '$kind' is not searched by this benchmark (only text and numeric tasks)" >&2
        continue
    fi
    echo "== $name" >&2
    start=$EPOCHREALTIME
    .build/release/retort search --task "$task" --out "$out/$name" --strategy exhaustive > "$out/$name.log" 2>&1 \
        || { echo "search failed on $name: see $out/$name.log" >&2; exit 1; }
    echo "$start $EPOCHREALTIME" > "$out/$name.time"
done
python3 - "$bench" "$out" <<'PY'
import json, glob, os, re, sys
bench, out = sys.argv[1], sys.argv[2]
peers = {}
peer_text = open(os.path.join(bench, "peers.md")).read() if os.path.exists(os.path.join(bench, "peers.md")) else ""
for line in peer_text.splitlines():
    m = re.match(r"\| (\S+) \| public \|.*\| (\S+ \(\d\.\d+\)) \|$", line)
    if m: peers[m.group(1)] = m.group(2)
print("| task | candidates (complete) | search wall s | recommendation | its test acc [95% CI] | its agreement | teacher test acc | best peer (test acc) |")
print("|---|---|---|---|---|---|---|---|")
for task in sorted(os.listdir(out)):
    runs = sorted(glob.glob(os.path.join(out, task, "2*", "report.json")))
    if not runs: continue
    r = json.load(open(runs[-1]))
    rec = r["recommendation"]
    complete = sum(1 for c in r["candidates"] if c["status"] == "complete")
    begin, end = map(float, open(os.path.join(out, task + ".time")).read().split())
    wall = f"{end - begin:.1f}"
    def est(m):
        return "—" if not m else f'{m["value"]:.4f} [{m["ci95"][0]:.4f}, {m["ci95"][1]:.4f}]'
    if rec["kind"] == "student":
        tm = rec.get("test_metrics", {})
        what, acc, agree = f'`{rec["candidate"]}`', est(tm.get("accuracy")), est(tm.get("agreement"))
    elif rec["kind"] == "cascade":  # the cascade's own test figures: the student on its share, the teacher the rest
        tm = rec.get("test_metrics", {})
        what = f'cascade: `{rec["candidate"]}` answers {rec["coverage"]:.0%}, the teacher the rest'
        acc, agree = est(tm.get("accuracy")), est(tm.get("agreement"))
    else:
        best = max((c for c in r["candidates"] if c.get("test_metrics")), key=lambda c: c["metrics"].get(r["primary_metric"], {}).get("value", -1), default=None)
        what = "no-distillation" + (f' (best: `{best["id"]}`)' if best else "")
        acc = est(best["test_metrics"].get("accuracy")) if best else "—"
        agree = est(best["test_metrics"].get("agreement")) if best else "—"
    print(f'| {task} | {len(r["candidates"])} ({complete}) | {wall} | {what} | {acc} | {agree} | {est(r["teacher"]["metrics"].get("accuracy"))} | {peers.get(task, "—")} |')
PY
