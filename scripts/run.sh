#!/usr/bin/env bash
# Installs what is missing, then builds and runs ThermoAlert on http://127.0.0.1:3000.
# With no THERMO_KAFKA_BROKERS / THERMO_HDFS_URL it runs the embedded default: an in-process
# Kafka broker, a built-in simulator, and the archive under THERMO_DATA_DIR (./data).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/setup.sh"
export PATH="$HOME/.cargo/bin:$PATH"
cd "$ROOT"
exec cargo leptos serve --release "$@"
