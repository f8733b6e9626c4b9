#!/usr/bin/env python3
"""The slm student's Swift decoder next to llama.cpp (llama-cpp-python) on the same GGUF weights and the same prompts.

`retort bench slm` (release build) times the Swift decoder on the first ROWS validation inputs of a structured task,
prompts built by SlmFormat (ChatML), and writes the prompts' text and token ids, the greedy tokens and every timing to
a JSON file. This script then runs llama.cpp on exactly those token ids, on 2 threads, greedy, with the same token
budget, and prints one markdown table (medians; ratios Swift / llama.cpp), also written to OUT_DIR/slm-engines.md:

- prompt processing (tokens/s), decode latency (ms per token) and end-to-end latency per input (p50), unconstrained
  greedy, one input at a time (llama.cpp through its low-level API: `Llama.eval` and an argmax over the last logits,
  the loop the Swift side runs; and through `create_completion`, its sampler included);
- schema-constrained decoding: Retort's SchemaDecoder against llama.cpp's grammar from the task's JSON schema
  (`LlamaGrammar.from_json_schema`), per input; and Retort batched (B = 16, 32) in rows/s;
- LoRA training throughput (Swift only: llama.cpp cannot fine-tune);
- a correctness cross-check: the prompt texts replicated here byte for byte, llama.cpp's tokenizer against Retort's,
  and the share of prompts whose greedy tokens (up to MAX_TOKENS) are identical in both engines.

llama-cpp-python (pinned below) installs into .build-bench/llama on first use, compiling llama.cpp from source (about
half an hour on 2 cores; the log is .build-bench/llama.pip.log).
Usage: scripts/bench_slm_engines.py [RETORT] [TASK_DIR] [MODEL.gguf] [OUT_DIR]
"""
import json
import os
import statistics
import subprocess
import sys
import time

import scriptkit

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
THREADS = 2
ROWS = 50
MAX_TOKENS = 32
CONSTRAINED_MAX_TOKENS = 64

retort = sys.argv[1] if len(sys.argv) > 1 else ".build/release/retort"
task = sys.argv[2] if len(sys.argv) > 2 else "../shared/bench/ha-extract-en"
model = sys.argv[3] if len(sys.argv) > 3 else ".build-models/SmolLM2-135M-Instruct/model.gguf"
out = sys.argv[4] if len(sys.argv) > 4 else ".build-bench"
scriptkit.require_binary(retort)
scriptkit.require_file(model, "run `make models` to fetch SmolLM2-135M-Instruct")
scriptkit.require_file(os.path.join(task, "task.json"), "pass a structured task folder (FORMATS.md §9)")

venv = ".build-bench/llama"
python = os.path.join(venv, "bin", "python")
if os.environ.get("RETORT_IN_VENV") != "1":
    if not os.path.exists(python):
        made = subprocess.run([sys.executable, "-m", "venv", venv], capture_output=True, text=True)
        if made.returncode != 0:
            scriptkit.fail(f"could not make the venv {venv}; install python3-venv (apt-get install python3-venv)")
    if subprocess.call([python, "-c", "import llama_cpp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        log = os.path.join(".build-bench", "llama.pip.log")
        print(f"installing {LLAMA_CPP_PYTHON} into {venv}: it compiles llama.cpp from source (cmake and ninja come "
              f"from PyPI; about half an hour on 2 cores); log in {log}", file=sys.stderr, flush=True)
        with open(log, "w") as handle:
            pip = subprocess.run([python, "-m", "pip", "install", "-v", LLAMA_CPP_PYTHON], stdout=handle,
                                 stderr=subprocess.STDOUT, env={**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": "2"})
        if pip.returncode != 0:
            scriptkit.fail(f"pip could not install {LLAMA_CPP_PYTHON} (compiling llama.cpp needs gcc, g++ and the "
                           f"network for PyPI); the end of {log} says why")
    scriptkit.reexec_in(python)

import numpy as np  # noqa: E402
import llama_cpp  # noqa: E402
from llama_cpp import Llama, LlamaGrammar  # noqa: E402

os.makedirs(out, exist_ok=True)
swift_json = os.path.join(out, "slm-swift.json")


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


load_before = uptime()
command = [retort, "bench", "slm", "--model", model, "--task", task, "--rows", str(ROWS), "--max-tokens",
           str(MAX_TOKENS), "--constrained-max-tokens", str(CONSTRAINED_MAX_TOKENS), "--threads", str(THREADS),
           "--out", swift_json]
print("$ " + " ".join(command), file=sys.stderr, flush=True)
subprocess.run(command, check=True, stdout=sys.stderr)
swift = json.load(open(swift_json))
schema = json.load(open(os.path.join(task, "task.json")))["schema"]


def slm_prompt(text):
    """SlmFormat.prompt, replicated: a ChatML user turn, then the opening of the assistant turn."""
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


same_text = sum(slm_prompt(i) == p for i, p in zip(swift["inputs"], swift["prompts"]))
if same_text != len(swift["prompts"]):
    scriptkit.fail(f"only {same_text} of {len(swift['prompts'])} prompt texts match SlmFormat as replicated here; "
                   "update slm_prompt() to SlmFormat.prompt")

llm = Llama(model_path=model, n_ctx=512, n_batch=512, n_threads=THREADS, n_threads_batch=THREADS, seed=1,
            logits_all=False, verbose=False)
vocabulary = llm.n_vocab()
same_tokens = sum(llm.tokenize(p.encode(), add_bos=False, special=True) == t
                  for p, t in zip(swift["prompts"], swift["promptTokens"]))
stops = set(swift["stopTokens"])
prompts = swift["promptTokens"]


def greedy(tokens):
    """The Swift loop in llama.cpp: eval the prompt, then argmax and eval one token at a time."""
    llm.reset()
    start = time.perf_counter()
    llm.eval(tokens)
    prefill = time.perf_counter() - start
    out, steps = [], []
    while True:
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(vocabulary,))
        token = int(np.argmax(logits))
        if token in stops:
            break
        out.append(token)
        if len(out) == MAX_TOKENS:
            break
        step = time.perf_counter()
        llm.eval([token])
        steps.append(time.perf_counter() - step)
    return {"prefill": prefill, "steps": steps, "total": time.perf_counter() - start, "tokens": out,
            "prompt": len(tokens)}


def completion(tokens, max_tokens, grammar=None):
    llm.reset()
    start = time.perf_counter()
    result = llm.create_completion(prompt=tokens, max_tokens=max_tokens, temperature=0.0, grammar=grammar)
    return time.perf_counter() - start, result["choices"][0]["text"], result["usage"]["completion_tokens"]


def valid(text):
    """Whether TEXT is one JSON object valid under the task's schema (types, enums, required keys, no others)."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    if not isinstance(value, dict) or any(k not in schema["properties"] for k in value):
        return False
    if any(k not in value for k in schema.get("required", [])):
        return False
    kinds = {"string": str, "integer": int, "number": (int, float), "boolean": bool}
    for key, item in value.items():
        spec = schema["properties"][key]
        if "enum" in spec and item not in spec["enum"]:
            return False
        kind = spec.get("type")
        if kind in kinds and (not isinstance(item, kinds[kind]) or (kind != "boolean" and isinstance(item, bool))):
            return False
    return True


greedy(prompts[0])  # warm-up
llama_greedy = [greedy(p) for p in prompts]
completion(prompts[0], MAX_TOKENS)
llama_completion = [completion(p, MAX_TOKENS) for p in prompts]
grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
completion(prompts[0], CONSTRAINED_MAX_TOKENS, grammar)
llama_grammar = [completion(p, CONSTRAINED_MAX_TOKENS, grammar) for p in prompts]
load_after = uptime()

median = statistics.median


def rates(runs, prefill, count):
    return [count(r) / prefill(r) for r in runs]


def step_means(runs, steps):
    return [sum(steps(r)) / len(steps(r)) for r in runs if steps(r)]


swift_greedy = swift["greedy"]
s_prefill = median(rates(swift_greedy, lambda r: r["prefillSeconds"], lambda r: r["promptTokens"]))
l_prefill = median(rates(llama_greedy, lambda r: r["prefill"], lambda r: r["prompt"]))
s_step = median(step_means(swift_greedy, lambda r: r["stepSeconds"])) * 1000
l_step = median(step_means(llama_greedy, lambda r: r["steps"])) * 1000
s_total = median([r["totalSeconds"] for r in swift_greedy]) * 1000
l_total = median([r["total"] for r in llama_greedy]) * 1000
l_completion = median([c[0] for c in llama_completion]) * 1000
identical = sum(s["tokens"] == r["tokens"] for s, r in zip(swift_greedy, llama_greedy))
completion_identical = sum(llm.detokenize(s["tokens"]).decode("utf-8", "replace") == c[1]
                           for s, c in zip(swift_greedy, llama_completion))


def common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


prefixes = [common_prefix(s["tokens"], r["tokens"]) for s, r in zip(swift_greedy, llama_greedy)]


def margin(prompt, swift_tokens, llama_tokens, at):
    """At the first differing position, with the prompt and the shared tokens re-run as one batch: llama.cpp's logit
    of its own step-by-step choice minus its logit of Retort's (near 0 when the engines split a near-tie; below 0 when
    llama.cpp itself picks Retort's token once the prefix runs as one batch)."""
    llm.reset()
    llm.eval(prompt + llama_tokens[:at])
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(vocabulary,))
    return float(logits[llama_tokens[at]] - logits[swift_tokens[at]])


margins = [margin(p, s["tokens"], r["tokens"], k) for p, s, r, k in zip(prompts, swift_greedy, llama_greedy, prefixes)
           if k < min(len(s["tokens"]), len(r["tokens"]))]
generated = median([len(r["tokens"]) for r in llama_greedy])
prompt_lengths = [len(p) for p in prompts]
s_constrained = median(swift["constrainedSeconds"]) * 1000
l_constrained = median([c[0] for c in llama_grammar]) * 1000
s_constrained_rows = len(prompts) / sum(swift["constrainedSeconds"])
l_constrained_rows = len(prompts) / sum(c[0] for c in llama_grammar)
grammar_valid = sum(valid(c[1]) for c in llama_grammar)
swift_valid = sum(valid(t) for t in swift["constrainedTexts"])
same_answers = sum(json.loads(t) == json.loads(c[1]) if valid(c[1]) else False
                   for t, c in zip(swift["constrainedTexts"], llama_grammar))


def ratio(a, b):
    return f"{a / b:.2f}" if b else "n/a"


n = len(prompts)
lines = [
    f"SmolLM2-135M-Instruct ({os.path.basename(model)}, weights {', '.join(f'{k} {v / 1e6:.1f} M' for k, v in sorted(swift['weightTypes'].items()))}), "
    f"{n} validation prompts of {os.path.basename(os.path.normpath(task))} (SlmFormat ChatML; {min(prompt_lengths)}–"
    f"{max(prompt_lengths)} tokens, median {median(prompt_lengths):g}), {THREADS} threads each, batch 1 unless said. "
    f"Swift: `retort bench slm` (release), fp32 weights through OpenBLAS. llama.cpp: {LLAMA_CPP_PYTHON} "
    "its own CPU kernels on the file's weights as stored.",
    "",
    f"llama.cpp system info: `{llama_cpp.llama_print_system_info().decode().strip()}`",
    "",
    "| measure | Retort (Swift) | llama.cpp | Swift / llama.cpp |",
    "|---|---:|---:|---:|",
    f"| prompt processing, tokens/s (median per prompt) | {s_prefill:.0f} | {l_prefill:.0f} | {ratio(s_prefill, l_prefill)} |",
    f"| decode, ms per token (median of per-input means) | {s_step:.2f} | {l_step:.2f} | {ratio(s_step, l_step)} |",
    f"| greedy end to end per input, p50 ms (≤ {MAX_TOKENS} tokens, median {generated:g} generated) | {s_total:.1f} | "
    f"{l_total:.1f} | {ratio(s_total, l_total)} |",
    f"| same, llama.cpp through `create_completion` (its sampler), p50 ms | {s_total:.1f} | {l_completion:.1f} | "
    f"{ratio(s_total, l_completion)} |",
    f"| schema-constrained per input, p50 ms (Swift SchemaDecoder; llama.cpp JSON-schema grammar; ≤ "
    f"{CONSTRAINED_MAX_TOKENS} tokens, median written: Swift {median(swift['constrainedTokens']):g}, llama.cpp "
    f"{median([c[2] for c in llama_grammar]):g}) | {s_constrained:.1f} | {l_constrained:.1f} | "
    f"{ratio(s_constrained, l_constrained)} |",
    f"| schema-constrained, ms per token written (median) | "
    f"{median([t / k for t, k in zip(swift['constrainedSeconds'], swift['constrainedTokens']) if k]) * 1000:.2f} | "
    f"{median([c[0] / c[2] for c in llama_grammar if c[2]]) * 1000:.2f} | |",
    f"| schema-constrained, rows/s, batch 1 | {s_constrained_rows:.2f} | {l_constrained_rows:.2f} | "
    f"{ratio(s_constrained_rows, l_constrained_rows)} |",
]
for size, seconds in sorted(swift["batchedSeconds"].items(), key=lambda kv: int(kv[0])):
    lines.append(f"| schema-constrained, rows/s, batch {size} | {n / seconds:.2f} | n/a (one sequence per call) | "
                 f"{ratio(n / seconds, l_constrained_rows)} vs llama.cpp batch 1 |")
for run in swift["training"]:
    lines.append(
        f"| LoRA training, tokens/s (rank {run['rank']}, depth {run['depth']}, {run['examples']} rows × "
        f"{run['epochs']} epochs; cache of the frozen blocks {run['cacheSeconds']:.2f} s not counted) | "
        f"{run['tokensPerSecond']:.0f} | n/a: llama.cpp cannot fine-tune | |")
if "stepProductsSgemm" in swift:
    lines += [
        "",
        f"Where Swift's decode time goes: one step's matrix products (30 blocks' projections and the LM head, fp32, "
        f"one row) take {swift['stepProductsSgemv'] * 1000:.2f} ms through sgemv, the path the decoder runs, and "
        f"{swift['stepProductsSgemm'] * 1000:.2f} ms through 1-row sgemm, the path it ran before (OpenBLAS packs the "
        f"whole weight matrix for one row), timed after the rest (the median step above: {s_step:.2f} ms). The weights are read as fp32: "
        f"{4 * sum(swift['weightTypes'].values()) / 1e6:.0f} MB a token, where llama.cpp reads the file's "
        f"{os.path.getsize(model) / 1e6:.0f} MB.",
    ]
lines += [
    "",
    f"Cross-checks: prompt texts identical to SlmFormat as replicated in Python {same_text}/{n}; llama.cpp's tokens "
    f"of those texts identical to Retort's {same_tokens}/{n}; greedy tokens (up to {MAX_TOKENS}) identical "
    f"{identical}/{n} (common prefix median {median(prefixes):g}, min {min(prefixes)}). Where they part ({len(margins)} "
    f"prompts), the two tokens' logits in llama.cpp (prefix re-run as one batch) differ by a median "
    f"{median([abs(m) for m in margins]) if margins else 0:.3f}, at most {max([abs(m) for m in margins], default=0):.3f}, "
    f"and in {sum(m < 0 for m in margins)} of them llama.cpp itself then prefers Retort's token: near-ties, split "
    f"by llama.cpp's quantized kernels (Retort's fp32 logits match a float64 NumPy reference to 1e-4). llama.cpp's "
    f"`create_completion` text identical to Retort's greedy text {completion_identical}/{n}. Constrained answers "
    f"(base model, no adapters) valid under the schema: Swift {swift_valid}/{n}, llama.cpp grammar {grammar_valid}/{n}; "
    f"the same object {same_answers}/{n} (the two constrain differently: SchemaDecoder writes canonical JSON, keys "
    f"sorted, so the untrained model starts with \"area\" or \"brightness\"; llama.cpp's grammar follows the schema's "
    f"key order, \"intent\" first, whitespace allowed). Swift's batched answers equal its batch-1 answers: "
    + ", ".join(f"B={k} {v}/{n}" for k, v in sorted(swift["batchedTextsMatch"].items(), key=lambda kv: int(kv[0])))
    + ".",
    "",
    f"Load: before `{load_before}`; after `{load_after}`. Command: `make bench-slm` (scripts/bench_slm_engines.py).",
]
table = "\n".join(lines) + "\n"
print(table)
with open(os.path.join(out, "slm-engines.md"), "w") as handle:
    handle.write(table)
