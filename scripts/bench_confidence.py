#!/usr/bin/env python3
"""Does the recommendation keep its promise on test (issue 24, item 1)? One search per task (the default halving
strategy; STRATEGY=exhaustive for every candidate) — the label bench tasks, the bundled example and generated variants
(scripts/make_variants.py, as `make bench-learning` builds them) — then, per task, two answers from the same trials:

  point estimates   the rule before the confidence level: the cheapest student whose validation point estimate is
                    within max_drop, else the cheapest cascade whose point estimate is (report.json
                    recommendation.point_estimate_pick / point_estimate_cascade, or the recommendation itself when
                    both rules agree);
  with confidence   the recommendation: the cheapest student (else cascade) whose probability of a true drop within
                    max_drop, adjusted for picking among many, reaches the confidence level (default 90%), else the
                    teacher.

A broken promise is a test drop against the teacher beyond max_drop (a cascade: the cascade's test value; keeping the
teacher never breaks one). Cost given up: the confident student's FLOPs per example and size over the point pick's,
where both are students.

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
STRATEGY = os.environ.get("STRATEGY", "halving")  # the default strategy; STRATEGY=exhaustive for every candidate
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
        result = subprocess.run([retort, "search", "--task", task, "--candidates", catalog, "--strategy", STRATEGY,
                                 "--no-history", "--seed", "0", "--out", folder, *extra], capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stderr[-2000:])
            scriptkit.fail(f"retort search failed on {task}")
    report = json.load(open(sorted(glob.glob(os.path.join(folder, "2*", "report.json")))[-1]))
    rec = report["recommendation"]
    max_drop = report["constraints"]["max_drop"]
    metric = report["primary_metric"]
    teacher = report["teacher"]["metrics"][metric]["value"]
    by_id = {c["id"]: c for c in report["candidates"]}

    def cascade_drop(candidate, threshold):
        curve = next(c for c in report.get("cascades", []) if c["candidate"] == candidate)
        point = next(p for p in curve["test"] if abs(p["threshold"] - threshold) < 1e-12)
        return teacher - point["metrics"][metric]["value"]

    # The recommendation now.
    if rec["kind"] == "student":
        now, now_drop = rec["candidate"], test_drop(report, rec["candidate"])
    elif rec["kind"] == "cascade":
        now = f"cascade: {rec['candidate']} answering {rec['coverage']:.0%}"
        now_drop = teacher - rec["test_metrics"][metric]["value"]
    else:
        now, now_drop = "no distillation", 0.0
    # What the point estimates alone recommend: a different student, a different cascade, or the same answer.
    if rec.get("point_estimate_pick"):
        point = rec["point_estimate_pick"]
        before, before_drop, before_kind = point, test_drop(report, point), "student"
    elif rec.get("point_estimate_cascade"):
        choice = rec["point_estimate_cascade"]
        before = f"cascade: {choice['candidate']} at {choice['threshold']:.3f}"
        before_drop, before_kind = cascade_drop(choice["candidate"], choice["threshold"]), "cascade"
    else:
        before, before_drop, before_kind = now, now_drop, rec["kind"]
    row = {"task": name, "kind": rec["kind"], "before_kind": before_kind, "now": now, "now_drop": now_drop,
           "before": before, "before_drop": before_drop, "max_drop": max_drop}
    row["p"] = by_id[rec["candidate"]].get("p_within_max_drop") if rec["kind"] == "student" else None
    if rec["kind"] == "student" and before_kind == "student":
        row["flops_ratio"] = by_id[rec["candidate"]]["flops_per_example"] / by_id[before]["flops_per_example"]
        row["size_ratio"] = by_id[rec["candidate"]]["size_bytes"] / by_id[before]["size_bytes"]
    rows.append(row)
    print(f"{name}: before {before} ({before_drop}), now {now} ({now_drop})", file=sys.stderr)

def pct(value):
    return "—" if value is None else f"{value * 100:+.2f}"


over_before = [r for r in rows if r["before_drop"] is not None and r["before_drop"] > r["max_drop"] + 1e-9]
over_now = [r for r in rows if r["now_drop"] is not None and r["now_drop"] > r["max_drop"] + 1e-9]
ratios = [r["flops_ratio"] for r in rows if "flops_ratio" in r]
sizes = [r["size_ratio"] for r in rows if "size_ratio" in r]
lines = [
    "| task | point estimates alone (test Δ vs teacher, pt) | with 90% confidence (test Δ, pt) | its p | FLOPs × |",
    "|---|---|---|---|---|",
]


def number(value):
    return "—" if value is None else f"{value:.2f}"


for r in rows:
    lines.append(f"| {r['task']} | {r['before']} ({pct(-r['before_drop'])}) | {r['now']} ({pct(-r['now_drop'])}) "
                 f"| {number(r['p'])} | {number(r.get('flops_ratio'))} |")
kinds = {k: sum(1 for r in rows if r["kind"] == k) for k in ("student", "cascade", "no-distillation")}
before_kinds = {k: sum(1 for r in rows if r["before_kind"] == k) for k in ("student", "cascade", "no-distillation")}
lines.append("")
lines.append(f"Tasks: {len(rows)}. Test drop beyond max_drop: point estimates {len(over_before)}/{len(rows)} "
             f"({before_kinds['student']} students, {before_kinds['cascade']} cascades, "
             f"{before_kinds['no-distillation']} no distillation); with confidence {len(over_now)}/{len(rows)} "
             f"({kinds['student']} students, {kinds['cascade']} cascades, {kinds['no-distillation']} no distillation).")
if ratios:
    lines.append(f"Where both are students ({len(ratios)} tasks), FLOPs per example with confidence over the point "
                 f"pick's: median {statistics.median(ratios):.2f}×, max {max(ratios):.2f}×; size median "
                 f"{statistics.median(sizes):.2f}×.")
changed = [r for r in rows if r["kind"] != r["before_kind"]]
if changed:
    lines.append("Answers that changed kind (the price of the promise): " + "; ".join(
        f"{r['task']} {r['before_kind']} → {r['kind']}" for r in changed) + ".")
lines.append(f"Wall time {time.time() - started:.0f} s (searches already in OUT_DIR/runs are reused).")
table = "\n".join(lines) + "\n"
open(os.path.join(out, "table.md"), "w").write(table)
print(table)
