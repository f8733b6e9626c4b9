#!/usr/bin/env python3
"""Retort's embedding bag against fastText on the same teacher labels, features and budget, in one run.

Both train on the task's teacher hard labels (the peers' setting); accuracy is against gold.

1. peers.md's fasttext-d32 recipe, over SEEDS seeds each, runs interleaved (fastText, then Retort, per seed) so both
   see the same machine load: d 32, word 1-2-grams, 2^21 buckets, SGD at lr 0.1 decaying linearly to 0 over 25
   epochs, one example per update, the last epoch kept, one thread. Retort runs it as
   `optimizer: sgd, batch_size: 1, lr: 0.1, lr_schedule: linear, epochs: 25, early_stopping: none, alpha: 0` with
   `normalization: mean` (fastText's average of the n-gram rows) and, for comparison, Retort's default l2 rows.
   Reported: validation and test accuracy (median, min, max) and training seconds (median). fastText's time is the
   wall time of train_supervised (reading the file, building the dictionary, initializing, training); Retort's is
   the search's train_seconds (initializing the session and training; featurization is done before).
2. The older table at 2^16 buckets (fastText at lr 0.5 constant-then-linear as its default, Retort with Adam), one
   seed, with and without character 3-5-grams.

fastText comes from PyPI (fasttext-wheel) in a virtual environment under .build-bench/.
Usage: scripts/bench_fasttext.py [TASK_DIR] [OUT_DIR] [SEEDS]
"""
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import scriptkit

task = scriptkit.require_bench(sys.argv[1] if len(sys.argv) > 1 else "../shared/bench/ha-intents-en")
out = sys.argv[2] if len(sys.argv) > 2 else "results/bench-fasttext"
seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
scriptkit.require_binary(".build/release/retort")
venv = ".build-bench/venv"
scriptkit.reexec_in(scriptkit.ensure_venv(venv, "fasttext", ["fasttext-wheel", "numpy<2"]))

import fasttext  # noqa: E402
from benchdata import rows as task_rows, teacher_label  # noqa: E402

os.makedirs(out, exist_ok=True)
train, validation, test = (task_rows(task, s) for s in ("train", "validation", "test"))
with open(os.path.join(out, "train.txt"), "w") as f:
    for r in train:
        f.write(f"__label__{teacher_label(r)} {r['input'].lower()}\n")


def fasttext_run(seed, **kwargs):
    """Trains fastText; returns (validation accuracy, test accuracy, fit seconds) against gold."""
    start = time.time()
    model = fasttext.train_supervised(os.path.join(out, "train.txt"), thread=1, verbose=0, seed=seed, **kwargs)
    fit = time.time() - start

    def accuracy(rows):
        return sum(model.predict(r["input"].lower())[0][0] == "__label__" + r["gold"] for r in rows) / len(rows)

    return accuracy(validation), accuracy(test), fit


def retort_run(name, entry, seed):
    """Runs a one-candidate search; returns (validation accuracy, test accuracy, train seconds)."""
    catalog = os.path.join(out, f"{name}.yaml")
    with open(catalog, "w") as f:
        f.write(f"text:\n  - {{family: embedding-bag, precision: [fp32], {entry}}}\n")
    folder = os.path.join(out, f"retort-{name}-s{seed}")
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.check_call([".build/release/retort", "search", "--strategy", "exhaustive", "--task", task, "--candidates",
                           catalog, "--out", folder, "--workers", "1", "--seed", str(seed), "--no-history"],
                          stdout=subprocess.DEVNULL)
    run = sorted(glob.glob(os.path.join(folder, "2*")))[-1]
    ours = json.load(open(os.path.join(run, "report.json")))["candidates"][0]
    shutil.rmtree(folder)  # 2^21 buckets: half a gigabyte of export and checkpoint per run
    return ours["metrics"]["accuracy"]["value"], ours["test_metrics"]["accuracy"]["value"], ours["train_seconds"]


def summary(runs):
    val, acc, secs = zip(*runs)
    return (f"{statistics.median(val):.4f} | {statistics.median(acc):.4f} [{min(acc):.4f}, {max(acc):.4f}] | "
            f"{statistics.median(secs):.2f}")


print(f"Command: scripts/bench_fasttext.py {task} {out} {seeds}\n")
print(f"peers.md fasttext-d32 recipe (d 32, word 1-2-grams, 2^21 buckets, lr 0.1 linear to 0, 25 epochs, "
      f"last epoch, one thread), seeds 1..{seeds}, interleaved:\n")
recipe = ("dim: [32], buckets_log2: [21], char_ngrams: false, alpha: 0, optimizer: sgd, batch_size: 1, lr: 0.1, "
          "lr_schedule: linear, epochs: 25, early_stopping: none")
ft_runs, mean_runs, l2_runs = [], [], []
for seed in range(1, seeds + 1):
    ft_runs.append(fasttext_run(seed, dim=32, wordNgrams=2, bucket=1 << 21, minn=0, maxn=0, epoch=25, lr=0.1))
    mean_runs.append(retort_run("sgd-d32-b21-mean", recipe + ", normalization: mean", seed))
    l2_runs.append(retort_run("sgd-d32-b21-l2", recipe, seed))
    print(f"<!-- seed {seed}, val/test/s: fastText {'/'.join(f'{v:.4f}' for v in ft_runs[-1])}, Retort mean "
          f"{'/'.join(f'{v:.4f}' for v in mean_runs[-1])}, l2 {'/'.join(f'{v:.4f}' for v in l2_runs[-1])} -->")
print("\n| tool | val acc (median) | test acc: median [min, max] | train s (median) |")
print("|---|---|---|---|")
print(f"| fastText (fasttext-wheel) | {summary(ft_runs)} |")
print(f"| Retort embedding-bag, `optimizer: sgd, normalization: mean` | {summary(mean_runs)} |")
print(f"| Retort embedding-bag, `optimizer: sgd` (l2 rows) | {summary(l2_runs)} |")

print("\nAt 2^16 buckets, one seed (fastText lr 0.5; Retort Adam, `alpha: 0, early_stopping: objective`):\n")
print("| features | Retort embedding-bag: test acc | train s | fastText: test acc | train s |")
print("|---|---|---|---|---|")
for chars in (False, True):
    for dim in (16, 32):
        entry = (f"dim: [{dim}], buckets_log2: [16], char_ngrams: {str(chars).lower()}, alpha: 0, "
                 "early_stopping: objective")
        _, ours, ours_s = retort_run(f"adam-d{dim}-{chars}", entry, 1)
        _, theirs, theirs_s = fasttext_run(1, dim=dim, wordNgrams=2, bucket=65536, minn=3 if chars else 0,
                                           maxn=5 if chars else 0, epoch=25, lr=0.5)
        label = f"d={dim}, word 1-2-grams" + (" + char 3-5-grams" if chars else "")
        print(f"| {label} | {ours:.4f} | {ours_s:.2f} | {theirs:.4f} | {theirs_s:.2f} |")
