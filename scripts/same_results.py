#!/usr/bin/env python3
"""Are two search runs the same apart from what is timed? The check behind "a refactor changes no output".

Usage: scripts/same_results.py A B
  A and B are run folders (with candidates.csv) or folders holding run folders (compared pairwise by relative path,
  each side's `latest` or newest run per task folder). Compares candidates.csv, cascade.csv, frontier.md and
  report.json with the measured columns taken out: latency p50/p95, throughput, and the student costs derived from
  latency (`cost_per_1m_usd`, blended cost/latency, the `$ per 1M` column, "N ms" and "N s" in prose, run ids). Prints one line per
  difference (file, row, column, both values) and exits 1 when there is any, 0 when none.
"""
import csv
import json
import os
import re
import sys

import scriptkit

TIMED_CSV = re.compile(r"latency|throughput|cost_per_1m|wall|seconds|_at$|elapsed")
TIMED_MD_HEADERS = {"p50 ms", "p95 ms", "$ per 1M"}
TIMED_JSON = re.compile(r"run_id|latency|throughput|cost_per_1m|wall|seconds|elapsed|started|finished|created|time|date|path|dir|economics|speed")
MS = re.compile(r"[0-9.]+ ?m?s\b")


def run_folders(root):
    """{relative task path: run folder} under ROOT (ROOT itself when it is a run folder)."""
    if os.path.isfile(os.path.join(root, "candidates.csv")):
        return {".": root}
    found = {}
    for folder, subfolders, files in os.walk(root):
        runs = sorted(s for s in subfolders if os.path.isfile(os.path.join(folder, s, "candidates.csv")))
        if runs:
            found[os.path.relpath(folder, root)] = os.path.join(folder, runs[-1])
            subfolders[:] = [s for s in subfolders if s not in runs and s != "latest"]
    return found


def csv_rows(path):
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: v for k, v in row.items() if not TIMED_CSV.search(k)} for row in rows]


def markdown(path):
    lines = []
    header = None
    for line in open(path).read().splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if header is None:
                header = cells
            keep = [c for h, c in zip(header, cells) if h not in TIMED_MD_HEADERS]
            lines.append("| " + " | ".join(keep) + " |")
        elif line.startswith("Money:") or line.startswith("Speed:"):
            continue  # the break-even carries measured CPU seconds and serving cost; the speed line the measured spread
        else:
            header = None
            lines.append(MS.sub("<ms>", line))
    return lines


def scrub(value):
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if not TIMED_JSON.search(k)}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return MS.sub("<ms>", value)
    return value


def walk_json(a, b, where, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            walk_json(a.get(key), b.get(key), f"{where}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b)):
            walk_json(x, y, f"{where}[{index}]", out)
    elif a != b:
        out.append(f"{where}: {json.dumps(a)[:120]} ≠ {json.dumps(b)[:120]}")


def compare(run_a, run_b, label):
    problems = []
    for name in ("candidates.csv", "cascade.csv"):
        pa, pb = os.path.join(run_a, name), os.path.join(run_b, name)
        if os.path.exists(pa) != os.path.exists(pb):
            problems.append(f"{label}/{name}: present on one side only")
            continue
        if not os.path.exists(pa):
            continue
        ra, rb = csv_rows(pa), csv_rows(pb)
        if len(ra) != len(rb):
            problems.append(f"{label}/{name}: {len(ra)} rows ≠ {len(rb)} rows")
        for index, (x, y) in enumerate(zip(ra, rb)):
            for key in sorted(set(x) | set(y)):
                if x.get(key) != y.get(key):
                    problems.append(f"{label}/{name}: row {index + 2} {key}: {x.get(key)} ≠ {y.get(key)}")
    pa, pb = os.path.join(run_a, "frontier.md"), os.path.join(run_b, "frontier.md")
    if os.path.exists(pa) and os.path.exists(pb):
        la, lb = markdown(pa), markdown(pb)
        for index in range(max(len(la), len(lb))):
            x = la[index] if index < len(la) else "(none)"
            y = lb[index] if index < len(lb) else "(none)"
            if x != y:
                problems.append(f"{label}/frontier.md: line {index + 1}: {x[:160]} ≠ {y[:160]}")
    pa, pb = os.path.join(run_a, "report.json"), os.path.join(run_b, "report.json")
    if os.path.exists(pa) and os.path.exists(pb):
        out = []
        walk_json(scrub(json.load(open(pa))), scrub(json.load(open(pb))), "", out)
        problems += [f"{label}/report.json: {line}" for line in out]
    return problems


def main():
    if len(sys.argv) != 3:
        scriptkit.fail("usage: scripts/same_results.py RUN_OR_FOLDER_A RUN_OR_FOLDER_B")
    a, b = sys.argv[1:3]
    for folder in (a, b):
        if not os.path.isdir(folder):
            scriptkit.fail(f"{folder}: no such folder")
    runs_a, runs_b = run_folders(a), run_folders(b)
    if not runs_a:
        scriptkit.fail(f"{a}: no run folder (a folder with candidates.csv) in it")
    problems = []
    for task in sorted(set(runs_a) | set(runs_b)):
        if task not in runs_a or task not in runs_b:
            problems.append(f"{task}: a run on one side only")
            continue
        problems += compare(runs_a[task], runs_b[task], task)
    for line in problems:
        print(line)
    sys.stdout.flush()
    print(f"{len(runs_a)} run(s) compared: " + ("the same apart from timed figures" if not problems
                                                else f"{len(problems)} difference(s)"), file=sys.stderr)
    sys.exit(1 if problems else 0)


main()
