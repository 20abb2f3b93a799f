//! Persisted logs and the live log WebSocket, against the real binary.

use std::time::Duration;

use vwed_e2e::{Opts, Runtime, TempDir, Value, json, py, wait_until};

use vwed_e2e::ws;

fn logs(rt: &Runtime, query: &str) -> Value {
    let r = rt.get(&format!("/api/script/logs?{query}"));
    r.ok();
    r.data().clone()
}

fn messages(data: &Value) -> Vec<String> {
    data["logs"]
        .as_array()
        .expect("logs array")
        .iter()
        .map(|l| l["message"].as_str().unwrap_or("").to_string())
        .collect()
}

const LOGGING: &str = r#"
    import sys, traceback

    async def awaited(args):
        await VWED.log.info("awaited line")
        return await VWED.log.flush_async()

    def boot():
        VWED.log.info("info line", user_id="12345")
        VWED.log.sync_info("sync line")
        VWED.log.info(tag="TAG1", message="tagged line")
        VWED.log.sync_warning("warn line", component="db")
        VWED.log.sync_error("error line", error_code=500)
        VWED.log.sync_debug("debug line")
        print("printed line")
        try:
            raise ValueError("boom-exc-42")
        except ValueError:
            traceback.print_exc()
        for i in range(25):
            VWED.log.sync_info(f"page line {i}")
        VWED.function.register("awaited", awaited)
        VWED.log.flush()
"#;

#[test]
fn lines_are_persisted_filtered_paged_and_exported() {
    let rt = Runtime::start();
    let sid = rt.deploy("logs", "main.py", &py(LOGGING));
    let flushed = rt.execute_ok(Some(&sid), "awaited", json!({}));
    assert!(
        flushed["committed"].as_u64().expect("committed") >= 30,
        "{flushed}"
    );
    assert_eq!(flushed["rate_dropped"], 0);

    let all = logs(&rt, &format!("script_id={sid}&limit=1000"));
    let msgs = messages(&all);
    for want in [
        "info line",
        "sync line",
        "tagged line",
        "warn line",
        "error line",
        "debug line",
        "printed line",
        "awaited line",
        "脚本启动成功",
    ] {
        assert!(msgs.iter().any(|m| m == want), "{want} missing: {msgs:?}");
    }
    assert!(
        msgs.iter().any(|m| m.contains("ValueError: boom-exc-42")),
        "traceback missing: {msgs:?}"
    );
    assert_eq!(all["order"], "desc");
    assert_eq!(all["next_cursor"], Value::Null);
    let line = |m: &str| {
        all["logs"]
            .as_array()
            .expect("logs")
            .iter()
            .find(|l| l["message"] == json!(m))
            .cloned()
            .expect("line")
    };
    let info = line("info line");
    assert_eq!(info["level"], "INFO");
    assert_eq!(info["stream"], "log");
    assert_eq!(info["script_id"], json!(sid));
    assert_eq!(info["script_path"], "logs/main.py");
    assert_eq!(info["fields"]["user_id"], "12345");
    assert!(info["seq"].as_u64().is_some() && info["timestamp"].as_str().is_some());
    assert_eq!(line("tagged line")["fields"]["tag"], "TAG1");
    assert_eq!(line("printed line")["stream"], "stdout");
    assert_eq!(line("warn line")["level"], "WARNING");
    assert_eq!(line("脚本启动成功")["stream"], "system");
    // Newest first.
    let seqs: Vec<u64> = all["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .filter_map(|l| l["seq"].as_u64())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]));

    // Minimum level.
    let warn = logs(&rt, &format!("script_id={sid}&level=warning&limit=1000"));
    for l in warn["logs"].as_array().expect("logs") {
        assert!(l["level"] == "WARNING" || l["level"] == "ERROR", "{l}");
    }
    let wm = messages(&warn);
    assert!(wm.contains(&"warn line".to_string()) && wm.contains(&"error line".to_string()));
    assert!(!wm.contains(&"info line".to_string()));
    // Substring, in the message or the fields.
    assert_eq!(
        messages(&logs(&rt, &format!("script_id={sid}&q=TAG1"))),
        ["tagged line"]
    );
    // Time window.
    let future = "2999-01-01T00:00:00Z";
    assert_eq!(
        messages(&logs(&rt, &format!("script_id={sid}&since={future}"))).len(),
        0
    );
    assert_eq!(
        messages(&logs(
            &rt,
            &format!("script_id={sid}&until={future}&limit=1000")
        ))
        .len(),
        msgs.len()
    );
    assert_eq!(
        messages(&logs(&rt, &format!("script_id={sid}&until=1000"))).len(),
        0
    );

    // Paging with the cursor, both orders, gives the same lines.
    for order in ["desc", "asc"] {
        let mut got = Vec::new();
        let mut q = format!("script_id={sid}&limit=7&order={order}");
        let mut pages = 0;
        loop {
            let page = logs(&rt, &q);
            pages += 1;
            assert!(page["count"].as_u64().expect("count") <= 7);
            got.extend(messages(&page));
            match page["next_cursor"].as_str() {
                Some(c) => q = format!("script_id={sid}&limit=7&cursor={c}"),
                None => break,
            }
        }
        assert!(pages >= 5);
        if order == "asc" {
            got.reverse();
        }
        assert_eq!(got, msgs, "{order}");
    }

    // Bad parameters are refused with the envelope.
    rt.get("/api/script/logs?level=loud").fails(400, "level");
    rt.get("/api/script/logs?limit=5000").fails(400, "limit");
    rt.get("/api/script/logs?cursor=zz").fails(400, "cursor");
    rt.get("/api/script/logs?since=yesterday")
        .fails(400, "since");

    // Export: NDJSON, one object per line; text with one line per entry.
    let nd = rt.get(&format!(
        "/api/script/logs/export?format=ndjson&script_id={sid}"
    ));
    assert_eq!(nd.status, 200);
    assert!(nd.header("content-type").unwrap_or("").contains("ndjson"));
    let rows: Vec<Value> = nd
        .text
        .lines()
        .map(|l| serde_json::from_str(l).expect("ndjson line"))
        .collect();
    assert_eq!(rows.len(), msgs.len());
    assert_eq!(rows[0]["message"], json!(msgs[0]));
    let warn_only = rt.get(&format!(
        "/api/script/logs/export?format=ndjson&script_id={sid}&level=ERROR&q=error"
    ));
    assert_eq!(warn_only.text.lines().count(), 1);
    let text = rt.get(&format!(
        "/api/script/logs/export?format=text&script_id={sid}"
    ));
    assert_eq!(text.status, 200);
    assert!(
        text.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain")
    );
    assert_eq!(text.text.lines().count(), msgs.len());
    assert!(text.text.contains("WARNING") && text.text.contains("printed line"));
    rt.get("/api/script/logs/export?format=xml")
        .fails(400, "format");

    // The in-memory output ring still answers.
    assert!(rt.output(&sid).contains("printed line"));
    let stats = rt.get("/api/script/logs/stats");
    stats.ok();
    assert!(stats.data()["store"]["written"].as_u64().expect("written") >= msgs.len() as u64);
}

#[test]
fn flushed_lines_survive_kill9() {
    let opts = Opts::default().env("VWED_RESTORE_ON_START", "false");
    let rt = Runtime::with(opts.clone());
    let src = py(r#"
        def boot():
            for i in range(3000):
                VWED.log.sync_info(f"durable {i}")
            print("durable printed")
            VWED.log.flush()
    "#);
    let sid = rt.deploy("dur", "d.py", &src);
    // boot() returned, so flush() returned: kill at once.
    let data: TempDir = rt.kill9_keep_data();
    let rt = Runtime::start_in(data, opts);
    let mut n = 0;
    let mut printed = false;
    let mut q = format!("script_id={sid}&limit=1000&q=durable");
    loop {
        let page = logs(&rt, &q);
        for m in messages(&page) {
            if m == "durable printed" {
                printed = true;
            } else {
                n += 1;
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => q = format!("script_id={sid}&limit=1000&q=durable&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(n, 3000);
    assert!(printed);
}

#[test]
fn rate_limited_lines_are_counted_and_reported() {
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_LOG_RATE_PER_SEC", "200")
            .env("VWED_LOG_RATE_BURST", "100"),
    );
    let sid = rt.deploy(
        "rate",
        "r.py",
        &py(r#"
            def boot():
                for i in range(2000):
                    VWED.log.sync_info(f"flood {i}")
        "#),
    );
    wait_until(Duration::from_secs(10), "rate-limit report", || {
        messages(&logs(&rt, &format!("script_id={sid}&level=WARNING")))
            .iter()
            .any(|m| m.contains("lines dropped by rate limit"))
    });
    let stats = rt.get("/api/script/logs/stats");
    let scripts = stats.data()["scripts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let me = scripts
        .iter()
        .find(|s| s["script_id"] == json!(sid))
        .expect("script stats");
    let dropped = me["rate_dropped"].as_u64().expect("rate_dropped");
    assert!(dropped >= 1000, "{me}");
    let kept = messages(&logs(&rt, &format!("script_id={sid}&q=flood&limit=1000"))).len();
    assert_eq!(kept as u64 + dropped, 2000);
}

const WS_SCRIPT: &str = r#"
    import os

    def calc(args):
        return args.get("x", 0) * 2

    def fail(args):
        raise RuntimeError("kaboom-7")

    def die(args):
        os._exit(3)

    def boot():
        VWED.function.register("calc", calc)
        VWED.function.register("fail", fail)
        VWED.function.register("die", die)
        VWED.log.sync_info("ws boot line")
"#;

#[test]
fn websocket_messages_follow_the_seed() {
    let rt = Runtime::start();

    // client_id is required.
    let mut bad = ws::connect(&rt, "?client_type=web");
    let err = ws::wait(&mut bad, "error", |v| v["type"] == "error");
    assert!(err["message"].as_str().unwrap_or("").contains("client_id"));

    let mut ws = ws::connect(&rt, "?client_id=t1&client_type=test");
    let welcome = ws::wait(&mut ws, "welcome", |v| v["type"] == "welcome");
    let cid = welcome["connection_id"].as_str().expect("connection_id");
    assert!(cid.starts_with("test_t1_") && cid[8..].len() == 13, "{cid}");
    assert_eq!(welcome["message"], "连接建立成功");
    assert!(
        welcome["server_time"]
            .as_str()
            .expect("time")
            .ends_with('Z')
    );

    ws::send(
        &mut ws,
        json!({"type": "ping", "timestamp": "2025-09-11T12:00:00Z"}),
    );
    let pong = ws::wait(&mut ws, "pong", |v| v["type"] == "pong");
    assert!(pong["timestamp"].is_string());

    ws::send(&mut ws, json!({"type": "subscribe"}));
    ws::wait(&mut ws, "subscribed", |v| {
        v["type"] == "subscribed" && v["script_id"] == "*"
    });
    ws::send(&mut ws, json!({"type": "get_status"}));
    let st = ws::wait(&mut ws, "status", |v| v["type"] == "status");
    assert_eq!(st["subscribed_scripts"], json!(["*"]));
    assert_eq!(st["connection_id"], json!(cid));

    let status = rt.get("/api/script/ws/connections/status");
    status.ok();
    let d = status.data();
    assert!(d["total_connections"].as_u64().expect("total") >= 1);
    assert!(d["script_subscriptions"]["*"].as_u64().expect("*") >= 1);
    let me = d["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .find(|c| c["connection_id"] == json!(cid))
        .expect("this connection");
    assert_eq!(me["client_id"], "t1");
    assert_eq!(me["client_type"], "test");
    assert_eq!(me["subscribed_scripts"], json!(["*"]));

    let sid = rt.deploy("ws", "w.py", &py(WS_SCRIPT));
    let log = ws::wait(&mut ws, "script_log", |v| {
        v["type"] == "script_log" && v["message"] == "ws boot line"
    });
    assert_eq!(log["script_id"], json!(sid));
    assert_eq!(log["level"], "INFO");
    assert!(log["timestamp"].as_str().expect("ts").ends_with('Z'));
    let started = ws::wait(&mut ws, "started", |v| v["type"] == "script_status");
    assert_eq!(started["status"], "started");
    assert_eq!(started["script_id"], json!(sid));
    assert!(started["message"].is_string() && started["timestamp"].is_string());

    assert_eq!(
        rt.execute_ok(Some(&sid), "calc", json!({"x": 21})),
        json!(42)
    );
    let fe = ws::wait(&mut ws, "function_execution", |v| {
        v["type"] == "function_execution"
    });
    assert_eq!(fe["script_id"], json!(sid));
    assert_eq!(fe["function_name"], "calc");
    assert_eq!(fe["execution_type"], "success");
    assert_eq!(fe["result"]["success"], true);
    assert_eq!(fe["result"]["data"], 42);
    assert!(fe["result"]["execution_time_ms"].as_f64().is_some());

    let r = rt.execute(Some(&sid), "fail", json!({}));
    assert_ne!(r.json["success"], json!(true));
    let fe = ws::wait(&mut ws, "function error", |v| {
        v["type"] == "function_execution"
    });
    assert_eq!(fe["execution_type"], "error");
    assert_eq!(fe["result"]["success"], false);
    assert!(
        fe["result"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("kaboom-7"),
        "{fe}"
    );

    // Test broadcast reaches subscribers of that script (here via "*").
    let b = rt.post(
        "/api/script/ws/broadcast/test",
        &json!({"script_id": sid, "message": "测试消息", "level": "info"}),
    );
    b.ok();
    assert_eq!(
        b.get("message"),
        &json!(format!("测试消息已广播到脚本 {sid} 的订阅者"))
    );
    let tm = ws::wait(&mut ws, "broadcast", |v| v["message"] == "测试消息");
    assert_eq!(tm["type"], "script_log");
    assert_eq!(tm["level"], "INFO");

    // Crash: the worker exits on its own.
    let _ = rt.execute(Some(&sid), "die", json!({}));
    let crashed = ws::wait(&mut ws, "crashed", |v| v["type"] == "script_status");
    assert_eq!(crashed["status"], "crashed");
    assert_eq!(crashed["script_id"], json!(sid));

    // Stop, subscribed by script id this time.
    ws::send(&mut ws, json!({"type": "unsubscribe", "script_id": "*"}));
    ws::wait(&mut ws, "unsubscribed", |v| v["type"] == "unsubscribed");
    let sid2 = rt.start_ok("ws/w.py", None);
    ws::send(
        &mut ws,
        json!({"type": "subscribe", "script_id": sid2, "last": 5}),
    );
    ws::wait(&mut ws, "subscribed", |v| v["type"] == "subscribed");
    let hist = ws::wait(&mut ws, "history", |v| v["history"] == true);
    assert_eq!(hist["script_id"], json!(sid2));
    rt.stop(&sid2).ok();
    let stopped = ws::wait(&mut ws, "stopped", |v| v["type"] == "script_status");
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(stopped["script_id"], json!(sid2));

    // Unknown messages get an error, the connection stays.
    ws::send(&mut ws, json!({"type": "dance"}));
    ws::wait(&mut ws, "error", |v| v["type"] == "error");
    ws::send(&mut ws, json!({"type": "ping"}));
    ws::wait(&mut ws, "pong", |v| v["type"] == "pong");

    let page = rt.get("/api/script/ws/test-page");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap_or("")
            .starts_with("text/html")
    );
    for needle in [
        "WebSocket",
        "subscribe",
        "unsubscribe",
        "ping",
        "/api/script/ws/script-logs",
    ] {
        assert!(page.text.contains(needle), "{needle}");
    }
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "no external assets"
    );
}

#[test]
fn slow_websocket_client_never_slows_a_script_and_is_told() {
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_LOG_RATE_PER_SEC", "0")
            .env("VWED_WS_CLIENT_QUEUE", "256"),
    );
    let sid = rt.deploy(
        "slow",
        "s.py",
        &py(r#"
            import time

            def spam(args):
                n = args["n"]
                pad = "x" * 120
                t0 = time.perf_counter()
                for i in range(n):
                    VWED.log.sync_info(f"spam {i} {pad}")
                VWED.log.flush()
                return time.perf_counter() - t0

            def boot():
                VWED.function.register("spam", spam)
        "#),
    );
    let n = 60_000;
    let alone = rt
        .execute_ok(Some(&sid), "spam", json!({"n": n}))
        .as_f64()
        .expect("seconds");

    let mut ws = ws::connect(&rt, "?client_id=slow&client_type=test");
    ws::wait(&mut ws, "welcome", |v| v["type"] == "welcome");
    ws::send(&mut ws, json!({"type": "subscribe", "script_id": sid}));
    ws::wait(&mut ws, "subscribed", |v| v["type"] == "subscribed");
    // From here on the client reads nothing while the script logs.
    let with_slow = rt
        .execute_ok(Some(&sid), "spam", json!({"n": n}))
        .as_f64()
        .expect("seconds");
    assert!(
        with_slow < alone * 3.0 + 1.0,
        "a slow client slowed the script: {alone:.3}s alone, {with_slow:.3}s with it"
    );
    let status = rt.get("/api/script/ws/connections/status");
    let skipped = status.data()["connections"][0]["skipped"]
        .as_u64()
        .unwrap_or(0);
    assert!(skipped > 0, "{}", status.text);

    // Reading again, the client learns how many lines it missed.
    let notice = ws::wait(&mut ws, "skip notice", |v| v["type"] == "notice");
    assert!(notice["skipped"].as_u64().expect("skipped") > 0);
    assert!(notice["message"].as_str().unwrap_or("").contains("skipped"));
    // Every line is still in the store.
    let stats = rt.get("/api/script/logs/stats");
    assert_eq!(stats.data()["store"]["queue_dropped"], 0);
}

/// The script ids a page of history names.
fn run_ids(data: &Value) -> std::collections::BTreeSet<String> {
    data["logs"]
        .as_array()
        .expect("logs array")
        .iter()
        .filter_map(|l| l["script_id"].as_str().map(String::from))
        .collect()
}

#[test]
fn a_scripts_logs_are_found_by_its_path_across_restarts() {
    let rt = Runtime::start();
    let src = py(r#"
        def boot():
            VWED.log.sync_info("path boot line " + VWED.get_script_id())
            VWED.log.flush()
    "#);
    let first = rt.deploy("pathlogs", "main.py", &src);
    rt.deploy("pathlogs", "other.py", &src);
    // A restart of the runtime restores the script under a new script_id.
    let rt = Runtime::start_in(
        rt.terminate_keep_data(Duration::from_secs(30)),
        Opts::default(),
    );
    let mut second = String::new();
    wait_until(Duration::from_secs(20), "main.py restored", || {
        rt.running().iter().any(|r| {
            let restored = r["script_path"] == "pathlogs/main.py";
            if restored {
                second = r["script_id"].as_str().unwrap_or("").to_string();
            }
            restored
        })
    });
    assert_ne!(first, second);

    // Live lines by path: this subscription also gets the next run.
    let mut ws = ws::connect(&rt, "?client_id=path&client_type=test");
    ws::send(
        &mut ws,
        json!({"type": "subscribe", "script_path": "pathlogs/main.py", "last": 5}),
    );
    ws::wait(&mut ws, "subscribed", |v| {
        v["type"] == "subscribed" && v["script_path"] == "pathlogs/main.py"
    });
    ws::wait(&mut ws, "history of the restored run", |v| {
        v["history"] == true && v["script_id"] == json!(second)
    });

    let q = "script_path=pathlogs/main.py&q=path%20boot%20line";
    wait_until(Duration::from_secs(10), "both runs' lines", || {
        run_ids(&logs(&rt, q)).len() == 2
    });
    let page = logs(&rt, q);
    assert_eq!(
        run_ids(&page),
        [first.clone(), second.clone()].into_iter().collect()
    );
    assert!(
        page["logs"]
            .as_array()
            .expect("logs")
            .iter()
            .all(|l| l["script_path"] == "pathlogs/main.py"),
        "{page}"
    );

    let export = rt.get(&format!("/api/script/logs/export?{q}"));
    export.expect_status(200);
    let exported: Vec<Value> = export
        .text
        .lines()
        .map(|l| serde_json::from_str(l).expect("ndjson line"))
        .collect();
    assert_eq!(exported.len(), 2, "{}", export.text);
    assert!(
        exported
            .iter()
            .all(|l| l["script_path"] == "pathlogs/main.py")
    );

    // A third run (a restart of the script) reaches the path subscriber live.
    let r = rt.restart(&second);
    r.ok();
    let third = r
        .get("script_id")
        .as_str()
        .expect("new script_id")
        .to_string();
    let line = ws::wait(&mut ws, "the third run's line", |v| {
        v["type"] == "script_log" && v["script_id"] == json!(third) && v["history"].is_null()
    });
    assert_eq!(line["script_path"], "pathlogs/main.py");
    ws::wait(&mut ws, "the third run's status", |v| {
        v["type"] == "script_status" && v["script_id"] == json!(third)
    });
}
