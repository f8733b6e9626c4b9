#!/usr/bin/env python3
"""Runs Retort's own searches on the starter tasks and exports them as the starter history (make starter-history).

For every task folder in TASKS (made by scripts/starter_tasks.py; default .build-starter/tasks/), one exhaustive search

    BIN search --task T --strategy exhaustive --candidates CATALOG --history .build-starter/history.sqlite
               --seed 0 --workers 1 --out .build-starter/runs/NAME

where CATALOG is candidates/default.yaml without its encoder-head entry (scriptkit.catalog_without_encoders, as make
bench-learning uses). Numeric and text tasks are interleaved, so both kinds grow together when a run is cut short; the
numeric ones (seconds each, against one to two minutes for a text task) at three times the pace.
Resumable: a task already in the history (`BIN history list --json`) is skipped. Each search's wall time and
recommendation are logged (and appended to .build-starter/searches.tsv). A search that fails is named with retort's
one-line error and the others go on. At the end the whole history is exported, compact:

    BIN history export --history .build-starter/history.sqlite --compact --out history/starter.json.gz

--until HH:MM (UTC) starts no search that would likely end after that time (the median time of its kind so far), and
exports what is done; running again later goes on where it stopped.

Usage: scripts/starter_history.py [BIN] [TASKS] [--until HH:MM]
"""
import scriptkit  # noqa: F401  (first: one-line errors)

import datetime
import glob
import json
import os
import statistics
import subprocess
import sys
import time

arguments = sys.argv[1:]
until = None
if "--until" in arguments:
    position = arguments.index("--until")
    if position + 1 >= len(arguments):
        scriptkit.fail("--until takes a UTC time, HH:MM")
    try:
        clock = datetime.datetime.strptime(arguments[position + 1], "%H:%M").time()
    except ValueError:
        scriptkit.fail(f"--until {arguments[position + 1]}: not a time; give HH:MM (UTC)")
    now = datetime.datetime.now(datetime.timezone.utc)
    until = datetime.datetime.combine(now.date(), clock, tzinfo=datetime.timezone.utc).timestamp()
    del arguments[position:position + 2]
retort = scriptkit.require_binary(arguments[0] if arguments else ".build/release/retort")
tasks_dir = arguments[1] if len(arguments) > 1 else ".build-starter/tasks"
if not os.path.isdir(tasks_dir):
    scriptkit.fail(f"no task folder {tasks_dir}; run scripts/starter_tasks.py first")

work = ".build-starter"
history = os.path.join(work, "history.sqlite")
runs = os.path.join(work, "runs")
export = os.path.join("history", "starter.json.gz")
log = os.path.join(work, "searches.tsv")
os.makedirs(runs, exist_ok=True)
catalog = scriptkit.catalog_without_encoders(work)


def task_info(folder):
    task = json.load(open(os.path.join(folder, "task.json")))
    return task["name"], task["kind"]


PACE = {"numeric": 3.0}  # numeric searches take seconds, text ones minutes: numeric tasks go three times as fast


def interleaved(folders):
    """Numeric and text tasks merged so that both kinds grow together, the numeric ones at three times the pace: their
    list is done when a third of the text tasks are, so a run cut short has most tasks and some of both kinds."""
    kinds = {}
    for folder in folders:
        kinds.setdefault(task_info(folder)[1], []).append(folder)
    keyed = []
    for kind, members in kinds.items():
        pace = PACE.get(kind, 1.0)
        keyed += [((index + 0.5) / len(members) / pace, kind, folder) for index, folder in enumerate(members)]
    return [folder for _, _, folder in sorted(keyed)]


def searched():
    """The task names the history holds already."""
    if not os.path.exists(history):
        return set()
    listed = subprocess.run([retort, "history", "list", "--history", history, "--json"], check=True,
                            capture_output=True, text=True)
    return {run["task"] for run in json.loads(listed.stdout or "[]")}


def recommendation(folder):
    reports = sorted(glob.glob(os.path.join(folder, "*", "report.json")))
    if not reports:
        return "no report.json"
    rec = json.load(open(reports[-1]))["recommendation"]
    if rec.get("candidate") is None:
        return rec.get("kind", "?")
    if rec.get("kind") == "cascade":
        return f"cascade: {rec['candidate']} ({rec.get('coverage', 0):.0%})"
    return rec["candidate"]


def last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


folders = interleaved(sorted(os.path.dirname(path) for path in glob.glob(os.path.join(tasks_dir, "*", "task.json"))))
done = searched()
todo = [folder for folder in folders if task_info(folder)[0] not in done]
print(f"{len(folders)} tasks in {tasks_dir}, {len(folders) - len(todo)} already in {history}, {len(todo)} to search "
      f"with {retort}", flush=True)
times = {}
failures = []
stopped = 0
for number, folder in enumerate(todo, 1):
    name, kind = task_info(folder)
    expected = statistics.median(times[kind]) if times.get(kind) else (10 if kind == "numeric" else 60)
    if until is not None and time.time() + expected > until:
        stopped = len(todo) - number + 1
        print(f"stopping: it is {time.strftime('%H:%M', time.gmtime())} UTC and the next search ({name}) would end "
              f"after the --until time; {stopped} tasks left for a later run", flush=True)
        break
    out = os.path.join(runs, name)
    start = time.time()
    result = subprocess.run([retort, "search", "--task", folder, "--strategy", "exhaustive", "--candidates", catalog,
                             "--history", history, "--seed", "0", "--workers", "1", "--out", out],
                            capture_output=True, text=True)
    wall = time.time() - start
    if result.returncode != 0:
        failures.append((name, f"exit {result.returncode}: {last_line(result.stderr) or last_line(result.stdout)}"))
        print(f"[{number}/{len(todo)}] {name} ({kind}) FAILED after {wall:.1f} s: {failures[-1][1]}", flush=True)
        continue
    times.setdefault(kind, []).append(wall)
    answer = recommendation(out)
    print(f"[{number}/{len(todo)}] {name} ({kind}) {wall:.1f} s: {answer}", flush=True)
    with open(log, "a") as handle:
        handle.write(f"{name}\t{kind}\t{wall:.1f}\t{answer}\n")

for kind, walls in sorted(times.items()):
    print(f"{kind}: {len(walls)} searched, median {statistics.median(walls):.1f} s, total {sum(walls):.0f} s")
os.makedirs(os.path.dirname(export), exist_ok=True)
subprocess.run([retort, "history", "export", "--history", history, "--compact", "--out", export], check=True,
               capture_output=True, text=True)
print(f"{len(searched())} tasks in {history}; exported to {export} ({os.path.getsize(export) / 1024:.0f} KiB)")
for name, error in failures:
    print(f"failed: {name}: {error}", file=sys.stderr)
if failures:
    scriptkit.fail(f"{len(failures)} of {len(todo)} searches failed (named above); the others are in the export")
