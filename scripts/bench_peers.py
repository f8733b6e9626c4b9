#!/usr/bin/env python3
"""Retort against the Python peers on every bench task, same architecture, epochs and batch size, in one run.

Each row trains one architecture with Retort (`retort search` over a one-candidate catalog, fp32) and with the peer a
user would pick instead, on the same train split and the same teacher, single-threaded on both sides:
  - numeric tasks: scikit-learn LogisticRegression (lbfgs, its own iteration count) and MLPClassifier (adam, batch 128,
    exactly E epochs: tol 0, no early stopping) on standardized inputs, against Retort linear / mlp with E epochs;
  - text tasks: the same hashed word 1-2-gram features on both sides (2^14 buckets, L2-normalised), scikit-learn
    LogisticRegression / MLPClassifier on them, and fastText (d = 32, word 2-grams, 2^16 buckets, E epochs) against
    Retort's embedding bag of the same shape.
Both sides learn from the teacher's answers (hard labels, as in ../shared/bench/peers.md: Retort with alpha 0, so its
loss is the cross-entropy MLPClassifier and fastText minimise); Retort keeps its best epoch on validation. Train time is the fit alone
(features prepared beforehand on both sides); accuracy is on test against gold. scikit-learn and fastText install into
.build-bench/venv. Usage: scripts/bench_peers.py [BENCH_DIR] [OUT_DIR] [EPOCHS]
"""
import glob
import json
import os
import subprocess
import sys
import time

import scriptkit

bench = scriptkit.require_bench(sys.argv[1] if len(sys.argv) > 1 else "../shared/bench")
out = sys.argv[2] if len(sys.argv) > 2 else "results/bench-peers"
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 30
venv = ".build-bench/venv"
scriptkit.require_binary(".build/release/retort")
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RETORT_BLAS_THREADS"):
    os.environ[variable] = "1"
scriptkit.reexec_in(scriptkit.ensure_venv(venv, "sklearn, fasttext", ["scikit-learn", "fasttext-wheel", "numpy<2"]))

import warnings  # noqa: E402

import fasttext  # noqa: E402
from benchdata import rows, teacher_label  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.feature_extraction.text import HashingVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

warnings.filterwarnings("ignore", category=ConvergenceWarning)
os.makedirs(out, exist_ok=True)


def retort(task, name, entry):
    """Trains one candidate with `retort search`; returns (test accuracy, train seconds)."""
    catalog = os.path.join(out, f"{name}.yaml")
    kind = "text" if "buckets_log2" in entry or "dim" in entry else "numeric"
    with open(catalog, "w") as f:
        f.write(f"{kind}:\n  - {entry}\n")
    folder = os.path.join(out, name)
    subprocess.check_call([".build/release/retort", "search", "--strategy", "exhaustive", "--task", task, "--candidates", catalog, "--out",
                           folder, "--workers", "1", "--max-drop", "1"], stdout=subprocess.DEVNULL)
    report = json.load(open(sorted(glob.glob(os.path.join(folder, "2*", "report.json")))[-1]))
    ours = report["candidates"][0]
    return ours["test_metrics"]["accuracy"]["value"], ours["train_seconds"]


def timed(fit):
    start = time.perf_counter()
    model = fit()
    return model, time.perf_counter() - start


def row(task_name, model, peer, ours, theirs):
    (acc, seconds), (peer_acc, peer_seconds) = ours, theirs
    print(f"| {task_name} | {model} | {acc:.4f} | {seconds:.2f} | {peer} | {peer_acc:.4f} | {peer_seconds:.2f} | "
          f"{peer_seconds / seconds:.1f}× | {100 * (acc - peer_acc):+.1f} |", flush=True)


print(f"Command: scripts/bench_peers.py {bench} {out} {epochs} (1 thread on both sides)\n")
print("| task | architecture | Retort test acc | Retort fit s | peer | peer test acc | peer fit s | "
      "peer s / Retort s | acc Δ (pt) |")
print("|---|---|---|---|---|---|---|---|---|")
common = f"epochs: [{epochs}], patience: [{epochs}], batch_size: [128], alpha: [0], early_stopping: objective, precision: [fp32]"
for task in scriptkit.label_tasks(bench):
    task_json = os.path.join(task, "task.json")
    name = os.path.basename(task)
    kind = json.load(open(task_json)).get("kind")
    train, test = rows(task, "train"), rows(task, "test")
    labels = np.array([teacher_label(r) for r in train])
    gold = np.array([r["gold"] for r in test])
    if kind == "numeric":
        scaler = StandardScaler().fit(np.array([r["input"] for r in train], dtype=np.float64))
        x_train = scaler.transform(np.array([r["input"] for r in train], dtype=np.float64))
        x_test = scaler.transform(np.array([r["input"] for r in test], dtype=np.float64))
    else:
        hashing = HashingVectorizer(ngram_range=(1, 2), n_features=2 ** 14, alternate_sign=False, norm="l2")
        x_train = hashing.transform([r["input"] for r in train])
        x_test = hashing.transform([r["input"] for r in test])
    text_features = "buckets_log2: [14], char_ngrams: false, " if kind == "text" else ""

    def score(model):
        return float(np.mean(model.predict(x_test) == gold))

    logreg, seconds = timed(lambda: LogisticRegression(max_iter=1000).fit(x_train, labels))
    ours = retort(task, f"{name}-linear", f"{{family: linear, {text_features}{common}}}")
    row(name, "linear", "LogisticRegression (lbfgs)", ours, (score(logreg), seconds))
    for hidden in ([64], [256]) if kind == "numeric" else ([64],):
        mlp, seconds = timed(lambda: MLPClassifier(
            hidden_layer_sizes=tuple(hidden), max_iter=epochs, batch_size=128, tol=0, n_iter_no_change=epochs + 1,
            random_state=0).fit(x_train, labels))
        ours = retort(task, f"{name}-mlp-{hidden[0]}", f"{{family: mlp, hidden: [{hidden}], {text_features}{common}}}")
        row(name, f"mlp {hidden[0]}", "MLPClassifier (adam)", ours, (score(mlp), seconds))
    if kind == "text":
        path = os.path.join(out, f"{name}-fasttext.txt")
        with open(path, "w") as f:
            for r, label in zip(train, labels):
                f.write(f"__label__{label} {r['input'].lower()}\n")
        model, seconds = timed(lambda: fasttext.train_supervised(
            path, dim=32, wordNgrams=2, bucket=65536, epoch=epochs, lr=0.5, thread=1, verbose=0))
        acc = sum(model.predict(r["input"].lower())[0][0] == "__label__" + r["gold"] for r in test) / len(test)
        ours = retort(task, f"{name}-embedding-bag",
                      f"{{family: embedding-bag, dim: [32], buckets_log2: [16], char_ngrams: false, "
                      f"epochs: [{epochs}], patience: [{epochs}], alpha: [0], early_stopping: objective, precision: [fp32]}}")
        row(name, "embedding bag d=32", "fastText", ours, (acc, seconds))
