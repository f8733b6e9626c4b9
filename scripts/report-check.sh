#!/usr/bin/env bash
# Renders a run's report.html to PNG with headless Chromium at 1280×800, as a person would see it.
# Usage: scripts/report-check.sh [RUN_DIR] [OUT.png]   (default: the demo's latest run)
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-results/shop-support/latest}
out=${2:-results/report-check.png}
[ -f "$run/report.html" ] || { echo "report-check: error: no $run/report.html; run make demo first or pass a run folder" >&2; exit 66; }
if ! command -v chromium >/dev/null 2>&1; then
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    echo "installing chromium with apt-get" >&2
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium; } >/dev/null 2>&1 \
        || { echo "report-check: error: could not install chromium with apt-get (no network or no root?); install it and run again" >&2; exit 1; }
fi
mkdir -p "$(dirname "$out")"
rm -f "$out"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,800 \
    --screenshot="$(realpath -m "$out")" "file://$(realpath "$run")/report.html" 2>/dev/null \
    || { echo "report-check: error: chromium could not render $run/report.html" >&2; exit 1; }
[ -s "$out" ] || { echo "report-check: error: chromium wrote no $out" >&2; exit 1; }
echo "wrote $out"
