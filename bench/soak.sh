#!/usr/bin/env bash
# Soak figures of BENCHMARKS.md: scripts that log, print, update files and data and
# serve routes under a fixed client load; supervisor RSS, worker RSS, database sizes
# and open descriptors over time, with their slopes.
# Usage: bench/soak.sh [path/to/vwed-edge] [duration s, default 600] [sample s, default 30]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-}
if [ -z "$BIN" ]; then
  cargo build --release -q -p vwed-edge
  BIN=target/release/vwed-edge
fi
PORT=${PORT:-18776}
DATA=$(mktemp -d)
trap 'kill $SUP 2>/dev/null || true; sleep 1; kill -9 $SUP 2>/dev/null || true; rm -rf "$DATA"' EXIT
VWED_SAMPLE_PROJECT=false "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" >"$DATA/log" 2>&1 &
SUP=$!
for _ in $(seq 100); do curl -sf localhost:$PORT/health >/dev/null && break; sleep 0.05; done
python3 bench/soak.py "http://127.0.0.1:$PORT" "$SUP" "$DATA" "${2:-600}" "${3:-30}"
