#!/usr/bin/env python3
"""End-to-end smoke test of an installed vwed-edge bundle, over loopback.

Starts the supervisor (under qemu-user when --qemu is given), waits for /health,
then drives the script API the way an operator would: create a project and a
script, start it, call its HTTP route and a registered function, stop it and read
its logs. The script itself checks, on the target interpreter, that the stdlib
modules scripts rely on import and that asyncio's add_reader works on a socket.

Prints one JSON object of figures on the last line of stdout; exits non-zero on
the first failed check. Only the Python standard library is used.

usage: smoke.py --prefix DIR --config FILE [--qemu qemu-aarch64-static --qemu-root /usr/aarch64-linux-gnu]
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

SCRIPT = r'''
import asyncio, collections, datetime, json, math, platform, re, socket, struct, time, uuid
import importlib

WANTED = ["asyncio", "json", "datetime", "math", "struct", "time", "re", "uuid", "collections",
          "decimal", "contextvars", "queue", "typing", "zoneinfo", "selectors", "socket", "select",
          "subprocess", "threading", "logging", "base64", "hashlib", "hmac", "random", "statistics",
          "csv", "array", "binascii", "zlib", "gzip", "bz2", "lzma", "zipfile", "tarfile", "codecs",
          "dataclasses", "enum", "functools", "itertools", "pathlib", "shutil", "tempfile", "traceback",
          "xml.etree.ElementTree", "http.client", "urllib.request", "email", "ctypes", "mmap", "fcntl",
          "termios", "resource", "signal", "multiprocessing", "concurrent.futures", "sched", "pickle",
          "copy", "pprint", "textwrap", "string", "fractions", "bisect", "heapq", "weakref", "inspect",
          "ast", "unittest", "ssl", "sqlite3", "curses", "readline", "dbm", "crypt", "audioop"]
C_ACCEL = ["_asyncio", "_json", "_contextvars", "_decimal", "_queue", "_typing", "_uuid", "_zoneinfo",
           "_ctypes", "_multibytecodec", "_codecs_cn", "_codecs_jp", "_ssl", "_hashlib", "_sqlite3",
           "_bz2", "_lzma", "_socket", "select", "_datetime", "_struct", "math", "mmap"]

def _probe():
    missing, slow = [], []
    for name in WANTED:
        try:
            importlib.import_module(name)
        except Exception as e:
            missing.append(f"{name} ({type(e).__name__})")
    for name in C_ACCEL:
        try:
            importlib.import_module(name)
        except Exception:
            slow.append(name)
    return missing, slow

async def _reader_roundtrip():
    # The worker's own loop watches its IPC socket with add_reader: prove it on this build.
    a, b = socket.socketpair()
    a.setblocking(False)
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    loop.add_reader(a.fileno(), lambda: fut.done() or fut.set_result(a.recv(64)))
    b.send(b"ping")
    try:
        return (await asyncio.wait_for(fut, 10)).decode()
    finally:
        loop.remove_reader(a.fileno())
        a.close()
        b.close()

def boot():
    VWED.log.sync_info("arm-smoke boot on " + platform.machine())

    @VWED.api.get("/arm-smoke/info", description="ARM smoke route")
    def info(request_data):
        missing, slow = _probe()
        return {
            "machine": platform.machine(),
            "python": platform.python_version(),
            "missing": missing,
            "no_c_accelerator": slow,
            "gbk": "中文".encode("gbk").hex(),
            "name": request_data.get("query_params", {}).get("name"),
        }

    @VWED.function.register("arm_smoke_calc", description="ARM smoke function")
    async def calc(args):
        echoed = await _reader_roundtrip()
        d = datetime.datetime(2024, 2, 29, 12, 0, tzinfo=datetime.timezone.utc)
        result = {
            "sum": args["a"] + args["b"],
            "sqrt": math.sqrt(args["b"]),
            "packed": struct.pack("<HI", 7, 9).hex(),
            "iso": (d + datetime.timedelta(days=1)).isoformat(),
            "re": re.sub(r"\d+", "#", "a1b22"),
            "uuid_ok": len(str(uuid.uuid4())) == 36,
            "counter": collections.Counter("abca").most_common(1)[0][0],
            "json": json.loads(json.dumps({"k": [1, 2]})),
            "reader": echoed,
            "mono": time.monotonic() > 0,
        }
        VWED.log.sync_info("arm-smoke calc done " + json.dumps(result, sort_keys=True))
        return result
'''


class Failure(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """The runtime's API with the admin token its first start wrote."""

    def __init__(self, base: str, data_dir: str):
        self.base = base
        self.data_dir = data_dir
        self.token = None

    def authorization(self):
        if self.token is None:
            path = os.path.join(self.data_dir, "admin.token")
            if os.path.exists(path):
                with open(path) as f:
                    self.token = f.read().strip()
        return self.token

    def call(self, method: str, path: str, body=None, timeout=60, expect_ok=True):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.authorization():
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = raw.decode(errors="replace")
        if expect_ok and (status >= 400 or (isinstance(doc, dict) and doc.get("success") is False)):
            raise Failure(f"{method} {path} -> {status}: {str(doc)[:800]}")
        return status, doc


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children(pid: int):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.append(int(d))
            except OSError:
                pass
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", required=True, help="installed tree holding bin/vwed-edge and lib/python311.zip")
    ap.add_argument("--config", required=True)
    ap.add_argument("--qemu", default="")
    ap.add_argument("--qemu-root", default="")
    ap.add_argument("--health-timeout", type=float, default=120)
    ap.add_argument("--keep", action="store_true", help="keep the data dir")
    args = ap.parse_args()

    figures = {}
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="vwed-arm-smoke-")
    notify_dir = tempfile.mkdtemp(prefix="vwed-arm-notify-")
    notify_path = os.path.join(notify_dir, "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.setblocking(False)

    binary = os.path.join(args.prefix, "bin", "vwed-edge")
    cmd = [binary, "serve", "--config", args.config, "--data-dir", data_dir]
    if args.qemu:
        cmd = [args.qemu, "-L", args.qemu_root] + cmd
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VWED_", "NOTIFY_", "WATCHDOG_", "LISTEN_"))}
    # The supervisor locates python311.zip from its own path, as on a controller
    # without PYTHONHOME; workers exec'ed by it run under binfmt's qemu, which takes
    # its library root from QEMU_LD_PREFIX.
    env.update({
        "VWED_LISTEN": f"127.0.0.1:{port}",
        "NOTIFY_SOCKET": notify_path,
        "WATCHDOG_USEC": "4000000",
        "RUST_LOG": env.get("RUST_LOG", "info"),
    })
    if args.qemu_root:
        env["QEMU_LD_PREFIX"] = args.qemu_root
    log_path = os.path.join(data_dir, "..", os.path.basename(data_dir) + ".log")
    log = open(log_path, "wb")
    print(f"smoke: {' '.join(cmd)} (port {port}, log {log_path})", file=sys.stderr)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    api = Api(f"http://127.0.0.1:{port}", data_dir)
    ok = False
    try:
        while True:
            if proc.poll() is not None:
                raise Failure(f"vwed-edge exited with {proc.returncode} before /health answered")
            try:
                st, _ = api.call("GET", "/health", timeout=2, expect_ok=False)
                if st == 200:
                    break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() - t0 > args.health_timeout:
                raise Failure("/health did not answer in time")
            time.sleep(0.05)
        figures["exec_to_health_s"] = round(time.monotonic() - t0, 3)
        time.sleep(3)
        figures["supervisor_rss_idle_kb"] = rss_kb(proc.pid)

        name = f"arm_smoke_{os.getpid()}"
        _, doc = api.call("POST", "/api/script/projects", {"project_name": name, "description": "ARM smoke test"})
        project_id = doc["data"]["id"]
        api.call("POST", "/api/script/files", {
            "project_id": project_id, "file_name": "main.py", "file_path": "main.py", "content": SCRIPT,
        })
        t1 = time.monotonic()
        _, doc = api.call("POST", "/api/script/scripts/start", {"script_path": f"{name}/main.py"}, timeout=180)
        figures["script_start_s"] = round(time.monotonic() - t1, 3)
        script_id = doc.get("script_id") or (doc.get("data") or {}).get("script_id")
        if not script_id:
            raise Failure(f"no script_id in start response: {doc}")

        workers = children(proc.pid)
        if workers:
            figures["worker_rss_kb"] = max(rss_kb(p) for p in workers)

        _, doc = api.call("GET", "/script-api/arm-smoke/info?name=arm")
        info = doc.get("data", doc) if isinstance(doc, dict) else doc
        if isinstance(info, dict) and "result" in info and "machine" not in info:
            info = info["result"]
        if not isinstance(info, dict) or info.get("machine") not in ("aarch64", "armv7l", "armv8l"):
            raise Failure(f"route answered unexpectedly: {doc}")
        if info.get("gbk") != "d6d0cec4":
            raise Failure(f"gbk codec wrong: {info}")
        figures["target_machine"] = info["machine"]
        figures["target_python"] = info["python"]
        figures["stdlib_missing"] = info["missing"]
        figures["no_c_accelerator"] = info["no_c_accelerator"]
        essential = {"asyncio", "json", "datetime", "math", "struct", "time", "re", "uuid", "collections"}
        lost = [m for m in info["missing"] if m.split()[0] in essential]
        if lost:
            raise Failure(f"essential modules missing: {lost}")

        _, doc = api.call("POST", "/api/script/scripts/execute-function", {
            "script_id": script_id, "function_name": "arm_smoke_calc", "function_args": {"a": 2, "b": 9},
        })
        result = doc.get("result", doc.get("data"))
        if isinstance(result, dict) and "sum" not in result and "result" in result:
            result = result["result"]
        expect = {"sum": 11, "sqrt": 3.0, "packed": "070009000000", "iso": "2024-03-01T12:00:00+00:00",
                  "re": "a#b#", "uuid_ok": True, "counter": "a", "json": {"k": [1, 2]}, "reader": "ping",
                  "mono": True}
        if result != expect:
            raise Failure(f"function result {result!r} != {expect!r}")

        _, doc = api.call("POST", f"/api/script/scripts/{urllib.parse.quote(script_id, safe='')}/stop", {})

        logs_text = ""
        for path in (f"/api/script/scripts/{urllib.parse.quote(script_id, safe='')}/output",
                     f"/api/script/logs?script_id={urllib.parse.quote(script_id)}"):
            st, doc = api.call("GET", path, expect_ok=False)
            if st == 200:
                logs_text += json.dumps(doc, ensure_ascii=False)
        for needle in ("arm-smoke boot on", "arm-smoke calc done"):
            if needle not in logs_text:
                raise Failure(f"logs lack {needle!r}: {logs_text[:1500]}")

        # systemd protocol: READY=1 once serving, WATCHDOG=1 while healthy.
        msgs = []
        while True:
            try:
                msgs.append(notify.recv(4096).decode(errors="replace"))
            except BlockingIOError:
                break
        figures["sd_notify_ready"] = any("READY=1" in m for m in msgs)
        figures["sd_notify_watchdog_pings"] = sum("WATCHDOG=1" in m for m in msgs)
        ok = True
    except Failure as e:
        print(f"smoke: FAILED: {e}", file=sys.stderr)
    finally:
        t2 = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                print("smoke: vwed-edge ignored SIGTERM for 60 s", file=sys.stderr)
                ok = False
        figures["shutdown_s"] = round(time.monotonic() - t2, 3)
        figures["exit_code"] = proc.returncode
        log.close()
        notify.close()
        if not ok:
            with open(log_path, "rb") as f:
                tail = f.read()[-6000:].decode(errors="replace")
            print("smoke: ---- vwed-edge log (tail) ----\n" + tail, file=sys.stderr)
        elif not args.keep:
            subprocess.run(["rm", "-rf", data_dir, log_path])
        subprocess.run(["rm", "-rf", notify_dir])
    figures["ok"] = ok
    print(json.dumps(figures, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
