#!/usr/bin/env python3
"""Three `retort gateway serve` replicas on one PostgreSQL ledger behind HAProxy, driven with the official OpenAI
Python SDK (`make gateway-ha-check`). Everything runs on loopback and stops by itself.

Checks:
  1. budget race: 100 concurrent requests, spread over the replicas by HAProxy, against a team budget that holds 10
     (answers held 4 s by the fake provider): exactly 10 are answered, 90 get 429 budget_exceeded;
  2. a replica killed with -9 under load: the others keep answering, and every answer a client received is in the
     ledger;
  3. PostgreSQL restarted under load: requests that cannot be recorded get 503 ledger_unavailable, traffic recovers by
     itself within seconds, and again every answer is in the ledger.

Usage: gateway_ha_check.py RETORT_BINARY OUT_FOLDER (needs haproxy and the openai package).
"""
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import openai

RETORT = os.path.abspath(sys.argv[1])
OUT = os.path.abspath(sys.argv[2])
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "scripts", "postgres_cluster.sh")
FAILURES = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        FAILURES.append(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, path="/healthz", seconds=60):
    import urllib.request

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except Exception:
            time.sleep(0.2)
    return False


def cluster(*arguments, env):
    return subprocess.run(["bash", CLUSTER, *arguments], env=env, check=True, capture_output=True, text=True).stdout


def main():
    os.makedirs(OUT, exist_ok=True)
    work = tempfile.mkdtemp(prefix="retort-ha-")
    os.chmod(work, 0o755)  # the PostgreSQL server runs as another user and needs to reach its folder inside
    pg_env = dict(os.environ, RETORT_PG_DIR=os.path.join(work, "pg"))
    processes = []
    try:
        url = cluster("up", env=pg_env).strip().splitlines()[-1]
        provider_port = free_port()
        processes.append(subprocess.Popen(
            [RETORT, "gateway", "fake-provider", "--port", str(provider_port), "--latency-ms", "4000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        key = subprocess.run([RETORT, "gateway", "key", "--user", "ana", "--team", "search"], capture_output=True,
                             text=True, check=True).stdout.splitlines()
        token = next(line for line in key if line.startswith("key ")).split()[-1]
        digest = next(line for line in key if "sha256:" in line).split()[-1]
        other = subprocess.run([RETORT, "gateway", "key", "--user", "bo", "--team", "ops"], capture_output=True,
                               text=True, check=True).stdout.splitlines()
        other_token = next(line for line in other if line.startswith("key ")).split()[-1]
        other_digest = next(line for line in other if "sha256:" in line).split()[-1]
        price = "price: {input_per_mtok: 1000, output_per_mtok: 1000}"
        config = os.path.join(work, "gateway.yaml")
        with open(config, "w") as f:
            f.write(f"""ledger: {url}
keys:
  - {{sha256: {digest}, user: ana, team: search}}
  - {{sha256: {other_digest}, user: bo, team: ops}}
teams:
  search: {{budgets: {{usd_per_day: 10}}}}
providers:
  fake: {{kind: openai, base_url: "http://127.0.0.1:{provider_port}/v1"}}
routes:
  held: {{deployments: [{{provider: fake, model: intent-held, timeout_s: 30, {price}}}]}}
  fast: {{deployments: [{{provider: fake, model: ok, timeout_s: 5, {price}}}]}}
retry: {{attempts: 1, backoff_ms: 10, max_backoff_ms: 20}}
""")
        replica_ports = [free_port() for _ in range(3)]
        replicas = []
        for port in replica_ports:
            log = open(os.path.join(OUT, f"replica-{port}.log"), "w")
            replicas.append(subprocess.Popen(
                [RETORT, "gateway", "serve", "--config", config, "--listen", f"127.0.0.1:{port}", "--log-level",
                 "warning"], stdout=log, stderr=log))
        processes += replicas
        for port in replica_ports:
            check(wait_http(port), f"replica on {port} is up")
        proxy_port = free_port()
        haproxy_config = os.path.join(work, "haproxy.cfg")
        with open(haproxy_config, "w") as f:
            f.write(f"""global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 2
    option redispatch
    retry-on conn-failure empty-response
frontend gateway
    bind 127.0.0.1:{proxy_port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /healthz
""" + "".join(f"    server r{i} 127.0.0.1:{port} check inter 500ms fall 1 rise 2\n"
               for i, port in enumerate(replica_ports)))
        processes.append(subprocess.Popen(["haproxy", "-f", haproxy_config], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        time.sleep(1.5)
        base = f"http://127.0.0.1:{proxy_port}/v1"

        # 1. The budget race: each request reserves (100 prompt bytes + 900 max tokens) x $1000/Mtok = $1.
        client = openai.OpenAI(base_url=base, api_key=token, max_retries=0, timeout=60)
        content = "x" * 100

        def held(_):
            try:
                client.chat.completions.create(model="held", messages=[{"role": "user", "content": content}],
                                               max_tokens=900)
                return 200
            except openai.APIStatusError as error:
                return error.status_code
        with concurrent.futures.ThreadPoolExecutor(max_workers=100) as pool:
            statuses = list(pool.map(held, range(100)))
        check(statuses.count(200) == 10 and statuses.count(429) == 90,
              f"budget race over 3 replicas: {statuses.count(200)} answered, {statuses.count(429)} refused (want 10/90)")

        # 2 and 3: steady traffic from 6 clients while a replica is killed, then while PostgreSQL restarts.
        def load(seconds, event_at, event):
            answered, errors, lock = [], [], threading.Lock()
            stop = time.time() + seconds
            fast = openai.OpenAI(base_url=base, api_key=other_token, max_retries=0, timeout=30)

            def worker():
                while time.time() < stop:
                    try:
                        fast.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}],
                                                     max_tokens=5)
                        with lock:
                            answered.append(time.time())
                    except openai.APIStatusError as error:
                        code = (error.body or {}).get("code") if isinstance(error.body, dict) else None
                        with lock:
                            errors.append((time.time(), error.status_code, code))
                    except openai.APIConnectionError:
                        with lock:
                            errors.append((time.time(), 0, "connection"))
            threads = [threading.Thread(target=worker) for _ in range(6)]
            for thread in threads:
                thread.start()
            time.sleep(event_at)
            event_time = time.time()
            event()
            for thread in threads:
                thread.join()
            return answered, errors, event_time

        def ledger_answered():
            usage = subprocess.run([RETORT, "usage", "--config", config, "--by", "user", "--json"],
                                   capture_output=True, text=True, check=True).stdout
            for group in json.loads(usage):
                if group["group"] == "bo":
                    return group["requests"] - group["errors"]
            return 0

        answered, errors, killed_at = load(8, 3, lambda: os.kill(replicas[1].pid, signal.SIGKILL))
        after = [t for t in answered if t > killed_at + 2]
        check(len(after) > 10, f"after kill -9 of one replica the others answered {len(after)} requests")
        recorded = ledger_answered()
        check(recorded >= len(answered) and recorded - len(answered) <= len(errors),
              f"every answer a client received is in the ledger ({len(answered)} received, {recorded} recorded, "
              f"{len(errors)} failed)")

        seen_before = recorded
        answered, errors, restarted_at = load(12, 2, lambda: cluster("restart", env=pg_env))
        unavailable = [e for e in errors if e[1] == 503 and e[2] == "ledger_unavailable"]
        other_errors = [e for e in errors if not (e[1] == 503 and e[2] == "ledger_unavailable")]
        recovered = [t for t in answered if t > restarted_at]
        first = min(recovered) - restarted_at if recovered else None
        check(bool(recovered) and first < 10,
              f"PostgreSQL restart: traffic recovered by itself {first if first is None else round(first, 2)} s after "
              f"the restart returned ({len(unavailable)} answered 503 ledger_unavailable, {len(other_errors)} other "
              f"errors: {sorted(set((e[1], e[2]) for e in other_errors))})")
        recorded = ledger_answered() - seen_before
        check(recorded >= len(answered) and recorded - len(answered) <= len(errors),
              f"every answer through the restart is in the ledger ({len(answered)} received, {recorded} recorded)")
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        try:
            cluster("down", env=pg_env)
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(work, ignore_errors=True)
    print(f"gateway-ha-check: {len(FAILURES)} failed" if FAILURES else "gateway-ha-check: all checks passed")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
