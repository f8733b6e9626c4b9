#!/usr/bin/env python3
"""The best candidate of each student family on every benchmark task, next to the peers of peers.md.

Runs one default search per task (exhaustive, the built-in catalog) and prints, per task, each family's best complete
candidate by validation primary metric: that metric with its CI, its test accuracy, size and measured p50, then the
peers' rows from peers.md (their numbers are copied from that file, measured once by its authors).

Usage: scripts/bench_families.py [BENCH_DIR] [OUT_DIR]
"""
import glob
import json
import os
import re
import subprocess
import sys

import scriptkit

bench = scriptkit.require_bench(sys.argv[1] if len(sys.argv) > 1 else "../shared/bench")
out = sys.argv[2] if len(sys.argv) > 2 else "results/bench-families"
scriptkit.require_binary(".build/release/retort")
peers_text = open(os.path.join(bench, "peers.md")).read() if os.path.exists(os.path.join(bench, "peers.md")) else ""


def peers(task):
    match = re.search(rf"## {re.escape(task)} \(.*?\n(.*?)(?=\n## |\Z)", peers_text, re.S)
    if not match:
        return []
    rows = []
    for line in match.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] not in ("peer", "---"):
            rows.append(cells)
    return rows


def size(b):
    return f"{b} B" if b < 1000 else f"{b / 1000:.1f} KB" if b < 1e6 else f"{b / 1e6:.2f} MB"


print(f"Command: scripts/bench_families.py {bench} {out}\n")
for task in scriptkit.label_tasks(bench):
    name = os.path.basename(task)
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    with open(folder + ".log", "w") as log:
        if subprocess.call([".build/release/retort", "search", "--strategy", "exhaustive", "--task", task, "--out", folder], stdout=log,
                           stderr=subprocess.STDOUT) != 0:
            sys.exit(f"search failed on {name}: see {folder}.log")
    report = json.load(open(sorted(glob.glob(os.path.join(folder, "2*", "report.json")))[-1]))
    metric = report["primary_metric"]
    best = {}
    for c in report["candidates"]:
        if c["status"] != "complete":
            continue
        value = c["metrics"][metric]["value"]
        if c["family"] not in best or value > best[c["family"]]["metrics"][metric]["value"]:
            best[c["family"]] = c
    print(f"### {name} (teacher test accuracy {report['teacher']['metrics']['accuracy']['value']:.4f})\n")
    print(f"| student | val {metric} [95% CI] | test accuracy | size | p50 ms |")
    print("|---|---|---|---|---|")
    for family, c in sorted(best.items()):
        m = c["metrics"][metric]
        test = c.get("test_metrics", {}).get("accuracy", {}).get("value")
        print(f"| {family}: `{c['id']}` | {m['value']:.4f} [{m['ci95'][0]:.4f}, {m['ci95'][1]:.4f}] | "
              f"{'—' if test is None else f'{test:.4f}'} | {size(c['size_bytes'])} | {c['latency_ms_p50']:.4f} |")
    for peer, fit, acc, agree, psize, p50 in peers(name):
        print(f"| peer (peers.md): {peer} | — | {acc} | {psize} | {p50} |")
    print()
