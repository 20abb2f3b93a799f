//! Isolation: scripts run in their own processes. A busy loop or an endless sleep
//! in one is stopped within the grace period while the others keep answering, and
//! a crash of one leaves the others alone.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vwed_e2e::{Opts, Runtime, TempDir, json, process_alive, py, wait_until};

const GRACE_MS: u64 = 300;
/// How long stop may take beyond the grace period (SIGKILL, reaping, a loaded CI).
const STOP_MARGIN_MS: u64 = 2000;
/// An answer this fast shows the other script is not held up (the hung one never
/// answers); generous for a debug build on a loaded 2-core machine.
const QUICK_MS: u64 = 1000;

const BUSY: &str = r#"
def boot():
    @VWED.api.get("/busy/spin")
    def spin(req):
        open(req["query_params"]["marker"], "w").close()
        while True:
            pass

    @VWED.api.get("/busy/sleep")
    def sleep(req):
        open(req["query_params"]["marker"], "w").close()
        time.sleep(10**9)

    @VWED.function.register("busy_fn")
    def busy_fn(args):
        open(args["marker"], "w").close()
        while True:
            pass

    @VWED.api.get("/busy/exit")
    def exit3(req):
        import os
        os._exit(3)

    @VWED.api.get("/busy/kill9")
    def kill9(req):
        import os
        os.kill(os.getpid(), 9)

    @VWED.api.get("/busy/ping")
    def ping(req):
        return {"pong": "busy"}
"#;

/// A script that always answers at once; other tests use it as the bystander.
pub(crate) const FAST: &str = r#"
def boot():
    @VWED.api.get("/fast/ping")
    def ping(req):
        return {"pong": "fast"}

    @VWED.function.register("fast_fn")
    def fast_fn(args):
        return "fast"
"#;

/// Settings under which a crashed or hung script stays as it is: these tests look
/// at that state (supervision.rs tests what the restart policy does with it).
pub(crate) fn stays_down() -> Opts {
    Opts::default()
        .env("VWED_SUPERVISION__RESTART", "never")
        .env("VWED_SUPERVISION__BUSY_GRACE_MS", 0)
}

/// The runtime, both scripts, and the folder the busy handlers put their markers in
/// (their project's scratch folder: the one they may write).
fn setup() -> (Runtime, String, String, PathBuf) {
    let rt = Runtime::with(stays_down().env("VWED_STOP_GRACE_MS", GRACE_MS));
    let busy = rt.deploy("p", "busy.py", BUSY);
    let fast = rt.deploy("p", "fast.py", FAST);
    let markers = rt.scratch_dir("p");
    (rt, busy, fast, markers)
}

/// Fires a request that never finishes by itself, in a thread.
fn fire(rt: &Runtime, path: String) -> std::thread::JoinHandle<u16> {
    let (url, c) = (rt.url(&path), rt.client());
    std::thread::spawn(move || c.get(url).send().map(|r| r.status().as_u16()).unwrap_or(0))
}

/// While `busy` hangs, the other script answers quickly; then stop `busy` in time.
fn stop_hung_script(handler: &str) {
    let (rt, busy, fast, markers) = setup();
    let worker = rt.running_entry(&busy).expect("busy listed")["pid"]
        .as_u64()
        .expect("pid") as u32;
    let marker = markers.join("entered");
    let pending = fire(
        &rt,
        format!("/script-api/busy/{handler}?marker={}", marker.display()),
    );
    wait_until(Duration::from_secs(5), "the handler started", || {
        marker.exists()
    });

    // The other script keeps answering, the busy one's other routes time out.
    for _ in 0..20 {
        let t0 = Instant::now();
        let r = rt.call_route("GET", "/fast/ping", None);
        assert_eq!(r.json, json!({"pong": "fast"}));
        assert!(
            t0.elapsed() < Duration::from_millis(QUICK_MS),
            "slow answer: {:?}",
            t0.elapsed()
        );
    }
    assert_eq!(rt.execute_ok(None, "fast_fn", json!({})), json!("fast"));
    let r = rt.send(
        "GET",
        "/script-api/busy/ping",
        None,
        &[("x-vwed-timeout-ms", "200")],
    );
    r.fails(504, "超时");

    // Stop while the handler still runs: done within grace + margin, and the other
    // script answers quickly all the while.
    let stopper = {
        let url = rt.url(&format!("/api/script/scripts/{busy}/stop"));
        let c = rt.client();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let r = c.post(url).send().expect("stop request");
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().unwrap_or_default();
            (status, body, t0.elapsed())
        })
    };
    let mut pings = 0;
    while !stopper.is_finished() {
        let t0 = Instant::now();
        let r = rt.call_route("GET", "/fast/ping", None);
        assert_eq!(r.json, json!({"pong": "fast"}));
        assert!(
            t0.elapsed() < Duration::from_millis(QUICK_MS),
            "slow answer during stop: {:?}",
            t0.elapsed()
        );
        pings += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        pings >= 3,
        "pinged the other script while stopping: {pings}"
    );
    let (status, body, took) = stopper.join().expect("stop thread");
    assert_eq!(status, 200, "{body}");
    let r = vwed_e2e::Resp {
        status,
        headers: Default::default(),
        text: body.to_string(),
        json: body,
    };
    assert!(
        took < Duration::from_millis(GRACE_MS + STOP_MARGIN_MS),
        "stop took {took:?} with a grace of {GRACE_MS} ms"
    );
    assert!(
        took >= Duration::from_millis(GRACE_MS),
        "the worker got its grace: {took:?}"
    );
    assert_eq!(r.data()["killed"], json!(true), "{}", r.text);
    assert_eq!(r.get("registrations")["apis"], json!(5));
    wait_until(Duration::from_secs(2), "busy worker gone", || {
        !process_alive(worker)
    });
    let status = pending.join().expect("request thread");
    assert!(
        status >= 500,
        "the pending request ends with an error, got {status}"
    );
    rt.call_route("GET", "/busy/ping", None).expect_status(404);
    assert!(rt.running_entry(&busy).is_none());
    rt.call_route("GET", "/fast/ping", None).expect_status(200);
    assert_eq!(
        rt.running_entry(&fast).expect("fast listed")["status"],
        "running"
    );
}

#[test]
fn stop_during_a_busy_loop_in_a_handler() {
    stop_hung_script("spin");
}

#[test]
fn stop_during_an_endless_sleep_in_a_handler() {
    stop_hung_script("sleep");
}

#[test]
fn stop_during_a_busy_function_call() {
    let (rt, busy, fast, markers) = setup();
    let marker = markers.join("entered");
    let done = Arc::new(AtomicBool::new(false));
    let url = rt.url("/api/script/scripts/execute-function");
    let flag = done.clone();
    let args = json!({"function_name": "busy_fn", "function_args": {"marker": marker.display().to_string()}});
    let c = rt.client();
    let t = std::thread::spawn(move || {
        let r = c.post(url).json(&args).send();
        flag.store(true, Ordering::SeqCst);
        r.map(|r| r.status().as_u16()).unwrap_or(0)
    });
    wait_until(Duration::from_secs(5), "busy_fn started", || {
        marker.exists()
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(!done.load(Ordering::SeqCst), "busy_fn is still running");
    assert_eq!(
        rt.execute_ok(Some(&fast), "fast_fn", json!({})),
        json!("fast")
    );
    let t0 = Instant::now();
    rt.stop(&busy).ok();
    assert!(
        t0.elapsed() < Duration::from_millis(GRACE_MS + STOP_MARGIN_MS),
        "{:?}",
        t0.elapsed()
    );
    let status = t.join().expect("thread");
    assert!(
        status >= 500,
        "the pending call ends with an error, got {status}"
    );
}

fn crash(route: &str, exit_code: Option<i64>, signal: Option<i64>) {
    let (rt, busy, fast, _m) = setup();
    let worker = rt.running_entry(&busy).expect("listed")["pid"]
        .as_u64()
        .expect("pid") as u32;
    let r = rt.call_route("GET", route, None);
    assert!(r.status >= 500, "{}", r.text);
    assert_eq!(r.get("success"), &json!(false), "{}", r.text);
    wait_until(Duration::from_secs(5), "status crashed", || {
        rt.running_entry(&busy)
            .is_some_and(|e| e["status"] == "crashed")
    });
    let e = rt.running_entry(&busy).expect("listed");
    assert_eq!(e["exit_code"], json!(exit_code), "{e}");
    assert_eq!(e["signal"], json!(signal), "{e}");
    assert_eq!(
        e["registrations"],
        json!({"apis": 0, "functions": 0, "events": 0, "timers": 0}),
        "{e}"
    );
    assert!(!process_alive(worker));
    rt.call_route("GET", "/busy/ping", None)
        .fails(404, "未注册");
    rt.execute(None, "busy_fn", json!({"marker": "/nonexistent/x"}))
        .fails(404, "未注册");
    let reg = rt.registry();
    assert!(reg["api_routes"].get("GET:/busy/ping").is_none(), "{reg}");
    assert_eq!(reg["active_scripts"][&busy]["status"], "crashed");
    let out = rt.output(&busy);
    assert!(out.contains("异常退出"), "{out}");

    // The other script did not notice.
    assert_eq!(
        rt.call_route("GET", "/fast/ping", None).json,
        json!({"pong": "fast"})
    );
    assert_eq!(rt.running_entry(&fast).expect("fast")["status"], "running");

    // The crashed script can be started again; the crashed entry goes away.
    let again = rt.start_ok("p/busy.py", None);
    assert!(rt.running_entry(&busy).is_none());
    assert_eq!(
        rt.call_route("GET", "/busy/ping", None).json,
        json!({"pong": "busy"})
    );
    // Stopping a crashed entry is allowed and just forgets it.
    rt.call_route("GET", route, None);
    wait_until(Duration::from_secs(5), "crashed again", || {
        rt.running_entry(&again)
            .is_some_and(|e| e["status"] == "crashed")
    });
    let r = rt.stop(&again);
    r.ok();
    assert!(rt.running_entry(&again).is_none());
}

#[test]
fn crash_by_os_exit_in_a_handler() {
    crash("/busy/exit", Some(3), None);
}

#[test]
fn crash_by_sigkill_in_a_handler() {
    crash("/busy/kill9", None, Some(9));
}

#[test]
fn a_crash_during_boot_is_a_failed_start() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    rt.create_file(
        pid,
        "dies.py",
        &py(r#"
        import os
        def boot():
            VWED.api.register_route("/dies", "GET", lambda r: {})
            os._exit(7)
    "#),
    );
    let r = rt.start_script("p/dies.py", None);
    r.fails(500, "exit code 7");
    assert!(rt.running().is_empty());
    rt.call_route("GET", "/dies", None).expect_status(404);
}

#[test]
fn a_crash_inside_a_function_call_is_503_and_marks_the_script_crashed() {
    let rt = Runtime::with(stays_down());
    let sid = rt.deploy(
        "p",
        "fn_crash.py",
        "import os\ndef boot():\n    VWED.function.register('die', lambda a: os._exit(5))\n",
    );
    let other = rt.deploy("p", "fast.py", FAST);
    let r = rt.execute(Some(&sid), "die", json!({}));
    r.fails(503, "已退出");
    wait_until(Duration::from_secs(5), "status crashed", || {
        rt.running_entry(&sid)
            .is_some_and(|e| e["status"] == "crashed" && e["exit_code"] == json!(5))
    });
    rt.execute(None, "die", json!({})).fails(404, "未注册");
    assert_eq!(
        rt.execute_ok(Some(&other), "fast_fn", json!({})),
        json!("fast")
    );
}

/// Pids a script wrote to `file`, one per line.
fn read_pids(file: &std::path::Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Kills the listed pids when dropped, so a failing test leaves no helper behind.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            // SAFETY: kill(2) on pids this test's script started.
            unsafe {
                libc::kill(*p as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

/// Only where scripts can start processes: with the sandbox turned off, or on a
/// kernel without seccomp (sandbox.rs shows that a confined script cannot).
#[test]
fn processes_a_script_started_end_when_it_stops_or_crashes() {
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_STOP_GRACE_MS", GRACE_MS)
            .env("VWED_SANDBOX__ENABLED", "false"),
    );
    let dir = TempDir::new("helpers");
    let pids = dir.path().join("pids");
    let src = py(&format!(
        r#"
        import os, subprocess
        def boot():
            p = subprocess.Popen(["sleep", "30"])
            os.system("sleep 31 & echo $! >> {pids}")
            with open("{pids}", "a") as f:
                f.write(str(p.pid) + "\n")
            VWED.api.register_route("/helper/crash", "GET", lambda r: os._exit(1))
        "#,
        pids = pids.display()
    ));
    let sid = rt.deploy("p", "helper.py", &src);
    let helpers = read_pids(&pids);
    let _guard = KillOnDrop(helpers.clone());
    assert_eq!(helpers.len(), 2, "{helpers:?}");
    assert!(helpers.iter().all(|h| process_alive(*h)));
    rt.stop(&sid).ok();
    wait_until(
        Duration::from_secs(2),
        "helpers end with the stopped script",
        || helpers.iter().all(|h| !process_alive(*h)),
    );

    std::fs::remove_file(&pids).expect("rm pids");
    rt.start_ok("p/helper.py", None);
    let helpers = read_pids(&pids);
    let _guard2 = KillOnDrop(helpers.clone());
    assert_eq!(helpers.len(), 2, "{helpers:?}");
    rt.call_route("GET", "/helper/crash", None);
    wait_until(
        Duration::from_secs(3),
        "helpers end with the crashed script",
        || helpers.iter().all(|h| !process_alive(*h)),
    );
}

/// A script that tries to take all the memory gets a MemoryError at its limit; the
/// runtime and other scripts do not notice, and the script itself keeps serving.
#[test]
fn a_memory_bomb_hits_the_worker_limit_not_the_controller() {
    let rt = Runtime::with(Opts::default().env("VWED_WORKER_MEMORY_MB", 256));
    let bomb = rt.deploy(
        "p",
        "bomb.py",
        &py(r#"
            def boot():
                @VWED.api.get("/bomb")
                def bomb(r):
                    hog = []
                    while True:
                        hog.append(bytearray(16 * 1024 * 1024))

                @VWED.api.get("/alive")
                def alive(r):
                    return {"alive": True}
        "#),
    );
    rt.deploy(
        "p",
        "other.py",
        "def boot():\n    VWED.api.register_route('/other', 'GET', lambda r: {'ok': True})\n",
    );
    let r = rt.call_route("GET", "/bomb", None);
    r.expect_status(500);
    assert!(r.text.contains("MemoryError"), "{}", r.text);
    rt.call_route("GET", "/alive", None).expect_status(200);
    rt.call_route("GET", "/other", None).expect_status(200);
    assert_eq!(
        rt.running_entry(&bomb).expect("listed")["status"],
        "running"
    );
    rt.get("/health").expect_status(200);
}

#[test]
fn the_worker_defers_ssl_until_used_and_freezes_what_boot_built() {
    let rt = Runtime::start();
    let id = rt.deploy(
        "iso",
        "lean.py",
        &py(r#"
        import gc, sys

        def boot():
            @VWED.function.register("lean")
            def lean(args):
                before = "ssl" in sys.modules
                import ssl
                return {
                    "ssl_before": before,
                    "asyncio_has_ssl": sys.modules["asyncio.sslproto"].ssl is ssl,
                    "frozen": gc.get_freeze_count() > 0,
                }
        "#),
    );
    let r = rt.execute_ok(Some(&id), "lean", json!({}));
    assert_eq!(r["ssl_before"], false, "{r}");
    assert_eq!(r["asyncio_has_ssl"], true, "{r}");
    assert_eq!(r["frozen"], true, "{r}");
}
