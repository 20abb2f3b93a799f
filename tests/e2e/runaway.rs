//! Runaway scripts (issue 13): busy loop, endless sleep, memory bomb, fork bomb,
//! segfault, 200 MB of output, deep recursion, a spinning thread. For each, the
//! runtime stays up, another script's route keeps answering, and the offender is
//! stopped at its limit. How much the bystander slows down meanwhile is a
//! benchmark (bench/runaway.py), not asserted here.

use std::time::Duration;

use vwed_e2e::{Opts, Runtime, Value, json, process_alive, wait_until};

const LONG: Duration = Duration::from_secs(30);
/// `max_line_bytes` of the runtime that prints 200 MB (not the default, so that
/// the test shows the setting is what cuts).
const LINE_LIMIT: usize = 32 * 1024;

/// Every offender, one route each (shared with bench/runaway.py).
const OFFENDERS: &str = include_str!("../fixtures/runaway/offenders.py");

/// The runtime and an innocent script answer, whatever the offender just did.
pub(crate) fn still_fine(rt: &Runtime, after: &str) {
    rt.get("/health").expect_status(200);
    let r = rt.call_route("GET", "/fast/ping", None);
    assert_eq!(r.json, json!({"pong": "fast"}), "after {after}: {}", r.text);
}

/// A runtime with the bystander and the offenders; `env` adds settings.
fn runtime(env: &[(&str, &str)]) -> (Runtime, String) {
    let mut opts = Opts::default()
        .env("VWED_WORKER_MEMORY_MB", 128)
        .env("VWED_STOP_GRACE_MS", 300)
        .env("VWED_SUPERVISION__BACKOFF_MS", 200);
    for (k, v) in env {
        opts = opts.env(k, v);
    }
    let rt = Runtime::with(opts);
    rt.deploy("p", "fast.py", crate::isolation::FAST);
    let offender = rt.deploy("p", "offender.py", OFFENDERS);
    (rt, offender)
}

fn worker_of(rt: &Runtime, script_id: &str) -> u32 {
    rt.running_entry(script_id).expect("listed")["pid"]
        .as_u64()
        .expect("pid") as u32
}

/// Waits until the offender's script runs again as another instance; returns the
/// entry the old instance left and the new one's id.
fn restarted_after(rt: &Runtime, old: &str) -> (Value, String) {
    let mut now = String::new();
    wait_until(LONG, "the offender is restarted", || {
        let e = rt
            .running()
            .into_iter()
            .find(|e| e["script_path"] == json!("p/offender.py"));
        match e {
            Some(e) if e["script_id"] != json!(old) && e["status"] == json!("running") => {
                now = e["script_id"].as_str().unwrap_or("").to_string();
                true
            }
            _ => false,
        }
    });
    let last = rt.get(&format!("/api/script/scripts/{old}/output?limit=10000"));
    (last.data().clone(), now)
}

#[test]
fn runaways_the_script_itself_runs_into_are_stopped_in_the_script() {
    // Room for every line of the 200 MB of output at the configured line limit.
    let (rt, offender) = runtime(&[
        ("VWED_MAX_LINE_BYTES", &LINE_LIMIT.to_string()),
        ("VWED_OUTPUT_MAX_BYTES", &(256 * LINE_LIMIT).to_string()),
    ]);
    for (route, stopped_by) in [
        // worker_memory_mb: the allocation past 128 MB fails.
        ("/run/memory", "MemoryError"),
        // No new processes (seccomp).
        ("/run/forkbomb", "PermissionError"),
        // The interpreter's recursion limit.
        ("/run/recursion", "RecursionError"),
    ] {
        let r = rt.call_route("GET", route, None);
        assert_eq!(
            r.json["stopped_by"],
            json!(stopped_by),
            "{route}: {}",
            r.text
        );
        still_fine(&rt, route);
    }
    // 200 lines of 1 MiB: printed, each kept only up to the configured limit.
    let r = rt.call_route("GET", "/run/output", None);
    assert_eq!(r.json["printed_mb"], json!(200), "{}", r.text);
    still_fine(&rt, "200 MB of output");
    let out = rt.get(&format!(
        "/api/script/scripts/{offender}/output?limit=10000"
    ));
    let lines = out.data()["lines"].as_array().cloned().unwrap_or_default();
    let long: Vec<usize> = lines
        .iter()
        .filter_map(|l| l["message"].as_str())
        .filter(|m| m.starts_with("xxxx"))
        .map(str::len)
        .collect();
    assert_eq!(long.len(), 200, "every printed line is kept");
    assert!(long.iter().all(|n| *n <= LINE_LIMIT), "{long:?}");
    assert_eq!(
        rt.call_route("GET", "/run/ping", None).json,
        json!({"pong": true})
    );
    assert_eq!(
        rt.running_entry(&offender).expect("listed")["restarts_total"],
        json!(0)
    );
}

#[test]
fn a_segfault_ends_only_its_worker_and_the_script_comes_back() {
    let (rt, offender) = runtime(&[]);
    let worker = worker_of(&rt, &offender);
    let r = rt.call_route("GET", "/run/segfault", None);
    assert!(r.status >= 500, "{}", r.text);
    wait_until(LONG, "the worker is reaped", || !process_alive(worker));
    still_fine(&rt, "a segfault");
    let (old, now) = restarted_after(&rt, &offender);
    let text = old["lines"].to_string();
    assert!(text.contains("signal 11"), "{text}");
    let e = rt.running_entry(&now).expect("listed");
    assert_eq!(e["restarts"], json!(1), "{e}");
    assert_eq!(e["last_failure"]["kind"], json!("crashed"), "{e}");
    assert!(
        e["last_failure"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("signal 11")),
        "{e}"
    );
    assert_eq!(
        rt.call_route("GET", "/run/ping", None).json,
        json!({"pong": true})
    );
}

#[test]
fn a_busy_loop_or_an_endless_sleep_is_ended_after_its_timeout_and_grace() {
    let (rt, first) = runtime(&[("VWED_SUPERVISION__BUSY_GRACE_MS", "1000")]);
    let mut offender = first;
    for route in ["/run/spin", "/run/sleep"] {
        let worker = worker_of(&rt, &offender);
        let r = rt.send(
            "GET",
            &format!("/script-api{route}"),
            None,
            &[("x-vwed-timeout-ms", "500")],
        );
        r.fails(504, "超时");
        still_fine(&rt, route);
        let (old, now) = restarted_after(&rt, &offender);
        assert!(!process_alive(worker), "{route}: the worker is gone");
        let text = old["lines"].to_string();
        assert!(text.contains("1000 ms 内仍未空闲"), "{route}: {text}");
        still_fine(&rt, &format!("ending {route}"));
        offender = now;
    }
}

#[test]
fn a_spinning_thread_is_ended_at_the_cpu_limit() {
    // An idle worker uses next to nothing; a spinning thread, even at the
    // workers' low priority on a loaded machine, far more than 5 %.
    let (rt, offender) = runtime(&[
        ("VWED_SUPERVISION__CPU_LIMIT_PERCENT", "5"),
        ("VWED_SUPERVISION__CPU_WINDOW_S", "3"),
        ("VWED_SUPERVISION__RESTART", "never"),
    ]);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        rt.running_entry(&offender).expect("listed")["status"],
        json!("running"),
        "idle, it stays"
    );
    let r = rt.call_route("GET", "/run/thread", None);
    assert_eq!(r.json, json!({"started": true}), "{}", r.text);
    still_fine(&rt, "starting a spinning thread");
    let mut e = Value::Null;
    wait_until(LONG, "ended at the CPU limit", || {
        e = rt.running_entry(&offender).unwrap_or_default();
        e["status"] == json!("crashed")
    });
    assert_eq!(e["exit_reason"]["kind"], json!("cpu_limit"), "{e}");
    let msg = e["exit_reason"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("上限 5%"), "{e}");
    still_fine(&rt, "the spinning thread");
}

/// Scheduling policy of each thread of `pid` (field 41 of its `stat`).
fn policies(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().nth(38)?.parse().ok()
        })
        .collect()
}

const SCHED_OTHER: u32 = 0;
const SCHED_IDLE: u32 = 5;

#[test]
fn a_busy_worker_runs_at_idle_priority_until_it_is_calm_again() {
    // A low threshold: on a machine loaded by other tests a nice-10 worker may
    // get well under the default 25 % of a core, and the mechanism is the point.
    let (rt, offender) = runtime(&[("VWED_SANDBOX__IDLE_ABOVE_PERCENT", "5")]);
    let bystander = rt
        .running()
        .into_iter()
        .find(|e| e["script_path"] == json!("p/fast.py"))
        .expect("bystander listed");
    let pid = worker_of(&rt, &offender);
    let entry = rt.running_entry(&offender).expect("listed");
    assert_eq!(entry["cpu_priority"], json!("normal"), "{entry}");
    assert!(policies(pid).iter().all(|&p| p == SCHED_OTHER));
    // Busy for 3 s: at idle priority well within it.
    std::thread::scope(|s| {
        let burn = s.spawn(|| rt.call_route("GET", "/run/burn?ms=3000", None));
        wait_until(Duration::from_secs(3), "the busy worker goes idle", || {
            rt.running_entry(&offender).unwrap_or_default()["cpu_priority"] == json!("idle")
        });
        let threads = policies(pid);
        assert!(
            !threads.is_empty() && threads.iter().all(|&p| p == SCHED_IDLE),
            "every thread: {threads:?}"
        );
        still_fine(&rt, "a busy worker");
        let r = burn.join().expect("burn");
        assert_eq!(r.json, json!({"burnt": true}), "{}", r.text);
    });
    // The script cannot undo it itself.
    let r = rt.call_route("GET", "/run/unidle", None);
    assert_eq!(
        r.json,
        json!({"raised": false, "error": "PermissionError"}),
        "{}",
        r.text
    );
    // Quiet for 5 s: back to normal.
    wait_until(Duration::from_secs(15), "back at normal priority", || {
        rt.running_entry(&offender).unwrap_or_default()["cpu_priority"] == json!("normal")
    });
    assert!(
        policies(pid).iter().all(|&p| p == SCHED_OTHER),
        "{:?}",
        policies(pid)
    );
    let id = bystander["script_id"].as_str().expect("id");
    assert_eq!(
        rt.running_entry(id).expect("listed")["cpu_priority"],
        json!("normal")
    );
    let out = rt.get(&format!("/api/script/scripts/{offender}/output?limit=100"));
    let text = out.data()["lines"].to_string();
    assert!(text.contains("idle priority until below 5%"), "{text}");
    assert!(text.contains("back at normal priority"), "{text}");
}
