#!/usr/bin/env python3
"""Independent reference for Retort's BERT forward pass: token ids from Hugging Face `tokenizers` (tokenizer.json) and
mean-pooled sentence vectors computed with NumPy from model.safetensors, written to Tests/Fixtures/minilm-reference.json
(the Swift test compares to 1e-4). Installs numpy, safetensors and tokenizers into .build-bench/venv when missing.
Usage: scripts/encoder_reference.py [MODEL_DIR] [OUT]
"""
import json
import os
import subprocess
import sys

import scriptkit

model = sys.argv[1] if len(sys.argv) > 1 else ".build-models/all-MiniLM-L6-v2"
out = sys.argv[2] if len(sys.argv) > 2 else "Tests/Fixtures/minilm-reference.json"
if not os.path.isdir(model):
    scriptkit.fail(f"no encoder folder {model}; run `make models` first (or pass a Hugging Face folder)")
venv = ".build-bench/venv"
scriptkit.reexec_in(scriptkit.ensure_venv(venv, "numpy, safetensors, tokenizers", ["numpy<2", "safetensors", "tokenizers"]))

import math  # noqa: E402

import numpy as np  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

SENTENCES = [
    "turn on the kitchen lights",
    "What's the weather like in Zürich tomorrow?",
    "set a timer for 10 minutes, please!",
    "unmute my movie",
    "Café déjà vu: naïve résumé (crème brûlée) — 東京 ok?",
]
DEPTHS = [0, 1, 2, 6]
MAX_LENGTH = 128

config = json.load(open(os.path.join(model, "config.json")))
w = {k.removeprefix("bert."): v.astype(np.float64) for k, v in load_file(os.path.join(model, "model.safetensors")).items()}
tokenizer = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
tokenizer.no_padding()
tokenizer.enable_truncation(MAX_LENGTH)
h, heads, eps = config["hidden_size"], config["num_attention_heads"], config["layer_norm_eps"]
d = h // heads


def norm(x, name):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"]


def linear(x, name):
    return x @ w[name + ".weight"].T + w[name + ".bias"]


erf = np.vectorize(math.erf)
rows = []
for sentence in SENTENCES:
    ids = tokenizer.encode(sentence).ids
    n = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] \
        + w["embeddings.token_type_embeddings.weight"][0]
    x = norm(x, "embeddings.LayerNorm")
    pooled = {}
    for layer in range(max(DEPTHS) + 1):
        if layer > 0:
            p = f"encoder.layer.{layer - 1}."
            q, k, v = (linear(x, p + f"attention.self.{m}").reshape(n, heads, d).transpose(1, 0, 2)
                       for m in ("query", "key", "value"))
            s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            context = (s @ v).transpose(1, 0, 2).reshape(n, h)
            x = norm(linear(context, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            inner = linear(x, p + "intermediate.dense")
            inner = 0.5 * inner * (1 + erf(inner / math.sqrt(2)))
            x = norm(linear(inner, p + "output.dense") + x, p + "output.LayerNorm")
        if layer in DEPTHS:
            mean = x.mean(0)
            pooled[str(layer)] = [round(float(value), 7) for value in mean / np.linalg.norm(mean)]
    rows.append({"text": sentence, "ids": ids, "pooled": pooled})
os.makedirs(os.path.dirname(out), exist_ok=True)
json.dump({"model": "all-MiniLM-L6-v2", "max_length": MAX_LENGTH, "normalized": True, "sentences": rows},
          open(out, "w"), indent=None, separators=(",", ":"))
print(f"wrote {out}: {len(rows)} sentences, depths {DEPTHS}")
