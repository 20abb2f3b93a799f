#!/usr/bin/env bash
# Event figures of BENCHMARKS.md. Usage: bench/events.sh [path/to/vwed-edge] [burst N] [rate/s]
# The listener queue is sized to hold the whole burst (QUEUE, default 1,048,576), so the
# throughput is measured without drops; with the default 1024 the excess is dropped
# and counted, as the output's "dropped" shows.
source "$(dirname "$0")/lib.sh"
PORT=${PORT:-18775}
DATA=$(mktemp -d)
trap 'kill -9 $SUP 2>/dev/null || true; rm -rf "$DATA"' EXIT
# Event figures: no credentials asked (loopback only).
VWED_SAMPLE_PROJECT=false VWED_EVENT_QUEUE_LEN=${QUEUE:-1048576} "$BIN" serve --no-auth --listen 127.0.0.1:$PORT --data-dir "$DATA" >"$DATA/log" 2>&1 &
SUP=$!
for _ in $(seq 100); do curl -sf localhost:$PORT/health >/dev/null && break; sleep 0.05; done
python3 bench/events.py "http://127.0.0.1:$PORT" "${2:-200000}" "${3:-50000}"
