//! Two scripts writing concurrently through one Modbus RTU line, end to end:
//! the real binary owns a socat pty whose other end is a pymodbus serial
//! server, and two worker processes hammer their own points at the same time.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use vwed_e2e::pty::PtyPair;
use vwed_e2e::{Opts, Runtime, TempDir, Value, json, py, wait_until};

const WAIT: Duration = Duration::from_secs(10);
/// Writes per script: both scripts' writes together must stay below the 256
/// entries `/api/io/writes` keeps, or the check of that log loses its start.
const N: u64 = 100;

fn python() -> String {
    std::env::var("VWED_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hal/tests/peers/modbus_server.py")
}

/// Missing tools must fail loudly: a silently skipped line test would hide
/// exactly the regressions it exists for.
fn require_tools() {
    match Command::new("socat").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "peer tool missing: socat not found. Install with `apt-get install socat` \
             (listed in .ci/apt-packages.txt)."
        ),
    }
    match Command::new(python())
        .args(["-c", "import pymodbus, serial"])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "peer tool missing: `{} -c 'import pymodbus, serial'` failed ({}). \
             Install with `pip install -r tests/requirements.txt`.",
            python(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "peer tool missing: cannot run {} ({e}). Install python3 and \
             `pip install -r tests/requirements.txt`.",
            python()
        ),
    }
}

/// A socat pty pair with `modbus_server.py rtu` on one end. Both processes
/// are killed on drop, which also runs while a failed assertion unwinds.
struct RtuLine {
    server: Option<Child>,
    /// Dropped after the server is killed.
    pty: PtyPair,
}

impl RtuLine {
    fn start() -> RtuLine {
        require_tools();
        let mut line = RtuLine {
            server: None,
            pty: PtyPair::start("rtu"),
        };
        let mut server = Command::new(python())
            .arg("-u")
            .arg(peer_script())
            .arg("rtu")
            .arg(&line.pty.theirs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", peer_script().display()));
        let stdout = server.stdout.take().expect("piped stdout");
        line.server = Some(server);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let ready = lines.any(|l| l.is_ok_and(|l| l.trim() == "READY"));
            let _ = tx.send(ready);
            // Keep draining so the peer never blocks on a full pipe.
            for _ in lines {}
        });
        assert!(
            matches!(rx.recv_timeout(WAIT), Ok(true)),
            "modbus_server.py rtu did not print READY within {WAIT:?}; is pymodbus installed? \
             (pip install -r tests/requirements.txt)"
        );
        line
    }
}

impl Drop for RtuLine {
    fn drop(&mut self) {
        if let Some(s) = self.server.as_mut() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

fn device_config(serial: &str) -> String {
    // baud matches modbus_server.py; the timeout is short so that a stuck
    // line shows up as errors well inside the test's time budget.
    format!(
        r#"
board = "linux-sim"

[[bus]]
name = "rs485"
kind = "rtu"
serial = "{serial}"
baud = 19200
parity = "none"
timeout_ms = 500

[[device]]
name = "slave"
bus = "rs485"
unit = 1

[[point]]
tag = "slave.a"
device = "slave"
table = "holding"
address = 20
type = "u16"
period_ms = 50

[[point]]
tag = "slave.b"
device = "slave"
table = "holding"
address = 21
type = "u16"
period_ms = 50
"#
    )
}

/// A writer script for `tag`: `hammer_<name>` writes `base + i` for `i < n`
/// and reports every failure instead of stopping at the first, plus when it
/// ran, so the test can tell that the two scripts really overlapped. Function
/// names are global across scripts, hence the suffix.
fn writer(name: &str, tag: &str) -> String {
    py(&r#"
        import time

        def boot():
            @VWED.function.register("hammer_NAME")
            def hammer(args):
                errors = []
                t0 = time.time()
                for i in range(args["n"]):
                    try:
                        VWED.io.write("TAG", args["base"] + i)
                    except VWED.Error as e:
                        errors.append(f"{i}: {e}")
                t1 = time.time()
                return {"errors": errors, "t0": t0, "t1": t1}

            @VWED.function.register("read_NAME")
            def read(args):
                return VWED.io.read("TAG", live=True)
    "#
    .replace("TAG", tag)
    .replace("NAME", name))
}

fn device(rt: &Runtime, name: &str) -> Value {
    let r = rt.get("/api/io/devices");
    r.ok();
    r.data()
        .as_array()
        .expect("devices list")
        .iter()
        .find(|d| d["device"] == json!(name))
        .cloned()
        .unwrap_or_else(|| panic!("device {name} not listed: {}", r.text))
}

fn point(rt: &Runtime, tag: &str) -> Value {
    let r = rt.get(&format!("/api/io/points/{tag}"));
    r.ok();
    r.data().clone()
}

#[test]
fn two_scripts_writing_concurrently_through_one_rtu_line() {
    let started = Instant::now();
    let line = RtuLine::start();
    let dir = TempDir::new("io-rtu");
    let cfg = dir.path().join("io.toml");
    std::fs::write(&cfg, device_config(&line.pty.ours)).expect("write device config");
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_IO_CONFIG", cfg.display())
            .env("VWED_STOP_GRACE_MS", 500),
    );
    let a = rt.deploy("rtu", "writer_a.py", &writer("a", "slave.a"));
    let b = rt.deploy("rtu", "writer_b.py", &writer("b", "slave.b"));
    wait_until(WAIT, "both points polled good over the RTU line", || {
        point(&rt, "slave.a")["quality"] == "good" && point(&rt, "slave.b")["quality"] == "good"
    });
    let before = device(&rt, "slave");

    // Distinct bases, so a write landing on the other script's register
    // would show up as a foreign value rather than a plausible one.
    let jobs = [(&a, "a", 1000u64), (&b, "b", 2000u64)];
    let gate = Barrier::new(jobs.len());
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(id, name, base)| {
                let (rt, gate) = (&rt, &gate);
                s.spawn(move || {
                    gate.wait();
                    let body = json!({
                        "script_id": id,
                        "function_name": format!("hammer_{name}"),
                        "function_args": {"n": N, "base": base},
                        "timeout_ms": 15_000,
                    });
                    rt.post("/api/script/scripts/execute-function", &body)
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(jobs.iter())
            .map(|(h, (id, _, _))| {
                let r = h.join().expect("writer thread");
                assert!(
                    r.status == 200 && r.json["success"] == json!(true),
                    "hammer in {id} failed: HTTP {} {}\n--- output ---\n{}",
                    r.status,
                    r.text,
                    rt.output(id)
                );
                r.get("result").clone()
            })
            .collect()
    });
    for ((id, _, _), r) in jobs.iter().zip(&results) {
        assert_eq!(
            r["errors"],
            json!([]),
            "writes from {id} failed on the shared line"
        );
    }
    // Without overlap this would only show that writes work one after another.
    let (ra, rb) = (&results[0], &results[1]);
    let f = |v: &Value, k: &str| v[k].as_f64().expect("timestamp");
    assert!(
        f(ra, "t0") < f(rb, "t1") && f(rb, "t0") < f(ra, "t1"),
        "the two scripts did not write at the same time: a={ra} b={rb}"
    );

    // The device holds each script's last value: the poller sees it, and a
    // live read from each script goes to the device itself.
    let last_a = json!(1000 + N - 1);
    let last_b = json!(2000 + N - 1);
    wait_until(WAIT, "polled values are both scripts' last writes", || {
        point(&rt, "slave.a")["value"] == last_a && point(&rt, "slave.b")["value"] == last_b
    });
    assert_eq!(rt.execute_ok(Some(&a), "read_a", json!({})), last_a);
    assert_eq!(rt.execute_ok(Some(&b), "read_b", json!({})), last_b);

    // Every write is logged under the script that made it, and only there.
    let w = rt.get("/api/io/writes");
    w.ok();
    let writes = w.data().as_array().cloned().unwrap_or_default();
    for (id, tag, base) in [(&a, "slave.a", 1000u64), (&b, "slave.b", 2000u64)] {
        let mine: Vec<&Value> = writes.iter().filter(|x| x["writer"] == json!(id)).collect();
        assert_eq!(
            mine.len() as u64,
            N,
            "{id} should have {N} logged writes: {}",
            w.text
        );
        assert!(
            mine.iter()
                .all(|x| x["target"] == json!(tag) && x["ok"] == json!(true)),
            "{id} logged a failed or foreign write: {}",
            w.text
        );
        let values: Vec<u64> = mine.iter().filter_map(|x| x["value"].as_u64()).collect();
        let expected: Vec<u64> = (0..N).map(|i| base + i).collect();
        assert_eq!(values, expected, "{id}'s writes, in order: {}", w.text);
    }

    // The log is in completion order. Fed one script at a time, the line
    // would switch writer once; fair service switches on nearly every write.
    let order: Vec<&str> = writes.iter().filter_map(|x| x["writer"].as_str()).collect();
    let switches = order.windows(2).filter(|p| p[0] != p[1]).count();
    assert!(
        switches >= 10,
        "the line served one script's batch after the other ({switches} switches): {order:?}"
    );

    // A garbled or interleaved frame on the line shows up in these counters
    // even when a retry hides it from the scripts.
    let after = device(&rt, "slave");
    for k in [
        "transport_errors",
        "timeouts",
        "exceptions",
        "rejected_queue_full",
    ] {
        assert_eq!(
            after["counters"][k], before["counters"][k],
            "counter {k} moved during the concurrent writes: before={before} after={after}"
        );
    }
    assert_eq!(after["state"], "connected", "{after}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "took {:?}, the budget is well under 30 s",
        started.elapsed()
    );
}
