#!/usr/bin/env python3
"""`retort suggest` of one or more builds on the held-out tasks of a finished `make bench-learning` (OUT).

For every task OUT/learned/NAME holds, the task's held-out history is made again as the benchmark made it (a copy of
OUT/combined.sqlite that forgets the task's dataset: its base task, all its variants and task.json `dataset`), and
each build's `suggest --json` runs on it. Its family (a cascade or "no distillation" counts as no-distillation) is
compared with the family of the learned search's answer (OUT/learned/NAME), as bench-learning's "suggest's family"
column does: the learned search has recorded itself into the benchmark's own held-out copies since, so those cannot
be reused. A table row per task, then each build's hits.

Usage: scripts/bench_suggest.py OUT BUILD [BUILD...] (from the repository root; BENCH_DIR=../shared/bench and
STARTER_TASKS=.build-starter/tasks, as for bench_learning.py)
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import scriptkit

if len(sys.argv) < 3:
    scriptkit.fail("usage: scripts/bench_suggest.py OUT BUILD [BUILD...]")
out, builds = sys.argv[1], [scriptkit.require_binary(path) for path in sys.argv[2:]]
combined = scriptkit.require_file(os.path.join(out, "combined.sqlite"), "run `make bench-learning` first")
catalog = scriptkit.require_file(os.path.join(out, "catalog.yaml"), "run `make bench-learning` first")
folders = [os.environ.get("BENCH_DIR", "../shared/bench"), os.path.join(out, "variants"),
           os.environ.get("STARTER_TASKS", ".build-starter/tasks")]
dataset_of = scriptkit.dataset_of


def folder_of(name):
    """The task folder named NAME in the benchmark's folders, or the bundled example."""
    for candidate in [os.path.join(f, name) for f in folders] + ["examples/shop-support/task"]:
        path = os.path.join(candidate, "task.json")
        if os.path.exists(path) and json.load(open(path))["name"] == name:
            return candidate
    scriptkit.fail(f"no task folder for {name} in {', '.join(folders)}; set BENCH_DIR or STARTER_TASKS")


answers = {}
for learned in sorted(glob.glob(os.path.join(out, "learned", "*"))):
    reports = sorted(glob.glob(os.path.join(learned, "2*", "report.json")))
    if reports:
        answers[os.path.basename(learned)] = json.load(open(reports[-1]))["recommendation"]
if not answers:
    scriptkit.fail(f"{out}/learned holds no finished search; run `make bench-learning` first")
groups = {}
for name in answers:
    groups.setdefault(dataset_of(name), []).append(name)

print(f"Command: scripts/bench_suggest.py {' '.join(sys.argv[1:])}; {len(answers)} held-out tasks\n")
print("| held-out task | learned search's answer | " + " | ".join(f"`suggest` ({b})" for b in builds) + " |")
print("|---|---|" + "---|" * len(builds))
hits = [0] * len(builds)
scratch = tempfile.mkdtemp(prefix="bench-suggest-")
for name, rec in answers.items():
    folder = folder_of(name)
    learned_family = "no-distillation" if rec["kind"] == "cascade" else scriptkit.student_family(rec["candidate"])
    held_out = os.path.join(scratch, f"{name}.sqlite")
    key = scriptkit.dataset_key(folder)
    scriptkit.held_out_history(builds[0], combined, held_out, groups[dataset_of(name)] + ([key] if key else []))
    cells = []
    for i, build in enumerate(builds):
        suggestion = json.loads(subprocess.run(
            [build, "suggest", "--task", folder, "--candidates", catalog, "--history", held_out, "--json"],
            check=True, capture_output=True, text=True).stdout)
        hit = scriptkit.student_family(suggestion.get("candidate")) == learned_family
        hits[i] += hit
        cells.append(f"{suggestion.get('candidate') or 'no-distillation'} ({'hit' if hit else 'miss'})")
    answer = rec["candidate"] or "no-distillation"
    print(f"| {name} | {'cascade: ' if rec['kind'] == 'cascade' else ''}{answer} | " + " | ".join(cells) + " |",
          flush=True)
shutil.rmtree(scratch, ignore_errors=True)
print()
for build, count in zip(builds, hits):
    print(f"- {build}: `suggest` named the learned search's family on {count}/{len(answers)} "
          f"({100 * count / len(answers):.0f}%, target ≥ 70%)")
