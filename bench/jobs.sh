#!/usr/bin/env bash
# Job figures of BENCHMARKS.md. Usage: bench/jobs.sh [path/to/vwed-edge] [executions N] [cron seconds]
# Overhead (API call -> the job's first line; its last line -> `succeeded` recorded),
# sustained executions per second of a trivial job, and cron jitter.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-}
if [ -z "$BIN" ]; then
  cargo build --release -q -p vwed-edge
  BIN=target/release/vwed-edge
fi
PORT=${PORT:-$((20000 + RANDOM % 20000))}
DATA=$(mktemp -d)
trap 'kill -9 $SUP 2>/dev/null || true; rm -rf "$DATA"' EXIT
VWED_SAMPLE_PROJECT=false VWED_JOB_QUEUE_LEN=100000 VWED_JOB_HISTORY_MAX=100000 \
  "$BIN" serve --no-auth --listen 127.0.0.1:$PORT --data-dir "$DATA" >"$DATA/log" 2>&1 &
SUP=$!
for _ in $(seq 100); do curl -sf localhost:$PORT/health >/dev/null && break; sleep 0.05; done
python3 bench/jobs.py "http://127.0.0.1:$PORT" "${2:-500}" "${3:-60}"
