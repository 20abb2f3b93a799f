#!/usr/bin/env bash
# Soak figures of BENCHMARKS.md: scripts that log, print, update files and data and
# serve routes under a fixed client load; supervisor RSS, worker RSS, database sizes
# and open descriptors over time, with their slopes.
# Usage: bench/soak.sh [path/to/vwed-edge] [duration s, default 600] [sample s, default 30]
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-18776}
. bench/runtime.sh
# Memory and disk figures: no credentials asked (bench/auth.sh measures their cost).
start_runtime "${1:-}" VWED_NO_AUTH=true
python3 bench/soak.py "http://127.0.0.1:$PORT" "$SUP" "$DATA" "${2:-600}" "${3:-30}"
