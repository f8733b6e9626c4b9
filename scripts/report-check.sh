#!/usr/bin/env bash
# Renders a run's report.html to PNG with headless Chromium at 1280×800, as a person would see it.
# Usage: scripts/report-check.sh [RUN_DIR] [OUT.png]   (default: the demo's latest run)
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-results/shop-support/latest}
out=${2:-results/report-check.png}
[ -f "$run/report.html" ] || { echo "no $run/report.html; run make demo first or pass a run folder" >&2; exit 66; }
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
mkdir -p "$(dirname "$out")"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,800 \
    --screenshot="$(realpath -m "$out")" "file://$(realpath "$run")/report.html" 2>/dev/null
echo "wrote $out"
