//! Restore after `kill -9` of the runtime: the workers die with it, and the next
//! runtime on the same data dir starts again exactly the scripts that were running,
//! with their start_params.

use std::time::Duration;

use vwed_e2e::{Runtime, json, process_alive, py, wait_until};

/// Pids of the direct children of `parent`.
fn children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

const PARAMS_ROUTE: &str = r#"
def boot(params):
    @VWED.api.get("/NAME")
    def show(req):
        return {"params": params, "script_id": VWED.get_script_id()}
"#;

#[test]
fn scripts_come_back_after_kill_9_of_the_runtime() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    for name in ["a", "b", "c", "d", "e"] {
        rt.create_file(
            pid,
            &format!("{name}.py"),
            &PARAMS_ROUTE.replace("NAME", name),
        );
    }
    let crash = py(r#"
        import os
        def boot():
            VWED.api.register_route("/crash", "GET", lambda r: os._exit(1))
    "#);
    rt.create_file(pid, "crash.py", &crash);

    let a = rt.start_ok("p/a.py", None);
    let params = json!({"robot": "AGV-01", "speed": 1.5, "zones": ["A", "B"]});
    let b = rt.start_ok("p/b.py", Some(params.clone()));
    let c = rt.start_ok("p/c.py", None);
    rt.stop(&c).ok();
    let e = rt.start_ok("p/e.py", None);
    // A script whose policy does not restart it is not restored either.
    let r = rt.post(
        "/api/script/scripts/start",
        &json!({"script_path": "p/crash.py", "restart_policy": {"mode": "never"}}),
    );
    r.ok();
    let crashed = r.get("script_id").as_str().expect("script_id").to_string();
    rt.call_route("GET", "/crash", None);
    wait_until(Duration::from_secs(5), "crash.py crashed", || {
        rt.running_entry(&crashed)
            .is_some_and(|x| x["status"] == "crashed")
    });
    // Make sure the analyzer worker exists too, so its fate is checked as well.
    rt.post("/api/script/validate-syntax", &json!({"content": "x = 1"}))
        .ok();

    let workers: Vec<u32> = [&a, &b, &e]
        .iter()
        .map(|id| {
            rt.running_entry(id).expect("listed")["pid"]
                .as_u64()
                .expect("pid") as u32
        })
        .collect();
    let kids = children(rt.pid());
    for w in &workers {
        assert!(
            kids.contains(w),
            "worker {w} is a child of the runtime: {kids:?}"
        );
    }
    assert!(
        kids.len() > workers.len(),
        "the analyzer is running too: {kids:?}"
    );

    let data = rt.kill9_keep_data();
    wait_until(
        Duration::from_secs(1),
        "every worker gone within 1 s of kill -9",
        || kids.iter().all(|p| !process_alive(*p)),
    );

    // e.py is broken while the runtime is down: it cannot come back, and that must
    // not keep the others from coming back.
    std::fs::write(data.path().join("projects/p/e.py"), "def boot(:\n").expect("break e.py");

    let rt = Runtime::start_in(data, vwed_e2e::Opts::default());
    let running = rt.running();
    let mut paths: Vec<&str> = running
        .iter()
        .filter_map(|s| s["script_path"].as_str())
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, vec!["p/a.py", "p/b.py"], "{running:?}");
    for s in &running {
        assert_eq!(s["status"], "running");
        let id = s["script_id"].as_str().expect("id");
        assert!(id != a && id != b, "a new run has a new id");
        let w = s["pid"].as_u64().expect("pid") as u32;
        assert!(process_alive(w) && !workers.contains(&w));
    }
    let rb = running
        .iter()
        .find(|s| s["script_path"] == "p/b.py")
        .expect("b");
    assert_eq!(rb["start_params"], params);
    let ra = running
        .iter()
        .find(|s| s["script_path"] == "p/a.py")
        .expect("a");
    assert_eq!(ra["start_params"], json!({}));

    // Their routes answer, with the parameters of the original start.
    let r = rt.call_route("GET", "/b", None);
    assert_eq!(r.get("params"), &params);
    assert_eq!(r.get("script_id"), &rb["script_id"]);
    assert_eq!(rt.call_route("GET", "/a", None).get("params"), &json!({}));
    for gone in ["/c", "/e", "/crash"] {
        rt.call_route("GET", gone, None).expect_status(404);
    }

    // And they keep coming back: a second kill -9 brings back the same two.
    let data = rt.kill9_keep_data();
    let rt = Runtime::start_in(data, vwed_e2e::Opts::default());
    let mut paths: Vec<String> = rt
        .running()
        .iter()
        .filter_map(|s| s["script_path"].as_str().map(str::to_string))
        .collect();
    paths.sort();
    assert_eq!(paths, vec!["p/a.py", "p/b.py"]);
    assert_eq!(rt.call_route("GET", "/b", None).get("params"), &params);
}

#[test]
fn a_clean_restart_of_an_idle_runtime_restores_nothing() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    rt.create_file(pid, "a.py", &PARAMS_ROUTE.replace("NAME", "a"));
    let a = rt.start_ok("p/a.py", None);
    rt.stop(&a).ok();
    let data = rt.kill9_keep_data();
    let rt = Runtime::start_in(data, vwed_e2e::Opts::default());
    assert!(rt.running().is_empty());
    // The project and file are still there.
    let r = rt.get(&format!("/api/script/projects/{pid}/files"));
    assert_eq!(
        r.data()["files"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
}

#[test]
fn a_graceful_shutdown_stops_the_workers_and_keeps_them_for_the_next_start() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    rt.create_file(pid, "a.py", &PARAMS_ROUTE.replace("NAME", "a"));
    let params = json!({"x": 1});
    let a = rt.start_ok("p/a.py", Some(params.clone()));
    let worker = rt.running_entry(&a).expect("listed")["pid"]
        .as_u64()
        .expect("pid") as u32;
    let data = rt.terminate_keep_data(Duration::from_secs(10));
    assert!(!process_alive(worker), "worker stopped with the runtime");
    let rt = Runtime::start_in(data, vwed_e2e::Opts::default());
    let running = rt.running();
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(running[0]["start_params"], params);
    assert_eq!(rt.call_route("GET", "/a", None).get("params"), &params);
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

fn unconfined() -> vwed_e2e::Opts {
    vwed_e2e::Opts::default().env("VWED_SANDBOX__ENABLED", "false")
}

/// Only where scripts can start processes: with the sandbox turned off, or on a
/// kernel without seccomp (sandbox.rs shows that a confined script cannot).
#[test]
fn a_helper_process_left_by_a_script_does_not_keep_the_next_runtime_out() {
    let rt = Runtime::with(unconfined());
    let dir = vwed_e2e::TempDir::new("helpers");
    let pids = dir.path().join("pids");
    let src = py(&format!(
        r#"
        import os, subprocess
        def boot():
            p = subprocess.Popen(["sleep", "30"], close_fds=False)
            os.system("sleep 31 & echo $! >> {pids}")
            with open("{pids}", "a") as f:
                f.write(str(p.pid) + "\n")
            VWED.api.register_route("/alive", "GET", lambda r: {{"alive": True}})
        "#,
        pids = pids.display()
    ));
    rt.deploy("p", "helper.py", &src);
    let helpers: Vec<u32> = std::fs::read_to_string(&pids)
        .expect("pids file")
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(helpers.len(), 2, "{helpers:?}");
    let _guard = KillOnDrop(helpers.clone());
    for h in &helpers {
        assert!(process_alive(*h));
        let fds: Vec<String> = std::fs::read_dir(format!("/proc/{h}/fd"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .map(|l| l.display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            !fds.iter().any(|l| l.ends_with("vwed-edge.lock")),
            "helper {h} inherited the data-dir lock: {fds:?}"
        );
    }

    let data = rt.kill9_keep_data();
    let t0 = std::time::Instant::now();
    let rt = Runtime::start_in(data, unconfined());
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "the next runtime waited {:?} for the data dir",
        t0.elapsed()
    );
    assert_eq!(
        rt.call_route("GET", "/alive", None).get("alive"),
        &json!(true)
    );
}

/// As above: forking needs the sandbox turned off.
#[test]
fn a_forked_child_of_a_script_does_not_keep_the_next_runtime_out() {
    let rt = Runtime::with(unconfined());
    let dir = vwed_e2e::TempDir::new("forked");
    let pids = dir.path().join("pids");
    let src = py(&format!(
        r#"
        import os, multiprocessing
        def nap():
            time.sleep(30)
        def boot():
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            p = multiprocessing.get_context("fork").Process(target=nap)
            p.start()
            with open("{pids}", "a") as f:
                f.write(f"{{pid}}\n{{p.pid}}\n")
            VWED.api.register_route("/forked", "GET", lambda r: {{"forked": True}})
        "#,
        pids = pids.display()
    ));
    rt.deploy("p", "forked.py", &src);
    let children: Vec<u32> = std::fs::read_to_string(&pids)
        .expect("pids file")
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(children.len(), 2, "{children:?}");
    let _guard = KillOnDrop(children.clone());
    let data = rt.kill9_keep_data();
    let t0 = std::time::Instant::now();
    let rt = Runtime::start_in(data, unconfined());
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "the next runtime waited {:?} for the data dir",
        t0.elapsed()
    );
    assert_eq!(
        rt.call_route("GET", "/forked", None).get("forked"),
        &json!(true)
    );
}

/// Regression: a restore that failed once (a boot that could not succeed yet, say
/// the device it needs was still down) dropped the script from the running set for
/// good, so the next power cut lost it.
#[test]
fn a_restore_that_fails_for_now_is_retried_until_it_works() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    let flag = rt.data_dir().join("device-up");
    std::fs::write(&flag, "1").expect("flag");
    rt.create_file(
        pid,
        "needs_device.py",
        &py(r#"
            import os
            def boot(params):
                if not os.path.exists(params["flag"]):
                    raise RuntimeError("device not reachable yet")
                VWED.api.register_route("/up", "GET", lambda r: {"up": True})
        "#),
    );
    let flag_s = flag.to_str().expect("utf8 path").to_string();
    rt.start_ok("p/needs_device.py", Some(json!({"flag": flag_s})));
    let data = rt.kill9_keep_data();
    std::fs::remove_file(data.path().join("device-up")).expect("remove flag");
    let rt = Runtime::start_in(data, vwed_e2e::Opts::default());
    assert!(rt.running().is_empty(), "the boot cannot succeed yet");
    std::fs::write(rt.data_dir().join("device-up"), "1").expect("flag again");
    wait_until(
        Duration::from_secs(20),
        "the script is restored by a retry",
        || {
            rt.running()
                .iter()
                .any(|s| s["script_path"] == "p/needs_device.py" && s["status"] == "running")
        },
    );
    rt.call_route("GET", "/up", None).expect_status(200);
}
