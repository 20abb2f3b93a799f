//! What the web UI reads from a running runtime: CPU, uptime and restarts of
//! each worker, when a timer fires next, status and metrics pushed over the
//! WebSocket, live log lines filtered by the server, and the page itself.

use std::time::Instant;

use vwed_e2e::{Runtime, json, py, ws};

const BUSY: &str = r#"
    def boot():
        @VWED.timer.interval(30)
        def later():
            pass

        @VWED.function.register("spin")
        def spin(args):
            import time
            end = time.process_time() + args["cpu_s"]
            n = 0
            while time.process_time() < end:
                n += 1
            return n

        @VWED.function.register("say")
        def say(args):
            VWED.log.sync_info("plain info line")
            VWED.log.sync_warning("valve warning line")
            VWED.log.sync_error("valve error line")
            return True
"#;

#[test]
fn running_scripts_show_cpu_uptime_and_restarts() {
    let rt = Runtime::start();
    let sid = rt.deploy("ui", "busy.py", &py(BUSY));
    let t0 = Instant::now();
    let first = rt.running_entry(&sid).expect("running");
    assert_eq!(first["restarts_total"], 0, "{first}");
    assert!(first["uptime_s"].is_u64(), "{first}");
    // The first reading has no window yet.
    assert!(first["cpu_percent"].is_null(), "{first}");
    rt.execute_ok(Some(&sid), "spin", json!({"cpu_s": 0.6}));
    let busy = rt.running_entry(&sid).expect("running");
    let window = t0.elapsed().as_secs_f64();
    // 0.6 s of CPU within the window between the two readings (ticks are 10 ms).
    let least = 0.5 / window * 100.0;
    let cpu = busy["cpu_percent"].as_f64().expect("cpu");
    assert!(cpu >= least, "{cpu} % < {least} % over {window} s: {busy}");
    let r = rt.restart(&sid);
    r.ok();
    let new_id = r.data()["script_id"].as_str().expect("new id").to_string();
    // A restart asked for is not one of supervision's automatic restarts.
    assert!(rt.running_entry(&new_id).expect("restarted")["uptime_s"].is_u64());

    let reg = rt.get("/api/script/registry/status");
    let timers = reg.ok().data()["timers"]
        .as_object()
        .expect("timers")
        .clone();
    let next = timers.values().next().expect("one timer")["next_run"]
        .as_str()
        .expect("next_run")
        .to_string();
    assert!(next.ends_with('Z') && next.len() >= 20, "{next}");
}

#[test]
fn status_and_metrics_topics_push_without_log_lines() {
    let rt = Runtime::start();
    let mut w = ws::connect(&rt, "?client_id=ui&client_type=ui");
    ws::wait(&mut w, "welcome", |v| v["type"] == "welcome");
    ws::send(&mut w, json!({"type": "subscribe", "script_id": "status"}));
    ws::send(&mut w, json!({"type": "subscribe", "script_id": "metrics"}));
    let sid = rt.deploy("ui", "busy.py", &py(BUSY));
    let st = ws::wait(&mut w, "script_status", |v| v["type"] == "script_status");
    assert_eq!(st["script_path"], "ui/busy.py");
    let m = ws::wait(&mut w, "scripts_running", |v| {
        v["type"] == "scripts_running"
            && v["data"]
                .as_array()
                .is_some_and(|a| a.iter().any(|s| s["script_id"] == sid.as_str()))
    });
    assert!(m["data"][0]["rss_bytes"].is_u64(), "{m}");
    rt.execute_ok(Some(&sid), "say", json!({}));
    // Topic subscribers get statuses and figures, never the script's lines.
    ws::send(&mut w, json!({"type": "ping"}));
    let mut seen = Vec::new();
    loop {
        let v = ws::wait(&mut w, "pong", |_| true);
        if v["type"] == "pong" {
            break;
        }
        seen.push(v["type"].clone());
    }
    assert!(!seen.iter().any(|t| t == "script_log"), "{seen:?}");
}

#[test]
fn a_live_subscription_gets_only_lines_its_filter_takes() {
    let rt = Runtime::start();
    let sid = rt.deploy("ui", "busy.py", &py(BUSY));
    let mut w = ws::connect(&rt, "?client_id=f&client_type=ui");
    ws::wait(&mut w, "welcome", |v| v["type"] == "welcome");
    ws::send(
        &mut w,
        json!({"type": "subscribe", "script_id": "*", "level": "WARNING", "q": "valve"}),
    );
    ws::wait(&mut w, "subscribed", |v| v["type"] == "subscribed");
    rt.execute_ok(Some(&sid), "say", json!({}));
    let a = ws::wait(&mut w, "a line", |v| v["type"] == "script_log");
    let b = ws::wait(&mut w, "a line", |v| v["type"] == "script_log");
    assert_eq!(a["message"], "valve warning line");
    assert_eq!(b["message"], "valve error line");
    ws::send(
        &mut w,
        json!({"type": "subscribe", "script_id": "*", "level": "loud"}),
    );
    let e = ws::wait(&mut w, "error", |v| v["type"] == "error");
    assert!(e["message"].as_str().unwrap_or("").contains("level"), "{e}");
}

#[test]
fn the_web_ui_is_served_from_the_binary() {
    let rt = Runtime::start();
    let page = rt.get("/");
    page.expect_status(200);
    assert!(
        page.header("content-type")
            .unwrap_or("")
            .starts_with("text/html")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let spa = rt.get("/ui/editor/1");
    spa.expect_status(200);
    assert!(
        spa.header("content-type")
            .unwrap_or("")
            .starts_with("text/html")
    );
    rt.get("/assets/nothing.js").fails(404, "没有此网页资源");
}
