#!/usr/bin/env python3
"""Leave-one-task-out benchmark of the learned strategy (make bench-learning).

Tasks: every task in BENCH_DIR, the bundled example (examples/shop-support/task, made by `retort demo`), and generated
variants of satimage, letter and ha-intents-en (scripts/make_variants.py: half the rows, merged classes, dropped
classes, a noisier teacher). Catalog: the default one without encoder-head (whose encoder pass would dominate every
text run's time).

1. History: one exhaustive search per task, recorded into OUT/history.sqlite (the exhaustive recommendation is the
   reference answer).
2. For each task T, in one run: cold successive halving (--no-history) against the learned strategy with a history
   holding every task but T (a copy of the history with T forgotten), and `retort suggest` on that history first.
   Compute = candidate-epochs and wall seconds until the final recommendation. "Equally good" compares the answers
   in the order student alone > cascade > no distillation: the same answer; or a student within 0.5 pt of
   halving's student on the primary metric at no larger size; or, where halving recommends a cascade, a student that
   meets the bar alone or a cascade whose blended cost per 1M requests is at most 1% above halving's (a cascade's
   cost is the teacher's share of the traffic); or anything where halving says no distillation. A cascade is named
   "cascade: STUDENT (COVERAGE)". `suggest` predicts students from history and has no cascades: its
   "no-distillation" (no student qualifies alone) counts as naming a cascade answer.

Usage: scripts/bench_learning.py [BENCH_DIR] [OUT_DIR]
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import time

import scriptkit

bench = scriptkit.require_bench(sys.argv[1] if len(sys.argv) > 1 else "../shared/bench")
out = sys.argv[2] if len(sys.argv) > 2 else "results/bench-learning"
retort = scriptkit.require_binary(".build/release/retort")
learned_flags = os.environ.get("LEARNED_FLAGS", "").split()  # e.g. LEARNED_FLAGS="--confidence-z 1"
os.makedirs(out, exist_ok=True)

catalog = scriptkit.catalog_without_encoders(out)
tasks = scriptkit.learning_tasks(bench, retort, os.path.join(out, "variants"), ("satimage", "letter", "ha-intents-en"))


def name_of(task):
    return json.load(open(os.path.join(task, "task.json")))["name"]


def search(task, folder, *flags):
    start = time.time()
    subprocess.run([retort, "search", "--task", task, "--candidates", catalog, "--out", folder, *flags], check=True,
                   capture_output=True, text=True)
    wall = time.time() - start
    report = json.load(open(sorted(glob.glob(os.path.join(folder, "2*", "report.json")))[-1]))
    return report, wall


def answer(report):
    """(name, primary value, size, blended cost, kind): kind is student, cascade or none."""
    rec = report["recommendation"]
    if rec["candidate"] is None:
        return None, None, None, None, "none"
    if rec["kind"] == "cascade":
        return (f'cascade: {rec["candidate"]} ({rec["coverage"]:.0%})', None, None, rec.get("blended_cost_per_1m_usd"),
                "cascade")
    chosen = next(c for c in report["candidates"] if c["id"] == rec["candidate"])
    return rec["candidate"], chosen["metrics"][report["primary_metric"]]["value"], chosen["size_bytes"], None, "student"


def equally_good(halving, learned):
    (h_id, h_value, h_size, h_cost, h_kind), (l_id, l_value, l_size, l_cost, l_kind) = halving, learned
    if h_id == l_id or h_kind == "none":
        return True
    if h_kind == "student":
        return l_kind == "student" and l_value >= h_value - 0.005 and l_size <= h_size
    # halving recommends a cascade: a student alone is better; another cascade must cost no more (1% tolerance)
    return l_kind == "student" or (l_kind == "cascade" and h_cost is not None and l_cost is not None
                                   and l_cost <= h_cost * 1.01)


def family(candidate_id):
    if candidate_id is None or candidate_id.startswith("cascade: "):
        return "no-distillation"
    for name in ("embedding-bag", "encoder-head", "linear", "mlp", "prototype", "gbdt"):
        if candidate_id.startswith(name):
            return name
    return candidate_id


history = os.path.join(out, "history.sqlite")
done = [glob.glob(os.path.join(out, "exhaustive", name_of(t), "2*", "report.json")) for t in tasks]
reuse = os.path.exists(history) and all(done)  # a finished phase 1 is reused (delete OUT to start over)
if not reuse and os.path.exists(history):
    os.remove(history)
reference = {}
print(f"Command: {'LEARNED_FLAGS=' + repr(' '.join(learned_flags)) + ' ' if learned_flags else ''}"
      f"scripts/bench_learning.py {bench} {out}; {len(tasks)} tasks\n", flush=True)
for task in tasks:
    if reuse:
        report = json.load(open(sorted(glob.glob(os.path.join(out, "exhaustive", name_of(task), "2*",
                                                                "report.json")))[-1]))
        reference[task] = (answer(report), report["search"]["candidate_epochs"], report["search"]["wall_seconds"])
        continue
    report, wall = search(task, os.path.join(out, "exhaustive", name_of(task)), "--strategy", "exhaustive",
                          "--history", history)
    reference[task] = (answer(report), report["search"]["candidate_epochs"], wall)
    print(f"history: {name_of(task)} exhaustive in {wall:.1f} s, {report['search']['candidate_epochs']:.0f} "
          f"candidate-epochs, recommends {answer(report)[0] or 'no distillation'}", file=sys.stderr, flush=True)

print("| held-out task | kind | halving: recommendation | epochs | wall s | learned: recommendation | epochs | wall s "
      "| compute ratio (epochs) | wall ratio | equally good | suggest's family | exhaustive's answer |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
rows = []
for phase in ("halving", "learned", "held-out"):
    shutil.rmtree(os.path.join(out, phase), ignore_errors=True)
for task in tasks:
    name = name_of(task)
    held_out = os.path.join(out, "held-out", f"{name}.sqlite")
    os.makedirs(os.path.dirname(held_out), exist_ok=True)
    shutil.copy(history, held_out)
    subprocess.run([retort, "history", "forget", name, "--history", held_out], check=True, capture_output=True)
    halving, halving_wall = search(task, os.path.join(out, "halving", name), "--strategy", "halving", "--no-history")
    suggestion = json.loads(subprocess.run([retort, "suggest", "--task", task, "--candidates", catalog, "--history",
                                            held_out, "--json"], check=True, capture_output=True, text=True).stdout)
    learned, learned_wall = search(task, os.path.join(out, "learned", name), "--strategy", "learned", "--history",
                                   held_out, *learned_flags)
    h_id, l_id = answer(halving)[0], answer(learned)[0]
    good = equally_good(answer(halving), answer(learned))
    ratio = halving["search"]["candidate_epochs"] / max(learned["search"]["candidate_epochs"], 1e-9)
    wall_ratio = halving_wall / learned_wall
    suggested = family(suggestion.get("candidate"))
    rows.append((ratio, good, suggested == family(l_id), wall_ratio))
    kind = json.load(open(os.path.join(task, "task.json")))["kind"]
    print(f"| {name} | {kind} "
          f"| {h_id or 'no distillation'} | {halving['search']['candidate_epochs']:.0f} | {halving_wall:.1f} "
          f"| {l_id or 'no distillation'} | {learned['search']['candidate_epochs']:.0f} | {learned_wall:.1f} "
          f"| {ratio:.1f}× | {wall_ratio:.1f}× | {'yes' if good else 'no'} | {suggested} "
          f"| {reference[task][0][0] or 'no distillation'} |", flush=True)

n = len(rows)
both = sum(1 for r in rows if r[0] >= 3 and r[1])
print(f"\n{both}/{n} tasks ({100 * both / n:.0f}%) with ≥ 3× less compute (candidate-epochs) at an equally good "
      f"recommendation (target ≥ 80%); equally good on {sum(1 for r in rows if r[1])}/{n}; "
      f"median compute ratio {sorted(r[0] for r in rows)[n // 2]:.1f}×, median wall ratio "
      f"{sorted(r[3] for r in rows)[n // 2]:.1f}×; suggest named the learned search's family on "
      f"{sum(1 for r in rows if r[2])}/{n} ({100 * sum(1 for r in rows if r[2]) / n:.0f}%, target ≥ 70%).")
