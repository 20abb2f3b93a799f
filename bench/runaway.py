"""Issue 13 figure: a healthy script's route latency alone and next to each runaway
script (busy loop, endless sleep, memory bomb, fork bomb, segfault, 200 MB of
output, deep recursion, a spinning thread), with the default supervision
settings but a 128 MB worker memory limit.

The healthy route gets a paced load (CONNS keep-alive connections, each in its
own process, spread over the period, each sending a request every PERIOD_MS),
so that the p99 measures how long one request waits, not how a saturated machine
queues. Each offender is started fresh and fired at the start of its window (the
memory, fork, segfault, output and recursion ones again and again), then
stopped. The table says what stopped the offender. The route alone is measured
before each offender; each row is held to the median p99 of those windows.

Usage: python3 bench/runaway.py [path/to/vwed-edge]   (default: a release build
made here). Environment: PORT (18766), DUR seconds per window (10), CONNS (4),
PERIOD_MS (10), ONLY (offenders by name, comma-separated: ONLY="memory bomb").
Settings pass through: VWED_SANDBOX__IDLE_ABOVE_PERCENT=0 ...
"""

import http.client
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = int(os.environ.get("PORT", "18766"))
DUR = float(os.environ.get("DUR", "10"))
CONNS = int(os.environ.get("CONNS", "4"))
PERIOD = float(os.environ.get("PERIOD_MS", "10")) / 1000

HEALTHY = """
def boot():
    @VWED.api.get("/healthy/ping")
    def ping(req):
        return {"pong": True}
"""

# name, route, fired again and again during the window, timeout header (ms)
OFFENDERS = [
    ("busy loop", "/run/spin", False, 1000),
    ("sleep forever", "/run/sleep", False, 1000),
    ("memory bomb", "/run/memory", True, None),
    ("fork bomb", "/run/forkbomb", True, None),
    ("segfault", "/run/segfault", True, None),
    ("200 MB of output", "/run/output", True, None),
    ("deep recursion", "/run/recursion", True, None),
    ("spinning thread", "/run/thread", False, None),
]


def call(method, path, body=None, headers=None, timeout=600):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    data = None if body is None else json.dumps(body).encode()
    h = {"content-type": "application/json", **(headers or {})}
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, {}
    except OSError as e:
        return 0, {"error": str(e)}
    finally:
        c.close()


def one_connection(port, period, first, stop_at, out):
    """One keep-alive connection's latencies (ms; None for a failure), sending
    from `first` on."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    mine = []
    nxt = first
    time.sleep(max(0.0, nxt - time.monotonic()))
    while nxt < stop_at:
        t0 = time.monotonic()
        try:
            c.request("GET", "/script-api/healthy/ping")
            r = c.getresponse()
            r.read()
            ok = r.status == 200
        except OSError:
            ok = False
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine.append((time.monotonic() - t0) * 1000 if ok else None)
        nxt += period
        time.sleep(max(0.0, nxt - time.monotonic()))
    out.put(mine)


def paced_load(seconds):
    """Latencies (ms) of the healthy route; failures count as None. Each
    connection runs in a process of its own: threads of one interpreter would
    queue for its lock, and a thread preempted while holding it would add its
    wait to the others' latencies, more so the busier the machine."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start = time.monotonic() + 0.1
    stop_at = start + seconds
    # Evenly spread over the period, so that the connections do not queue
    # behind each other at the healthy worker.
    procs = [
        ctx.Process(target=one_connection, args=(PORT, PERIOD, start + i * PERIOD / CONNS, stop_at, out))
        for i in range(CONNS)
    ]
    for p in procs:
        p.start()
    lat = [x for _ in procs for x in out.get()]
    for p in procs:
        p.join()
    return lat


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))] if v else float("nan")


def fire(route, again, timeout_ms, until):
    headers = {"x-vwed-timeout-ms": str(timeout_ms)} if timeout_ms else None
    seen = []
    while True:
        status, body = call("GET", "/script-api" + route, headers=headers, timeout=120)
        seen.append((status, body.get("stopped_by")))
        if not again or time.monotonic() > until:
            return seen
        time.sleep(0.2)


def entry(path):
    _, r = call("GET", "/api/script/scripts/running")
    return next((e for e in r.get("data", []) if e["script_path"] == path), None)


def start(path):
    status, r = call("POST", "/api/script/scripts/start", {"script_path": path})
    assert r.get("success"), r
    return r["script_id"]


def window(name, route, again, timeout_ms):
    start("bench/offender.py")
    until = time.monotonic() + DUR
    result = {}
    t = threading.Thread(
        target=lambda: result.update(seen=fire(route, again, timeout_ms, until))
    )
    t.start()
    lat = paced_load(DUR)
    t.join()
    e = entry("bench/offender.py") or {}
    # What the script saw, else why the supervisor ended its worker.
    why = {s for _, s in result.get("seen", []) if s}
    stopped = ", ".join(sorted(why)) or (e.get("last_failure") or {}).get("kind", "")
    statuses = sorted({s for s, _ in result.get("seen", [])})
    # Stopped until it stays stopped (a restart may have been in flight).
    while True:
        x = entry("bench/offender.py")
        if x is None:
            break
        call("POST", f"/api/script/scripts/{x['script_id']}/stop", {})
        time.sleep(1)
    return lat, stopped or "-", statuses, e.get("restarts_total", 0)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else None
    if not binary:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "vwed-edge"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target/release/vwed-edge")
    data = tempfile.mkdtemp(prefix="vwed-runaway-")
    env = {**os.environ, "VWED_SAMPLE_PROJECT": "false", "VWED_WORKER_MEMORY_MB": "128"}
    log = open(os.path.join(data, "log"), "w")
    sup = subprocess.Popen(
        [binary, "serve", "--no-auth", "--listen", f"127.0.0.1:{PORT}", "--data-dir", os.path.join(data, "d")],
        env=env, stdout=log, stderr=log,
    )
    try:
        for _ in range(200):
            if call("GET", "/health", timeout=1)[0] == 200:
                break
            time.sleep(0.05)
        call("POST", "/api/script/projects", {"project_name": "bench"})
        src = open(os.path.join(ROOT, "tests/fixtures/runaway/offenders.py")).read()
        for name, text in (("healthy.py", HEALTHY), ("offender.py", src)):
            s, r = call("POST", "/api/script/files",
                        {"project_id": 1, "file_name": name, "file_path": name, "content": text})
            assert r.get("success"), r
        start("bench/healthy.py")
        paced_load(2)  # warm-up
        # The route alone before each offender: the machine drifts over a run,
        # and one window's p99 is noisy. Each row is held to the median of them.
        alone = []
        rows = []
        only = [o.strip() for o in os.environ.get("ONLY", "").split(",") if o.strip()]
        for name, route, again, timeout_ms in OFFENDERS:
            if only and name not in only:
                continue
            alone.append([x for x in paced_load(DUR) if x is not None])
            lat, stopped, statuses, restarts = window(name, route, again, timeout_ms)
            ok = [x for x in lat if x is not None]
            rows.append((name, ok, len(lat) - len(ok), stopped, statuses, restarts))
        alone_p99 = sorted(pct(a, 99) for a in alone)
        b99 = alone_p99[len(alone_p99) // 2]
        rows.insert(0, ("alone (median window)", sorted(alone, key=lambda a: pct(a, 99))[len(alone) // 2], 0, "-", [200], 0))
        alive = sup.poll() is None and call("GET", "/health")[0] == 200
        print(f"runtime still up after all offenders: {alive}")
        print(f"paced load: {CONNS} connections x one request per {PERIOD*1000:.0f} ms, {DUR:.0f} s per row")
        print("route alone, p99 of each window (ms):", " ".join(f"{x:.2f}" for x in alone_p99))
        print("settings:", " ".join(f"{k}={v}" for k, v in sorted(env.items()) if k.startswith("VWED_")))
        print()
        print("| offender | requests | failed | p50 ms | p99 ms | p99 / alone | offender's answers | stopped by | restarts |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, ok, failed, stopped, statuses, restarts in rows:
            p99 = pct(ok, 99)
            print(f"| {name} | {len(ok) + failed} | {failed} | {pct(ok, 50):.2f} | {p99:.2f} | "
                  f"{p99 / b99:.2f}x | {','.join(map(str, statuses))} | {stopped} | {restarts} |")
    finally:
        sup.kill()
        sup.wait()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
