#!/usr/bin/env python3
"""Does the recommendation keep its promise on test (issue 24, item 1)? One exhaustive search per task — the label
bench tasks, the bundled example and generated variants (scripts/make_variants.py, as `make bench-learning` builds
them) — then, per task, two picks from the same trials:

  point       what the validation point estimates alone pick (the cheapest student within max_drop): the rule
              before this change (report.json recommendation.point_estimate_pick, or the recommendation itself when
              both rules agree);
  confident   the recommendation: the cheapest student whose probability of a true drop within max_drop, adjusted
              for picking among many, reaches the confidence level (default 90%), else a cascade or the teacher.

"Over" means the pick's test drop against the teacher exceeds max_drop (a cascade: the cascade's test value). Cost
given up: the confident pick's FLOPs per example and size over the point pick's, where both are students.

Usage: scripts/bench_confidence.py [BENCH_DIR] [OUT_DIR] [extra retort search flags...]
"""
import glob
import json
import os
import statistics
import subprocess
import sys
import time

import scriptkit

bench = scriptkit.require_bench(sys.argv[1] if len(sys.argv) > 1 else "../shared/bench")
out = sys.argv[2] if len(sys.argv) > 2 else "results/bench-confidence"
extra = sys.argv[3:]
retort = scriptkit.require_binary(".build/release/retort")
os.makedirs(out, exist_ok=True)

catalog = scriptkit.catalog_without_encoders(out)
tasks = scriptkit.learning_tasks(bench, retort, os.path.join(out, "variants"), ("satimage", "letter", "ha-intents-en", "ha-intents-en-llm"))


def test_drop(report, candidate):
    metric = report["primary_metric"]
    teacher = report["teacher"]["metrics"][metric]["value"]
    trial = next(c for c in report["candidates"] if c["id"] == candidate)
    value = (trial.get("test_metrics") or {}).get(metric, {}).get("value")
    return None if value is None else teacher - value


rows = []
started = time.time()
for task in tasks:
    name = json.load(open(os.path.join(task, "task.json")))["name"]
    folder = os.path.join(out, "runs", name)
    if not glob.glob(os.path.join(folder, "2*", "report.json")):
        result = subprocess.run([retort, "search", "--task", task, "--candidates", catalog, "--strategy", "exhaustive",
                                 "--no-history", "--seed", "0", "--out", folder, *extra], capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stderr[-2000:])
            scriptkit.fail(f"retort search failed on {task}")
    report = json.load(open(sorted(glob.glob(os.path.join(folder, "2*", "report.json")))[-1]))
    rec = report["recommendation"]
    max_drop = report["constraints"]["max_drop"]
    metric = report["primary_metric"]
    teacher = report["teacher"]["metrics"][metric]["value"]
    point = rec.get("point_estimate_pick") or (rec["candidate"] if rec["kind"] == "student" else None)
    by_id = {c["id"]: c for c in report["candidates"]}
    row = {"task": name, "kind": rec["kind"], "confident": rec["candidate"], "point": point, "max_drop": max_drop}
    row["point_drop"] = test_drop(report, point) if point else None
    if rec["kind"] == "student":
        row["confident_drop"] = test_drop(report, rec["candidate"])
    elif rec["kind"] == "cascade":
        row["confident_drop"] = teacher - rec["test_metrics"][metric]["value"]
    else:
        row["confident_drop"] = 0.0  # the teacher itself: no drop
    row["p"] = by_id[rec["candidate"]].get("p_within_max_drop") if rec["kind"] == "student" else None
    row["point_p"] = by_id[point].get("p_within_max_drop") if point else None
    if point and rec["kind"] == "student":
        row["flops_ratio"] = by_id[rec["candidate"]]["flops_per_example"] / by_id[point]["flops_per_example"]
        row["size_ratio"] = by_id[rec["candidate"]]["size_bytes"] / by_id[point]["size_bytes"]
    rows.append(row)
    print(f"{name}: point {point} ({row['point_drop']}), {rec['kind']} {rec['candidate']} ({row['confident_drop']})",
          file=sys.stderr)


def pct(value):
    return "—" if value is None else f"{value * 100:+.2f}"


over_point = [r for r in rows if r["point"] and r["point_drop"] is not None and r["point_drop"] > r["max_drop"] + 1e-9]
over_conf = [r for r in rows if r["confident_drop"] is not None and r["confident_drop"] > r["max_drop"] + 1e-9]
with_point = [r for r in rows if r["point"]]
ratios = [r["flops_ratio"] for r in rows if "flops_ratio" in r]
sizes = [r["size_ratio"] for r in rows if "size_ratio" in r]
lines = [
    "| task | point-estimate pick (test Δ vs teacher, pt) | its p | recommendation now (test Δ, pt) | its p | FLOPs × |",
    "|---|---|---|---|---|---|",
]
def number(value):
    return "—" if value is None else f"{value:.2f}"


for r in rows:
    if r["kind"] == "student":
        now = r["confident"]
    elif r["kind"] == "cascade":
        now = "cascade: " + r["confident"]
    else:
        now = "no distillation"
    point_drop = None if r["point_drop"] is None else -r["point_drop"]
    point = r["point"] or "no student"
    lines.append(f"| {r['task']} | {point} ({pct(point_drop)}) | {number(r['point_p'])} | {now} "
                 f"({pct(-r['confident_drop'])}) | {number(r['p'])} | {number(r.get('flops_ratio'))} |")
lines.append("")
lines.append(f"Tasks: {len(rows)}. Test drop over max_drop: point-estimate picks {len(over_point)}/{len(with_point)}, "
             f"recommendations now {len(over_conf)}/{len(rows)} "
             f"(students {sum(1 for r in rows if r['kind'] == 'student')}, cascades "
             f"{sum(1 for r in rows if r['kind'] == 'cascade')}, no distillation "
             f"{sum(1 for r in rows if r['kind'] == 'no-distillation')}).")
if ratios:
    lines.append(f"Where both are students ({len(ratios)} tasks), the recommendation's FLOPs over the point pick's: median "
                 f"{statistics.median(ratios):.2f}×, max {max(ratios):.2f}×; size median {statistics.median(sizes):.2f}×.")
lines.append(f"Wall time {time.time() - started:.0f} s.")
table = "\n".join(lines) + "\n"
open(os.path.join(out, "table.md"), "w").write(table)
print(table)
