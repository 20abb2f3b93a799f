"""Soak: scripts that log, print, update files and data and serve routes, under a
fixed client load, for a sustained period; one of them is restarted every
RESTART_S. Samples the supervisor's RSS (and its anonymous part), the workers'
RSS, the sizes of vwed.redb and logs.redb and the supervisor's open descriptors,
and prints them over time with the slope of each (least squares over the samples
after the first WARMUP_S): a flat slope is the point.

The warm-up covers what fills up to a bound by design: the redb page caches
(db_cache_bytes each), logs.redb up to its cap, and the table of ended runs (64
runs, each with the end of its output), full after 64 restarts.

Usage: python3 bench/soak.py http://127.0.0.1:PORT SUPERVISOR_PID DATA_DIR [DURATION_S] [SAMPLE_S]
Environment: RESTART_S (default 5), WARMUP_S (default 360).
"""

import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

BASE = sys.argv[1]
SUP = int(sys.argv[2])
DATA = sys.argv[3]
DURATION = float(sys.argv[4]) if len(sys.argv) > 4 else 600
SAMPLE = float(sys.argv[5]) if len(sys.argv) > 5 else 30
WARMUP_S = float(os.environ.get("WARMUP_S", 360))
CLIENTS = 4
# Each client does one round (route, data, function, output) every PERIOD_S.
PERIOD_S = 0.02
# The chatty script is stopped and started again this often.
RESTART_S = float(os.environ.get("RESTART_S", 5))

HOST = urllib.parse.urlparse(BASE).netloc

SERVICE = """
import time

def boot():
    VWED.api.register_route('/soak/ping', 'GET', ping)
    VWED.api.register_route('/soak/data', 'POST', data)
    VWED.function.register('work', work)
    VWED.timer.schedule(interval=0.1, handler=tick)

def ping(request):
    return {'pong': True, 'q': request['query_params']}

def data(request):
    n = VWED.data.get('n', 0) + 1
    VWED.data.set('n', n)
    VWED.data.set('last', {'n': n, 'body': request['json']})
    return {'n': n}

def work(args):
    VWED.log.info('work', n=args.get('n', 0))
    return {'ok': True, 'args': args}

def tick():
    VWED.log.info('tick', t=time.time())
"""

CHATTY = """
import sys

def boot():
    VWED.timer.schedule(interval=0.05, handler=chat)

count = [0]

def chat():
    count[0] += 1
    for i in range(10):
        print(f"{count[0]}:{i} " + "x" * 2000)
    if count[0] % 20 == 0:
        print("y" * 100_000)
        sys.stderr.write("stderr line " + "z" * 500 + "\\n")
        VWED.log.warning("a long one", detail="w" * 100_000)
"""


class Client:
    """One keep-alive connection."""

    def __init__(self):
        self.conn = http.client.HTTPConnection(HOST, timeout=60)

    def call(self, method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        h = {"content-type": "application/json"}
        h.update(headers or {})
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(HOST, timeout=60)
                if attempt:
                    raise
        return 0, None


def setup(c):
    _, p = c.call("POST", "/api/script/projects", {"project_name": "soak"})
    pid = p["data"]["id"]
    for name, src in (("service.py", SERVICE), ("chatty.py", CHATTY)):
        st, r = c.call("POST", "/api/script/files",
                       {"project_id": pid, "file_name": name, "content": src})
        assert st == 200, r
    st, r = c.call("POST", "/api/script/files",
                   {"project_id": pid, "file_name": "notes.txt", "file_type": "text",
                    "content": "n" * 4096})
    assert st == 200, r
    notes = r["data"]["id"]
    service = start(c, "soak/service.py")
    chatty = start(c, "soak/chatty.py")
    return notes, service, chatty


def start(c, path):
    st, r = c.call("POST", "/api/script/scripts/start", {"script_path": path})
    assert st == 200, r
    return r["script_id"]


stats = {"ok": 0, "err": 0, "restarts": 0}
lock = threading.Lock()
stop = threading.Event()


def count(ok):
    with lock:
        stats["ok" if ok else "err"] += 1


def client_loop(k, service):
    c = Client()
    i = 0
    next_at = time.monotonic()
    while not stop.is_set():
        i += 1
        try:
            st, _ = c.call("GET", f"/script-api/soak/ping?k={k}&i={i}")
            count(st == 200)
            st, _ = c.call("POST", "/script-api/soak/data", {"k": k, "i": i})
            count(st == 200)
            st, _ = c.call("POST", "/api/script/scripts/execute-function",
                           {"function_name": "work", "function_args": {"n": i}})
            count(st == 200)
            if i % 10 == 0:
                st, _ = c.call("GET", f"/api/script/scripts/{service}/output?limit=50")
                count(st == 200)
        except (OSError, http.client.HTTPException, ValueError):
            count(False)
        next_at += PERIOD_S
        time.sleep(max(0, next_at - time.monotonic()))


def editor_loop(notes):
    """Updates a 4 KiB file twice a second, as an editor would (with If-Match)."""
    c = Client()
    i = 0
    while not stop.is_set():
        i += 1
        try:
            st, r = c.call("GET", f"/api/script/files/{notes}")
            version = r["data"]["file"]["version"]
            st, _ = c.call("PUT", f"/api/script/files/{notes}",
                           {"content": f"{i} " + "n" * 4096},
                           {"If-Match": f'"{version}"'})
            count(st == 200)
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
            count(False)
        time.sleep(0.5)


def restart_loop(chatty):
    c = Client()
    current = chatty
    while not stop.wait(RESTART_S):
        try:
            st, r = c.call("POST", f"/api/script/scripts/{current}/restart", {})
            count(st == 200)
            if st == 200:
                current = r["script_id"]
                with lock:
                    stats["restarts"] += 1
        except (OSError, http.client.HTTPException, ValueError):
            count(False)


def rss_kb(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(d))
        except (OSError, IndexError, ValueError):
            continue
    return out


def size_mb(name):
    try:
        return os.path.getsize(os.path.join(DATA, name)) / 1e6
    except OSError:
        return 0.0


def sample(t0, last):
    kids = children(SUP)
    with lock:
        done = stats["ok"] + stats["err"]
        errors = stats["err"]
    now = time.monotonic()
    row = {
        "t_s": round(now - t0),
        "sup_rss_mb": rss_kb(SUP) / 1024,
        "sup_anon_mb": rss_kb(SUP, "RssAnon") / 1024,
        "workers": len(kids),
        "workers_rss_mb": sum(rss_kb(k) for k in kids) / 1024,
        "vwed_redb_mb": size_mb("vwed.redb"),
        "logs_redb_mb": size_mb("logs.redb"),
        "fds": len(os.listdir(f"/proc/{SUP}/fd")),
        "req_s": (done - last[0]) / max(1e-9, now - last[1]),
        "errors": errors,
    }
    last[0], last[1] = done, now
    return row


def slope_per_min(rows, key):
    pts = [(r["t_s"] / 60, r[key]) for r in rows if r["t_s"] >= WARMUP_S]
    if len(pts) < 2:
        return float("nan")
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else 0.0


def main():
    c = Client()
    notes, service, chatty = setup(c)
    threads = [threading.Thread(target=client_loop, args=(k, service), daemon=True)
               for k in range(CLIENTS)]
    threads.append(threading.Thread(target=editor_loop, args=(notes,), daemon=True))
    threads.append(threading.Thread(target=restart_loop, args=(chatty,), daemon=True))
    for t in threads:
        t.start()
    t0 = time.monotonic()
    last = [0, t0]
    rows = [sample(t0, last)]
    cols = list(rows[0])
    print(" | ".join(cols), flush=True)
    while True:
        print(" | ".join(f"{rows[-1][k]:.1f}" if isinstance(rows[-1][k], float)
                         else str(rows[-1][k]) for k in cols), flush=True)
        if time.monotonic() - t0 >= DURATION:
            break
        time.sleep(SAMPLE)
        rows.append(sample(t0, last))
    stop.set()
    _, versions = c.call("GET", f"/api/script/files/{notes}/versions")
    print()
    print(f"requests: {stats['ok']} ok, {stats['err']} failed; {stats['restarts']} restarts; "
          f"file versions kept "
          f"{len(versions['data']['versions'])}, pruned {versions['data']['pruned']}")
    print(f"slope per minute after the first {WARMUP_S:.0f} s:")
    for k in ("sup_rss_mb", "sup_anon_mb", "workers_rss_mb", "vwed_redb_mb",
              "logs_redb_mb", "fds"):
        print(f"  {k}: {slope_per_min(rows, k):+.3f}/min")


if __name__ == "__main__":
    main()
