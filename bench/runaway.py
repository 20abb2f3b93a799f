"""Issue 13 figure: a healthy script's route latency alone and next to each runaway
script (busy loop, endless sleep, memory bomb, fork bomb, segfault, 200 MB of
output, deep recursion, a spinning thread), with the default supervision
settings but a 128 MB worker memory limit.

The healthy route gets a paced load (CONNS keep-alive connections, each sending
a request every PERIOD_MS), so that the p99 measures how long one request waits,
not how a saturated machine queues. Each offender is started fresh and fired at
the start of its window (the memory, fork, segfault, output and recursion ones
again and again), then stopped. The table says what stopped the offender.

Usage: python3 bench/runaway.py [path/to/vwed-edge]   (default: a release build
made here). Environment: PORT (18766), DUR seconds per window (10), CONNS (4),
PERIOD_MS (10). Settings pass through: VWED_SUPERVISION__BUSY_GRACE_MS=2000 ...
"""

import http.client
import json
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


def paced_load(seconds):
    """Latencies (ms) of the healthy route; failures count as None."""
    out = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def one():
        c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        mine = []
        nxt = time.monotonic()
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
                c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
            mine.append((time.monotonic() - t0) * 1000 if ok else None)
            nxt += PERIOD
            time.sleep(max(0.0, nxt - time.monotonic()))
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=one) for _ in range(CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


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
        base = [x for x in paced_load(DUR) if x is not None]
        b99 = pct(base, 99)
        rows = [("alone", base, 0, b99, "-", [200], 0)]
        for name, route, again, timeout_ms in OFFENDERS:
            lat, stopped, statuses, restarts = window(name, route, again, timeout_ms)
            ok = [x for x in lat if x is not None]
            rows.append((name, ok, len(lat) - len(ok), b99, stopped, statuses, restarts))
        alive = sup.poll() is None and call("GET", "/health")[0] == 200
        print(f"runtime still up after all offenders: {alive}")
        print(f"paced load: {CONNS} connections x one request per {PERIOD*1000:.0f} ms, {DUR:.0f} s per row")
        print("settings:", " ".join(f"{k}={v}" for k, v in sorted(env.items()) if k.startswith("VWED_")))
        print()
        print("| offender | requests | failed | p50 ms | p99 ms | p99 / alone | offender's answers | stopped by | restarts |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, ok, failed, b, stopped, statuses, restarts in rows:
            p99 = pct(ok, 99)
            print(f"| {name} | {len(ok) + failed} | {failed} | {pct(ok, 50):.2f} | {p99:.2f} | "
                  f"{p99 / b:.2f}x | {','.join(map(str, statuses))} | {stopped} | {restarts} |")
    finally:
        sup.kill()
        sup.wait()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
