#!/usr/bin/env python3
"""The history's predictions and `retort suggest` on every starter task, each with its dataset forgotten
(make bench-predictions, after make bench-learning).

`make bench-learning` scores predictions only on the candidates its learned searches trained, and `suggest` against
the family those searches ended with. Here every starter task in the benchmark's combined history (OUT/combined.sqlite:
the bench tasks' and the starter's exhaustive searches) is held out in turn: a copy of the history forgets the task
and its whole source dataset (task.json `dataset`, as the benchmark does), and `retort suggest --json` predicts every
catalog candidate of the task. The task's own exhaustive search, still in the combined history, measured every one of
them, so:

1. Predictions: the share of measured validation gaps inside the predicted gap ± 2 sd and the mean absolute error,
   numeric and text apart; the tasks below 90% inside, worst first, with the nearest past task.
2. `chance_to_meet_bar`: the predicted probability that a candidate's gap reaches −max drop, binned, against the share
   the exhaustive search measured there; its Brier score against the constant base rate.
3. `suggest`'s family (a cascade or "keep the teacher" counts as no-distillation) against the family of the task's
   exhaustive recommendation, next to three answers that read no prediction: always no-distillation, the most common
   answer of each kind (known only in hindsight), and the nearest past task's answer.

Usage: scripts/bench_predictions.py [OUT_DIR] (default results/bench-learning; RETORT=PATH for another build,
STARTER_TASKS=FOLDER for the starter's task folders, default .build-starter/tasks)
"""
import collections
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import scriptkit

out = sys.argv[1] if len(sys.argv) > 1 else "results/bench-learning"
retort = scriptkit.require_binary(os.environ.get("RETORT", ".build/release/retort"))
starter_folder = os.environ.get("STARTER_TASKS", ".build-starter/tasks")
combined = scriptkit.require_file(os.path.join(out, "combined.sqlite"), "run `make bench-learning` first")
catalog = scriptkit.require_file(os.path.join(out, "catalog.yaml"), "run `make bench-learning` first")
if not os.path.isdir(starter_folder):
    scriptkit.fail(f"{starter_folder} is missing; run `make starter-history` first (or set STARTER_TASKS)")

NO_DISTILLATION = "no-distillation"
family = scriptkit.student_family


def answer_family(text):
    """The family of a similar task's recommendation as `suggest` prints it ("student: ID", "cascade: ID", ...)."""
    kind, _, candidate = text.partition(": ")
    return family(candidate) if kind == "student" else NO_DISTILLATION


db = sqlite3.connect(combined)
runs = {}
for name, kind, recommendation_kind, candidate, record in db.execute(
        "SELECT t.name, t.kind, r.recommendation_kind, r.recommendation_candidate, r.record "
        "FROM run r JOIN task t ON t.id = r.task_id WHERE r.strategy = 'exhaustive'"):
    folder = os.path.join(starter_folder, name)
    if not os.path.isdir(folder):
        continue  # a bench task or variant: scored by make bench-learning
    max_drop = json.loads(record)["report"].get("constraints", {}).get("max_drop", 0.01)
    runs[name] = {"kind": kind, "folder": folder, "max_drop": max_drop,
                  "truth": family(candidate) if recommendation_kind == "student" else NO_DISTILLATION}
if not runs:
    scriptkit.fail(f"{combined} holds no exhaustive run of a task in {starter_folder}; run `make bench-learning` "
                   "with the starter history first")
measured = {}
for name, candidate, gap in db.execute(
        "SELECT t.name, tr.candidate, tr.gap FROM trial tr JOIN run r ON r.id = tr.run_id "
        "JOIN task t ON t.id = r.task_id WHERE r.strategy = 'exhaustive' AND tr.status = 'complete' "
        "AND tr.fidelity >= 1 AND tr.gap IS NOT NULL"):
    measured[(name, candidate)] = gap
db.close()

start = time.time()
suggestions = {}
with tempfile.TemporaryDirectory() as scratch:
    for name in sorted(runs):
        history = os.path.join(scratch, "history.sqlite")
        dataset = json.load(open(os.path.join(runs[name]["folder"], "task.json"))).get("dataset")
        scriptkit.held_out_history(retort, combined, history, [name] + ([dataset] if dataset else []))
        result = subprocess.run([retort, "suggest", "--task", runs[name]["folder"], "--candidates", catalog,
                                 "--history", history, "--json"], check=True, capture_output=True, text=True)
        suggestions[name] = json.loads(result.stdout)
seconds = time.time() - start

kinds = sorted({run["kind"] for run in runs.values()})
print(f"Command: scripts/bench_predictions.py {out}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
      f"{len(runs)} starter tasks, each predicted from {combined} less its dataset; {seconds:.0f} s of `suggest`")
print()

# 1. Predictions against the exhaustive search's measurements.
rows = []  # (task, kind, inside, error, chance, met)
for name, suggestion in suggestions.items():
    bar = -runs[name]["max_drop"]
    for candidate in suggestion["candidates"]:
        gap = measured.get((name, candidate["id"]))
        predicted = candidate.get("predicted")
        if gap is None or predicted is None:
            continue
        error = abs(gap - predicted["gap"])
        rows.append((name, runs[name]["kind"], error <= 2 * predicted["gap_sd"], error,
                     candidate["chance_to_meet_bar"], gap >= bar - 1e-12))
print("| kind | tasks | predictions | inside ± 2 sd | mean absolute error | median task inside | tasks below 90% inside |")
print("|---|---|---|---|---|---|---|")
for kind in kinds + ["all"]:
    part = [row for row in rows if kind == "all" or row[1] == kind]
    if not part:
        continue
    per_task = collections.defaultdict(list)
    for row in part:
        per_task[row[0]].append(row[2])
    shares = [sum(v) / len(v) for v in per_task.values()]
    inside = sum(row[2] for row in part)
    print(f"| {kind} | {len(per_task)} | {len(part)} | {inside}/{len(part)} ({inside / len(part):.0%}) | "
          f"{statistics.mean(row[3] for row in part):.4f} | {statistics.median(shares):.0%} | "
          f"{sum(share < 0.9 for share in shares)} |")
print()
per_task = collections.defaultdict(list)
for row in rows:
    per_task[row[0]].append(row[2])
below = sorted(((sum(v) / len(v), name, sum(v), len(v)) for name, v in per_task.items() if sum(v) / len(v) < 0.9))
if below:
    print("Tasks below 90% inside, worst first (nearest past task, its best student's gap):")
    for share, name, inside, count in below:
        nearest = (suggestions[name].get("similar_tasks") or [{}])[0]
        print(f"- {name}: {inside}/{count} ({share:.0%}); nearest {nearest.get('task', '—')} "
              f"({nearest.get('best_gap', float('nan')):+.3f})")
    print()

# 2. chance_to_meet_bar against what was measured.
print("| chance to meet the bar | predictions | mean chance | measured at or above the bar |")
print("|---|---|---|---|")
for low, high in ((0, 0.1), (0.1, 0.3), (0.3, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.01)):
    part = [row for row in rows if low <= row[4] < high]
    if part:
        label = f"{low:.0%}–{min(high, 1):.0%}" if high <= 1 else f"{low:.0%} and above"
        print(f"| {label} | {len(part)} | {statistics.mean(r[4] for r in part):.0%} | "
              f"{statistics.mean(r[5] for r in part):.0%} |")
print()
for kind in kinds + ["all"]:
    part = [row for row in rows if kind == "all" or row[1] == kind]
    if not part:
        continue
    base = statistics.mean(r[5] for r in part)
    brier = statistics.mean((r[4] - r[5]) ** 2 for r in part)
    print(f"- Brier score, {kind}: {brier:.3f} (the constant {base:.0%}: {base * (1 - base):.3f})")
print()


# 3. suggest's family against the exhaustive answer's.
def suggested(suggestion):
    return family(suggestion.get("candidate")) if suggestion["recommendation"] == "student" else NO_DISTILLATION


common = {kind: collections.Counter(run["truth"] for run in runs.values() if run["kind"] == kind).most_common(1)[0][0]
          for kind in kinds}
rules = [
    ("`suggest`", lambda name: suggested(suggestions[name])),
    ("always no-distillation", lambda name: NO_DISTILLATION),
    ("the most common answer of each kind, in hindsight ("
     + ", ".join(f"{kind}: {common[kind]}" for kind in kinds) + ")", lambda name: common[runs[name]["kind"]]),
    ("the nearest past task's answer",
     lambda name: answer_family((suggestions[name].get("similar_tasks") or [{"recommendation": "none"}])[0]
                                ["recommendation"])),
]
print("| answer | " + " | ".join(f"{kind} (of {sum(r['kind'] == kind for r in runs.values())})" for kind in kinds)
      + f" | all (of {len(runs)}) |")
print("|---|" + "---|" * (len(kinds) + 1))
for label, rule in rules:
    hits = {kind: sum(rule(name) == run["truth"] for name, run in runs.items() if run["kind"] == kind)
            for kind in kinds}
    print(f"| {label} | " + " | ".join(str(hits[kind]) for kind in kinds) + f" | {sum(hits.values())} |")
