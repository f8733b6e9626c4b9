#!/usr/bin/env python3
"""Retort's embedding bag against fastText on the same teacher labels, features and budget, in one run.

Both train on ha-intents-en's teacher hard labels (the peers' setting) with hashed word 1-2-grams into 2^16 buckets,
with and without character 3-5-grams; test accuracy is against gold. fastText comes from PyPI (fasttext-wheel) in a
virtual environment under .build-bench/. Usage: scripts/bench_fasttext.py [TASK_DIR] [OUT_DIR]
"""
import glob
import json
import os
import subprocess
import sys
import time

task = sys.argv[1] if len(sys.argv) > 1 else "../shared/bench/ha-intents-en"
out = sys.argv[2] if len(sys.argv) > 2 else "results/bench-fasttext"
venv = ".build-bench/venv"
if not os.path.exists(f"{venv}/bin/python"):
    subprocess.check_call([sys.executable, "-m", "venv", venv])
    subprocess.check_call([f"{venv}/bin/pip", "install", "-q", "fasttext-wheel", "numpy<2"])
if os.environ.get("RETORT_IN_VENV") != "1":
    os.environ["RETORT_IN_VENV"] = "1"
    os.execv(f"{venv}/bin/python", [f"{venv}/bin/python"] + sys.argv)

import fasttext  # noqa: E402
from benchdata import rows as task_rows, teacher_label  # noqa: E402

os.makedirs(out, exist_ok=True)


train, test = task_rows(task, "train"), task_rows(task, "test")
with open(os.path.join(out, "train.txt"), "w") as f:
    for r in train:
        f.write(f"__label__{teacher_label(r)} {r['input'].lower()}\n")

print(f"Command: scripts/bench_fasttext.py {task} {out}\n")
print("| features | Retort embedding-bag: test acc | train s | fastText: test acc | train s |")
print("|---|---|---|---|---|")
for chars in (False, True):
    for dim in (16, 32):
        catalog = os.path.join(out, f"eb-{dim}-{chars}.yaml")
        with open(catalog, "w") as f:
            f.write(f"text:\n  - {{family: embedding-bag, dim: [{dim}], buckets_log2: [16], char_ngrams: {str(chars).lower()}, "
                    "alpha: 0, early_stopping: objective, precision: [fp32]}\n")
        folder = os.path.join(out, f"retort-{dim}-{chars}")
        subprocess.check_call([".build/release/retort", "search", "--strategy", "exhaustive", "--task", task, "--candidates", catalog, "--out",
                               folder, "--workers", "1"], stdout=subprocess.DEVNULL)
        report = json.load(open(sorted(glob.glob(os.path.join(folder, "2*", "report.json")))[-1]))
        ours = report["candidates"][0]
        start = time.time()
        model = fasttext.train_supervised(os.path.join(out, "train.txt"), dim=dim, wordNgrams=2, bucket=65536,
                                          minn=3 if chars else 0, maxn=5 if chars else 0, epoch=25, lr=0.5,
                                          thread=1, verbose=0)
        fit = time.time() - start
        acc = sum(model.predict(r["input"].lower())[0][0] == "__label__" + r["gold"] for r in test) / len(test)
        label = f"d={dim}, word 1-2-grams" + (" + char 3-5-grams" if chars else "")
        print(f"| {label} | {ours['test_metrics']['accuracy']['value']:.4f} | {ours['train_seconds']:.2f} | "
              f"{acc:.4f} | {fit:.2f} |")
