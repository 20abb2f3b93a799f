//! Script lifecycle: start (by path and by file id), stop, restart, the running
//! list, and every way a start can fail without leaving anything behind.

use vwed_e2e::{Runtime, is_script_id, json, process_alive, py};

const TWO_ROUTES_ONE_FN: &str = r#"
def boot():
    @VWED.api.get("/a")
    def a(req):
        return {"a": 1}

    @VWED.api.post("/b")
    def b(req):
        return {"b": 2}

    @VWED.function.register("f1")
    def f1(args):
        return 1
"#;

#[test]
fn start_by_path_and_by_file_id() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    rt.create_file(pid, "main.py", TWO_ROUTES_ONE_FN);
    let r = rt.start_script("p/main.py", None);
    r.ok();
    let sid = r.get("script_id").as_str().expect("script_id").to_string();
    assert!(is_script_id(&sid, "main.py"), "script_id {sid}");
    assert_eq!(
        r.get("registrations"),
        &json!({"apis": 2, "functions": 1, "events": 0, "timers": 0})
    );
    let msg = r.get("message").as_str().expect("message");
    assert!(msg.starts_with("脚本服务启动成功"), "{msg}");
    assert!(
        msg.contains("已注册 2 个接口")
            && msg.contains("1 个函数")
            && msg.contains("0 个事件监听器"),
        "{msg}"
    );
    rt.call_route("GET", "/a", None).expect_status(200);
    rt.stop(&sid).ok();

    let fid = rt.create_file(pid, "other.py", "def boot():\n    pass\n");
    let r = rt.post("/api/script/scripts/start", &json!({"file_id": fid}));
    r.ok();
    let sid2 = r.get("script_id").as_str().expect("script_id");
    assert!(is_script_id(sid2, "other.py"), "{sid2}");
    assert_eq!(
        r.get("registrations"),
        &json!({"apis": 0, "functions": 0, "events": 0, "timers": 0})
    );
    let e = rt.running_entry(sid2).expect("listed");
    assert_eq!(e["script_path"], "p/other.py");
    // Two starts give two different ids.
    rt.stop(sid2).ok();
    let sid3 = rt.start_ok("p/other.py", None);
    assert_ne!(sid2, sid3);

    rt.post("/api/script/scripts/start", &json!({"file_id": 9999}))
        .fails(404, "脚本文件不存在");
}

#[test]
fn boot_with_and_without_params() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    rt.create_file(
        pid,
        "with.py",
        &py(r#"
        def boot(params):
            @VWED.api.get("/params")
            def p(req):
                return {"params": params}
    "#),
    );
    rt.create_file(
        pid,
        "without.py",
        &py(r#"
        STARTED = []
        def boot():
            STARTED.append(1)
            @VWED.api.get("/started")
            def s(req):
                return {"started": len(STARTED)}
    "#),
    );
    let params = json!({"greeting": "你好", "n": 3, "nested": {"a": [1, 2]}});
    rt.start_ok("p/with.py", Some(params.clone()));
    let r = rt.call_route("GET", "/params", None);
    r.expect_status(200);
    assert_eq!(r.get("params"), &params);
    rt.start_ok("p/without.py", Some(json!({"ignored": true})));
    assert_eq!(
        rt.call_route("GET", "/started", None).get("started"),
        &json!(1)
    );

    // Without start_params a one-argument boot gets an empty dict.
    let running = rt.running();
    let with_id = running
        .iter()
        .find(|s| s["script_path"] == "p/with.py")
        .and_then(|s| s["script_id"].as_str())
        .expect("with.py running");
    rt.stop(with_id).ok();
    rt.start_ok("p/with.py", None);
    assert_eq!(
        rt.call_route("GET", "/params", None).get("params"),
        &json!({})
    );

    // start_params must be an object.
    rt.post(
        "/api/script/scripts/start",
        &json!({"script_path": "p/without.py", "start_params": [1]}),
    )
    .fails(400, "start_params");
    rt.post("/api/script/scripts/start", &json!({}))
        .fails(400, "script_path");
    rt.post("/api/script/scripts/start", &json!({"script_path": ""}))
        .fails(400, "script_path");
    rt.post("/api/script/scripts/start", &json!({"script_path": 5}))
        .fails(400, "请求参数错误");
}

#[test]
fn start_failures_leave_nothing_behind() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");

    // Missing file.
    rt.start_script("p/missing.py", None)
        .fails(404, "脚本文件不存在: p/missing.py");
    rt.start_script("nope/main.py", None)
        .fails(404, "脚本文件不存在");

    // No boot(); the route registered at import time must not survive.
    rt.create_file(
        pid,
        "noboot.py",
        &py(r#"
        def handler(req):
            return {}
        VWED.api.register_route("/noboot", "GET", handler)
    "#),
    );
    rt.start_script("p/noboot.py", None)
        .fails(400, "脚本缺少boot()入口函数");

    // Syntax error: 400 with the line.
    rt.create_file(
        pid,
        "syntax.py",
        "def boot():\n    x = (\n\ndef other(:\n    pass\n",
    );
    let r = rt.start_script("p/syntax.py", None);
    r.fails(400, "脚本加载失败: ");
    assert!(
        r.data()["line"].as_u64().is_some(),
        "line in data: {}",
        r.text
    );
    let r2 = rt.post(
        "/api/script/validate-syntax",
        &json!({"content": "def boot():\n    pass\n  bad indent\n"}),
    );
    assert_eq!(r2.data()["line"], json!(3));
    rt.create_file(pid, "syntax2.py", "def boot():\n    pass\n  bad indent\n");
    let r = rt.start_script("p/syntax2.py", None);
    r.fails(400, "脚本加载失败: ");
    assert_eq!(r.data()["line"], json!(3), "{}", r.text);
    assert!(
        r.error().contains("line 3"),
        "the message names the line: {}",
        r.text
    );

    // Exception in boot after registering: 500, traceback in the output.
    rt.create_file(
        pid,
        "raises.py",
        &py(r#"
        def boot():
            @VWED.api.get("/half")
            def half(req):
                return {}
            VWED.function.register("half_fn", lambda a: 1)
            raise ValueError("boom in boot")
    "#),
    );
    let r = rt.start_script("p/raises.py", None);
    r.fails(500, "boom in boot");
    let sid = r.data()["script_id"]
        .as_str()
        .expect("script_id of the failed start")
        .to_string();
    assert!(
        r.data()["traceback"]
            .as_str()
            .is_some_and(|t| t.contains("ValueError"))
    );
    let out = rt.output(&sid);
    assert!(
        out.contains("Traceback") && out.contains("ValueError: boom in boot"),
        "{out}"
    );
    assert!(
        out.contains("raises.py"),
        "traceback names the script: {out}"
    );

    // Exception at import time.
    rt.create_file(
        pid,
        "import_err.py",
        "import no_such_module_xyz\ndef boot():\n    pass\n",
    );
    rt.start_script("p/import_err.py", None)
        .fails(500, "no_such_module_xyz");

    // async boot that fails.
    rt.create_file(
        pid,
        "async_fail.py",
        &py(r#"
        async def boot():
            VWED.api.register_route("/async_half", "GET", lambda r: {})
            raise RuntimeError("async boom")
    "#),
    );
    rt.start_script("p/async_fail.py", None)
        .fails(500, "async boom");

    // Nothing of any of them is registered or running.
    let reg = rt.registry();
    assert_eq!(reg["api_routes"], json!({}), "{reg}");
    assert_eq!(reg["registered_functions"], json!({}), "{reg}");
    assert_eq!(reg["active_scripts"], json!({}), "{reg}");
    assert!(rt.running().is_empty());
    for p in ["/noboot", "/half", "/async_half"] {
        rt.call_route("GET", p, None).fails(404, "未注册");
    }
    rt.execute(None, "half_fn", json!({}))
        .fails(404, "函数 half_fn 未注册");

    // A good script can take the same route afterwards.
    rt.create_file(
        pid,
        "good.py",
        "def boot():\n    VWED.api.register_route('/half', 'GET', lambda r: {'ok': True})\n",
    );
    rt.start_ok("p/good.py", None);
    assert_eq!(rt.call_route("GET", "/half", None).get("ok"), &json!(true));
}

#[test]
fn already_running_is_409_with_the_running_id() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    let fid = rt.create_file(pid, "main.py", "def boot():\n    pass\n");
    let sid = rt.start_ok("p/main.py", None);
    let r = rt.start_script("p/main.py", None);
    r.fails(409, "已在运行");
    assert_eq!(r.data()["script_id"], json!(sid));
    let r = rt.post("/api/script/scripts/start", &json!({"file_id": fid}));
    r.fails(409, "已在运行");
    assert_eq!(r.data()["script_id"], json!(sid));
    assert_eq!(rt.running().len(), 1);
}

#[test]
fn stop_restart_and_running_list() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    rt.create_file(
        pid,
        "main.py",
        &py(r#"
        def boot(params):
            @VWED.api.get("/a")
            def a(req):
                return {"params": params}

            @VWED.api.post("/b")
            def b(req):
                return {}

            @VWED.function.register("f1")
            def f1(args):
                return 1
    "#),
    );
    let params = json!({"k": "v"});
    let sid = rt.start_ok("p/main.py", Some(params.clone()));

    let e = rt.running_entry(&sid).expect("listed");
    assert_eq!(e["status"], "running");
    assert_eq!(e["script_path"], "p/main.py");
    assert_eq!(
        e["registrations"],
        json!({"apis": 2, "functions": 1, "events": 0, "timers": 0})
    );
    let worker = e["pid"].as_u64().expect("pid") as u32;
    assert!(worker > 0 && worker != rt.pid());
    assert!(process_alive(worker), "worker {worker} alive");
    assert!(
        e["rss_bytes"].as_u64().is_some_and(|b| b > 1024 * 1024),
        "{e}"
    );
    assert!(
        e["started_at"].as_str().is_some_and(|s| s.len() >= 19),
        "{e}"
    );
    assert_eq!(e["start_params"], params);

    // Restart: new id, same params, old one gone.
    let r = rt.restart(&sid);
    r.ok();
    let sid2 = r.get("script_id").as_str().expect("new id").to_string();
    assert_ne!(sid2, sid);
    assert!(is_script_id(&sid2, "main.py"));
    assert_eq!(
        r.get("registrations"),
        &json!({"apis": 2, "functions": 1, "events": 0, "timers": 0})
    );
    assert_eq!(rt.call_route("GET", "/a", None).get("params"), &params);
    assert!(rt.running_entry(&sid).is_none());
    let e2 = rt.running_entry(&sid2).expect("new listed");
    assert_eq!(e2["start_params"], params);
    let worker2 = e2["pid"].as_u64().expect("pid") as u32;
    assert_ne!(worker2, worker);
    assert!(!process_alive(worker), "old worker gone after restart");
    rt.restart(&sid).fails(404, "未运行");

    // Stop: counts and message; everything withdrawn.
    let r = rt.stop(&sid2);
    r.ok();
    assert_eq!(
        r.get("registrations"),
        &json!({"apis": 2, "functions": 1, "events": 0, "timers": 0})
    );
    let msg = r.get("message").as_str().expect("message");
    assert!(msg.starts_with("脚本服务已停止 (p/main.py)"), "{msg}");
    assert!(
        msg.contains("已清理 2 个接口") && msg.contains("1 个函数"),
        "{msg}"
    );
    assert!(rt.running().is_empty());
    vwed_e2e::wait_until(std::time::Duration::from_secs(3), "worker exits", || {
        !process_alive(worker2)
    });
    rt.call_route("GET", "/a", None).fails(404, "未注册");
    rt.execute(None, "f1", json!({})).fails(404, "未注册");
    let reg = rt.registry();
    assert_eq!(reg["api_routes"], json!({}));
    assert_eq!(reg["active_scripts"], json!({}));

    // Stopping again, or an unknown id.
    rt.stop(&sid2).fails(404, "未运行");
    rt.stop("nope.py_1726059000000_abc12345")
        .fails(404, "未运行");
    // The output of a stopped script stays readable.
    assert!(rt.output(&sid2).contains("脚本已停止"));
    rt.get("/api/script/scripts/unknown/output")
        .fails(404, "不存在");
}

#[test]
fn concurrent_starts_of_one_script_let_exactly_one_win() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    rt.create_file(
        pid,
        "main.py",
        "def boot():\n    time.sleep(0.2)\n    VWED.api.register_route('/one', 'GET', lambda r: {})\n",
    );
    let url = rt.url("/api/script/scripts/start");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (url, c) = (url.clone(), rt.client());
            std::thread::spawn(move || {
                let r = c
                    .post(url)
                    .json(&json!({"script_path": "p/main.py"}))
                    .send()
                    .expect("start request");
                r.status().as_u16()
            })
        })
        .collect();
    let mut codes: Vec<u16> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, vec![200, 409, 409, 409]);
    assert_eq!(rt.running().len(), 1);
    rt.call_route("GET", "/one", None).expect_status(200);
}

#[test]
fn boot_timeout_and_the_running_limit() {
    let rt = Runtime::with(
        vwed_e2e::Opts::default()
            .env("VWED_BOOT_TIMEOUT_MS", 2000)
            .env("VWED_MAX_RUNNING_SCRIPTS", 2),
    );
    let pid = rt.create_project("p");
    rt.create_file(
        pid,
        "hangs.py",
        "def boot():\n    VWED.api.register_route('/hangs', 'GET', lambda r: {})\n    time.sleep(60)\n",
    );
    let t0 = std::time::Instant::now();
    let r = rt.start_script("p/hangs.py", None);
    r.fails(500, "启动超时");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(7),
        "{:?}",
        t0.elapsed()
    );
    assert!(rt.running().is_empty());
    rt.call_route("GET", "/hangs", None).expect_status(404);
    assert_eq!(rt.registry()["api_routes"], json!({}));

    // The limit of running scripts.
    for name in ["a.py", "b.py", "c.py"] {
        rt.create_file(pid, name, "def boot():\n    pass\n");
    }
    rt.start_ok("p/a.py", None);
    let b = rt.start_ok("p/b.py", None);
    rt.start_script("p/c.py", None).fails(503, "上限 2");
    rt.stop(&b).ok();
    rt.start_ok("p/c.py", None);
}

#[test]
fn an_edit_takes_effect_at_the_next_start() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    let fid = rt.create_file(
        pid,
        "main.py",
        "def boot():\n    VWED.api.register_route('/v', 'GET', lambda r: {'v': 1})\n",
    );
    let sid = rt.start_ok("p/main.py", None);
    rt.put(
        &format!("/api/script/files/{fid}"),
        &json!({"content": "def boot():\n    VWED.api.register_route('/v', 'GET', lambda r: {'v': 2})\n"}),
    )
    .ok();
    assert_eq!(
        rt.call_route("GET", "/v", None).get("v"),
        &json!(1),
        "running code is unchanged"
    );
    rt.restart(&sid).ok();
    assert_eq!(rt.call_route("GET", "/v", None).get("v"), &json!(2));
    // An edit on disk, outside the API, is what the next start runs.
    std::fs::write(
        rt.project_dir("p").join("main.py"),
        "def boot():\n    VWED.api.register_route('/v', 'GET', lambda r: {'v': 3})\n",
    )
    .expect("write");
    let sid = rt.running()[0]["script_id"]
        .as_str()
        .expect("id")
        .to_string();
    rt.restart(&sid).ok();
    assert_eq!(rt.call_route("GET", "/v", None).get("v"), &json!(3));
    // A restart into a broken file fails and leaves nothing running.
    std::fs::write(rt.project_dir("p").join("main.py"), "def boot(:\n").expect("write");
    let sid = rt.running()[0]["script_id"]
        .as_str()
        .expect("id")
        .to_string();
    rt.restart(&sid).fails(400, "脚本加载失败");
    assert!(rt.running().is_empty());
    rt.call_route("GET", "/v", None).expect_status(404);
}

#[test]
fn script_id_with_spaces_or_non_ascii_is_percent_decoded_in_url_paths() {
    let rt = Runtime::start();
    let pid = rt.create_project("测试项目");
    rt.create_file(
        pid,
        "机器人/主 程序.py",
        "def boot(params):\n    VWED.api.register_route('/中文/{名字}', 'GET', lambda r: {'p': r['path_params'], 'params': params})\n    VWED.function.register('函数', lambda a: a)\n",
    );
    assert!(
        rt.project_dir("测试项目")
            .join("机器人/主 程序.py")
            .is_file()
    );
    let sid = rt.start_ok("测试项目/机器人/主 程序.py", Some(json!({"键": "值"})));
    assert!(is_script_id(&sid, "主 程序.py"), "{sid}");
    let r = rt.call_route("GET", "/中文/张三", None);
    r.expect_status(200);
    assert_eq!(
        r.json,
        json!({"p": {"名字": "张三"}, "params": {"键": "值"}})
    );
    assert_eq!(
        rt.execute_ok(Some(&sid), "函数", json!({"a": 1})),
        json!({"a": 1})
    );
    // The id travels in URL paths.
    let out = rt.get(&format!("/api/script/scripts/{sid}/output"));
    out.ok();
    let r = rt.restart(&sid);
    r.ok();
    let sid2 = r.get("script_id").as_str().expect("id").to_string();
    assert_eq!(
        rt.call_route("GET", "/中文/x", None).get("params"),
        &json!({"键": "值"})
    );
    rt.stop(&sid2).ok();
    assert!(rt.running().is_empty());
}

#[test]
fn stop_during_boot_fails_the_start_and_leaves_nothing() {
    let rt = Runtime::with(vwed_e2e::Opts::default().env("VWED_STOP_GRACE_MS", 200));
    let pid = rt.create_project("p");
    rt.create_file(
        pid,
        "slow.py",
        "def boot():\n    VWED.api.register_route('/slow_boot', 'GET', lambda r: 1)\n    time.sleep(3)\n",
    );
    let (url, c) = (rt.url("/api/script/scripts/start"), rt.client());
    let starter = std::thread::spawn(move || {
        let r = c
            .post(url)
            .json(&json!({"script_path": "p/slow.py"}))
            .send()
            .expect("start request");
        r.status().as_u16()
    });
    let mut sid = String::new();
    vwed_e2e::wait_until(
        std::time::Duration::from_secs(5),
        "the starting script is listed",
        || {
            let run = rt.running();
            match run.first() {
                Some(s) if s["status"] == "starting" => {
                    sid = s["script_id"].as_str().unwrap_or_default().to_string();
                    true
                }
                _ => false,
            }
        },
    );
    let t0 = std::time::Instant::now();
    rt.stop(&sid).ok();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t0.elapsed()
    );
    let status = starter.join().expect("start thread");
    assert_eq!(status, 500, "the interrupted start fails");
    assert!(rt.running().is_empty());
    rt.call_route("GET", "/slow_boot", None).expect_status(404);
    assert_eq!(rt.registry()["api_routes"], json!({}));
}

#[test]
fn source_nested_too_deep_for_the_parser_fails_the_start_at_once() {
    let rt = Runtime::with(vwed_e2e::Opts::default().env("VWED_BOOT_TIMEOUT_MS", 10_000));
    let pid = rt.create_project("p");
    // MemoryError and RecursionError from the parser, not SyntaxError.
    let deep = format!("x = {}1\ndef boot():\n    pass\n", "-".repeat(200_000));
    let wide = format!("x = 1{}\ndef boot():\n    pass\n", "+1".repeat(300_000));
    for (name, src) in [("deep.py", deep), ("wide.py", wide)] {
        rt.create_file(pid, name, &src);
        let t0 = std::time::Instant::now();
        let r = rt.start_script(&format!("p/{name}"), None);
        r.fails(400, "脚本加载失败: ");
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(8),
            "{name}: took {:?}",
            t0.elapsed()
        );
        let v = rt.post("/api/script/validate-syntax", &json!({"content": src}));
        assert_eq!(v.data()["valid"], json!(false));
        let e = v.data()["error"].as_str().unwrap_or_default();
        assert!(
            e.len() > "语法错误: ".len(),
            "{name}: a readable error: {}",
            v.text
        );
    }
    assert!(rt.running().is_empty());
}
