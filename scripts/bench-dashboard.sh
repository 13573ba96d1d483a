#!/usr/bin/env bash
# The dashboard load benchmark: the release server in the embedded default with 200
# simulated sensors at 10 readings/s each, the overview open in Chromium for N minutes
# (default 10). Prints long tasks, frame times and JS heap as one JSON line
# (DASHBOARD_BENCH {...}). Usage: scripts/bench-dashboard.sh [minutes]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/setup.sh"
export PATH="$HOME/.cargo/bin:$PATH"
MINUTES=${1:-10}
cargo leptos build --release
DATA=$(mktemp -d)
THERMO_DATA_DIR=$DATA THERMO_SIM_SENSORS=200 THERMO_SIM_RATE=10 \
  LEPTOS_SITE_ADDR=127.0.0.1:3300 LEPTOS_SITE_ROOT=target/site LEPTOS_OUTPUT_NAME=thermoalert \
  target/release/thermoalert serve >"$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 60); do
  curl -fs http://127.0.0.1:3300/healthz >/dev/null && break
  sleep 1
done
cd end2end
THERMO_BENCH_MINUTES=$MINUTES npx playwright test --config perf.config.ts --reporter=list
