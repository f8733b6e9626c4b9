#!/usr/bin/env python3
"""`make demo-llm`: distill an LLM-style teacher that answers through the gateway.

Starts `retort gateway fake-provider` (a deterministic intent classifier answering like an LLM API: top logprobs,
token usage, 20 ms per call), labels the bundled shop-support example's inputs through a gateway route with
`retort label` (no server needed: same routing, ledger, budgets and cache), writes the task folder, runs a search on
it and prints the frontier, the recommendation and the labelling bill. A second `retort label` of the same file shows
the cache: nothing is paid twice.

Run it again and everything comes from the label cache (results/demo-llm/var/label-cache.sqlite): no paid calls, the
same task folder, the same search; the bill printed is the ledger's (what the first run paid) and the line says that
nothing was paid this time. Delete results/demo-llm/ to start over.

Usage: scripts/demo_llm.py [RETORT_BINARY]
"""
import json
import os
import statistics
import subprocess
import sys

import scriptkit

PRICE = {"input_per_mtok": 2.5, "output_per_mtok": 10}


def run(args):
    """Runs a retort command, returning its stdout; a failure ends the script with the command's own error line."""
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        said = [line for line in result.stderr.splitlines() if line.strip()]
        scriptkit.fail(f"`retort {' '.join(args[1:3])}` exited with {result.returncode}: "
                       f"{said[-1] if said else result.stdout.strip()[-300:]}")
    return result.stdout


def ledger_bill(retort, config):
    """The teacher route's `retort usage` entry (requests, tokens, cost_usd) from the ledger, or None without rows."""
    if not os.path.exists(os.path.join(os.path.dirname(config), "var", "gateway.sqlite")):
        return None
    usage = json.loads(run([retort, "usage", "--config", config, "--by", "route", "--json"]))
    return next((entry for entry in usage if entry.get("group") == "teacher"), None)


def main():
    retort = scriptkit.require_binary(sys.argv[1] if len(sys.argv) > 1 else ".build/release/retort")
    example = "examples/shop-support/task"
    out = os.path.abspath("results/demo-llm")
    task = os.path.join(out, "task")
    os.makedirs(task, exist_ok=True)

    if not os.path.exists(os.path.join(example, "train.jsonl")):
        print("generating the shop-support example first (retort demo)…", flush=True)
        run([retort, "demo", "--no-history"])

    with open(os.path.join(example, "train.jsonl")) as handle:
        labels = sorted({json.loads(line)["gold"] for line in handle if line.strip()})
    provider = subprocess.Popen([retort, "gateway", "fake-provider", "--port", "0", "--latency-ms", "20"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = provider.stdout.readline()
        if "127.0.0.1:" not in line:
            provider.kill()
            said = (line + provider.stderr.read()).strip().splitlines()
            scriptkit.fail(f"the loopback teacher (`retort gateway fake-provider`) did not start: "
                           f"{said[-1] if said else 'no output'}")
        port = int(line.split("127.0.0.1:")[1].split()[0])
        label_and_search(retort, example, out, task, labels, port)
    finally:
        provider.terminate()
        provider.wait()


def label_and_search(retort, example, out, task, labels, port):
    config = os.path.join(out, "gateway.yaml")
    prompt = os.path.join(out, "prompt.yaml")
    with open(config, "w") as handle:
        handle.write(f"""ledger: var/gateway.sqlite
keys:
  - {{sha256: {'0' * 64}, user: data-team, team: ml, budgets: {{usd_per_day: 20}}}}
providers:
  llm: {{kind: openai, base_url: "http://127.0.0.1:{port}/v1"}}
routes:
  teacher:
    fallback: same-model
    deployments:
      - {{provider: llm, model: intent-llm-1, price: {{input_per_mtok: {PRICE['input_per_mtok']}, output_per_mtok: {PRICE['output_per_mtok']}}}}}
""")
    with open(prompt, "w") as handle:
        handle.write(
            'system: "You route messages from a shop\'s support inbox. Answer with exactly one label from the list."\n'
            'user: "Labels: {{labels}}\\nMessage: {{input}}\\nLabel:"\n'
            f"labels: [{', '.join(labels)}]\nmax_tokens: 8\ntemperature: 0\ntop_logprobs: 5\n"
        )
    # The example has train and test; every seventh train row becomes validation.
    splits = {"train": [], "validation": [], "test": []}
    for source in ("train", "test"):
        with open(os.path.join(example, f"{source}.jsonl")) as handle:
            for index, line in enumerate(handle):
                if line.strip():
                    row = json.loads(line)
                    split = "validation" if source == "train" and index % 7 == 0 else source
                    splits[split].append({"id": row["id"], "input": row["input"], "gold": row.get("gold")})
    for split, rows in splits.items():
        with open(os.path.join(out, f"{split}-inputs.jsonl"), "w") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
    before = ledger_bill(retort, config)
    label = [retort, "label", "--config", config, "--route", "teacher", "--prompt", prompt]
    quote = run(label + [os.path.join(out, "train-inputs.jsonl"), "--quote", "--key-user", "data-team"])
    print("before paying:", quote.strip())
    for split in ("train", "validation", "test"):
        summary = run(label + [os.path.join(out, f"{split}-inputs.jsonl"), "--out", os.path.join(task, f"{split}.jsonl"),
                               "--concurrency", "8", "--key-user", "data-team"])
        print(f"{split}: " + summary.strip().replace("\n", "\n       "))
    again = run(label + [os.path.join(out, "train-inputs.jsonl"), "--out", os.path.join(task, "train.jsonl")])
    print("again: " + again.strip().splitlines()[-1])

    # The teacher's price per request from the rows' own token counts (the same on a run served from the cache).
    rows = []
    for split in ("train", "validation", "test"):
        with open(os.path.join(task, f"{split}.jsonl")) as handle:
            rows += [json.loads(line)["teacher"] for line in handle if line.strip()]
    costs = [(row["usage"]["input_tokens"] * PRICE["input_per_mtok"] + row["usage"]["output_tokens"] * PRICE["output_per_mtok"]) / 1e6
             for row in rows]
    latencies = [row["latency_ms"] for row in rows[:len(splits["train"])]]
    with open(os.path.join(task, "task.json"), "w") as handle:
        json.dump({
            "name": "shop-support-llm", "kind": "text",
            "teacher": {"name": "intent-llm-1 (loopback LLM-style teacher through the Retort gateway)",
                        "latency_ms_p50": statistics.median(latencies),
                        "cost_per_1k_requests_usd": round(sum(costs) / len(costs) * 1000, 6),
                        "price": {"input_per_mtok_usd": PRICE["input_per_mtok"], "output_per_mtok_usd": PRICE["output_per_mtok"]}},
            "source": "examples/shop-support inputs labelled by `retort label` (scripts/demo_llm.py)",
        }, handle, indent=2)
    print()
    search = subprocess.run([retort, "search", "--task", task, "--no-history", "--out", os.path.join(out, "runs")],
                            capture_output=True, text=True)
    print(search.stdout)
    if search.returncode != 0:
        said = [line for line in search.stderr.splitlines() if line.strip()]
        scriptkit.fail(f"the search on {task} exited with {search.returncode}: {said[-1] if said else 'no error output'}")

    ledger = os.path.join(out, "var", "gateway.sqlite")
    bill = ledger_bill(retort, config)
    paid_calls = (bill["requests"] if bill else 0) - (before["requests"] if before else 0)
    paid_usd = (bill["cost_usd"] if bill else 0) - (before["cost_usd"] if before else 0)
    if paid_calls == 0:
        print(f"this run paid nothing: all {len(rows)} answers came from the label cache ({out}/var/label-cache.sqlite)")
    else:
        print(f"this run paid {paid_calls} calls, ${paid_usd:.4f} (the quote's sample included)")
    if bill is None:
        print(f"labelling bill: the ledger {ledger} has no rows (it was removed after the answers were paid); "
              f"delete {out} to label from scratch")
    else:
        print(f"labelling bill{' (what earlier runs paid)' if paid_calls == 0 else ''}: {bill['requests']} requests, "
              f"{bill['input_tokens'] + bill['cached_input_tokens']} input and {bill['output_tokens']} output tokens, "
              f"${bill['cost_usd']:.4f} (ledger: {ledger}; retort usage --config {config})")


if __name__ == "__main__":
    main()
