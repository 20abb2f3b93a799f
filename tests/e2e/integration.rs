//! Task-system integration and the services scripts reach through the supervisor:
//! task blocks (modes, retries, timeout, variables, `task_completed`), task
//! variables across a restart, `VWED.task` forwarding to a stand-in task server,
//! `VWED.storage` locks raced by two scripts, `VWED.http` with its allow-list, and
//! `VWED.mail` through a local aiosmtpd.

use std::path::Path;
use std::time::Duration;

use vwed_e2e::peers::{http_standin, smtp_standin};
use vwed_e2e::{Opts, Runtime, TempDir, Value, json, py, wait_until};

const EXECUTE: &str = "/api/script/integration/execute";

// ------------------------------------------------------------------ task blocks

const BLOCKS: &str = r#"
def boot():
    @VWED.function.register("calculate")
    def calculate(a, b):
        return a + b

    @VWED.function.register("make_vars")
    def make_vars(args):
        return {"x2": args["x"] * 2, "tag": "ok"}

    @VWED.function.register("boom")
    def boom(args):
        raise ValueError("boom " + str(args.get("n")))

    @VWED.function.register("flaky")
    def flaky(args):
        key = "flaky_" + args["key"]
        n = VWED.data.get(key, 0) + 1
        VWED.data.set(key, n)
        if n <= args["fail_times"]:
            raise RuntimeError(f"attempt {n} fails")
        return {"attempt": n}

    @VWED.function.register("slow")
    async def slow(args):
        await asyncio.sleep(args["s"])
        return "late"

    @VWED.function.register("bump")
    def bump(args):
        before = VWED.task.get_variables(args["task_id"])
        VWED.task.set_variable(args["task_id"], "counter", before.get("counter", 0) + 1)
        return VWED.task.get_variables(args["task_id"])

    @VWED.function.register("bad_vars")
    def bad_vars(args):
        return {"": 1}

    @VWED.function.register("events")
    def events(args):
        return VWED.data.get("events", [])

    def on_done(data):
        evs = VWED.data.get("events", [])
        evs.append(data)
        VWED.data.set("events", evs)

    VWED.event.listen("task_completed", on_done)
"#;

fn events(rt: &Runtime) -> Vec<Value> {
    rt.execute_ok(None, "events", json!({}))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn task_block_modes_variables_errors_and_completion_events() {
    let rt = Runtime::start();
    rt.deploy("tasks", "blocks.py", &py(BLOCKS));

    // Seed §6.1: function_call → {success, result: {data, execution_time_ms}, message}.
    let r = rt.post(
        EXECUTE,
        &json!({
            "block_type": "script", "execution_mode": "function_call",
            "function_name": "calculate", "function_args": {"a": 10, "b": 20},
            "timeout": 5000, "retry_count": 1,
            "task_id": "T1", "task_variables": {"station": "A"},
        }),
    );
    r.ok();
    assert_eq!(r.get("result")["data"], json!(30));
    assert!(
        r.get("result")["execution_time_ms"].is_number(),
        "{}",
        r.text
    );
    assert_eq!(r.get("message"), &json!("脚本函数执行成功"));
    assert_eq!(
        r.data()["task_variables"],
        json!({"station": "A", "scriptResult": 30})
    );
    assert_eq!(r.data()["attempts"], json!(1));

    // SET_TASK_VARIABLES: a dict is spread, merged with what the task has.
    let r = rt.post(
        EXECUTE,
        &json!({"execution_mode": "SET_TASK_VARIABLES", "function_name": "make_vars",
                "function_args": {"x": 21}, "task_id": "T1"}),
    );
    r.ok();
    assert_eq!(r.data()["set_variables"], json!({"x2": 42, "tag": "ok"}));
    // SET_TASK_VARIABLES with a non-dict result: scriptResult. The seed's SCRIPT
    // spelling and a numeric task id work too.
    rt.post(
        EXECUTE,
        &json!({"execution_mode": "set_task_variables", "function_name": "calculate",
                "function_args": [1, 2], "task_id": 7}),
    )
    .ok();
    rt.post(
        EXECUTE,
        &json!({"execution_mode": "SCRIPT", "function_name": "make_vars",
                "function_args": {"x": 1}, "task_id": 7}),
    )
    .ok();

    let v = rt.get("/api/script/integration/tasks/T1/variables");
    v.ok();
    assert_eq!(
        v.data()["variables"],
        json!({"station": "A", "scriptResult": 30, "x2": 42, "tag": "ok"})
    );
    let v = rt.get("/api/script/integration/tasks/7/variables");
    assert_eq!(
        v.data()["variables"],
        json!({"scriptResult": {"x2": 2, "tag": "ok"}})
    );
    rt.get("/api/script/integration/tasks/nope/variables")
        .fails(404, "nope");

    // VWED.task.get_variables / set_variable reach the same store.
    let r = rt.execute_ok(None, "bump", json!({"task_id": "T1"}));
    assert_eq!(r["counter"], json!(1));
    assert_eq!(r["station"], json!("A"));
    let v = rt.get("/api/script/integration/tasks/T1/variables");
    assert_eq!(v.data()["variables"]["counter"], json!(1));

    // Errors: unknown function 404, function error 500, timeout 504, bad body 400.
    rt.post(EXECUTE, &json!({"function_name": "missing"}))
        .fails(404, "missing");
    let r = rt.post(
        EXECUTE,
        &json!({"function_name": "boom", "function_args": {"n": 1}, "task_id": "T2", "retry_count": 2}),
    );
    r.fails(500, "boom 1");
    assert_eq!(r.data()["attempts"], json!(3), "{}", r.text);
    rt.get("/api/script/integration/tasks/T2/variables")
        .fails(404, "T2");
    let r = rt.post(
        EXECUTE,
        &json!({"function_name": "slow", "function_args": {"s": 3}, "timeout": 300, "retry_count": 3}),
    );
    r.fails(504, "超时");
    // A timed-out attempt is not repeated.
    assert_eq!(r.data()["attempts"], json!(1), "{}", r.text);
    rt.post(
        EXECUTE,
        &json!({"execution_mode": "nope", "function_name": "calculate"}),
    )
    .fails(400, "execution_mode");
    rt.post(EXECUTE, &json!({"execution_mode": "SCRIPT"}))
        .fails(400, "function_name");
    rt.post(
        EXECUTE,
        &json!({"block_type": "http", "function_name": "x"}),
    )
    .fails(400, "block_type");
    rt.post(
        EXECUTE,
        &json!({"function_name": "calculate", "task_variables": {"": 1}}),
    )
    .fails(400, "变量名");
    // The function ran, but its variables cannot be kept: the block failed.
    rt.post(
        EXECUTE,
        &json!({"execution_mode": "SET_TASK_VARIABLES", "function_name": "bad_vars", "task_id": "T4"}),
    )
    .fails(500, "任务变量保存失败");
    rt.post(EXECUTE, &json!({"function_name": "x", "surprise": 1}))
        .fails(400, "surprise");
    rt.send_raw("POST", EXECUTE, "application/json", b"{not json".to_vec())
        .fails(400, "JSON");

    // Retries: fails twice, succeeds on the third attempt.
    let r = rt.post(
        EXECUTE,
        &json!({"function_name": "flaky", "function_args": {"key": "a", "fail_times": 2},
                "retry_count": 2, "task_id": "T3"}),
    );
    r.ok();
    assert_eq!(r.get("result")["data"], json!({"attempt": 3}));
    assert_eq!(r.data()["attempts"], json!(3));
    let r = rt.post(
        EXECUTE,
        &json!({"function_name": "flaky", "function_args": {"key": "b", "fail_times": 2},
                "retry_count": 1}),
    );
    r.fails(500, "attempt 2 fails");

    // task_completed reached the listener in the script, successes and failures.
    wait_until(Duration::from_secs(10), "task_completed events", || {
        let evs = events(&rt);
        evs.iter()
            .any(|e| e["task_id"] == json!("T3") && e["success"] == json!(true))
            && evs
                .iter()
                .any(|e| e["task_id"] == json!("T2") && e["success"] == json!(false))
            && evs
                .iter()
                .any(|e| e["task_id"] == json!("T4") && e["success"] == json!(false))
    });
    let evs = events(&rt);
    let t1 = evs
        .iter()
        .find(|e| e["task_id"] == json!("T1") && e["function_name"] == json!("calculate"))
        .expect("event of T1");
    assert_eq!(t1["result"], json!(30));
    assert_eq!(t1["success"], json!(true));
    let t2 = evs
        .iter()
        .find(|e| e["task_id"] == json!("T2"))
        .expect("T2");
    assert!(
        t2["error"].as_str().unwrap_or("").contains("boom 1"),
        "{t2}"
    );
    assert!(t2.get("result").is_none(), "{t2}");

    // The central server may drop a finished task's variables.
    rt.delete("/api/script/integration/tasks/T3/variables").ok();
    rt.get("/api/script/integration/tasks/T3/variables")
        .fails(404, "T3");
}

#[test]
fn task_variables_survive_a_runtime_restart() {
    let rt = Runtime::start();
    rt.deploy("tasks", "blocks.py", &py(BLOCKS));
    rt.post(
        EXECUTE,
        &json!({"execution_mode": "SET_TASK_VARIABLES", "function_name": "make_vars",
                "function_args": {"x": 5}, "task_id": "persist-1",
                "task_variables": {"order": "SO-9"}}),
    )
    .ok();
    let data = rt.kill9_keep_data();
    let rt = Runtime::start_in(data, Opts::default());
    let v = rt.get("/api/script/integration/tasks/persist-1/variables");
    v.ok();
    assert_eq!(
        v.data()["variables"],
        json!({"order": "SO-9", "x2": 10, "tag": "ok"})
    );
    // The restored script sees them too.
    wait_until(Duration::from_secs(20), "script restored", || {
        rt.execute(None, "bump", json!({"task_id": "persist-1"}))
            .status
            == 200
    });
    let v = rt.get("/api/script/integration/tasks/persist-1/variables");
    assert_eq!(v.data()["variables"]["order"], json!("SO-9"));
    assert_eq!(v.data()["variables"]["counter"], json!(1));
}

// --------------------------------------------------------------- task server

pub(crate) const TASK_CLIENT: &str = r#"
def boot():
    @VWED.function.register("remote")
    def remote(args):
        op = args["op"]
        try:
            if op == "create":
                return VWED.task.create(task_label="move", input_params={"to": "A001"})
            if op == "status":
                return VWED.task.get_status(task_id=args["id"])
            if op == "stop":
                return VWED.task.stop(task_id=args["id"])
        except VWED.Error as e:
            return {"error": str(e)}

    @VWED.function.register("remote_async")
    async def remote_async(args):
        created = await VWED.task.create_task("动态任务", {"blocks": [{"type": "start"}]})
        tid = created["data"]["task_id"]
        executed = await VWED.task.execute_task(tid, {"param1": "value1"})
        status = await VWED.task.get_task_status(tid)
        return {"created": created, "executed": executed, "status": status}

    @VWED.function.register("mail_unset")
    def mail_unset(args):
        try:
            VWED.mail.send(to="a@example.com", subject="s", body="b")
        except VWED.Error as e:
            return str(e)
"#;

#[test]
fn task_calls_are_forwarded_to_the_task_server() {
    // Without task_server_url: a clear error (and without smtp_host, mail says so).
    let rt = Runtime::start();
    rt.deploy("tasks", "client.py", &py(TASK_CLIENT));
    let r = rt.execute_ok(None, "remote", json!({"op": "create"}));
    assert_eq!(r["error"], json!("任务服务器未配置 (task_server_url)"));
    let r = rt.execute_ok(None, "mail_unset", json!({}));
    assert!(r.as_str().unwrap_or("").contains("邮件服务器未配置"), "{r}");
    drop(rt);

    let server = http_standin(None);
    let rt = Runtime::with(Opts::default().env(
        "VWED_TASK_SERVER_URL",
        format!("http://127.0.0.1:{}", server.port),
    ));
    rt.deploy("tasks", "client.py", &py(TASK_CLIENT));
    let created = rt.execute_ok(None, "remote", json!({"op": "create"}));
    assert_eq!(created["success"], json!(true), "{created}");
    let tid = created["data"]["task_id"]
        .as_str()
        .expect("task id")
        .to_string();
    assert_eq!(created["data"]["request"]["task_label"], json!("move"));
    assert_eq!(
        created["data"]["request"]["input_params"],
        json!({"to": "A001"})
    );
    assert_eq!(created["data"]["request"]["source"], json!("vwed-edge"));
    let status = rt.execute_ok(None, "remote", json!({"op": "status", "id": tid}));
    assert_eq!(status["data"]["status"], json!("running"));
    let stopped = rt.execute_ok(None, "remote", json!({"op": "stop", "id": tid}));
    assert_eq!(stopped["data"]["status"], json!("stopped"));
    let missing = rt.execute_ok(None, "remote", json!({"op": "status", "id": "T-404"}));
    assert!(
        missing["error"].as_str().unwrap_or("").contains("HTTP 404"),
        "{missing}"
    );
    let r = rt.execute_ok(None, "remote_async", json!({}));
    assert_eq!(
        r["executed"]["data"]["execute"]["input_params"],
        json!({"param1": "value1"})
    );
    assert_eq!(r["status"]["data"]["status"], json!("executing"));
}

// ------------------------------------------------------------------- storage

const LOCKER: &str = r#"
def boot():
    @VWED.function.register("grab_all_SUFFIX")
    def grab_all(args):
        # Both scripts go for location i at the same wall-clock tick, so every
        # location is a real race between two processes.
        won = []
        for i in range(args["n"]):
            delay = args["t0"] + i * 0.02 - time.time()
            if delay > 0:
                time.sleep(delay)
            code = f"R{i:03d}"
            if VWED.storage.lock_location(code, args["task_id"]):
                won.append(code)
        return won

    @VWED.function.register("loc_SUFFIX")
    def loc(args):
        try:
            op = args["op"]
            if op == "get":
                return VWED.storage.get_location(args["code"])
            if op == "lock":
                return VWED.storage.lock_location(location_code=args["code"], task_id=args["task_id"])
            if op == "unlock":
                return VWED.storage.unlock_location(
                    args["code"], task_id=args.get("task_id"), force=args.get("force", False)
                )
            if op == "list":
                return VWED.storage.list_locations(area=args.get("area"))
        except VWED.Error as e:
            return {"error": str(e)}
"#;

#[test]
fn two_scripts_racing_for_locations_never_both_win() {
    let rt = Runtime::start();
    let n = 60;
    let locs: Vec<Value> = (0..n)
        .map(|i| json!({"location_code": format!("R{i:03}"), "area": "race"}))
        .collect();
    let r = rt.post("/api/script/storage/locations", &json!(locs));
    r.ok();
    assert_eq!(r.data()["created"], json!(n));
    rt.post(
        "/api/script/storage/locations",
        &json!({"locations": [{"location_code": "A001", "name": "一号库位", "area": "A",
                               "attributes": {"layer": 1}},
                              {"location_code": "库位 B", "area": "B"}]}),
    )
    .ok();
    // Function names are global: each script registers its own.
    let _a = rt.deploy("store", "a.py", &py(&LOCKER.replace("SUFFIX", "a")));
    let _b = rt.deploy("store", "b.py", &py(&LOCKER.replace("SUFFIX", "b")));

    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
        + 0.5;
    let results: Vec<Vec<String>> = std::thread::scope(|s| {
        let hs: Vec<_> = [("grab_all_a", "TA"), ("grab_all_b", "TB")]
            .into_iter()
            .map(|(func, task)| {
                let rt = &rt;
                s.spawn(move || {
                    let v = rt.execute_ok(None, func, json!({"n": n, "task_id": task, "t0": t0}));
                    v.as_array()
                        .expect("list")
                        .iter()
                        .map(|c| c.as_str().expect("code").to_string())
                        .collect()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let (wa, wb) = (&results[0], &results[1]);
    eprintln!("race split: TA {} / TB {}", wa.len(), wb.len());
    assert_eq!(
        wa.len() + wb.len(),
        n,
        "every location won exactly once: {wa:?} {wb:?}"
    );
    assert!(
        wa.iter().all(|c| !wb.contains(c)),
        "both won a location: {wa:?} {wb:?}"
    );
    for (won, task) in [(wa, "TA"), (wb, "TB")] {
        for code in won.iter().take(5) {
            let l = rt.get(&format!("/api/script/storage/locations/{code}"));
            assert_eq!(l.data()["locked_by"], json!(task), "{}", l.text);
        }
    }

    // Lock records, unlock rules, the seed's forms.
    let l = rt.execute_ok(None, "loc_a", json!({"op": "get", "code": "A001"}));
    assert_eq!(l["name"], json!("一号库位"));
    assert_eq!(l["locked"], json!(false));
    assert_eq!(l["attributes"], json!({"layer": 1}));
    assert_eq!(
        rt.execute_ok(
            None,
            "loc_a",
            json!({"op": "lock", "code": "A001", "task_id": 123})
        ),
        json!(true)
    );
    assert_eq!(
        rt.execute_ok(
            None,
            "loc_b",
            json!({"op": "lock", "code": "A001", "task_id": 456})
        ),
        json!(false)
    );
    let l = rt.get("/api/script/storage/locations/A001");
    assert_eq!(l.data()["locked_by"], json!("123"));
    assert!(l.data()["locked_at"].is_string(), "{}", l.text);
    let refused = rt.execute_ok(
        None,
        "loc_b",
        json!({"op": "unlock", "code": "A001", "task_id": 456}),
    );
    assert!(
        refused["error"].as_str().unwrap_or("").contains("123"),
        "{refused}"
    );
    assert_eq!(
        rt.execute_ok(
            None,
            "loc_b",
            json!({"op": "unlock", "code": "A001", "task_id": 456, "force": true})
        ),
        json!(true)
    );
    assert_eq!(
        rt.execute_ok(
            None,
            "loc_a",
            json!({"op": "lock", "code": "A001", "task_id": 1})
        ),
        json!(true)
    );
    assert_eq!(
        rt.execute_ok(None, "loc_a", json!({"op": "unlock", "code": "A001"})),
        json!(true)
    );
    assert_eq!(
        rt.execute_ok(None, "loc_a", json!({"op": "get", "code": "nope"})),
        Value::Null
    );
    let e = rt.execute_ok(
        None,
        "loc_a",
        json!({"op": "lock", "code": "nope", "task_id": 1}),
    );
    assert!(e["error"].as_str().unwrap_or("").contains("不存在"), "{e}");
    let in_a = rt.execute_ok(None, "loc_a", json!({"op": "list", "area": "A"}));
    assert_eq!(in_a.as_array().map(Vec::len), Some(1));

    // HTTP views and bounds.
    let all = rt.get("/api/script/storage/locations");
    all.ok();
    assert_eq!(all.data()["total"], json!(n + 2));
    let b = rt.get("/api/script/storage/locations/%E5%BA%93%E4%BD%8D%20B");
    assert_eq!(b.data()["location_code"], json!("库位 B"), "{}", b.text);
    let locked = rt.get("/api/script/storage/locations?locked=true&area=race");
    assert_eq!(locked.data()["locations"].as_array().map(Vec::len), Some(n));
    // An operator frees a location: the holder's id, or force.
    let r = rt.post(
        "/api/script/storage/locations/R000/unlock",
        &json!({"task_id": "nobody"}),
    );
    r.fails(409, "nobody");
    let r = rt.post(
        "/api/script/storage/locations/R000/unlock",
        &json!({"task_id": "nobody", "force": true}),
    );
    assert_eq!(r.data()["released"], json!(true), "{}", r.text);
    let r = rt.post("/api/script/storage/locations/R000/unlock", &json!({}));
    assert_eq!(r.data()["released"], json!(false), "{}", r.text);
    rt.get("/api/script/storage/locations/none")
        .fails(404, "none");
    rt.post(
        "/api/script/storage/locations",
        &json!([{"location_code": ""}]),
    )
    .fails(400, "库位编码");
    rt.post(
        "/api/script/storage/locations",
        &json!([{"location_code": "X", "attributes": [1]}]),
    )
    .fails(400, "attributes");
}

// ---------------------------------------------------------------------- http

pub(crate) const FETCHER: &str = r#"
def boot():
    @VWED.function.register("fetch")
    def fetch(args):
        base = args["base"]
        kind = args["kind"]
        try:
            if kind == "get":
                r = VWED.http.get(url=base + "/echo", headers={"X-Token": "t1"}, params={"q": "库位", "n": 2})
            elif kind == "post":
                r = VWED.http.post(url=base + "/submit", json={"key": "value"})
            elif kind == "put":
                r = VWED.http.put(base + "/update", data="raw text")
            elif kind == "form":
                r = VWED.http.post(base + "/form", data={"a": "1 2"})
            elif kind == "delete":
                r = VWED.http.delete(url=base + "/delete")
            elif kind == "text":
                r = VWED.http.get(base + "/text")
            elif kind == "slow":
                r = VWED.http.get(base + "/slow", timeout=0.5)
            elif kind == "big":
                r = VWED.http.get(base + "/big")
            elif kind == "bigstream":
                r = VWED.http.get(base + "/bigstream")
            elif kind == "url":
                r = VWED.http.get(args["url"])
            return {"status": r.status, "ok": r["ok"], "json": r.json, "text": r.text,
                    "headers": r.headers}
        except VWED.Error as e:
            return {"error": str(e)}

    @VWED.function.register("fetch_raw")
    def fetch_raw(args):
        # The answer object itself is JSON-serialisable.
        return VWED.http.get(args["base"] + "/raw")

    @VWED.function.register("fetch_async")
    async def fetch_async(args):
        r = await VWED.http.get_async(args["base"] + "/async")
        return r.json
"#;

#[test]
fn http_goes_only_to_allowed_hosts_with_timeouts_and_size_limits() {
    let peer = http_standin(None);
    let base = format!("http://127.0.0.1:{}", peer.port);
    let rt = Runtime::with(
        Opts::default()
            .env(
                "VWED_HTTP_ALLOW_HOSTS",
                format!("127.0.0.1:{}, example.invalid", peer.port),
            )
            .env("VWED_HTTP_MAX_RESPONSE_BYTES", 1_000_000),
    );
    rt.deploy("net", "fetch.py", &py(FETCHER));
    let f = |kind: &str| rt.execute_ok(None, "fetch", json!({"base": base, "kind": kind}));

    let r = f("get");
    assert_eq!(r["status"], json!(200), "{r}");
    assert_eq!(r["ok"], json!(true));
    assert_eq!(r["json"]["method"], json!("GET"));
    assert_eq!(r["json"]["query"], json!({"q": "库位", "n": "2"}));
    assert_eq!(r["json"]["headers"]["x-token"], json!("t1"));
    assert_eq!(r["headers"]["x-standin"], json!("yes"));
    let r = f("post");
    assert_eq!(r["json"]["json"], json!({"key": "value"}), "{r}");
    assert_eq!(
        r["json"]["headers"]["content-type"],
        json!("application/json")
    );
    let r = f("put");
    assert_eq!(r["json"]["method"], json!("PUT"));
    assert_eq!(r["json"]["body"], json!("raw text"));
    let r = f("form");
    assert_eq!(r["json"]["body"], json!("a=1+2"));
    let r = f("delete");
    assert_eq!(r["json"]["method"], json!("DELETE"));
    let r = f("text");
    assert_eq!(r["status"], json!(201));
    assert_eq!(r["json"], Value::Null);
    assert_eq!(r["text"], json!("纯文本"));
    let r = rt.execute_ok(None, "fetch_raw", json!({"base": base}));
    assert_eq!(r["status"], json!(200), "{r}");
    assert_eq!(r["json"]["path"], json!("/raw"));
    let r = rt.execute_ok(None, "fetch_async", json!({"base": base}));
    assert_eq!(r["path"], json!("/async"));

    let r = f("slow");
    assert!(r["error"].as_str().unwrap_or("").contains("超时"), "{r}");
    let r = f("big");
    assert!(
        r["error"].as_str().unwrap_or("").contains("响应过大"),
        "{r}"
    );
    let r = f("bigstream");
    assert!(
        r["error"].as_str().unwrap_or("").contains("响应过大"),
        "{r}"
    );

    let url = |u: String| {
        rt.execute_ok(
            None,
            "fetch",
            json!({"base": base, "kind": "url", "url": u}),
        )
    };
    // Same server, a name that is not on the list: refused, naming the key to set.
    let r = url(format!("http://localhost:{}/echo", peer.port));
    let e = r["error"].as_str().unwrap_or("");
    assert!(
        e.contains("http_allow_hosts") && e.contains(&format!("localhost:{}", peer.port)),
        "{r}"
    );
    let r = url(format!("http://127.0.0.1:{}/echo", peer.port + 1));
    assert!(
        r["error"]
            .as_str()
            .unwrap_or("")
            .contains("http_allow_hosts"),
        "{r}"
    );
    // HTTPS to a peer that speaks plain HTTP: the handshake fails (tls.rs has
    // the peers that speak it).
    let r = url(format!("https://127.0.0.1:{}/echo", peer.port));
    assert!(
        r["error"].as_str().unwrap_or("").contains("HTTP 请求失败"),
        "{r}"
    );
    let r = url("file:///etc/passwd".into());
    assert!(r["error"].as_str().unwrap_or("").contains("file"), "{r}");

    // The default list is empty: nothing is allowed.
    drop(rt);
    let rt = Runtime::start();
    rt.deploy("net", "fetch.py", &py(FETCHER));
    let r = rt.execute_ok(None, "fetch", json!({"base": base, "kind": "get"}));
    assert!(
        r["error"]
            .as_str()
            .unwrap_or("")
            .contains("VWED_HTTP_ALLOW_HOSTS"),
        "{r}"
    );
}

// ---------------------------------------------------------------------- mail

const MAILER: &str = r#"
import os

def boot():
    @VWED.function.register("mail")
    def mail(args):
        try:
            kind = args["kind"]
            if kind == "plain":
                return VWED.mail.send(to="admin@example.com", subject="告警", body="系统异常")
            d = VWED.mail.attachment_dir()
            if kind == "attach":
                with open(os.path.join(d, "report.csv"), "w") as f:
                    f.write("a,b\n1,2\n")
                return VWED.mail.send_with_attachment(
                    to=["ops@example.com", "qa@example.com"], subject="报告",
                    body="请查看附件", attachment_path="report.csv")
            if kind == "absolute":
                return VWED.mail.send_with_attachment(
                    "ops@example.com", "abs", "b", os.path.join(d, "report.csv"))
            if kind == "traversal":
                return VWED.mail.send_with_attachment(
                    "ops@example.com", "x", "y", "../vwed.redb")
            if kind == "outside":
                return VWED.mail.send_with_attachment(
                    "ops@example.com", "x", "y", os.path.join(os.path.dirname(d), "vwed.redb"))
            if kind == "big":
                with open(os.path.join(d, "big.bin"), "wb") as f:
                    f.write(b"z" * 5000)
                return VWED.mail.send_with_attachment("ops@example.com", "x", "y", "big.bin")
            if kind == "bad_to":
                return VWED.mail.send(to="not an address", subject="x", body="y")
        except VWED.Error as e:
            return {"error": str(e)}
"#;

pub(crate) fn wait_mail(dir: &Path, n: usize) -> Vec<String> {
    wait_until(Duration::from_secs(10), "mail delivered", || {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .count()
                    >= n
            })
            .unwrap_or(false)
    });
    (1..=n)
        .map(|i| std::fs::read_to_string(dir.join(format!("{i}.eml"))).expect("eml"))
        .collect()
}

#[test]
fn mail_goes_through_smtp_with_checked_attachments() {
    let out = TempDir::new("smtp");
    let smtp = smtp_standin(out.path(), None, None);
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_SMTP_HOST", "127.0.0.1")
            .env("VWED_SMTP_PORT", smtp.port)
            .env("VWED_SMTP_FROM", "VWED Edge <edge@example.com>")
            .env("VWED_MAIL_MAX_ATTACHMENT_BYTES", 4096),
    );
    rt.deploy("mail", "mailer.py", &py(MAILER));
    let m = |kind: &str| rt.execute_ok(None, "mail", json!({"kind": kind}));

    let r = m("plain");
    assert_eq!(r["to"], json!(["admin@example.com"]), "{r}");
    let mails = wait_mail(out.path(), 1);
    assert!(
        mails[0].contains("X-Envelope-To: admin@example.com"),
        "{}",
        mails[0]
    );
    assert!(
        mails[0].contains("X-Envelope-From: edge@example.com"),
        "{}",
        mails[0]
    );
    // The subject is encoded (RFC 2047); the UTF-8 body is quoted-printable or base64.
    assert!(mails[0].contains("Subject:"), "{}", mails[0]);

    let r = m("attach");
    assert_eq!(r["attachment"], json!("report.csv"), "{r}");
    let mails = wait_mail(out.path(), 2);
    assert!(
        mails[1].contains("X-Envelope-To: ops@example.com,qa@example.com"),
        "{}",
        mails[1]
    );
    assert!(mails[1].contains("report.csv"), "{}", mails[1]);
    assert!(mails[1].contains("multipart/mixed"), "{}", mails[1]);
    let r = m("absolute");
    assert_eq!(r["attachment"], json!("report.csv"), "{r}");
    wait_mail(out.path(), 3);

    for kind in ["traversal", "outside"] {
        let r = m(kind);
        assert!(
            r["error"].as_str().unwrap_or("").contains("附件路径"),
            "{kind}: {r}"
        );
    }
    let r = m("big");
    assert!(r["error"].as_str().unwrap_or("").contains("过大"), "{r}");
    let r = m("bad_to");
    assert!(
        r["error"].as_str().unwrap_or("").contains("邮件地址无效"),
        "{r}"
    );
    // Nothing else reached the server.
    std::thread::sleep(Duration::from_millis(300));
    let count = std::fs::read_dir(out.path())
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(count, 3);
    drop(smtp);
}

/// A runtime with `opts` sends one plain mail from a script: the script's answer.
pub(crate) fn mail_once(opts: Opts) -> Value {
    let rt = Runtime::with(opts);
    rt.deploy("mail", "mailer.py", &py(MAILER));
    rt.execute_ok(None, "mail", json!({"kind": "plain"}))
}

#[test]
fn mail_authenticates_when_a_user_is_configured() {
    let out = TempDir::new("smtp-auth");
    let smtp = smtp_standin(out.path(), Some(("edge", "s3cret")), None);
    let opts = |password: &str| {
        Opts::default()
            .env("VWED_SMTP_HOST", "127.0.0.1")
            .env("VWED_SMTP_PORT", smtp.port)
            .env("VWED_SMTP_FROM", "edge@example.com")
            .env("VWED_SMTP_USERNAME", "edge")
            .env("VWED_SMTP_PASSWORD", password)
    };
    let r = mail_once(opts("wrong"));
    assert!(
        r["error"].as_str().unwrap_or("").contains("邮件发送失败"),
        "{r}"
    );
    let r = mail_once(opts("s3cret"));
    assert_eq!(r["to"], json!(["admin@example.com"]), "{r}");
    let mails = wait_mail(out.path(), 1);
    assert!(
        mails[0].contains("X-Envelope-From: edge@example.com"),
        "{}",
        mails[0]
    );

    // A server that accepts and then says nothing: the send ends at smtp_timeout_ms.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_SMTP_HOST", "127.0.0.1")
            .env("VWED_SMTP_PORT", port)
            .env("VWED_SMTP_FROM", "edge@example.com")
            .env("VWED_SMTP_TIMEOUT_MS", 800),
    );
    rt.deploy("mail", "mailer.py", &py(MAILER));
    let t0 = std::time::Instant::now();
    let r = rt.execute_ok(None, "mail", json!({"kind": "plain"}));
    assert!(r["error"].as_str().unwrap_or("").contains("超时"), "{r}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    drop(silent);
}
