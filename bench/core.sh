#!/usr/bin/env bash
# Issue-2 figures: script route throughput/latency (wrk, 64 connections, loopback),
# execute-function round trip, start time of a script with 3 registrations, idle RSS
# of the supervisor and of one worker. Usage: bench/core.sh [path/to/vwed-edge]
# (default: a release build made here). Needs wrk (Debian package).
# Settings pass through the environment: VWED_SANDBOX__ENABLED=false bench/core.sh
# measures the same without the script sandbox (Landlock, seccomp).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-18765}
DUR=${DUR:-10}
. bench/runtime.sh
start_runtime "${1:-}"
base=http://127.0.0.1:$PORT
# Every request carries the admin token the first start wrote (a runtime from
# before access control, or one run with VWED_NO_AUTH=true, ignores it).
AUTH="Authorization: Bearer $(cat "$DATA/admin.token" 2>/dev/null || echo none)"
curl -s -H "$AUTH" --json '{"project_name":"bench"}' $base/api/script/projects >/dev/null
python3 - "$base" "$AUTH" <<'PY'
import json, sys, urllib.request
src = '''def boot():
    @VWED.api.get("/hello")
    def hello(request_data):
        name = request_data["query_params"].get("name", "World")
        return {"message": f"Hello, {name}!"}

    @VWED.function.register("add")
    def add(args):
        return args["a"] + args["b"]

    @VWED.api.post("/echo")
    def echo(request_data):
        return request_data["body"]
'''
req = urllib.request.Request(sys.argv[1] + "/api/script/files", method="POST",
    data=json.dumps({"project_id": 1, "file_name": "hello.py", "content": src}).encode(),
    headers={"Content-Type": "application/json", "Authorization": sys.argv[2].split(": ", 1)[1]})
assert json.load(urllib.request.urlopen(req))["success"]
PY
rss_kb() { awk '/VmRSS/ {print $2}' /proc/$1/status; }
pss_kb() { awk '/^Pss:/ {print $2}' /proc/$1/smaps_rollup; }
sup_idle=$(rss_kb $SUP)
# Start time: best of 5 start/stop cycles, as the client sees it.
best=999
for _ in 1 2 3 4 5; do
  t=$(curl -s -H "$AUTH" -o "$DATA/start.json" -w '%{time_total}' --json '{"script_path":"bench/hello.py"}' $base/api/script/scripts/start)
  sid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["script_id"])' "$DATA/start.json")
  best=$(python3 -c "print(min($best, $t))")
  curl -s -H "$AUTH" -X POST $base/api/script/scripts/$sid/stop >/dev/null
done
curl -s -H "$AUTH" -o "$DATA/start.json" --json '{"script_path":"bench/hello.py"}' $base/api/script/scripts/start
WPID=$(curl -s -H "$AUTH" $base/api/script/scripts/running | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["pid"])')
sleep 0.5
w_rss=$(rss_kb $WPID); w_pss=$(pss_kb $WPID)
echo "== route: GET /script-api/hello?name=x, 64 connections, ${DUR}s"
wrk -t2 -c64 -d${DUR}s --latency -H "$AUTH" "$base/script-api/hello?name=x" | tee "$DATA/route.txt"
cat > "$DATA/exec.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"function_name":"add","function_args":{"a":1,"b":2}}'
wrk.headers["Content-Type"] = "application/json"
LUA
echo "== execute-function round trip, 1 connection (unloaded latency), ${DUR}s"
wrk -t1 -c1 -d${DUR}s --latency -H "$AUTH" -s "$DATA/exec.lua" "$base/api/script/scripts/execute-function" | tee "$DATA/exec.txt"
sup_after=$(rss_kb $SUP)
echo
echo "| figure | value |"
echo "|---|---|"
echo "| sandbox of the worker | $(curl -s -H "$AUTH" $base/api/script/scripts/running | python3 -c 'import json,sys; s=json.load(sys.stdin)["data"][0]["sandbox"]; print(s.get("filesystem"), "/", s.get("processes"), "/ complete:", s.get("complete"))') |"
echo "| route throughput | $(awk '/Requests\/sec/ {print $2}' "$DATA/route.txt") req/s |"
echo "| route latency p50 / p99 | $(awk '$1=="50%" {print $2}' "$DATA/route.txt") / $(awk '$1=="99%" {print $2}' "$DATA/route.txt") |"
echo "| execute-function round trip p50 / p99 | $(awk '$1=="50%" {print $2}' "$DATA/exec.txt") / $(awk '$1=="99%" {print $2}' "$DATA/exec.txt") |"
echo "| start of a script with 3 registrations (best of 5, client side) | $(python3 -c "print(round($best*1000,1))") ms |"
echo "| supervisor RSS, idle (before any script) | $((sup_idle/1024)) MB ($sup_idle kB) |"
echo "| supervisor RSS after the load | $((sup_after/1024)) MB ($sup_after kB) |"
echo "| worker RSS / PSS, idle | $((w_rss/1024)) MB / $((w_pss/1024)) MB ($w_rss kB / $w_pss kB) |"
