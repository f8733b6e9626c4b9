#!/usr/bin/env python3
"""`make demo-llm`: distill an LLM-style teacher that answers through the gateway.

Starts `retort gateway fake-provider` (a deterministic intent classifier answering like an LLM API: top logprobs,
token usage, 20 ms per call), labels the bundled shop-support example's inputs through a gateway route with
`retort label` (no server needed: same routing, ledger, budgets and cache), writes the task folder, runs a search on
it and prints the frontier, the recommendation and the labelling bill. A second `retort label` of the same file shows
the cache: nothing is paid twice.

Usage: scripts/demo_llm.py [RETORT_BINARY]
"""
import json
import os
import statistics
import subprocess
import sys

retort = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/release/retort")
example = "examples/shop-support/task"
out = os.path.abspath("results/demo-llm")
task = os.path.join(out, "task")
os.makedirs(task, exist_ok=True)
for name in ("gateway.sqlite", "gateway.sqlite-wal", "gateway.sqlite-shm"):
    path = os.path.join(out, "var", name)
    if os.path.exists(path):
        os.remove(path)

if not os.path.exists(os.path.join(example, "train.jsonl")):
    print("generating the shop-support example first (retort demo)…", flush=True)
    subprocess.run([retort, "demo", "--no-history"], check=True, stdout=subprocess.DEVNULL)

labels = sorted({json.loads(line)["gold"] for line in open(os.path.join(example, "train.jsonl")) if line.strip()})
provider = subprocess.Popen([retort, "gateway", "fake-provider", "--port", "0", "--latency-ms", "20"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
line = provider.stdout.readline()
port = int(line.split("127.0.0.1:")[1].split()[0])
try:
    with open(os.path.join(out, "gateway.yaml"), "w") as handle:
        handle.write(f"""ledger: var/gateway.sqlite
keys:
  - {{sha256: {'0' * 64}, user: data-team, team: ml, budgets: {{usd_per_day: 20}}}}
providers:
  llm: {{kind: openai, base_url: "http://127.0.0.1:{port}/v1"}}
routes:
  teacher:
    fallback: same-model
    deployments:
      - {{provider: llm, model: intent-llm-1, price: {{input_per_mtok: 2.5, output_per_mtok: 10}}}}
""")
    with open(os.path.join(out, "prompt.yaml"), "w") as handle:
        handle.write(
            'system: "You route messages from a shop\'s support inbox. Answer with exactly one label from the list."\n'
            'user: "Labels: {{labels}}\\nMessage: {{input}}\\nLabel:"\n'
            f"labels: [{', '.join(labels)}]\nmax_tokens: 8\ntemperature: 0\ntop_logprobs: 5\n"
        )
    # The example has train and test; every seventh train row becomes validation.
    splits = {"train": [], "validation": [], "test": []}
    for source in ("train", "test"):
        for index, line in enumerate(open(os.path.join(example, f"{source}.jsonl"))):
            if line.strip():
                row = json.loads(line)
                split = "validation" if source == "train" and index % 7 == 0 else source
                splits[split].append({"id": row["id"], "input": row["input"], "gold": row.get("gold")})
    for split, rows in splits.items():
        with open(os.path.join(out, f"{split}-inputs.jsonl"), "w") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
    config = os.path.join(out, "gateway.yaml")
    prompt = os.path.join(out, "prompt.yaml")
    quote = subprocess.run([retort, "label", os.path.join(out, "train-inputs.jsonl"), "--config", config, "--route", "teacher",
                            "--prompt", prompt, "--quote", "--key-user", "data-team"], check=True, capture_output=True, text=True)
    print("before paying:", quote.stdout.strip())
    for split in ("train", "validation", "test"):
        result = subprocess.run([retort, "label", os.path.join(out, f"{split}-inputs.jsonl"), "--config", config, "--route", "teacher",
                                 "--prompt", prompt, "--out", os.path.join(task, f"{split}.jsonl"), "--concurrency", "8",
                                 "--key-user", "data-team"], check=True, capture_output=True, text=True)
        print(f"{split}: " + result.stdout.strip().replace("\n", "\n       "))
    again = subprocess.run([retort, "label", os.path.join(out, "train-inputs.jsonl"), "--config", config, "--route", "teacher",
                            "--prompt", prompt, "--out", os.path.join(task, "train.jsonl")], check=True, capture_output=True, text=True)
    print("again: " + again.stdout.strip().splitlines()[-1])
    usage = json.loads(subprocess.run([retort, "usage", "--config", config, "--by", "route", "--json"], check=True, capture_output=True, text=True).stdout)
    bill = usage[0]
    latencies = [json.loads(line)["teacher"]["latency_ms"] for line in open(os.path.join(task, "train.jsonl"))]
    with open(os.path.join(task, "task.json"), "w") as handle:
        json.dump({
            "name": "shop-support-llm", "kind": "text",
            "teacher": {"name": "intent-llm-1 (loopback LLM-style teacher through the Retort gateway)",
                        "latency_ms_p50": statistics.median(latencies),
                        "cost_per_1k_requests_usd": round(bill["cost_usd"] / bill["requests"] * 1000, 6),
                        "price": {"input_per_mtok_usd": 2.5, "output_per_mtok_usd": 10}},
            "source": "examples/shop-support inputs labelled by `retort label` (scripts/demo_llm.py)",
        }, handle, indent=2)
    print()
    search = subprocess.run([retort, "search", "--task", task, "--no-history", "--out", os.path.join(out, "runs")], capture_output=True, text=True)
    print(search.stdout)
    if search.returncode != 0:
        print(search.stderr, file=sys.stderr)
        sys.exit(search.returncode)
    print(f"labelling bill: {bill['requests']} requests, {bill['input_tokens'] + bill['cached_input_tokens']} input and "
          f"{bill['output_tokens']} output tokens, ${bill['cost_usd']:.4f} (ledger: {out}/var/gateway.sqlite; "
          f"retort usage --config {config})")
finally:
    provider.terminate()
