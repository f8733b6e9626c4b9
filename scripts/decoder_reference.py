#!/usr/bin/env python3
"""Independent reference for the Swift Llama decoder (Sources/RetortStudents/Decoder): tokenizes a few fixed prompts
and runs SmolLM2-135M-Instruct's forward pass in NumPy (float64) from the same GGUF file, written to
Tests/Fixtures/smollm2-reference.json for DecoderTests (which then needs no Python).

Independent of the Swift code on purpose: the GGUF is read and dequantized by the `gguf` PyPI package (llama.cpp's
own Python reader), the pre-tokenizer is the `regex` module running the Hugging Face / llama.cpp patterns, BPE is the
textbook "merge the lowest-ranked pair" loop, and attention uses Hugging Face's rotate-half RoPE on Q/K weights
un-permuted back to the Hugging Face layout (undoing convert_hf_to_gguf.py's permute), where the Swift code rotates
adjacent pairs of the GGUF layout. Both agreeing checks the permutation convention too.

Usage: scripts/decoder_reference.py [MODEL.gguf] [OUT.json] [--full OUT.npz]
Installs gguf and regex into .build-decoder/venv on first use (never needed by `make test`).
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".build-decoder", "venv")


def ensure_venv():
    try:
        import gguf  # noqa: F401
        import numpy  # noqa: F401
        import regex  # noqa: F401
    except ImportError:
        python = os.path.join(VENV, "bin", "python")
        if sys.executable == python:
            sys.exit("decoder_reference: error: gguf/regex/numpy missing from .build-decoder/venv; delete it and rerun")
        if not os.path.exists(python):
            subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([python, "-m", "pip", "install", "-q", "numpy", "gguf==0.19.0", "regex"])
        os.execv(python, [python, *sys.argv])


ensure_venv()

import gguf  # noqa: E402
import numpy as np  # noqa: E402
import regex  # noqa: E402

PROMPTS = [
    "Hello, world!",
    "The capital of France is",
    "<|im_start|>user\nExtract the city as JSON: I'm flying to Zürich on 12/03/2025.<|im_end|>\n"
    "<|im_start|>assistant\n",
    "  Numbers 1234567 and   spaces\n\n\ttabs, don't we'll it's 'quoted' — café 東京 🙂 x²",
    (
        "<|im_start|>system\nYou answer with one JSON object.<|im_end|>\n<|im_start|>user\nTurn on the kitchen "
        "lights at 7:30 pm and set them to 40% brightness, then remind me to water the plants tomorrow morning."
        "<|im_end|>\n<|im_start|>assistant\n"
    ),
]
GENERATE = 12  # greedy tokens generated after the third and fifth prompts


def field(reader, key):
    f = reader.fields[key]
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i][0].item() for i in f.data]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    return f.parts[f.data[0]][0].item()


def byte_table():
    """GPT-2's bytes_to_unicode: printable bytes stand for themselves, the rest map to U+0100 upwards."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class Tokenizer:
    DIGITS = regex.compile(r"\p{N}")
    GPT2 = regex.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")

    def __init__(self, reader):
        self.tokens = field(reader, "tokenizer.ggml.tokens")
        types = field(reader, "tokenizer.ggml.token_type")
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.ranks = {tuple(m.split(" ", 1)): r for r, m in enumerate(field(reader, "tokenizer.ggml.merges"))}
        self.special = sorted((t for t, k in zip(self.tokens, types) if k in (3, 4)), key=len, reverse=True)
        self.bytes = byte_table()

    def pretokens(self, text):
        pieces, last = [], 0
        for m in self.DIGITS.finditer(text):  # llama.cpp's "smollm" pre-tokenizer: digits one by one, then GPT-2's
            pieces += [text[last : m.start()], m.group()]
            last = m.end()
        pieces.append(text[last:])
        return [w for p in pieces if p for w in self.GPT2.findall(p)]

    def bpe(self, word):
        parts = [self.bytes[b] for b in word.encode("utf-8")]
        while len(parts) > 1:
            ranked = [(self.ranks.get((a, b), 1 << 62), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, i = min(ranked)
            if rank == 1 << 62:
                break
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        return [self.ids[p] for p in parts]

    def encode(self, text):
        ids, start = [], 0
        special = regex.compile("|".join(regex.escape(s) for s in self.special))
        for m in special.finditer(text):
            for word in self.pretokens(text[start : m.start()]):
                ids += self.bpe(word)
            ids.append(self.ids[m.group()])
            start = m.end()
        for word in self.pretokens(text[start:]):
            ids += self.bpe(word)
        return ids


class Model:
    def __init__(self, reader):
        self.n_layer = field(reader, "llama.block_count")
        self.n_head = field(reader, "llama.attention.head_count")
        self.n_kv = field(reader, "llama.attention.head_count_kv")
        self.base = field(reader, "llama.rope.freq_base")
        self.eps = field(reader, "llama.attention.layer_norm_rms_epsilon")
        self.eos = field(reader, "tokenizer.ggml.eos_token_id")
        self.w = {}
        for t in reader.tensors:
            values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
            self.w[t.name] = values.reshape([int(d) for d in reversed(t.shape)])  # ne[0] is the fastest axis
        self.types = sorted({t.tensor_type.name for t in reader.tensors})
        h = self.w["token_embd.weight"].shape[1]
        self.d = h // self.n_head
        for i in range(self.n_layer):  # back to Hugging Face's layout: rows [half, d/2] instead of [d/2, 2]
            for name, heads in (("attn_q", self.n_head), ("attn_k", self.n_kv)):
                w = self.w[f"blk.{i}.{name}.weight"]
                self.w[f"blk.{i}.{name}.weight"] = (
                    w.reshape(heads, self.d // 2, 2, h).swapaxes(1, 2).reshape(w.shape)
                )
        self.head = self.w.get("output.weight", self.w["token_embd.weight"])

    def norm(self, x, weight):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * weight

    def rope(self, x, positions):  # x: [T, heads, d], rotate_half convention
        half = self.d // 2
        freq = self.base ** (-np.arange(half) * 2.0 / self.d)
        angle = positions[:, None] * freq[None, :]
        cos = np.concatenate([np.cos(angle)] * 2, -1)[:, None, :]
        sin = np.concatenate([np.sin(angle)] * 2, -1)[:, None, :]
        rotated = np.concatenate([-x[..., half:], x[..., :half]], -1)
        return x * cos + rotated * sin

    def logits(self, ids):
        """All positions' logits, no cache (a causal mask over the whole sequence)."""
        x = self.w["token_embd.weight"][ids]
        n = len(ids)
        positions = np.arange(n, dtype=np.float64)
        mask = np.triu(np.full((n, n), -np.inf), 1)
        group = self.n_head // self.n_kv
        for i in range(self.n_layer):
            p = f"blk.{i}."
            a = self.norm(x, self.w[p + "attn_norm.weight"])
            q = self.rope((a @ self.w[p + "attn_q.weight"].T).reshape(n, self.n_head, self.d), positions)
            k = self.rope((a @ self.w[p + "attn_k.weight"].T).reshape(n, self.n_kv, self.d), positions)
            v = (a @ self.w[p + "attn_v.weight"].T).reshape(n, self.n_kv, self.d)
            k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
            scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(self.d) + mask
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = np.einsum("hqk,khd->qhd", scores, v).reshape(n, -1)
            x = x + context @ self.w[p + "attn_output.weight"].T
            f = self.norm(x, self.w[p + "ffn_norm.weight"])
            gate = f @ self.w[p + "ffn_gate.weight"].T
            up = f @ self.w[p + "ffn_up.weight"].T
            x = x + (gate / (1 + np.exp(-gate)) * up) @ self.w[p + "ffn_down.weight"].T
        return self.norm(x, self.w["output_norm.weight"]) @ self.head.T

    def generate(self, ids, count):
        ids, out = list(ids), []
        for _ in range(count):
            token = int(np.argmax(self.logits(ids)[-1]))
            if token == self.eos:
                break
            out.append(token)
            ids.append(token)
        return out


def main():
    parser = argparse.ArgumentParser(description="SmolLM2 reference logits for DecoderTests")
    model = os.path.join(ROOT, ".build-models/SmolLM2-135M-Instruct/model.gguf")
    parser.add_argument("model", nargs="?", default=model)
    parser.add_argument("out", nargs="?", default=os.path.join(ROOT, "Tests/Fixtures/smollm2-reference.json"))
    parser.add_argument("--full", help="also save every position's logits (float32) to this .npz")
    options = parser.parse_args()
    path, out = options.model, options.out
    reader = gguf.GGUFReader(path)
    tokenizer, model = Tokenizer(reader), Model(reader)
    print(f"tensor types in {path}: {', '.join(model.types)}", file=sys.stderr)
    cases, full = [], {}
    for index, text in enumerate(PROMPTS):
        ids = tokenizer.encode(text)
        logits = model.logits(ids)
        last = logits[-1]
        top = [int(i) for i in np.argsort(-last)[:16]]
        picked = sorted(set(top) | set(range(0, len(last), 1531)))
        case = {
            "text": text,
            "ids": ids,
            "argmax": [int(i) for i in logits.argmax(-1)],
            "last_logits": {str(i): round(float(last[i]), 5) for i in picked},
            "first_logits": {str(i): round(float(logits[0][i]), 5) for i in picked},
        }
        if index in (2, 4):
            case["greedy"] = model.generate(ids, GENERATE)
        cases.append(case)
        full[f"logits{index}"] = logits.astype(np.float32)
        print(f"prompt {index}: {len(ids)} tokens, argmax {top[0]}", file=sys.stderr)
    with open(out, "w") as f:
        json.dump({"model": "SmolLM2-135M-Instruct.Q4_1.gguf", "precision": "float64", "cases": cases}, f)
        f.write("\n")
    if options.full:
        np.savez(options.full, **full)


if __name__ == "__main__":
    main()
