#!/usr/bin/env python3
"""Exhaustive vs successive halving on every task in a benchmark folder, in one run.

For each task: the hypervolume of halving's frontier as a fraction of exhaustive's (students only; axes: validation
primary metric up, log10 FLOPs per example down, log10 size down; one reference point per task, shared by both runs),
the compute as a fraction (candidate-epochs and wall seconds), and both recommendations.

Usage: scripts/bench_search.py [BENCH_DIR] [OUT_DIR] [CATALOG]
"""
import glob
import json
import math
import os
import subprocess
import sys
import time

import scriptkit

bench = scriptkit.require_bench(sys.argv[1] if len(sys.argv) > 1 else "../shared/bench")
out = sys.argv[2] if len(sys.argv) > 2 else "results/bench-search"
catalog = scriptkit.require_file(sys.argv[3] if len(sys.argv) > 3 else "candidates/large.yaml",
                                 "pass a candidate catalog (candidates/*.yaml) as the third argument")
retort = scriptkit.require_binary(".build/release/retort")


def run(task, strategy):
    folder = os.path.join(out, os.path.basename(task), strategy)
    start = time.time()
    os.makedirs(folder, exist_ok=True)
    with open(folder + ".log", "w") as log:
        code = subprocess.call(
            [retort, "search", "--task", task, "--candidates", catalog, "--strategy", strategy, "--budget", "3600",
             "--out", folder], stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        sys.exit(f"search failed ({strategy} on {task}): see {folder}.log")
    report = json.load(open(sorted(glob.glob(os.path.join(folder, "2*", "report.json")))[-1]))
    return report, time.time() - start


def points(report):
    metric = report["primary_metric"]
    return [(c["metrics"][metric]["value"], math.log10(max(c["flops_per_example"], 1)), math.log10(c["size_bytes"]))
            for c in report["candidates"] if c["on_frontier"]]


def hv2d(pts, f_ref, s_ref):
    """Area dominated by (f, s) points (both minimised) up to the reference."""
    area, best_s = 0.0, s_ref
    for f, s in sorted(pts):
        if s < best_s:
            area += (f_ref - f) * (best_s - s)
            best_s = s
    return area


def hv3d(pts, ref):
    """Volume dominated by (q maximised, f and s minimised) points, by slicing along q (Zitzler & Thiele 1999)."""
    q_ref, f_ref, s_ref = ref
    levels = sorted({q for q, _, _ in pts}, reverse=True)
    volume = 0.0
    for i, q in enumerate(levels):
        below = levels[i + 1] if i + 1 < len(levels) else q_ref
        volume += (q - below) * hv2d([(f, s) for qq, f, s in pts if qq >= q], f_ref, s_ref)
    return volume


def recommendation(report):
    rec = report["recommendation"]
    if rec["kind"] == "cascade":
        return f'cascade: {rec["candidate"]} ({rec["coverage"]:.0%})', None
    if rec["kind"] != "student":
        return "no-distillation", None
    metric = report["primary_metric"]
    trial = next(c for c in report["candidates"] if c["id"] == rec["candidate"])
    return rec["candidate"], (trial["metrics"][metric]["value"], trial["size_bytes"])


rows = []
for task in scriptkit.label_tasks(bench):
    name = os.path.basename(task)
    print(f"== {name}", file=sys.stderr)
    exhaustive, wall_e = run(task, "exhaustive")
    halving, wall_h = run(task, "halving")
    pe, ph = points(exhaustive), points(halving)
    everything = pe + ph
    ref = (min(q for q, _, _ in everything) - 0.01, max(f for _, f, _ in everything) + 0.1,
           max(s for _, _, s in everything) + 0.1)
    hv_e, hv_h = hv3d(pe, ref), hv3d(ph, ref)
    rec_e, fig_e = recommendation(exhaustive)
    rec_h, fig_h = recommendation(halving)
    if rec_e == rec_h:
        same = "same"
    elif fig_e and fig_h and fig_h[0] >= fig_e[0] - 0.005 and fig_h[1] <= fig_e[1]:
        same = "within 0.5 pt, no larger"
    else:
        same = "differs"
    rows.append((name, len(exhaustive["candidates"]), hv_h / hv_e if hv_e else float("nan"),
                 halving["search"]["candidate_epochs"] / exhaustive["search"]["candidate_epochs"], wall_h / wall_e,
                 exhaustive["search"]["candidate_epochs"], halving["search"]["candidate_epochs"], wall_e, wall_h,
                 rec_e, rec_h, same))

print(f"Command: scripts/bench_search.py {bench} {out} {catalog}\n")
print("| task | candidates | hypervolume halving/exhaustive | candidate-epochs ratio | wall ratio | "
      "epochs (exh / halv) | wall s (exh / halv) | recommendation exhaustive | recommendation halving | same? |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.0f} / {r[6]:.0f} | "
          f"{r[7]:.1f} / {r[8]:.1f} | {r[9]} | {r[10]} | {r[11]} |")
