//! VWED.event and VWED.timer across real worker processes.

use std::time::Duration;

use serde_json::json;
use vwed_e2e::{Opts, Runtime, wait_until};

const LISTENER: &str = r#"
seen = []
def boot():
    @VWED.event.listen("ping", priority=5)
    def late(d):
        seen.append(["late", d["i"]])

    @VWED.event.on("ping")
    def early(d):
        seen.append(["early", d["i"]])

    @VWED.event.listen("ping", priority=3)
    def broken(d):
        raise RuntimeError("listener failure")

    def stopped(d):
        seen.append(["stopped", d["script_path"]])
    VWED.event.listen(event_name="script_stopped", handler=stopped)

    @VWED.event.listen("script_crashed")
    def crashed(d):
        seen.append(["crashed", d["script_path"], d["exit_code"]])

    @VWED.api.get("/seen")
    def get_seen(req):
        return seen
"#;

const EMITTER: &str = r#"
import os
def boot():
    @VWED.api.post("/fire")
    async def fire(req):
        for i in range(3):
            VWED.event.emit("ping", {"i": i})
        await VWED.event.emit("ping", {"i": 3})
        asyncio.create_task(VWED.event.emit("ping", {"i": 4}))
        return {"ok": True}

    @VWED.api.post("/die")
    def die(req):
        os._exit(7)
"#;

#[test]
fn events_reach_listeners_of_other_scripts_in_priority_order() {
    let rt = Runtime::with(crate::isolation::stays_down());
    let l = rt.deploy("ev", "listener.py", LISTENER);
    let e = rt.deploy("ev", "emitter.py", EMITTER);
    rt.call_route("POST", "/fire", Some(&json!({})))
        .expect_status(200);
    // The central server can emit too.
    let r = rt.post(
        "/api/script/events/emit",
        &json!({"event_name": "ping", "data": {"i": 5}}),
    );
    r.ok();
    assert_eq!(r.data()["listeners"], 3);
    let seen = || rt.call_route("GET", "/seen", None).json;
    wait_until(Duration::from_secs(10), "all pings delivered", || {
        seen().as_array().is_some_and(|a| a.len() >= 12)
    });
    let s = seen();
    let order: Vec<(String, i64)> = s
        .as_array()
        .expect("list")
        .iter()
        .filter(|v| v[0] != "stopped" && v[0] != "crashed")
        .map(|v| {
            (
                v[0].as_str().unwrap_or("").to_string(),
                v[1].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    // Each listener gets every event in emit order; for each event the priority-1
    // listener ran before the priority-5 one, and the raising one stopped neither.
    let early: Vec<i64> = order
        .iter()
        .filter(|(k, _)| k == "early")
        .map(|(_, i)| *i)
        .collect();
    let late: Vec<i64> = order
        .iter()
        .filter(|(k, _)| k == "late")
        .map(|(_, i)| *i)
        .collect();
    assert_eq!(early, vec![0, 1, 2, 3, 4, 5], "{s}");
    assert_eq!(late, vec![0, 1, 2, 3, 4, 5], "{s}");
    for i in 0..6 {
        let pos = |k: &str| order.iter().position(|(kk, ii)| kk == k && *ii == i);
        assert!(pos("early") < pos("late"), "event {i}: {s}");
    }
    assert!(rt.output(&l).contains("listener failure"));
    // Listener statistics: the raising one counts errors.
    let st = rt.get("/api/script/registry/status");
    let ping = &st.data()["event_listeners"]["ping"];
    assert_eq!(ping.as_array().map(Vec::len), Some(3), "{ping}");
    assert_eq!(ping[1]["priority"], 3);
    assert_eq!(ping[1]["error_count"], 6, "{ping}");

    // System events: a stop and a crash of the emitter reach the listener.
    let e2 = e.clone();
    rt.stop(&e2).ok();
    let e = rt.start_ok("ev/emitter.py", None);
    let _ = rt.call_route("POST", "/die", Some(&json!({})));
    wait_until(Duration::from_secs(10), "stop and crash events", || {
        let s = seen().to_string();
        s.contains("\"stopped\",\"ev/emitter.py\"") && s.contains("\"crashed\",\"ev/emitter.py\",7")
    });
    assert_eq!(rt.running_entry(&e).expect("listed")["status"], "crashed");
}

#[test]
fn full_listener_queue_drops_and_counts() {
    let rt = Runtime::with(Opts::default().env("VWED_EVENT_QUEUE_LEN", 4));
    let l = rt.deploy(
        "ev",
        "slow.py",
        r#"
import time
def boot():
    @VWED.event.listen("burst")
    def slow(d):
        time.sleep(0.05)

    # From a script, not over HTTP: every API emit waits for its audit record,
    # which paces a sequential client below what a slow listener takes.
    @VWED.api.post("/burst")
    def burst(request_data):
        for i in range(300):
            VWED.event.emit("burst", {"i": i})
        return {"sent": 300}
"#,
    );
    rt.call_route("POST", "/burst", Some(&json!({})))
        .expect_status(200);
    let st = rt.get("/api/script/registry/status");
    let dropped = st.data()["event_listeners"]["burst"][0]["dropped_count"]
        .as_u64()
        .expect("dropped_count");
    assert!(dropped > 0, "{}", st.json);
    wait_until(Duration::from_secs(10), "drop reported in output", || {
        rt.output(&l).contains("已丢弃")
    });
}

const TIMERS: &str = r#"
count = {"interval": 0, "once": 0, "every": 0, "sched": 0, "delay": 0, "cancelled": 0}
def boot():
    @VWED.timer.interval(0.1, delay=0)
    def interval():
        count["interval"] += 1

    @VWED.timer.once(delay=0.2)
    def once():
        count["once"] += 1

    @VWED.timer.every(0.1)
    async def every():
        await asyncio.sleep(0)
        count["every"] += 1

    def sched():
        count["sched"] += 1
    VWED.timer.schedule(interval=0.1, handler=sched, repeat=True)

    def later():
        count["delay"] += 1
    VWED.timer.delay(seconds=0.1, handler=later)

    def cancelled():
        count["cancelled"] += 1
    tid = VWED.timer.schedule(interval=0.05, handler=cancelled)
    VWED.timer.cancel(tid)

    @VWED.timer.cron("*/1 * * * * *")
    def each_second():
        pass

    @VWED.api.get("/count")
    def get_count(req):
        return count
"#;

#[test]
fn timers_run_skip_when_busy_and_clear_on_stop() {
    let rt = Runtime::with(Opts::default());
    let sid = rt.deploy("tm", "timers.py", TIMERS);
    // A worker runs one handler at a time, so the busy timer gets its own script.
    let busy = rt.deploy(
        "tm",
        "busy.py",
        "import time\ndef boot():\n    @VWED.timer.interval(0.05)\n    def slow():\n        time.sleep(0.3)\n",
    );
    std::thread::sleep(Duration::from_millis(1300));
    let c = rt.call_route("GET", "/count", None).json;
    assert!(c["interval"].as_i64().unwrap_or(0) >= 5, "{c}");
    assert_eq!(c["once"], 1, "{c}");
    assert_eq!(c["delay"], 1, "{c}");
    assert!(c["every"].as_i64().unwrap_or(0) >= 5, "{c}");
    assert!(c["sched"].as_i64().unwrap_or(0) >= 5, "{c}");
    assert_eq!(c["cancelled"], 0, "{c}");
    let st = rt.get("/api/script/registry/status");
    let timers = st.data()["timers"].as_object().expect("timers").clone();
    // once + delay have fired and are done, but stay registered until stop.
    assert!(timers.len() >= 7, "{timers:?}");
    assert!(
        !timers.values().any(|t| t["name"] == "cancelled"),
        "a timer cancelled in boot() must not stay registered: {timers:?}"
    );
    let slow = timers
        .values()
        .find(|t| t["name"] == "slow")
        .expect("slow timer listed");
    assert!(slow["skipped_count"].as_u64().unwrap_or(0) > 0, "{slow}");
    let r = rt.stop(&sid);
    r.ok();
    assert!(r.get("registrations")["timers"].as_u64().unwrap_or(0) >= 6);
    rt.stop(&busy).ok();
    let st = rt.get("/api/script/registry/status");
    assert_eq!(st.data()["timers"], json!({}));
}

#[test]
fn bad_cron_expression_fails_the_start() {
    let rt = Runtime::with(Opts::default());
    let pid = rt.create_project("tm");
    rt.create_file(
        pid,
        "bad.py",
        "def boot():\n    @VWED.timer.cron('61 * * * *')\n    def t():\n        pass\n",
    );
    let r = rt.start_script("tm/bad.py", None);
    r.fails(500, "cron");
    assert_eq!(
        rt.get("/api/script/registry/status").data()["timers"],
        json!({})
    );
}
