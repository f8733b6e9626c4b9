#!/usr/bin/env python3
"""Speed compared as measured (issue 24, item 2): is the frontier honest about speed, and is the recommendation the same
on a second run of the same job? Two searches per task (the label bench tasks and the bundled example; the default
catalog and halving strategy, seed 0, no history), then, per task:

  clearly dominated   frontier members that another complete student beats clearly on speed (its p50 lower beyond the
                      run's tolerance) while being no larger and no worse on validation: under the FLOPs rule (the
                      frontier recomputed from the same trials with FLOPs as the clock, as before this change) and under
                      the measured rule (the run's own frontier), and under the measured rule judged at 1.2× (what
                      the wide tolerance lets stand);
  FLOPs pick          what the FLOPs rule recommends from the same trials (cheapest FLOPs among the students that pass
                      the confidence rule), with its p50 and size beside the measured rule's pick;
  second run          whether the second run recommends the same and draws the same frontier, and each run's
                      tolerance (from its measured run-to-run spread).

Usage: scripts/bench_speed.py [BENCH_DIR] [OUT_DIR] [extra retort search flags...]
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
out = sys.argv[2] if len(sys.argv) > 2 else "results/bench-speed"
extra = sys.argv[3:]
retort = scriptkit.require_binary(".build/release/retort")
os.makedirs(out, exist_ok=True)
tasks = scriptkit.label_tasks(bench)
if not os.path.exists("examples/shop-support/task/task.json"):
    subprocess.run([retort, "demo", "--no-history"], check=True, capture_output=True)
tasks.append("examples/shop-support/task")


def run(task, folder):
    if not glob.glob(os.path.join(folder, "2*", "report.json")):
        result = subprocess.run([retort, "search", "--task", task, "--strategy", "halving", "--no-history", "--seed",
                                 "0", "--out", folder, *extra], capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stderr[-2000:])
            scriptkit.fail(f"retort search failed on {task}")
    return json.load(open(sorted(glob.glob(os.path.join(folder, "2*", "report.json")))[-1]))


def students(report):
    return [c for c in report["candidates"] if c["status"] == "complete" and c.get("fidelity", 0) >= 1]


def value(report, trial):
    return trial["metrics"].get(report["primary_metric"], {}).get("value", float("-inf"))


def flops_frontier(report):
    """The frontier as the FLOPs rule drew it: (quality ↑, (tier, FLOPs) ↓, size ↓), a student measured slower than the
    teacher behind it."""
    teacher_latency = report["teacher"].get("latency_ms_p50")
    points = []
    for trial in students(report):
        slower = teacher_latency is not None and (trial.get("latency_ms_p50") or 0) > teacher_latency
        points.append((trial["id"], value(report, trial), (2 if slower else 0, trial["flops_per_example"]),
                       trial["size_bytes"]))
    metric = report["primary_metric"]
    points.append(("teacher", report["teacher"]["validation_metrics"][metric]["value"], (1, float("inf")),
                   float("inf")))

    def dominates(a, b):
        not_worse = a[1] >= b[1] and a[2] <= b[2] and a[3] <= b[3]
        return not_worse and (a[1] > b[1] or a[2] < b[2] or a[3] < b[3])

    return [p[0] for p in points if p[0] != "teacher" and not any(dominates(o, p) for o in points)]


def clearly_dominated(report, frontier, tolerance):
    """Frontier members some complete student beats clearly on measured speed, at no larger size and no worse quality."""
    by_id = {t["id"]: t for t in students(report)}
    found = []
    for member in frontier:
        m = by_id.get(member)
        if m is None or not m.get("latency_ms_p50"):
            continue
        for other in by_id.values():
            if other["id"] == member or not other.get("latency_ms_p50"):
                continue
            if (m["latency_ms_p50"] > other["latency_ms_p50"] * (1 + tolerance) and other["size_bytes"] <= m["size_bytes"]
                    and value(report, other) >= value(report, m)):
                found.append(f"{member} (by {other['id']})")
                break
    return found


def flops_pick(report):
    """The FLOPs rule's student from the same trials: passing the point estimate and the confidence level, fewest FLOPs,
    then smallest, then best."""
    metric = report["primary_metric"]
    bar = report["teacher"]["validation_metrics"][metric]["value"] - report["constraints"]["max_drop"]
    level = report["constraints"].get("confidence") or 0.9
    limit = report["constraints"].get("max_model_bytes")
    qualifying = [t for t in students(report) if value(report, t) >= bar - 1e-12
                  and (t.get("p_within_max_drop") is None or t["p_within_max_drop"] >= level - 1e-12)
                  and (limit is None or t["size_bytes"] <= limit)]
    if not qualifying:
        return None
    return min(qualifying, key=lambda t: (t["flops_per_example"], t["size_bytes"], -value(report, t), t["id"]))


def describe(trial):
    if trial is None:
        return "—"
    return f"{trial['id']} ({trial['latency_ms_p50']:.4f} ms, {trial['size_bytes'] / 1024:.1f} KB)"


def headline(report):
    r = report["recommendation"]
    return r["kind"] + (f" {r['candidate']}" if r.get("candidate") else "")


rows = []
wall = 0.0
for task in tasks:
    name = json.load(open(os.path.join(task, "task.json")))["name"]
    first = run(task, os.path.join(out, "runs", name, "1"))
    second = run(task, os.path.join(out, "runs", name, "2"))
    wall += sum((report.get("search") or {}).get("wall_seconds", 0) for report in (first, second))
    speed = first.get("speed") or {}
    tolerance = speed.get("relative_tolerance", 0.2)
    by_id = {t["id"]: t for t in students(first)}
    pick = first["recommendation"].get("candidate")
    rows.append({
        "task": name,
        "students": len(by_id),
        "flops_dominated": clearly_dominated(first, flops_frontier(first), tolerance),
        "measured_dominated": clearly_dominated(first, first["frontier"], tolerance),
        "measured_dominated_tight": clearly_dominated(first, first["frontier"], 0.2),
        "flops_pick": describe(flops_pick(first)),
        "pick": headline(first) + (f" ({by_id[pick]['latency_ms_p50']:.4f} ms, {by_id[pick]['size_bytes'] / 1024:.1f} KB)"
                                   if pick in by_id else ""),
        "same_pick": headline(first) == headline(second),
        "same_frontier": first["frontier"] == second["frontier"],
        "tolerance": f"{tolerance:.0%} / {(second.get('speed') or {}).get('relative_tolerance', 0.2):.0%}",
        "spread": f"{(speed.get('measured_spread') or 0):.1%} / {((second.get('speed') or {}).get('measured_spread') or 0):.1%}",
    })
    print(f"{name}: {rows[-1]['pick']}; second run same: {rows[-1]['same_pick']}", file=sys.stderr)

lines = [
    f"Made by `make bench-speed` on {time.strftime('%Y-%m-%d')} ({wall:.0f} s of searches; two halving searches per "
    "task, seed 0, default catalog, no history).",
    "",
    "| task | students | clearly dominated on the frontier: FLOPs rule | measured rule | measured rule, judged at 1.2× "
    "| FLOPs rule's pick | measured rule's pick | second run: same pick, same frontier | tolerance (run 1 / 2) | "
    "run-to-run spread (1 / 2) |",
    "|---|---|---|---|---|---|---|---|---|---|",
]
for r in rows:
    lines.append(
        f"| {r['task']} | {r['students']} | {len(r['flops_dominated'])}"
        f"{': ' + ', '.join(r['flops_dominated']) if r['flops_dominated'] else ''} | {len(r['measured_dominated'])} | "
        f"{len(r['measured_dominated_tight'])}"
        f"{': ' + ', '.join(r['measured_dominated_tight']) if r['measured_dominated_tight'] else ''} | "
        f"{r['flops_pick']} | {r['pick']} | {'yes' if r['same_pick'] else 'no'}, {'yes' if r['same_frontier'] else 'no'} | "
        f"{r['tolerance']} | {r['spread']} |")
same = sum(r["same_pick"] for r in rows)
lines += ["", f"Same recommendation on the second run: {same}/{len(rows)} tasks; same frontier: "
          f"{sum(r['same_frontier'] for r in rows)}/{len(rows)}. Frontier members clearly slower, no smaller and no "
          f"better than another student: {sum(len(r['flops_dominated']) for r in rows)} under the FLOPs rule, "
          f"{sum(len(r['measured_dominated']) for r in rows)} under the measured rule (at the run's tolerance; "
          f"{sum(len(r['measured_dominated_tight']) for r in rows)} when 1.2× slower already counts as clearly slower)."]
text = "\n".join(lines) + "\n"
open(os.path.join(out, "speed.md"), "w").write(text)
print(text)
