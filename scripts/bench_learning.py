#!/usr/bin/env python3
"""Leave-one-dataset-out benchmark of the learned strategy (make bench-learning).

Tasks: every task in BENCH_DIR, the bundled example (examples/shop-support/task, made by `retort demo`), and generated
variants of satimage, letter and ha-intents-en (scripts/make_variants.py: half the rows, merged classes, dropped
classes, a noisier teacher). Catalog: the default one without encoder-head (whose encoder pass would dominate every
text run's time).

1. History: one exhaustive search per task, recorded into OUT/history.sqlite (the exhaustive recommendation is the
   reference answer).
2. For each task T, in one run: cold successive halving (--no-history) against the learned strategy with a history
   that holds no task of T's dataset: T's base task and all its variants (BASE-sub50, BASE-merge, BASE-drop,
   BASE-noisy, and BASE-llm, the same inputs with another teacher) are forgotten from a copy of the history, so every
   held-out task is new to the history; `retort suggest` runs on that history first. Compute = candidate-epochs and
   wall seconds until the final recommendation. "Equally good" compares the answers in the order student alone >
   cascade > no distillation: the same answer; or a student within 0.5 pt of halving's student on the primary metric
   at no larger size; or, where halving recommends a cascade, a student that meets the bar alone or a cascade whose
   blended cost per 1M requests is at most 1% above halving's (a cascade's cost is the teacher's share of the
   traffic); or anything where halving says no distillation. A cascade is named "cascade: STUDENT (COVERAGE)".
   `suggest` predicts students from history and has no cascades: its "no-distillation" (no student qualifies alone)
   counts as naming a cascade answer. "Not more than halving" allows 5% (early stopping moves epochs a little).
3. Calibration: for every candidate the learned search trained to completion at full fidelity with a prediction from
   history (invented sizes left out), whether its measured validation gap fell inside the predicted gap ± 2 sd, and
   the absolute error (report.json `search.calibration`, or counted from the candidates for reports without it).

With BASELINE_RETORT=PATH (another build of retort, e.g. the main branch's), its learned strategy runs on the same
held-out histories and its columns are printed next to this build's.

With the starter history (history/starter.json.gz, `make starter-history`; STARTER=PATH for another export,
STARTER=none for none), every held-out history also holds the starter's runs, less those of the held-out task's
dataset (task.json `dataset`; satimage and letter are keel:NAME there, ha-intents-en is ha-intents:en). With
STARTER_TASKS=FOLDER (the starter's task folders, .build-starter/tasks) and STARTER_SAMPLE=N, N starter tasks (every
k-th by name, half numeric and half text) are held out too, each with its whole dataset, and summarised apart.

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
retort = scriptkit.require_binary(os.environ.get("RETORT", ".build/release/retort"))
learned_flags = os.environ.get("LEARNED_FLAGS", "").split()  # e.g. LEARNED_FLAGS="--confidence-z 1"
baseline = os.environ.get("BASELINE_RETORT")
os.makedirs(out, exist_ok=True)

catalog = scriptkit.catalog_without_encoders(out)
tasks = scriptkit.learning_tasks(bench, retort, os.path.join(out, "variants"), ("satimage", "letter", "ha-intents-en"))
bench_tasks = list(tasks)
starter = os.environ.get("STARTER", "history/starter.json.gz")
if starter == "none" or not os.path.exists(starter):
    starter = None
starter_tasks = []
starter_folder = os.environ.get("STARTER_TASKS", ".build-starter/tasks")
sample = int(os.environ.get("STARTER_SAMPLE", "0"))
if sample > 0:
    if not os.path.isdir(starter_folder):
        scriptkit.fail(f"{starter_folder} is missing; run `make starter-history` first (or set STARTER_TASKS)")
    by_kind = {}
    for folder in sorted(glob.glob(os.path.join(starter_folder, "*", "task.json"))):
        kind = json.load(open(folder))["kind"]
        by_kind.setdefault(kind, []).append(os.path.dirname(folder))
    for kind, folders in sorted(by_kind.items()):
        share = sample // 2 if kind == "numeric" else sample - sample // 2
        step = max(1, len(folders) // max(share, 1))
        starter_tasks.extend(folders[::step][:share])
    tasks += starter_tasks


def name_of(task):
    return json.load(open(os.path.join(task, "task.json")))["name"]


def search(task, folder, *flags, binary=None):
    start = time.time()
    subprocess.run([binary or retort, "search", "--task", task, "--candidates", catalog, "--out", folder, *flags], check=True,
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


family = scriptkit.student_family


history = os.path.join(out, "history.sqlite")
done = [glob.glob(os.path.join(out, "exhaustive", name_of(t), "2*", "report.json")) for t in bench_tasks]
reuse = os.path.exists(history) and all(done)  # a finished phase 1 is reused (delete OUT to start over)
if not reuse and os.path.exists(history):
    os.remove(history)
reference = {}
print(f"Command: {'LEARNED_FLAGS=' + repr(' '.join(learned_flags)) + ' ' if learned_flags else ''}"
      f"scripts/bench_learning.py {bench} {out}; {len(tasks)} tasks; starter history: {starter or 'none'}"
      f"{f'; {len(starter_tasks)} starter tasks held out' if starter_tasks else ''}\n", flush=True)
for task in bench_tasks:
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

dataset_of = scriptkit.dataset_of


def calibration(report):
    """(predicted, inside, sum of absolute errors) over the trained, full-fidelity, history-predicted candidates."""
    c = report["search"].get("calibration")
    if c:
        return c["predicted"], c["inside"], c["mae"] * c["predicted"]
    n = inside = 0
    total = 0.0
    for cand in report["candidates"]:
        p, d = cand.get("predicted"), cand.get("difference_to_teacher")
        if (cand["status"] != "complete" or cand["fidelity"] < 1 or cand.get("invented") or p is None or d is None
                or p.get("gap_sd") is None):
            continue
        error = abs(d["value"] - p["gap"])
        n += 1
        inside += error <= 2 * p["gap_sd"]
        total += error
    return n, inside, total


def calibration_text(n, inside, total):
    return f"{inside}/{n} ({100 * inside / n:.0f}%)" if n else "—", f"{total / n:.4f}" if n else "—"


dataset_key = scriptkit.dataset_key

# One history with every bench task's exhaustive run and the starter's runs; each held-out copy forgets a dataset.
combined = os.path.join(out, "combined.sqlite")
shutil.copy(history, combined)
if starter:
    subprocess.run([retort, "history", "import", starter, "--history", combined], check=True, capture_output=True)
for task in starter_tasks:
    reference[task] = (("— (in the starter)", None, None, None, "none"), None, None)
names = {task: name_of(task) for task in tasks}
groups = {}
for task in bench_tasks:
    groups.setdefault(dataset_of(names[task]), []).append(names[task])
for task in starter_tasks:
    groups.setdefault(dataset_of(names[task]), []).append(names[task])
columns = ["held-out task", "kind", "tasks forgotten", "halving: recommendation", "epochs", "wall s",
           "learned: recommendation", "epochs", "wall s", "mode", "compute ratio (epochs)", "wall ratio",
           "equally good", "inside ± 2 sd", "MAE", "suggest's family", "exhaustive's answer"]
if baseline:
    columns += ["baseline learned: recommendation", "epochs", "ratio", "equally good", "inside ± 2 sd", "MAE"]
print("| " + " | ".join(columns) + " |")
print("|" + "---|" * len(columns))
rows = []
for phase in ("halving", "learned", "held-out", "baseline"):
    shutil.rmtree(os.path.join(out, phase), ignore_errors=True)
for task in tasks:
    name = names[task]
    held_out = os.path.join(out, "held-out", f"{name}.sqlite")
    os.makedirs(os.path.dirname(held_out), exist_ok=True)
    forgotten = list(groups[dataset_of(name)])
    key = dataset_key(task)
    if key:
        forgotten.append(key)
    scriptkit.held_out_history(retort, combined, held_out, forgotten)
    halving, halving_wall = search(task, os.path.join(out, "halving", name), "--strategy", "halving", "--no-history")
    suggestion = json.loads(subprocess.run([retort, "suggest", "--task", task, "--candidates", catalog, "--history",
                                            held_out, "--json"], check=True, capture_output=True, text=True).stdout)
    # The learned search records itself into its history: the baseline gets its own copy, made before.
    base_history = held_out + ".baseline"
    if baseline:
        shutil.copy(held_out, base_history)
    learned, learned_wall = search(task, os.path.join(out, "learned", name), "--strategy", "learned", "--history",
                                   held_out, *learned_flags)
    h_id, l_id = answer(halving)[0], answer(learned)[0]
    good = equally_good(answer(halving), answer(learned))
    h_epochs, l_epochs = halving["search"]["candidate_epochs"], learned["search"]["candidate_epochs"]
    ratio = h_epochs / max(l_epochs, 1e-9)
    wall_ratio = halving_wall / learned_wall
    suggested = family(suggestion.get("candidate"))
    cal = calibration(learned)
    mode = (learned["search"].get("learned_mode") or {}).get("schedule", "learned")
    row = {"ratio": ratio, "good": good, "suggest": suggested == family(l_id), "wall": wall_ratio,
           "not_more": l_epochs <= 1.05 * h_epochs, "cal": cal, "mode": mode, "starter": task in starter_tasks}
    kind = json.load(open(os.path.join(task, "task.json")))["kind"]
    inside_text, mae_text = calibration_text(*cal)
    line = (f"| {name} | {kind} | {len(forgotten)} | {h_id or 'no distillation'} | {h_epochs:.0f} | {halving_wall:.1f} "
            f"| {l_id or 'no distillation'} | {l_epochs:.0f} | {learned_wall:.1f} | {mode} | {ratio:.1f}× "
            f"| {wall_ratio:.1f}× | {'yes' if good else 'no'} | {inside_text} | {mae_text} | {suggested} "
            f"| {reference[task][0][0] or 'no distillation'} |")
    if baseline:
        base, _ = search(task, os.path.join(out, "baseline", name), "--strategy", "learned", "--history",
                         base_history, *learned_flags, binary=baseline)
        b_epochs = base["search"]["candidate_epochs"]
        b_good = equally_good(answer(halving), answer(base))
        b_cal = calibration(base)
        row.update(b_ratio=h_epochs / max(b_epochs, 1e-9), b_good=b_good, b_cal=b_cal,
                   b_not_more=b_epochs <= 1.05 * h_epochs)
        b_inside, b_mae = calibration_text(*b_cal)
        line += (f" {answer(base)[0] or 'no distillation'} | {b_epochs:.0f} | {row['b_ratio']:.1f}× "
                 f"| {'yes' if b_good else 'no'} | {b_inside} | {b_mae} |")
    rows.append(row)
    print(line, flush=True)


def summary(label, ratio, good, not_more, cal, rows=rows):
    n = len(rows)
    both = sum(1 for r in rows if r[ratio] >= 3 and r[good])
    predicted = sum(r[cal][0] for r in rows)
    inside = sum(r[cal][1] for r in rows)
    errors = sum(r[cal][2] for r in rows)
    per_task = [r[cal][1] / r[cal][0] for r in rows if r[cal][0]]
    return (f"{label}: {both}/{n} tasks ({100 * both / n:.0f}%) with ≥ 3× less compute (candidate-epochs) at an "
            f"equally good recommendation; equally good on {sum(1 for r in rows if r[good])}/{n}; median compute "
            f"ratio {sorted(r[ratio] for r in rows)[n // 2]:.1f}×; not more than halving (5% tolerance) on "
            f"{sum(1 for r in rows if r[not_more])}/{n}; predictions inside ± 2 sd: {inside}/{predicted} "
            f"({100 * inside / max(predicted, 1):.0f}%, target ≥ 90%; median per task "
            f"{100 * sorted(per_task)[len(per_task) // 2] if per_task else 0:.0f}%), mean absolute error "
            f"{errors / max(predicted, 1):.4f}.")


n = len(rows)
print()
if starter_tasks:
    print(summary("Bench tasks", "ratio", "good", "not_more", "cal", [r for r in rows if not r["starter"]]))
    print(summary("Starter tasks", "ratio", "good", "not_more", "cal", [r for r in rows if r["starter"]]))
print(summary("This build", "ratio", "good", "not_more", "cal") + f" Median wall ratio "
      f"{sorted(r['wall'] for r in rows)[n // 2]:.1f}×; ran halving on {sum(1 for r in rows if r['mode'] == 'halving')}"
      f"/{n}; suggest named the learned search's family on {sum(1 for r in rows if r['suggest'])}/{n} "
      f"({100 * sum(1 for r in rows if r['suggest']) / n:.0f}%, target ≥ 70%).")
if baseline:
    print(summary(f"Baseline ({baseline})", "b_ratio", "b_good", "b_not_more", "b_cal"))
