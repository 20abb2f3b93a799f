"""emit in script A -> listener in script B: throughput and latency.

Script A emits N events as fast as it can (fire and forget, as VWED.event.emit
does); each carries the emit time. Script B's listener records the delay at entry.
Both clocks are the same machine's CLOCK_REALTIME (time.time_ns).

Usage: python3 bench/events.py http://127.0.0.1:PORT [N]
"""

import sys
import time

import api

BASE = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000


def call(method, path, body=None):
    return api.call(BASE, method, path, body)


EMITTER = """
import time
def boot():
    @VWED.function.register("burst")
    def burst(args):
        n = args["n"]
        t0 = time.perf_counter()
        for i in range(n):
            VWED.event.emit("tick", {"t": time.time_ns(), "i": i})
        return {"emit_s": time.perf_counter() - t0}
"""

LISTENER = """
import time
lat = []
state = {"first": 0, "last": 0}
def boot():
    @VWED.event.listen("tick")
    def on_tick(d):
        now = time.time_ns()
        if not lat:
            state["first"] = now
        state["last"] = now
        lat.append(now - d["t"])

    @VWED.function.register("stats")
    def stats(args):
        s = sorted(lat)
        n = len(s)
        pick = lambda q: s[min(n - 1, int(q * n))] / 1e6 if n else None
        span = (state["last"] - state["first"]) / 1e9 if n > 1 else 0
        return {"received": n, "p50_ms": pick(0.5), "p99_ms": pick(0.99),
                "max_ms": s[-1] / 1e6 if n else None,
                "span_s": span}

    @VWED.function.register("reset")
    def reset(args):
        lat.clear()
"""

proj = call("POST", "/api/script/projects", {"project_name": "evbench"})
pid = proj["data"]["id"]
for name, src in (("emitter.py", EMITTER), ("listener.py", LISTENER)):
    assert call("POST", "/api/script/files", {"project_id": pid, "file_name": name, "content": src})["success"]
for name in ("listener.py", "emitter.py"):
    r = call("POST", "/api/script/scripts/start", {"script_path": f"evbench/{name}"})
    assert r["success"], r

# Warm up, then measure.
call("POST", "/api/script/scripts/execute-function", {"function_name": "burst", "function_args": {"n": 2000}})
time.sleep(1)
call("POST", "/api/script/scripts/execute-function", {"function_name": "reset"})
t0 = time.time()
r = call("POST", "/api/script/scripts/execute-function", {"function_name": "burst", "function_args": {"n": N}, "timeout_ms": 600000})
emit_s = r["result"]["emit_s"]
while True:
    st = call("POST", "/api/script/scripts/execute-function", {"function_name": "stats"})["result"]
    if st["received"] >= N or time.time() - t0 > 120:
        break
    time.sleep(0.5)
status = call("GET", "/api/script/registry/status")["data"]
dropped = status["event_listeners"]["tick"][0].get("dropped_count")
rate = st["received"] / st["span_s"] if st["span_s"] else 0
print(f"emitted {N} in {emit_s:.3f} s ({N / emit_s:,.0f}/s); received {st['received']}, dropped {dropped}")
print(f"| emit in A -> listener in B, throughput (listener side) | {rate:,.0f} events/s |")
print(f"| emit -> listener entered, p50 / p99 / max | {st['p50_ms']:.3f} / {st['p99_ms']:.3f} / {st['max_ms']:.1f} ms |")

# Latency without queueing: paced emits, one every 2 ms.
call("POST", "/api/script/scripts/execute-function", {"function_name": "reset"})
PACED = """
import time
def boot():
    @VWED.function.register("paced")
    async def paced(args):
        for i in range(args["n"]):
            VWED.event.emit("tick", {"t": time.time_ns(), "i": i})
            await asyncio.sleep(0.002)
        return True
"""
assert call("POST", "/api/script/files", {"project_id": pid, "file_name": "paced.py", "content": PACED})["success"]
assert call("POST", "/api/script/scripts/start", {"script_path": "evbench/paced.py"})["success"]
call("POST", "/api/script/scripts/execute-function", {"function_name": "paced", "function_args": {"n": 2000}, "timeout_ms": 60000})
time.sleep(0.5)
st = call("POST", "/api/script/scripts/execute-function", {"function_name": "stats"})["result"]
print(f"| emit -> listener entered, paced (1 per 2 ms), p50 / p99 | {st['p50_ms']:.3f} / {st['p99_ms']:.3f} ms ({st['received']} events) |")

# Latency at a sustained rate: the target's 50,000 events/s, spread evenly.
call("POST", "/api/script/scripts/execute-function", {"function_name": "reset"})
RATED = """
import time
def boot():
    @VWED.function.register("rated")
    async def rated(args):
        rate, seconds = args["rate"], args["seconds"]
        start = time.perf_counter()
        sent = 0
        while True:
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return sent
            due = int(elapsed * rate)
            while sent < due:
                VWED.event.emit("tick", {"t": time.time_ns(), "i": sent})
                sent += 1
            await asyncio.sleep(0.0002)
"""
RATE = int(sys.argv[3]) if len(sys.argv) > 3 else 50_000
assert call("POST", "/api/script/files", {"project_id": pid, "file_name": "rated.py", "content": RATED})["success"]
assert call("POST", "/api/script/scripts/start", {"script_path": "evbench/rated.py"})["success"]
sent = call("POST", "/api/script/scripts/execute-function", {"function_name": "rated", "function_args": {"rate": RATE, "seconds": 3}, "timeout_ms": 60000})["result"]
time.sleep(1)
st = call("POST", "/api/script/scripts/execute-function", {"function_name": "stats"})["result"]
print(f"| emit -> listener entered at {RATE:,} events/s for 3 s, p50 / p99 / max | {st['p50_ms']:.3f} / {st['p99_ms']:.3f} / {st['max_ms']:.1f} ms ({st['received']} of {sent} events) |")
