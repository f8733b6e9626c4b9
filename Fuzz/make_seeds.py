#!/usr/bin/env python3
"""Writes the small hand-made seeds under Fuzz/seeds/NAME/ (committed; run again only to change them).

scripts/fuzz.sh adds the repository's own YAML files (candidates/, devices/, examples/) to these."""
import gzip
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(name, file, data):
    folder = os.path.join(HERE, "seeds", name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, file), "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)


def safetensors(tensors, metadata=None):
    """tensors: name -> (dtype, shape, bytes)."""
    header, body = {}, b""
    for name, (dtype, shape, raw) in sorted(tensors.items()):
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def f32(values):
    return ("F32", [len(values)], struct.pack("<%df" % len(values), *values))


# rows: label rows (FORMATS.md §1), text and numeric, hard and soft teachers.
put("rows", "text.jsonl", "\n".join([
    '{"id": "u-1", "input": "turn off the kitchen lights", "teacher": {"label": "off", "probs": {"off": 0.9, "on": 0.1}'
    ', "usage": {"input_tokens": 12, "output_tokens": 1}, "latency_ms": 230, "model": "m"}, "gold": "off"}',
    '{"id": "u-2", "input": "lights on please", "teacher": {"logprobs": {"on": -0.05, "off": -3.2}}}',
    '{"input": "dim the hall", "teacher": "dim", "gold": "dim"}',
    "",
]))
put("rows", "numeric.jsonl", '{"id": "r-1", "input": [0.12, 3.4, -1.0, 7.0], "teacher": "B", "gold": "B"}\n'
    '{"id": "r-2", "input": [1e3, 0, 2.5, -7], "teacher": "A"}\n')
put("rows", "bad.jsonl", '{"input": "x", "teacher": {"probs": {"a": 1.5}}}\n{"input": [1, "two"]}\n{"id": 3}\nnot json\n')

# gateway config (FORMATS.md §5).
put("gateway-config", "gateway.yaml", """listen: 127.0.0.1:8787
ledger: var/gateway.sqlite
keys:
  - sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
    user: ana
    team: search
    routes: [teacher, cheap]
    admin: false
    budgets: {usd_per_day: 50, tokens_per_month: 20000000}
users:
  ana: {budgets: {usd_per_month: 300}}
teams:
  search: {budgets: {usd_per_month: 2000}}
providers:
  openai-main: {kind: openai, base_url: "https://api.openai.com/v1", api_key_env: OPENAI_API_KEY}
  anthropic: {kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: ANTHROPIC_API_KEY}
routes:
  teacher:
    fallback: any
    capture: support-intents
    capture_input: "{{last_user}}"
    deployments:
      - provider: anthropic
        model: claude-opus-4-8
        price: {input_per_mtok: 15, cached_input_per_mtok: 1.5, cache_write_per_mtok: 18.75, output_per_mtok: 75}
        timeout_s: 120
        concurrency: 16
        rate_limit: {rpm: 4000, tpm: 2000000}
      - provider: openai-main
        model: gpt-5.5
        price: {input_per_mtok: 10, cached_input_per_mtok: 1, output_per_mtok: 40}
  cheap:
    deployments:
      - {provider: openai-main, model: gpt-5.5-mini, price: {input_per_mtok: 0.4, output_per_mtok: 1.6}}
retry: {attempts: 3, backoff_ms: 200, max_backoff_ms: 5000}
breaker: {failures: 5, window_s: 30, cooldown_s: 30}
session: {idle_gap: 30m, max_duration: 10h, max_usd: 100}
notify: {webhook: "http://127.0.0.1:9000/hook"}
""")
put("gateway-config", "small.yaml", """providers:
  local: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
routes:
  teacher:
    deployments:
      - {provider: local, model: m, price: {input_per_mtok: 1, output_per_mtok: 2}}
""")

# labelling prompt (FORMATS.md §7).
put("prompt", "prompt.yaml", """system: "You route messages from a shop's support inbox. Answer with exactly one label."
user: "Labels: {{labels}}\\nMessage: {{input}}\\nLabel:"
labels: [order_status, refund_request, cancel_order]
max_tokens: 8
temperature: 0
top_logprobs: 5
""")
put("prompt", "file.yaml", 'user: "{{ input }} ({{id}})"\nlabels_file: labels.txt\n')

# request bodies the gateway reads.
put("request-json", "chat.json", json.dumps({
    "model": "teacher", "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 8,
    "temperature": 0, "logprobs": True, "top_logprobs": 5,
    "messages": [{"role": "system", "content": "Answer with one label."},
                 {"role": "user", "content": [{"type": "text", "text": "where is my order? \u00e9\U0001F600"}]}],
}))
put("request-json", "escapes.json", '["\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\\\/", -0.0, 1e-7, 12345678901234567890, true, null, {}]')
put("request-json", "nested.json", "[" * 40 + "]" * 40)

# SSE streams (first byte picks the chunk size).
put("sse", "openai.txt", "\x03data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n: keep-alive\n\n"
    "data: {\"usage\":{\"prompt_tokens\":3}}\n\ndata: [DONE]\n\n")
put("sse", "anthropic.txt", "\x07event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
    "event: content_block_delta\ndata: {\"delta\":{\"text\":\"a\"}}\ndata: second line\nid: 7\nretry: 10\n\n"
    "event: ping\n\n")

# safetensors files.
weights = {"layers.0.weight": ("F32", [2, 3], struct.pack("<6f", *range(6))), "layers.0.bias": f32([0.1, 0.2, 0.3])}
put("safetensors", "f32.safetensors", safetensors(weights, {"format": "pt", "producer": "retort"}))
put("safetensors", "mixed.safetensors", safetensors({
    "a": ("I8", [4], bytes([1, 255, 3, 128])), "b": ("F16", [2], struct.pack("<2e", 1.5, -2.0)),
    "c": ("I16", [2], struct.pack("<2h", 7, -1)), "empty": ("F32", [0], b""),
}))

# model folders: model.json, a NUL byte, model.safetensors.
def model(manifest, tensors):
    return json.dumps(manifest).encode() + b"\0" + safetensors(tensors)


put("model-json", "linear-numeric", model({
    "format": "retort-model", "version": 1, "candidate": "linear", "family": "linear", "precision": "fp32",
    "architecture": {"family": "linear", "hidden": [], "inputDimension": 2, "outputDimension": 3, "sparseInput": False},
    "labels": ["a", "b", "c"], "featurizer": {"kind": "standardize", "dimension": 2},
}, dict(weights, **{"featurizer.mean": f32([0, 1]), "featurizer.std": f32([1, 2])})))
put("model-json", "mlp-int8-text", model({
    "format": "retort-model", "version": 1, "candidate": "mlp", "family": "mlp", "precision": "int8",
    "architecture": {"family": "mlp", "hidden": [2], "inputDimension": 4, "outputDimension": 2, "sparseInput": True},
    "labels": ["yes", "no"],
    "featurizer": {"kind": "hashed-ngrams", "buckets_log2": 2, "max_word_ngram": 2, "min_char_ngram": 3,
                   "max_char_ngram": 5, "normalization": "l2"},
}, {
    "layers.0.weight": ("I8", [4, 2], bytes(range(8))), "layers.0.weight_scale": f32([0.1, 0.2]),
    "layers.0.bias": f32([0, 0]),
    "layers.1.weight": ("I8", [2, 2], bytes([1, 2, 3, 4])), "layers.1.weight_scale": f32([0.5, 0.5]),
    "layers.1.bias": f32([1, -1]),
}))
put("model-json", "gbdt", model({
    "format": "retort-model", "version": 1, "candidate": "gbdt", "family": "gbdt", "precision": "fp16",
    "architecture": {"family": "gbdt", "hidden": [2, 1], "inputDimension": 2, "outputDimension": 2,
                     "sparseInput": False},
    "labels": ["x", "y"], "featurizer": {"kind": "standardize"},
}, {
    "trees.feature": ("I16", [3], struct.pack("<3h", 0, 1, 1)), "trees.threshold": f32([0.5, 0.1, 0.9]),
    "trees.leaf": ("F16", [4], struct.pack("<4e", 0.1, 0.2, 0.3, 0.4)), "trees.base": f32([0, 0]),
    "featurizer.mean": f32([0, 0]), "featurizer.std": f32([1, 1]),
}))

# WordPiece: vocab.txt lines, a NUL byte, the text.
put("wordpiece", "basic", "hello\nworld\n##s\n##ing\nplay\n,\n!\n\u00e9t\u00e9\n\0Hello, worlds! Playing \u00c9t\u00e9 \u4e2d\u6587 "
    "a\u0301\u200b\tend")
put("wordpiece", "long", "a\n##a\n\0" + "a" * 120 + " " + "aa " * 20)

# journals (a search's journal.jsonl).
header = {"type": "header", "version": 1, "job": "job.yaml", "source": "task", "options": {"strategy": "halving"},
          "task_hash": "0123456789abcdef", "catalog_hash": "fedcba9876543210", "settings_hash": "00ff00ff00ff00ff"}
result = {"type": "result", "candidate": "mlp-h64", "group": "mlp", "rung": 1, "epochs": 8, "fidelity": 0.5,
          "best_epoch": 6, "finished": True, "cut_by_budget": False,
          "metrics": {"accuracy": {"value": 0.9, "ci95": [0.85, 0.94]}},
          "difference_to_teacher": {"value": -0.01, "ci95": [-0.02, 0.0]},
          "train_seconds": 1.5, "size_bytes": 4096, "flops": 10000, "p50": 0.01, "p95": 0.02, "throughput": 9000}
put("journal", "journal.jsonl", "\n".join(json.dumps(r) for r in [
    header, {"type": "phase", "phase": "train", "time": 12.5, "candidates": ["mlp-h64", "linear"]}, result]) + "\n")
put("journal", "cut.jsonl", json.dumps(header) + "\n" + '{"type": "result", "candid')

# history exports (retort history export; history/starter.json.gz): the smallest starter run cut to two candidates and
# one rung record, plain and gzip, and the gzip cut short.
with gzip.open(os.path.join(HERE, "..", "history", "starter.json.gz")) as starter:
    runs = json.load(starter)["runs"]
small = min(runs, key=lambda run: len(json.dumps(run)))
small["report"]["candidates"] = small["report"]["candidates"][:2]
small["rungs"] = small["rungs"][:1]
export = json.dumps({"format": "retort-history", "version": 1, "runs": [small]}, sort_keys=True)
put("history-export", "export.json", export)
packed = gzip.compress(export.encode(), mtime=0)
put("history-export", "export.json.gz", packed)
put("history-export", "cut.json.gz", packed[: len(packed) // 2])
