"""Jobs: execution overhead, sustained throughput, cron jitter.

- overhead: the job prints time.time_ns() (Python) or `date +%s%N` (Bash) as its
  first and last line; "start" is its first line minus the moment the execute
  request was sent, "record" is the execution's finished_at_ms minus its last line.
  One execution at a time, so nothing queues.
- throughput: N executions of a trivial job queued at once (job_max_concurrent
  10); executions per second from the first request to the last finished_at_ms.
- cron: a job every second for S seconds; started_at_ms - scheduled_ms.

Both clocks are this machine's CLOCK_REALTIME.

Usage: python3 bench/jobs.py http://127.0.0.1:PORT [N] [cron seconds]
"""

import sys
import time

import api

BASE = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 500
CRON_S = int(sys.argv[3]) if len(sys.argv) > 3 else 60
ROUNDS = 50
FINAL = {"succeeded", "failed", "timeout", "cancelled", "interrupted"}


def call(method, path, body=None):
    return api.call(BASE, method, path, body)


def create(name, language, content, **more):
    r = call("POST", "/api/v1/scripts", {"name": name, "language": language, "content": content, **more})
    assert r["success"], r
    return r["data"]["id"]


def execute(job):
    r = call("POST", f"/api/v1/scripts/{job}/execute", {})
    assert r["success"], r
    return r["data"]["execution_id"]


def wait(exec_id):
    while True:
        d = call("GET", f"/api/v1/scripts/executions/{exec_id}")["data"]
        if d["status"] in FINAL:
            return d
        time.sleep(0.002)


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * len(v))) - 1))]


def show(label, values, unit="ms"):
    print(f"{label:32s} p50 {pct(values, 50):8.1f} {unit}  p99 {pct(values, 99):8.1f} {unit}  max {max(values):8.1f} {unit}  (n={len(values)})")


PY = "import time\nprint(time.time_ns(), flush=True)\nprint(time.time_ns(), flush=True)\n"
SH = "date +%s%N\ndate +%s%N\n"


def overhead(language, content):
    job = create(f"overhead-{language}", language, content)
    start, record = [], []
    for _ in range(ROUNDS):
        t0 = time.time_ns()
        d = wait(execute(job))
        assert d["status"] == "succeeded", d
        first, last = (int(x) for x in d["output"].split())
        start.append((first - t0) / 1e6)
        record.append(d["finished_at_ms"] - last / 1e6)
    show(f"{language}: call -> first line", start)
    show(f"{language}: last line -> recorded", record)


def throughput(language, content):
    job = create(f"trivial-{language}", language, content)
    t0 = time.time()
    ids = [execute(job) for _ in range(N)]
    done = [wait(i) for i in ids]
    assert all(d["status"] == "succeeded" for d in done)
    end = max(d["finished_at_ms"] for d in done) / 1000
    print(f"{language}: {N} executions, {N / (end - t0):.1f} per second sustained (10 at once)")


def cron():
    job = create("every-second", "bash", "true\n", status="active",
                 triggers={"cron": {"expression": "* * * * * *"}})
    time.sleep(CRON_S)
    call("PUT", f"/api/v1/scripts/{job}", {"status": "disabled"})
    items = call("GET", f"/api/v1/scripts/{job}/executions?limit=1000")["data"]["items"]
    lag = [d["started_at_ms"] - d["trigger"]["scheduled_ms"] for d in items if d.get("started_at_ms")]
    show("cron: started - scheduled", lag)


overhead("python", PY)
overhead("bash", SH)
throughput("bash", "true\n")
throughput("python", "pass\n")
cron()
