#!/usr/bin/env python3
"""`make gateway-check`: the gateway driven by real clients, as a person would use it.

Starts `retort gateway fake-provider` (loopback OpenAI and Anthropic wire formats with scripted faults) and
`retort gateway serve`, then checks with the official OpenAI Python SDK (in .build-bench/venv): a plain answer with
logprobs, a stream with usage, an Anthropic-backed route (logprobs null), failover, errors (bad key, unknown route,
budget), the session breaker and its confirmation; SIGHUP reload; kill -9 under load (every 200 the clients received
has its ledger row); SIGTERM draining a request in flight; `retort usage`; and renders /dashboard with headless
Chromium to results/gateway-check/dashboard.png.

Usage: scripts/gateway_check.py [RETORT_BINARY]   (run inside .build-bench/venv's python by the Makefile)
"""
import concurrent.futures
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

import scriptkit

try:
    import openai
except ImportError:
    scriptkit.fail("the openai package is missing here: run `make gateway-check`, which installs it into .build-bench/venv")

retort = scriptkit.require_binary(sys.argv[1] if len(sys.argv) > 1 else ".build/release/retort")
out = os.path.abspath("results/gateway-check")
os.makedirs(out, exist_ok=True)
ledger = os.path.join(out, "gateway.sqlite")
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(ledger + suffix):
        os.remove(ledger + suffix)

TOKEN, ADMIN = "rk-check-user", "rk-check-admin"
failures = []


def check(condition, what):
    print(("  ok   " if condition else "  FAIL ") + what)
    if not condition:
        failures.append(what)


def sha(token):
    return hashlib.sha256(token.encode()).hexdigest()


def start(args, pattern="listening on http://127.0.0.1:"):
    process = scriptkit.stop_at_exit(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    line = process.stdout.readline()
    if pattern not in line:
        process.kill()
        said = (line + process.stderr.read()).strip().splitlines()
        scriptkit.fail(f"could not start `{' '.join(args[1:])}`: {said[-1] if said else 'no output'}")
    port = int(line.split("127.0.0.1:")[1].split()[0].strip("()"))
    return process, port


provider, provider_port = start([retort, "gateway", "fake-provider", "--port", "0", "--latency-ms", "20"])
price = "price: {input_per_mtok: 10, cached_input_per_mtok: 1, output_per_mtok: 40}"
config_text = f"""
listen: 127.0.0.1:0
ledger: gateway.sqlite
keys:
  - {{sha256: {sha(TOKEN)}, user: ana, team: search, budgets: {{usd_per_day: 5}}}}
  - {{sha256: {sha(ADMIN)}, user: root, team: ops, admin: true}}
  - {{sha256: {sha("rk-poor")}, user: bo, team: search, budgets: {{usd_per_day: 0.001}}}}
providers:
  openai-like: {{kind: openai, base_url: "http://127.0.0.1:{provider_port}/v1", api_key_env: CHECK_OPENAI_KEY}}
  anthropic-like: {{kind: anthropic, base_url: "http://127.0.0.1:{provider_port}", api_key_env: CHECK_ANTHROPIC_KEY}}
routes:
  teacher:
    deployments:
      - {{provider: openai-like, model: ok, {price}}}
  claude:
    deployments:
      - {{provider: anthropic-like, model: claude-check, {price}}}
  flaky:
    deployments:
      - {{provider: openai-like, model: gone, {price}}}
      - {{provider: anthropic-like, model: claude-check, {price}}}
  slow:
    deployments:
      - {{provider: openai-like, model: slow, timeout_s: 10, {price}}}
  labeller:
    deployments:
      - {{provider: openai-like, model: intent-check, {price}}}
  inbox:
    capture: inbox-intents
    deployments:
      - {{provider: openai-like, model: intent-inbox, {price}}}
retry: {{attempts: 2, backoff_ms: 20, max_backoff_ms: 500}}
session: {{idle_gap: 30m, max_duration: 10h, max_usd: 0.05}}
"""
config_path = os.path.join(out, "gateway.yaml")
with open(config_path, "w") as handle:
    handle.write(config_text)
environment = dict(os.environ, CHECK_OPENAI_KEY="sk-never-logged", CHECK_ANTHROPIC_KEY="sk-ant-never-logged")
gateway_args = [retort, "gateway", "serve", "--config", config_path]


def start_gateway():
    process = scriptkit.stop_at_exit(
        subprocess.Popen(gateway_args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment))
    line = process.stdout.readline()
    if "listening" not in line:
        process.kill()
        said = (line + process.stderr.read()).strip().splitlines()
        scriptkit.fail(f"the gateway did not start: {said[-1] if said else 'no output'}")
    return process, int(line.split("127.0.0.1:")[1].split()[0])


gateway, port = start_gateway()
base = f"http://127.0.0.1:{port}/v1"
client = openai.OpenAI(base_url=base, api_key=TOKEN, max_retries=0, default_headers={"x-retort-session": "check-main"})
messages = [{"role": "system", "content": "Answer with one label."}, {"role": "user", "content": "where is my refund?"}]

print("OpenAI SDK against the gateway:")
raw = client.chat.completions.with_raw_response.create(model="teacher", messages=messages, logprobs=True, top_logprobs=2, max_tokens=8)
answer = raw.parse()
check(answer.choices[0].message.content == "refund_request", "plain answer")
check(answer.choices[0].logprobs is not None and len(answer.choices[0].logprobs.content[0].top_logprobs) == 2, "logprobs pass through")
check(raw.headers.get("x-retort-served-model") == "ok" and raw.headers.get("x-retort-attempts") == "1", "served-model and attempts headers")
check(answer.usage.prompt_tokens == 120 and answer.usage.prompt_tokens_details.cached_tokens == 100, "usage as the upstream sent it")

chunks = list(client.chat.completions.create(model="teacher", messages=messages, stream=True, stream_options={"include_usage": True}, max_tokens=8))
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
check(text == "refund_request", "streamed answer")
check(chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 150, "stream usage chunk when asked")
plain_stream = list(client.chat.completions.create(model="teacher", messages=messages, stream=True, max_tokens=8))
check(all(c.usage is None for c in plain_stream), "no usage chunk when not asked")

claude = client.chat.completions.create(model="claude", messages=messages, logprobs=True, max_tokens=8)
check(claude.choices[0].message.content == "refund_request" and claude.choices[0].logprobs is None, "Anthropic route: logprobs null, not invented")
claude_stream = list(client.chat.completions.create(model="claude", messages=messages, stream=True, max_tokens=8))
check("".join(c.choices[0].delta.content or "" for c in claude_stream if c.choices) == "refund_request", "Anthropic stream translated")

flaky = client.chat.completions.with_raw_response.create(model="flaky", messages=messages, max_tokens=8)
check(flaky.headers.get("x-retort-deployment") == "anthropic-like/claude-check" and flaky.headers.get("x-retort-attempts") == "2", "retired model fails over (404 → next)")

try:
    openai.OpenAI(base_url=base, api_key="rk-wrong", max_retries=0).chat.completions.create(model="teacher", messages=messages)
    check(False, "bad key refused")
except openai.AuthenticationError as error:
    check(error.status_code == 401 and error.code == "invalid_api_key", "bad key → 401 invalid_api_key")
try:
    client.chat.completions.create(model="no-such-route", messages=messages)
    check(False, "unknown route refused")
except openai.NotFoundError as error:
    check(error.code == "model_not_found", "unknown route → 404 model_not_found")
try:
    openai.OpenAI(base_url=base, api_key="rk-poor", max_retries=0).chat.completions.create(model="teacher", messages=messages, max_tokens=1000)
    check(False, "budget enforced")
except openai.RateLimitError as error:
    check(error.code == "budget_exceeded" and error.body.get("limit_usd") == 0.001, "budget → 429 budget_exceeded with figures")
models = client.models.list()
check(sorted(m.id for m in models.data) == ["claude", "flaky", "inbox", "labeller", "slow", "teacher"], "GET /v1/models")

print("Session breaker:")
session = {"x-retort-session": "check-job"}
statuses = []
tripped = None
for _ in range(40):
    try:
        client.chat.completions.create(model="teacher", messages=messages, max_tokens=8, extra_headers=session)
        statuses.append(200)
    except openai.APIStatusError as error:
        statuses.append(error.status_code)
        tripped = error
        break
# Each answer costs $0.0015: the 34th pushes the session past $0.05, so the 35th is stopped.
check(statuses.count(200) == 34 and tripped is not None and tripped.code == "confirmation_required", f"trips past $0.05 after {statuses.count(200)} answers")
check(tripped is not None and abs(tripped.body.get("spend_usd", 0) - 0.051) < 1e-9 and tripped.body.get("tokens") == 5100, "409 carries spend and tokens")
subprocess.run([retort, "gateway", "confirm", "check-job", "--config", config_path], check=True, capture_output=True)
client.chat.completions.create(model="teacher", messages=messages, max_tokens=8, extra_headers=session)
check(True, "runs again after `retort gateway confirm`")

print("Operations:")
with open(config_path, "a") as handle:
    handle.write("  # reload marker\n")
with open(config_path) as handle:
    reloaded = handle.read().replace("  slow:\n", f"  added:\n    deployments:\n      - {{provider: openai-like, model: ok, {price}}}\n  slow:\n")
with open(config_path, "w") as handle:
    handle.write(reloaded)
gateway.send_signal(signal.SIGHUP)
time.sleep(0.5)
check("added" in [m.id for m in client.models.list().data], "SIGHUP reloads the config")

# SIGTERM drains: a request in flight (1.5 s upstream) still completes.
result = {}


def slow_call():
    try:
        result["answer"] = client.chat.completions.create(model="slow", messages=messages, max_tokens=8).choices[0].message.content
    except Exception as error:  # noqa: BLE001 - reported below
        result["error"] = repr(error)


thread = threading.Thread(target=slow_call)
thread.start()
time.sleep(0.3)
gateway.send_signal(signal.SIGTERM)
thread.join()
code = gateway.wait(timeout=15)
check(result.get("answer") == "refund_request" and code == 0, f"SIGTERM drains the request in flight, exit {code} ({result})")
stderr = gateway.stderr.read()
check("sk-never-logged" not in stderr and "sk-ant-never-logged" not in stderr, "secrets never logged")

print("kill -9 under load:")
gateway, port = start_gateway()
base = f"http://127.0.0.1:{port}/v1"
received = []
stop = threading.Event()
lock = threading.Lock()


def hammer():
    local = openai.OpenAI(base_url=base, api_key=ADMIN, max_retries=0, timeout=5)
    while not stop.is_set():
        try:
            raw = local.chat.completions.with_raw_response.create(
                model="teacher", messages=messages, max_tokens=8, extra_headers={"x-retort-session": os.urandom(8).hex()}
            )
            raw.parse()
            with lock:
                received.append(raw.headers.get("x-retort-session"))
        except Exception:  # noqa: BLE001 - connection refused after the kill
            pass


with sqlite3.connect(ledger) as db:
    before = db.execute("SELECT COUNT(*) FROM requests WHERE status = 200").fetchone()[0]
threads = [threading.Thread(target=hammer) for _ in range(16)]
for worker in threads:
    worker.start()
time.sleep(2.0)
gateway.send_signal(signal.SIGKILL)
gateway.wait()
stop.set()
for worker in threads:
    worker.join()
with sqlite3.connect(ledger) as db:
    rows = db.execute("SELECT COUNT(*) FROM requests WHERE status = 200").fetchone()[0] - before
check(len(received) > 50 and rows >= len(received), f"every answer received has its row: {len(received)} answers received, {rows} rows")

print("retort label: kill -9 and resume:")
label_inputs = os.path.join(out, "label-inputs.jsonl")
with open(label_inputs, "w") as handle:
    for index in range(400):
        handle.write(json.dumps({"id": f"l-{index}", "input": ["where is my order", "refund please", "cancel it"][index % 3] + f" #{index}"}) + "\n")
with open(os.path.join(out, "label-prompt.yaml"), "w") as handle:
    handle.write('user: "Labels: {{labels}}\\nMessage: {{input}}\\nLabel:"\nlabels: [order_status, refund_request, cancel_order]\ntop_logprobs: 3\n')
cache = os.path.join(out, "var", "label-cache.sqlite")
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(cache + suffix):
        os.remove(cache + suffix)
label_args = [retort, "label", label_inputs, "--config", config_path, "--route", "labeller", "--prompt",
              os.path.join(out, "label-prompt.yaml"), "--out", os.path.join(out, "labelled.jsonl"), "--concurrency", "4"]
labelling = subprocess.Popen(label_args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
time.sleep(1.2)
labelling.send_signal(signal.SIGKILL)
labelling.wait()
with sqlite3.connect(ledger) as db:
    paid_before = db.execute("SELECT COUNT(*) FROM requests WHERE route = 'labeller'").fetchone()[0]
resumed = subprocess.run(label_args, check=True, capture_output=True, text=True).stdout
paid_again = int(resumed.split("bill: ")[1].split(" paid calls")[0])
with sqlite3.connect(ledger) as db:
    paid_total = db.execute("SELECT COUNT(*) FROM requests WHERE route = 'labeller'").fetchone()[0]
with open(os.path.join(out, "labelled.jsonl")) as handle:
    labelled = sum(1 for _ in handle)
check(0 < paid_before < 400, f"killed mid-run after {paid_before} paid answers")
check(labelled == 400 and paid_before + paid_again == paid_total and paid_total <= 404,
      f"resumed: {paid_again} more paid calls, {paid_total} in the ledger for 400 rows (at most the 4 in flight paid twice)")

gateway, port = start_gateway()
print("Capture → export → search:")
capture_client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=ADMIN, max_retries=0)
phrases = {"order_status": "where is my order, what is the status", "refund_request": "I want a refund, here is my request",
           "cancel_order": "please cancel the order", "shipping_address": "change the shipping address"}


def send(index):
    label = list(phrases)[index % 4]
    capture_client.chat.completions.create(
        model="inbox", logprobs=True, top_logprobs=4, max_tokens=8,
        messages=[{"role": "user", "content": f"Labels: {', '.join(phrases)}\nMessage: {phrases[label]} (ticket {index})"}],
        extra_headers={"x-retort-session": f"inbox-{index}"})


with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(send, range(400)))
labels_path = os.path.join(out, "inbox-labels.txt")
with open(labels_path, "w") as handle:
    handle.write("\n".join(phrases) + "\n")
exported = subprocess.run([retort, "capture", "export", "--config", config_path, "--task", "inbox-intents", "--labels", labels_path,
                           "--out", os.path.join(out, "inbox-task")], capture_output=True, text=True)
check(exported.returncode == 0 and "from 400 captured requests" in exported.stdout, f"capture export: {exported.stdout.strip() or exported.stderr.strip()}")
searched = subprocess.run([retort, "search", "--task", os.path.join(out, "inbox-task"), "--no-history", "--candidates",
                           "examples/shop-support/candidates.yaml", "--out", os.path.join(out, "inbox-runs")], capture_output=True, text=True)
check(searched.returncode == 0 and "Recommendation:" in searched.stdout, "retort search --task on the exported folder")
print("Usage and dashboard:")
usage = json.loads(subprocess.run([retort, "usage", "--config", config_path, "--by", "route", "--json"], check=True, capture_output=True, text=True).stdout)
routes = {group["group"]: group for group in usage}
check(routes["teacher"]["requests"] >= 8 and routes["flaky"]["failovers"] == 1, "retort usage --by route --json")
print(subprocess.run([retort, "usage", "--config", config_path, "--by", "user"], check=True, capture_output=True, text=True).stdout)
with urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard?key={ADMIN}") as response:
    html = response.read().decode()
check(all(ref not in html for ref in ('src="http', 'href="http', "url(http", "@import")), "dashboard has no network references")
png = os.path.join(out, "dashboard.png")
subprocess.run(
    ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,900",
     f"--screenshot={png}", f"http://127.0.0.1:{port}/dashboard?key={ADMIN}"],
    check=True, capture_output=True,
)
check(os.path.getsize(png) > 10_000, f"dashboard rendered to {png}")
gateway.terminate()
provider.terminate()
gateway.wait()
print(f"{len(failures)} failures" if failures else "gateway-check: all checks passed")
sys.exit(1 if failures else 0)
