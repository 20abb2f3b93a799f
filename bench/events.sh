#!/usr/bin/env bash
# Event figures of BENCHMARKS.md. Usage: bench/events.sh [path/to/vwed-edge] [burst N] [rate/s]
# The listener queue is sized to hold the whole burst (QUEUE, default 1,048,576), so the
# throughput is measured without drops; with the default 1024 the excess is dropped
# and counted, as the output's "dropped" shows.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-18775}
. bench/runtime.sh
# Event figures: no credentials asked (loopback only); bench/auth.sh measures their cost.
start_runtime "${1:-}" VWED_EVENT_QUEUE_LEN=${QUEUE:-1048576} VWED_NO_AUTH=true
python3 bench/events.py "http://127.0.0.1:$PORT" "${2:-200000}" "${3:-50000}"
