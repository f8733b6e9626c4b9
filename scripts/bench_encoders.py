#!/usr/bin/env python3
"""Encoder students beside the bag-of-n-gram students on the text bench tasks, from one search per task.

Each search trains, with the same teacher and seed: encoder-head students on all-MiniLM-L6-v2 (`make models`) at depths
1, 2, 3, 4 and 6 and precisions fp32/fp16/int8 (linear head, 32 tokens), and the default grids of embedding-bag and mlp.
Per task it prints every encoder student (depth × precision) and the best embedding-bag and mlp student by validation
accuracy: validation accuracy with its 95% CI, test accuracy where Retort evaluated it (the frontier, the
recommendation and each family's leader on validation; nothing else touches test), size, measured p50 latency from raw text, and the time the encoder vectors took (counted once).

Usage: scripts/bench_encoders.py [BENCH_DIR] [OUT_DIR]
"""
import glob
import json
import os
import re
import subprocess
import sys

import scriptkit

bench = scriptkit.require_bench(sys.argv[1] if len(sys.argv) > 1 else "../shared/bench")
out = sys.argv[2] if len(sys.argv) > 2 else "results/bench-encoders"
scriptkit.require_binary(".build/release/retort")
os.makedirs(out, exist_ok=True)
catalog = os.path.join(out, "encoders.yaml")
with open(catalog, "w") as f:
    f.write("""text:
  - family: encoder-head
    layers: [1, 2, 3, 4, 6]
    max_length: [32]
    precision: [fp32, fp16, int8]
  - family: embedding-bag
    dim: [16, 32, 64]
    buckets_log2: [14, 16, 18]
    precision: [fp32, fp16, int8]
  - family: mlp
    hidden: [[32], [64], [128]]
    buckets_log2: [14, 16, 18]
    precision: [fp32, int8]
""")


def size(b):
    return f"{b / 1000:.1f} KB" if b < 1e6 else f"{b / 1e6:.2f} MB"


def estimate(m):
    return f'{m["value"]:.4f} [{m["ci95"][0]:.4f}, {m["ci95"][1]:.4f}]' if m else "—"


print(f"Command: scripts/bench_encoders.py {bench} {out}\n")
for task_json in sorted(glob.glob(os.path.join(bench, "*", "task.json"))):
    if json.load(open(task_json)).get("kind") != "text":
        continue
    task = os.path.dirname(task_json)
    name = os.path.basename(task)
    log = subprocess.run([".build/release/retort", "search", "--strategy", "exhaustive", "--task", task, "--candidates", catalog, "--out",
                          os.path.join(out, name)], capture_output=True, text=True, check=True)
    cache = re.search(r"encoder vectors for every split and depth: ([0-9.]+) s", log.stdout + log.stderr)
    report = json.load(open(sorted(glob.glob(os.path.join(out, name, "2*", "report.json")))[-1]))
    done = [c for c in report["candidates"] if c["status"] == "complete"]
    rows = sorted((c for c in done if c["family"] == "encoder-head"), key=lambda c: (c["config"]["layers"], c["id"]))
    for family in ("embedding-bag", "mlp"):
        members = [c for c in done if c["family"] == family]
        if members:
            rows.append(max(members, key=lambda c: c["metrics"]["accuracy"]["value"]))
    teacher = report["teacher"]
    print(f"### {name}\n")
    print(f"Encoder vectors (every split, depth and precision): {cache.group(1) if cache else '?'} s, counted once. "
          f"Teacher: validation accuracy {estimate(teacher['validation_metrics'].get('accuracy'))}, test "
          f"{estimate(teacher['metrics'].get('accuracy'))}, p50 {teacher['latency_ms_p50']} ms.\n")
    print("| student | val accuracy [95% CI] | test accuracy (where evaluated) | size | p50 ms | FLOPs/example |")
    print("|---|---|---|---|---|---|")
    for c in rows:
        mark = " ★" if report["recommendation"].get("candidate") == c["id"] else ""
        print(f"| `{c['id']}`{mark} | {estimate(c['metrics'].get('accuracy'))} | "
              f"{estimate((c.get('test_metrics') or {}).get('accuracy'))} | {size(c['size_bytes'])} | "
              f"{c['latency_ms_p50']:.4f} | {c['flops_per_example']} |")
    print()
