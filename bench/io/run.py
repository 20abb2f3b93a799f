#!/usr/bin/env python3
"""I/O benchmarks of VWED Edge against a pymodbus TCP server on loopback.

1. VWED.device.modbus(...).read_holding round trip from a script (unloaded).
2. 10,000 points polled every 100 ms over 4 TCP connections (4 PLCs of 2,500
   points; 1% of them change every cycle): CPU of the runtime over a window,
   from /proc/<pid>/stat utime+stime.
3. Under that load: point change -> script listener entered. The bench writes
   a register behind the runtime's back (time t0), the script's on_change
   listener records time.time() on entry; latency = entry - t0.

    python3 bench/io/run.py [--bin target/release/vwed-edge] [--window 30] [--samples 200]

Needs pymodbus (tests/requirements.txt).
"""

import argparse
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http(base, method, path, body=None, timeout=120):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, method=method, data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # fields 14 and 15 (utime, stime) are 12 and 13 after the command name
    return int(rest[11]) + int(rest[12])


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


class Modbus:
    """Just enough Modbus TCP to change a register behind the runtime's back."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tid = 0

    def write_register(self, unit, addr, value):
        self.tid = (self.tid + 1) & 0xFFFF
        pdu = struct.pack(">BHH", 6, addr, value)
        self.s.sendall(struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, unit) + pdu)
        head = self.s.recv(7, socket.MSG_WAITALL)
        length = struct.unpack(">H", head[4:6])[0]
        self.s.recv(length - 1, socket.MSG_WAITALL)


def start_server(port, units, size, changes):
    p = subprocess.Popen([sys.executable, "-u", os.path.join(HERE, "modbus_server.py"),
                          str(port), str(units), str(size), str(changes)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    assert line.strip() == "READY", f"modbus server did not start: {line!r}"
    return p


def io_config(port, buses, per_bus, period_ms):
    out = ['board = "linux-sim"']
    for b in range(1, buses + 1):
        out.append(f'[[bus]]\nname = "plc{b}"\nkind = "tcp"\nhost = "127.0.0.1"\nport = {port}\n'
                   f'timeout_ms = 500\n\n[[device]]\nname = "plc{b}"\nbus = "plc{b}"\nunit = {b}')
    for b in range(1, buses + 1):
        for a in range(per_bus):
            out.append(f'[[point]]\ntag = "plc{b}.r{a}"\ndevice = "plc{b}"\ntable = "holding"\n'
                       f'address = {a}\ntype = "u16"\nperiod_ms = {period_ms}')
    return "\n\n".join(out) + "\n"


def start_runtime(binary, data, cfg_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VWED_")}
    env.update(VWED_SAMPLE_PROJECT="false", VWED_IO_CONFIG=cfg_path, RUST_LOG="warn")
    log = open(os.path.join(data, "runtime.log"), "w")
    # I/O figures: no credentials asked (loopback only), as bench/auth.sh shows
    # they cost nothing measurable.
    p = subprocess.Popen([binary, "serve", "--no-auth", "--listen", f"127.0.0.1:{port}",
                          "--data-dir", data], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            if http(base, "GET", "/health", timeout=2).get("success"):
                return p, base
        except OSError:
            pass
        time.sleep(0.05)
    p.kill()
    raise SystemExit("runtime did not start; see " + log.name)


def deploy(base, name, source):
    if not any(p["project_name"] == "bench" for p in http(base, "GET", "/api/script/projects?status=all")["data"]):
        http(base, "POST", "/api/script/projects", {"project_name": "bench"})
    pid = [p for p in http(base, "GET", "/api/script/projects?status=all")["data"]
           if p["project_name"] == "bench"][0]["id"]
    r = http(base, "POST", "/api/script/files",
             {"project_id": pid, "file_name": name, "file_path": name, "content": source})
    assert r["success"], r
    r = http(base, "POST", "/api/script/scripts/start", {"script_path": f"bench/{name}"})
    assert r["success"], r
    return r["script_id"]


def call(base, fn, args=None):
    r = http(base, "POST", "/api/script/scripts/execute-function",
             {"function_name": fn, "function_args": args or {}})
    assert r["success"], r
    return r["result"]


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


RTT_SCRIPT = '''
import time

def boot():
    @VWED.function.register("rtt")
    def rtt(args):
        plc = VWED.device.modbus("plc1")
        for _ in range(200):
            plc.read_holding(0, 10)
        out = []
        for _ in range(args["n"]):
            t = time.perf_counter()
            plc.read_holding(0, 10)
            out.append((time.perf_counter() - t) * 1000)
        return out
'''

PROBE_SCRIPT = '''
import time
SEEN = []
COUNT = {"n": 0}

def boot():
    @VWED.io.on_change("plc1.r0")
    def probe(c):
        SEEN.append([c["value"], time.time(), c["ts_ms"]])

    for i in range(10):
        @VWED.io.on_change("plc%d.r%d" % (i % 4 + 1, 10 + i * 100))
        def churn(c):
            COUNT["n"] += 1

    @VWED.function.register("seen")
    def seen(args):
        return {"seen": SEEN, "churn": COUNT["n"]}
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "vwed-edge"))
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--buses", type=int, default=4)
    ap.add_argument("--period-ms", type=int, default=100)
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--rtt", type=int, default=2000)
    a = ap.parse_args()
    per_bus = a.points // a.buses
    results = []
    procs = []
    tmp = tempfile.mkdtemp(prefix="vwed-io-bench-")
    try:
        mport = free_port()
        server = start_server(mport, a.buses, per_bus, per_bus // 100)
        procs.append(server)

        # 1. raw read round trip, unloaded (one point only)
        d1 = os.path.join(tmp, "rtt")
        os.makedirs(d1)
        c1 = os.path.join(d1, "io.toml")
        with open(c1, "w") as f:
            f.write(io_config(mport, 1, 1, 1000))
        rt, base = start_runtime(a.bin, d1, c1)
        procs.append(rt)
        deploy(base, "rtt.py", RTT_SCRIPT)
        ms = call(base, "rtt", {"n": a.rtt})
        results.append(("VWED.device.modbus read_holding(0, 10) round trip, script side, "
                        f"{a.rtt} calls", f"p50 {pct(ms, 50):.3f} ms, p99 {pct(ms, 99):.3f} ms"))
        rt.send_signal(signal.SIGTERM)
        rt.wait(timeout=20)
        procs.remove(rt)

        # 2. 10k points
        d2 = os.path.join(tmp, "load")
        os.makedirs(d2)
        c2 = os.path.join(d2, "io.toml")
        with open(c2, "w") as f:
            f.write(io_config(mport, a.buses, per_bus, a.period_ms))
        rt, base = start_runtime(a.bin, d2, c2)
        procs.append(rt)
        t_start = time.time()
        while True:
            pts = http(base, "GET", "/api/io/points")["data"]
            bad = sum(1 for p in pts if p["quality"] != "good")
            if bad == 0:
                break
            assert time.time() - t_start < 60, f"{bad} points still bad"
            time.sleep(0.5)
        sid = deploy(base, "probe.py", PROBE_SCRIPT)
        running = http(base, "GET", "/api/script/scripts/running")["data"]
        wpid = [s for s in running if s["script_id"] == sid][0]["pid"]
        time.sleep(3)
        st0 = http(base, "GET", "/api/io/status")["data"]
        c0, w0, t0 = cpu_ticks(rt.pid), cpu_ticks(wpid), time.time()
        time.sleep(a.window)
        c1_, w1, t1 = cpu_ticks(rt.pid), cpu_ticks(wpid), time.time()
        st1 = http(base, "GET", "/api/io/status")["data"]
        cpu = (c1_ - c0) / CLK_TCK / (t1 - t0) * 100
        wcpu = (w1 - w0) / CLK_TCK / (t1 - t0) * 100
        reads = st1["poller"]["reads"] - st0["poller"]["reads"]
        changes = st1["poller"]["changes_emitted"] - st0["poller"]["changes_emitted"]
        results.append((f"{a.points} points / {a.period_ms} ms over {a.buses} TCP connections, "
                        f"supervisor CPU over {a.window:.0f} s",
                        f"{cpu:.1f}% of one core ({reads / (t1 - t0):.0f} reads/s, "
                        f"{changes / (t1 - t0):.0f} changes/s)"))
        results.append(("  listening worker CPU (10 churning tags + probe)", f"{wcpu:.1f}% of one core"))
        results.append(("  supervisor RSS under load", f"{rss_kb(rt.pid) // 1024} MB"))
        results.append(("  read failures / changes dropped / forwarder lost",
                        f"{st1['poller']['read_failures']} / {st1['poller']['changes_dropped']} / "
                        f"{st1['forwarder']['lost']}"))

        # 3. change -> listener entered, under that load
        mb = Modbus(mport)
        sent = {}
        for i in range(a.samples):
            time.sleep(0.12 + random.random() * 0.1)
            v = i + 1
            sent[v] = time.time()
            mb.write_register(1, 0, v)
        time.sleep(0.5)
        r = call(base, "seen")
        lat = [(t - sent[v]) * 1000 for v, t, _ in r["seen"] if v in sent]
        # From the poller's read of the new value to the listener's first line.
        pipe = [t * 1000 - ts for v, t, ts in r["seen"] if v in sent]
        missing = a.samples - len(lat)
        results.append((f"point change -> listener entered, poll period {a.period_ms} ms, "
                        f"{len(lat)} samples under the load",
                        f"p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms, max {max(lat):.1f} ms, "
                        f"missed {missing}"))
        results.append(("  of which: poller read -> listener entered",
                        f"p50 {pct(pipe, 50):.2f} ms, p99 {pct(pipe, 99):.2f} ms"))
        results.append(("  churn events delivered to the listening script", str(r["churn"])))
    finally:
        for p in procs:
            p.kill()
            p.wait()
    print("| figure | measured |")
    print("|---|---|")
    for k, v in results:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
