#!/usr/bin/env bash
# Issue-10 figures: what access control costs on the hot path. Two runtimes from
# the same binary, one asking for a Bearer token and one started with --no-auth,
# serve the same script route; wrk measures them in turns (ROUNDS, default 3, of
# DUR seconds each, CONN connections), so that both see the same machine; on a
# shared, loaded machine the supervisor's CPU time per request (from /proc) is
# the steadier figure. Then LOGINS logins (Argon2id) one after the other, as
# the client sees them.
# Usage: bench/auth.sh [path/to/vwed-edge] (default: a release build made here).
# Needs wrk (Debian package).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/runtime.sh
bench_binary "${1:-}"
DUR=${DUR:-10}
ROUNDS=${ROUNDS:-3}
CONN=${CONN:-64}
LOGINS=${LOGINS:-10}
PORT=${PORT:-18785}
TOKEN_PORT=$PORT
OPEN_PORT=$((PORT + 1))
T=$(mktemp -d)
O=$(mktemp -d)
trap 'kill -9 $TOKEN_SUP $OPEN_SUP 2>/dev/null || true; rm -rf "$T" "$O"' EXIT
VWED_SAMPLE_PROJECT=false "$BIN" serve --listen 127.0.0.1:$TOKEN_PORT --data-dir "$T" >"$T/log" 2>&1 &
TOKEN_SUP=$!
VWED_SAMPLE_PROJECT=false "$BIN" serve --no-auth --listen 127.0.0.1:$OPEN_PORT --data-dir "$O" >"$O/log" 2>&1 &
OPEN_SUP=$!
# The trap ends both; bash need not report them.
disown $TOKEN_SUP $OPEN_SUP
for port in $TOKEN_PORT $OPEN_PORT; do
  for _ in $(seq 100); do curl -sf localhost:$port/health >/dev/null && break; sleep 0.05; done
done
AUTH="Authorization: Bearer $(cat "$T/admin.token")"

# The same script on both (the --no-auth runtime ignores the header).
deploy() {
  local base=http://127.0.0.1:$1
  curl -sf -H "$AUTH" --json '{"project_name":"bench"}' $base/api/script/projects >/dev/null
  python3 -c '
import json, sys
src = "def boot():\n    @VWED.api.get(\"/hello\")\n    def hello(request_data):\n        return {\"message\": \"Hello, \" + request_data[\"query_params\"].get(\"name\", \"World\")}\n"
print(json.dumps({"project_id": 1, "file_name": "hello.py", "content": src}))' |
    curl -sf -H "$AUTH" --json @- $base/api/script/files >/dev/null
  curl -sf -H "$AUTH" --json '{"script_path":"bench/hello.py"}' $base/api/script/scripts/start >/dev/null
}
deploy $TOKEN_PORT
deploy $OPEN_PORT

# CPU ticks (user + system) of a process so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# One wrk run against a supervisor; its CPU ticks during the run go to <out>.cpu.
run() {
  local sup=$1 port=$2 out=$3
  shift 3
  local before
  before=$(ticks "$sup")
  wrk -t2 -c"$CONN" -d"${DUR}s" --latency "$@" "http://127.0.0.1:$port/script-api/hello?name=x" | tee "$out"
  echo $(($(ticks "$sup") - before)) >"$out.cpu"
}
for r in $(seq "$ROUNDS"); do
  echo "== round $r: Bearer token"
  run $TOKEN_SUP $TOKEN_PORT "$T/wrk.$r" -H "$AUTH"
  echo "== round $r: --no-auth"
  run $OPEN_SUP $OPEN_PORT "$O/wrk.$r"
done
# Anything but 2xx would make the figures meaningless.
if grep -q "Non-2xx" "$T"/wrk.* "$O"/wrk.*; then
  echo "non-2xx answers during the run" >&2
  exit 1
fi

PW=$(cat "$T/initial-admin-password")
for _ in $(seq "$LOGINS"); do
  curl -s -o /dev/null -w '%{time_total}\n' --json "{\"username\":\"admin\",\"password\":\"$PW\"}" \
    http://127.0.0.1:$TOKEN_PORT/api/auth/login
done >"$T/logins"

python3 - "$T" "$O" "$ROUNDS" "$(getconf CLK_TCK)" <<'PY'
import re, statistics, sys
tok, opn, rounds, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
def figures(d):
    rps, p99, cpu = [], [], []
    for r in range(1, rounds + 1):
        text = open(f"{d}/wrk.{r}").read()
        rps.append(float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)))
        v, u = re.search(r"99%\s+([\d.]+)(us|ms|s)", text).groups()
        p99.append(float(v) * unit[u])
        n = int(re.search(r"(\d+) requests in", text).group(1))
        cpu.append(int(open(f"{d}/wrk.{r}.cpu").read()) / hz / n * 1e6)
    return statistics.median(rps), statistics.median(p99), statistics.median(cpu)
t_rps, t_p99, t_cpu = figures(tok)
o_rps, o_p99, o_cpu = figures(opn)
logins = sorted(float(x) * 1000 for x in open(f"{tok}/logins") if x.strip())
print()
print("| figure | Bearer token | --no-auth | token / no-auth |")
print("|---|---|---|---|")
print(f"| script route throughput (median of {rounds}) | {t_rps:.0f} req/s | {o_rps:.0f} req/s | {t_rps / o_rps * 100:.1f} % |")
print(f"| script route p99 (median of {rounds}) | {t_p99:.2f} ms | {o_p99:.2f} ms | {t_p99 / o_p99 * 100:.1f} % |")
print(f"| supervisor CPU per request (median of {rounds}) | {t_cpu:.1f} us | {o_cpu:.1f} us | {t_cpu / o_cpu * 100:.1f} % |")
print()
print(f"| login (Argon2id), {len(logins)} in a row | median {statistics.median(logins):.0f} ms | min {logins[0]:.0f} ms | max {logins[-1]:.0f} ms |")
PY
