//! Supervision: a worker stuck past its timeout is busy, then ended after a grace
//! period; failed scripts are restarted by their policy with backoff and become
//! `broken` after too many restarts; a worker over its CPU limit is ended; a
//! runtime that keeps dying soon after restoring scripts starts in safe mode.

use std::time::Duration;

use vwed_e2e::{Opts, Runtime, Value, json, process_alive, wait_until};

use crate::runaway::still_fine;

/// Generous bound for anything that happens after a backoff or grace period.
const LONG: Duration = Duration::from_secs(30);

const STUCK: &str = r#"
def boot():
    @VWED.api.get("/stuck/forever")
    def forever(req):
        time.sleep(10**9)

    @VWED.api.get("/stuck/briefly")
    def briefly(req):
        time.sleep(float(req["query_params"]["s"]))
        return {"slept": True}

    @VWED.api.get("/stuck/ping")
    def ping(req):
        return {"pong": "stuck"}
"#;

/// The entry of the script at `path` (whatever its current script_id).
fn entry_of(rt: &Runtime, path: &str) -> Option<Value> {
    rt.running()
        .into_iter()
        .find(|e| e["script_path"] == json!(path))
}

fn with_timeout(rt: &Runtime, path: &str, ms: u64) -> vwed_e2e::Resp {
    rt.send(
        "GET",
        &format!("/script-api{path}"),
        None,
        &[("x-vwed-timeout-ms", &ms.to_string())],
    )
}

/// Waits until the script at `path` runs as a new instance (not `old`); returns
/// its entry.
fn restarted(rt: &Runtime, path: &str, old: &str) -> Value {
    let mut found = None;
    wait_until(LONG, "the script is restarted", || {
        found = entry_of(rt, path)
            .filter(|e| e["script_id"] != json!(old) && e["status"] == json!("running"));
        found.is_some()
    });
    found.unwrap_or_default()
}

#[test]
fn a_handler_stuck_past_its_timeout_is_busy_then_its_worker_is_restarted() {
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_SUPERVISION__BUSY_GRACE_MS", 3000)
            .env("VWED_SUPERVISION__BACKOFF_MS", 200),
    );
    rt.deploy("p", "fast.py", crate::isolation::FAST);
    let params = json!({"line": 3});
    let pid = rt.project_id("p").expect("project");
    rt.create_file(pid, "stuck.py", STUCK);
    let stuck = rt.start_ok("p/stuck.py", Some(params.clone()));
    let worker = rt.running_entry(&stuck).expect("listed")["pid"]
        .as_u64()
        .expect("pid") as u32;

    with_timeout(&rt, "/stuck/forever", 500).fails(504, "超时");
    // Busy while the grace period runs: visible, and the same script's other
    // routes wait behind the stuck handler.
    let e = rt.running_entry(&stuck).expect("listed");
    assert_eq!(e["status"], json!("running"), "{e}");
    assert_eq!(e["busy"]["work"], json!("route"), "{e}");
    assert_eq!(e["busy"]["timeout_ms"], json!(500), "{e}");
    assert!(e["busy"]["ended_after"].is_string(), "{e}");
    with_timeout(&rt, "/stuck/ping", 200).fails(504, "超时");
    still_fine(&rt, "a stuck handler");

    // Still busy after the grace period: its worker is ended and the script
    // restarted with the same start parameters.
    let now = restarted(&rt, "p/stuck.py", &stuck);
    assert!(!process_alive(worker), "the stuck worker is gone");
    assert_eq!(now["restarts"], json!(1), "{now}");
    assert_eq!(now["start_params"], params, "{now}");
    assert_eq!(now["busy"], Value::Null, "{now}");
    assert_eq!(now["last_failure"]["kind"], json!("hung"), "{now}");
    let why = now["last_failure"]["reason"].as_str().unwrap_or("");
    assert!(why.contains("route") && why.contains("500 ms"), "{now}");
    assert!(
        rt.output(&stuck).contains("将在 0.2 秒后自动重启"),
        "{}",
        rt.output(&stuck)
    );
    assert_eq!(
        rt.call_route("GET", "/stuck/ping", None).json,
        json!({"pong": "stuck"})
    );
    still_fine(&rt, "the restart");
}

#[test]
fn a_handler_that_finishes_within_the_grace_period_is_only_busy_for_a_while() {
    let rt = Runtime::with(Opts::default().env("VWED_SUPERVISION__BUSY_GRACE_MS", 20_000));
    let stuck = rt.deploy("p", "stuck.py", STUCK);
    let r = rt.send(
        "GET",
        "/script-api/stuck/briefly?s=1.5",
        None,
        &[("x-vwed-timeout-ms", "300")],
    );
    r.fails(504, "超时");
    assert!(rt.running_entry(&stuck).expect("listed")["busy"].is_object());
    wait_until(LONG, "no longer busy", || {
        rt.running_entry(&stuck)
            .is_some_and(|e| e["busy"].is_null())
    });
    let e = rt.running_entry(&stuck).expect("the same instance runs on");
    assert_eq!(e["status"], json!("running"), "{e}");
    assert_eq!(e["restarts"], json!(0), "{e}");
}

const CRASH_LOOP: &str = r#"
import os

def boot():
    @VWED.timer.once(delay=0.2)
    def die():
        os._exit(3)
"#;

#[test]
fn a_crash_loop_backs_off_and_ends_broken() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    rt.create_file(pid, "loop.py", CRASH_LOOP);
    let r = rt.post(
        "/api/script/scripts/start",
        &json!({
            "script_path": "p/loop.py",
            "start_params": {"k": "v"},
            "restart_policy": {"max_restarts": 2, "backoff_ms": 200, "window_s": 600},
        }),
    );
    r.ok();
    let first = r.get("script_id").as_str().unwrap_or("").to_string();

    let mut broken = Value::Null;
    wait_until(LONG, "the script is broken", || {
        broken = entry_of(&rt, "p/loop.py").unwrap_or_default();
        broken["status"] == json!("broken")
    });
    assert_ne!(broken["script_id"], json!(first), "{broken}");
    assert_eq!(broken["restarts_total"], json!(2), "{broken}");
    assert_eq!(broken["start_params"], json!({"k": "v"}), "{broken}");
    assert_eq!(
        broken["restart_policy"]["max_restarts"],
        json!(2),
        "{broken}"
    );
    assert_eq!(broken["exit_reason"]["kind"], json!("crashed"), "{broken}");
    assert!(
        broken["last_failure"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("exit code 3")),
        "{broken}"
    );
    assert!(broken["broken_since"].is_string(), "{broken}");
    let id = broken["script_id"].as_str().unwrap_or("").to_string();
    let out = rt.output(&id);
    assert!(out.contains("不再重启 (broken)"), "{out}");
    // The second restart waited twice as long as the first.
    assert!(
        rt.output(&first).contains("0.2 秒后"),
        "{}",
        rt.output(&first)
    );
    assert!(out.contains("exit code 3"), "{out}");

    // Broken stays broken: nothing restarts it (the backoff would be 0.8 s).
    std::thread::sleep(Duration::from_secs(2));
    let still = entry_of(&rt, "p/loop.py").expect("listed");
    assert_eq!(still["script_id"], json!(id), "{still}");
    assert_eq!(still["status"], json!("broken"), "{still}");
    // Every listing says so, not `crashed` in some of them.
    assert_eq!(
        rt.registry()["active_scripts"][&id]["status"],
        json!("broken")
    );
    let out = rt.get(&format!("/api/script/scripts/{id}/output"));
    assert_eq!(out.data()["status"], json!("broken"), "{}", out.text);

    // Started by hand it begins a new supervision; stopping it ends it.
    let again = rt.start_ok("p/loop.py", None);
    let e = rt.running_entry(&again).expect("listed");
    assert_eq!(e["restarts"], json!(0), "{e}");
    assert_eq!(e["restart_policy"]["mode"], json!("on-failure"), "{e}");
    rt.stop(&again).ok();
}

#[test]
fn restart_policy_never_and_bad_policies() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    rt.create_file(pid, "loop.py", CRASH_LOOP);
    let start = |policy: Value| {
        rt.post(
            "/api/script/scripts/start",
            &json!({"script_path": "p/loop.py", "restart_policy": policy}),
        )
    };
    start(json!({"mode": "always"})).fails(400, "");
    start(json!({"backoff_ms": 0})).fails(400, "backoff_ms");
    start(json!({"retries": 3})).fails(400, "");
    assert!(rt.running().is_empty());

    let r = start(json!({"mode": "never"}));
    r.ok();
    let id = r.get("script_id").as_str().unwrap_or("").to_string();
    wait_until(LONG, "crashed", || {
        rt.running_entry(&id)
            .is_some_and(|e| e["status"] == json!("crashed"))
    });
    std::thread::sleep(Duration::from_secs(2));
    let e = entry_of(&rt, "p/loop.py").expect("listed");
    assert_eq!(e["script_id"], json!(id), "not restarted: {e}");
    assert_eq!(e["restarts_total"], json!(0), "{e}");
    assert_eq!(e["next_restart_at"], Value::Null, "{e}");
}

#[test]
fn a_restored_script_keeps_its_policy_and_params() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    rt.create_file(pid, "fast.py", crate::isolation::FAST);
    rt.post(
        "/api/script/scripts/start",
        &json!({
            "script_path": "p/fast.py",
            "start_params": {"a": 1},
            "restart_policy": {"mode": "never", "max_restarts": 7},
        }),
    )
    .ok();
    let rt = Runtime::start_in(rt.kill9_keep_data(), Opts::default());
    let e = entry_of(&rt, "p/fast.py").expect("restored");
    assert_eq!(e["start_params"], json!({"a": 1}), "{e}");
    assert_eq!(e["restart_policy"]["mode"], json!("never"), "{e}");
    assert_eq!(e["restart_policy"]["max_restarts"], json!(7), "{e}");
}

// ------------------------------------------------------------------ safe mode

const KILLER: &str = r#"
import os

def boot():
    @VWED.timer.once(delay=3)
    def kill_the_runtime():
        os.kill(os.getppid(), 9)
"#;

/// The sandbox would refuse the kill; this script needs it off to crash the
/// runtime the way a bug in the runtime itself might.
fn unconfined() -> Opts {
    Opts::default()
        .env("VWED_SANDBOX__ENABLED", "false")
        .env("VWED_SUPERVISION__SAFE_MODE_AFTER", 2)
        .env("VWED_SUPERVISION__STABLE_AFTER_S", 120)
}

/// Waits for a runtime to die by its script's hand and takes its data dir.
fn dies(rt: Runtime) -> vwed_e2e::TempDir {
    let pid = rt.pid();
    wait_until(LONG, "the runtime is killed", || !process_alive(pid));
    rt.kill9_keep_data()
}

#[test]
fn a_runtime_that_keeps_dying_after_restore_starts_in_safe_mode() {
    let rt = Runtime::with(unconfined());
    rt.deploy("p", "killer.py", KILLER);
    let mut data = dies(rt);
    // Restored and killed again, twice: the marker says so each time.
    for _ in 0..2 {
        let rt = Runtime::start_in(data, unconfined());
        assert_eq!(rt.get("/health").data()["safe_mode"], json!(false));
        data = dies(rt);
    }
    let rt = Runtime::start_in(data, unconfined());
    let health = rt.get("/health");
    let h = health.data();
    assert_eq!(h["safe_mode"], json!(true), "{h}");
    assert!(
        h["safe_mode_reason"]
            .as_str()
            .is_some_and(|r| r.contains("连续 2 次")),
        "{h}"
    );
    assert_eq!(h["held_scripts"], json!(["p/killer.py"]), "{h}");
    let running = rt.get("/api/script/scripts/running");
    assert_eq!(running.get("safe_mode"), &json!(true), "{}", running.text);
    assert_eq!(running.data(), &json!([]), "{}", running.text);
    assert!(rt.stderr().contains("safe mode"), "{}", rt.stderr());
    // Not restored, so it does not die.
    std::thread::sleep(Duration::from_secs(4));
    assert!(process_alive(rt.pid()), "{}", rt.stderr());

    let r = rt.post("/api/script/safe-mode/exit", &json!({"restore": false}));
    r.ok();
    assert_eq!(r.data()["forgotten"], json!(["p/killer.py"]), "{}", r.text);
    assert_eq!(rt.get("/health").data()["safe_mode"], json!(false));
    rt.post("/api/script/safe-mode/exit", &json!({}))
        .fails(409, "不在安全模式");
    // Forgotten for good: the next start restores nothing.
    let rt = Runtime::start_in(rt.terminate_keep_data(LONG), unconfined());
    assert!(rt.running().is_empty());
    assert_eq!(rt.get("/health").data()["safe_mode"], json!(false));
}

#[test]
fn serve_safe_holds_the_scripts_until_they_are_started_or_safe_mode_is_left() {
    let rt = Runtime::start();
    rt.deploy("p", "fast.py", crate::isolation::FAST);
    rt.deploy("p", "stuck.py", STUCK);
    let data = rt.terminate_keep_data(LONG);

    let rt = Runtime::start_in(data, Opts::default().arg("--safe"));
    let h = rt.get("/health").data().clone();
    assert_eq!(h["safe_mode"], json!(true), "{h}");
    assert!(
        h["safe_mode_reason"]
            .as_str()
            .is_some_and(|r| r.contains("--safe")),
        "{h}"
    );
    assert_eq!(h["held_scripts"], json!(["p/fast.py", "p/stuck.py"]), "{h}");
    assert!(rt.running().is_empty());
    // Starting one by hand: it runs, the other stays held.
    rt.start_ok("p/fast.py", None);
    assert_eq!(
        rt.get("/health").data()["held_scripts"],
        json!(["p/stuck.py"])
    );
    let r = rt.post("/api/script/safe-mode/exit", &json!({}));
    r.ok();
    assert_eq!(r.data()["restored"], json!(["p/stuck.py"]), "{}", r.text);
    assert!(entry_of(&rt, "p/stuck.py").is_some());
    assert_eq!(rt.get("/health").data()["safe_mode"], json!(false));
    still_fine(&rt, "leaving safe mode");
}
