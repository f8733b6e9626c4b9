#!/usr/bin/env python3
"""Retort's gbdt students against scikit-learn's HistGradientBoostingClassifier of the same depth and rounds, trained
on the same teacher (Retort on its distribution, scikit-learn on its answers), in one run, with sizes side by side.

Sizes: Retort's exported bytes; scikit-learn's nodes × 10 bytes (a 2-byte feature index, a 4-byte threshold, a 4-byte
value, the same per-node cost Retort pays at fp32, children implicit). scikit-learn installs into .build-bench/venv.
Usage: scripts/bench_gbdt.py [BENCH_DIR] [OUT_DIR]
"""
import glob
import json
import os
import subprocess
import sys
import time

import scriptkit

bench = scriptkit.require_bench(sys.argv[1] if len(sys.argv) > 1 else "../shared/bench")
out = sys.argv[2] if len(sys.argv) > 2 else "results/bench-gbdt"
scriptkit.require_binary(".build/release/retort")
venv = ".build-bench/venv"
scriptkit.reexec_in(scriptkit.ensure_venv(venv, "sklearn", ["scikit-learn", "numpy<2"]))

import numpy as np  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402

from benchdata import rows, teacher_label  # noqa: E402

os.makedirs(out, exist_ok=True)


def load(task, split):
    split_rows = rows(task, split)
    x = np.array([r["input"] for r in split_rows], dtype=np.float64)
    teacher = [teacher_label(r) for r in split_rows]
    return x, np.array(teacher), np.array([r.get("gold") for r in split_rows])


def size(b):
    return f"{b / 1000:.1f} KB" if b < 1e6 else f"{b / 1e6:.2f} MB"


print(f"Command: scripts/bench_gbdt.py {bench} {out}\n")
print("| task | depth × rounds | Retort gbdt: test acc | size | train s | scikit-learn HGB: test acc | size | train s |")
print("|---|---|---|---|---|---|---|---|")
for task_json in sorted(glob.glob(os.path.join(bench, "*", "task.json"))):
    task = os.path.dirname(task_json)
    if json.load(open(task_json)).get("kind") != "numeric":
        continue
    name = os.path.basename(task)
    x_train, y_train, _ = load(task, "train")
    x_test, _, gold = load(task, "test")
    for depth in (3, 5):
        catalog = os.path.join(out, f"gbdt-{depth}.yaml")
        with open(catalog, "w") as f:
            f.write(f"numeric:\n  - {{family: gbdt, depth: [{depth}], rounds: [100], precision: [fp32]}}\n")
        folder = os.path.join(out, f"{name}-{depth}")
        subprocess.check_call([".build/release/retort", "search", "--strategy", "exhaustive", "--task", task, "--candidates", catalog, "--out",
                               folder, "--workers", "1", "--max-drop", "1"], stdout=subprocess.DEVNULL)
        report = json.load(open(sorted(glob.glob(os.path.join(folder, "2*", "report.json")))[-1]))
        ours = report["candidates"][0]
        start = time.time()
        model = HistGradientBoostingClassifier(max_depth=depth, max_leaf_nodes=2 ** depth, max_iter=100,
                                               learning_rate=0.1, early_stopping=False, random_state=0)
        model.fit(x_train, y_train)
        fit = time.time() - start
        acc = float(np.mean(model.predict(x_test) == gold))
        nodes = sum(len(p.nodes) for predictors in model._predictors for p in predictors)
        print(f"| {name} | {depth} × 100 | {ours['test_metrics']['accuracy']['value']:.4f} | {size(ours['size_bytes'])} | "
              f"{ours['train_seconds']:.2f} | {acc:.4f} | {size(nodes * 10)} | {fit:.2f} |")
