//! `VWED.function`: registration forms, execute-function, the argument rules,
//! calls between scripts, and the registry/integration views.

use std::time::{Duration, Instant};

use vwed_e2e::{Runtime, TempDir, json, py};

const FUNCS: &str = r#"
def boot():
    @VWED.function.register("add_numbers", description="数字相加")
    def add_numbers(args):
        return args["a"] + args["b"]

    @VWED.function.register("async_process", description="异步处理")
    async def async_process(args):
        await VWED.util.async_sleep(0.01)
        return {"processed": True, "args": args}

    @VWED.function.register(
        "complex_calc",
        description="复杂计算",
        parameters=[
            {"name": "x", "type": "number", "required": True},
            {"name": "y", "type": "number", "required": True},
        ],
        return_schema={"type": "object", "properties": {"result": {"type": "number"}}},
        tags=["math", "calculation"],
    )
    def complex_calc(args):
        return {"result": args["x"] * args["y"] + 10}

    @VWED.function.register
    def bare(args):
        return {"bare": args}

    def echo(args):
        return {"echo": args, "type": type(args).__name__}
    VWED.function.register("echo", echo, "函数形式")

    def area(width, height):
        return width * height
    VWED.function.register(name="area", handler=area, tags=["geometry"])

    def add(a, b):
        return a + b
    VWED.function.register("add", add)

    def nothing():
        return "nothing"
    VWED.function.register("nothing", nothing)

    def kw_only(*, name="?"):
        return "hi " + name
    VWED.function.register("kw_only", kw_only)

    @VWED.function.register("fails")
    def fails(args):
        raise ValueError("bad input " + str(args.get("v")))

    @VWED.function.register("afails")
    async def afails(args):
        raise RuntimeError("async bad")

    @VWED.function.register("slow")
    def slow(args):
        time.sleep(6)
        return "late"

    @VWED.function.register("aslow")
    async def aslow(args):
        await asyncio.sleep(6)
        return "late"
"#;

fn runtime() -> (Runtime, String) {
    // The slow functions outlive their timeouts by seconds; here the worker is
    // left to finish them (supervision.rs tests ending a worker that does not).
    let rt =
        Runtime::with(vwed_e2e::Opts::default().env("VWED_SUPERVISION__BUSY_GRACE_MS", 60_000));
    let sid = rt.deploy("p", "funcs.py", FUNCS);
    (rt, sid)
}

#[test]
fn execute_function_seed_shape_with_and_without_script_id() {
    let (rt, sid) = runtime();
    let r = rt.execute(Some(&sid), "add_numbers", json!({"a": 2, "b": 3}));
    r.ok();
    assert_eq!(r.get("result"), &json!(5));
    assert!(
        r.get("execution_time_ms")
            .as_f64()
            .is_some_and(|t| t >= 0.0),
        "{}",
        r.text
    );
    assert_eq!(
        r.json.as_object().map(|o| {
            let mut k: Vec<_> = o.keys().cloned().collect();
            k.sort();
            k
        }),
        Some(vec![
            "execution_time_ms".to_string(),
            "result".into(),
            "success".into()
        ])
    );
    assert_eq!(
        rt.execute_ok(None, "add_numbers", json!({"a": 1, "b": 1})),
        json!(2)
    );
    assert_eq!(
        rt.execute_ok(None, "async_process", json!({"k": 1})),
        json!({"processed": true, "args": {"k": 1}})
    );
    assert_eq!(
        rt.execute_ok(None, "complex_calc", json!({"x": 3, "y": 4})),
        json!({"result": 22})
    );
    assert_eq!(
        rt.execute_ok(None, "bare", json!({"q": 1})),
        json!({"bare": {"q": 1}})
    );
    assert_eq!(
        rt.execute_ok(None, "echo", json!({"q": 1}))["echo"],
        json!({"q": 1})
    );

    // Errors.
    let r = rt.execute(Some(&sid), "invalid_function", json!({}));
    r.fails(404, "函数 invalid_function 未注册");
    assert!(r.get("execution_time_ms").as_f64().is_some(), "{}", r.text);
    rt.execute(None, "invalid_function", json!({}))
        .fails(404, "函数 invalid_function 未注册");
    rt.execute(
        Some("gone.py_1726059000000_abc12345"),
        "add_numbers",
        json!({}),
    )
    .fails(404, "未运行");
    rt.post(
        "/api/script/scripts/execute-function",
        &json!({"script_id": sid}),
    )
    .fails(400, "function_name");
    rt.post(
        "/api/script/scripts/execute-function",
        &json!({"function_name": 5}),
    )
    .fails(400, "请求参数错误");
    rt.post(
        "/api/script/scripts/execute-function",
        &json!({"function_name": "add", "timeout_ms": "soon"}),
    )
    .fails(400, "请求参数错误");

    // A function of another script is not found under this script_id.
    let other = rt.deploy(
        "p",
        "other.py",
        "def boot():\n    VWED.function.register('other_fn', lambda a: 'o')\n",
    );
    rt.execute(Some(&sid), "other_fn", json!({}))
        .fails(404, "未注册");
    assert_eq!(
        rt.execute_ok(Some(&other), "other_fn", json!({})),
        json!("o")
    );
}

#[test]
fn exceptions_and_timeouts() {
    let (rt, sid) = runtime();
    let r = rt.execute(Some(&sid), "fails", json!({"v": 7}));
    r.fails(500, "bad input 7");
    assert!(r.error().contains("ValueError"), "{}", r.text);
    rt.execute(None, "afails", json!({}))
        .fails(500, "async bad");
    rt.execute(None, "add_numbers", json!({"a": 1}))
        .fails(500, "KeyError");

    let t0 = Instant::now();
    let r = rt.post(
        "/api/script/scripts/execute-function",
        &json!({"function_name": "aslow", "timeout_ms": 200}),
    );
    r.fails(504, "超时");
    assert!(
        t0.elapsed() < Duration::from_millis(5000),
        "{:?}",
        t0.elapsed()
    );
    let t0 = Instant::now();
    let r = rt.post(
        "/api/script/scripts/execute-function",
        &json!({"function_name": "slow", "script_id": sid, "timeout_ms": 200}),
    );
    r.fails(504, "超时");
    assert!(
        t0.elapsed() < Duration::from_millis(5000),
        "{:?}",
        t0.elapsed()
    );
    // The worker still answers once the sync sleep is over.
    assert_eq!(rt.execute_ok(None, "add", json!([1, 2])), json!(3));
    vwed_e2e::wait_until(Duration::from_secs(3), "traceback in output", || {
        rt.output(&sid).contains("ValueError: bad input 7")
    });

    let reg = rt.registry();
    let f = &reg["registered_functions"]["fails"];
    assert_eq!(f["call_count"], json!(1));
    assert_eq!(f["success_count"], json!(0));
    assert_eq!(f["error_count"], json!(1));
    let a = &reg["registered_functions"]["add"];
    assert_eq!(a["call_count"], json!(1));
    assert_eq!(a["success_count"], json!(1));
    assert_eq!(a["is_async"], json!(false));
    assert_eq!(
        reg["registered_functions"]["aslow"]["is_async"],
        json!(true)
    );
    assert_eq!(
        reg["registered_functions"]["aslow"]["error_count"],
        json!(1)
    );
}

#[test]
fn argument_rules() {
    let (rt, sid) = runtime();
    let s = Some(sid.as_str());
    // dict: one argument for a one-parameter function, else keyword arguments.
    assert_eq!(
        rt.execute_ok(s, "echo", json!({"a": 1}))["echo"],
        json!({"a": 1})
    );
    assert_eq!(
        rt.execute_ok(s, "area", json!({"width": 2, "height": 3})),
        json!(6)
    );
    assert_eq!(
        rt.execute_ok(s, "kw_only", json!({"name": "bob"})),
        json!("hi bob")
    );
    // list: positional arguments.
    assert_eq!(rt.execute_ok(s, "add", json!([1, 2])), json!(3));
    assert_eq!(rt.execute_ok(s, "area", json!([4, 5])), json!(20));
    // strings: JSON or a Python literal.
    assert_eq!(
        rt.execute_ok(s, "echo", json!("{'a': 1}")),
        json!({"echo": {"a": 1}, "type": "dict"})
    );
    assert_eq!(
        rt.execute_ok(s, "echo", json!("{\"a\": [1, 2]}"))["echo"],
        json!({"a": [1, 2]})
    );
    assert_eq!(rt.execute_ok(s, "add", json!("[1, 2]")), json!(3));
    assert_eq!(rt.execute_ok(s, "add", json!("(10, 20)")), json!(30));
    assert_eq!(
        rt.execute_ok(s, "area", json!("{'width': 3, 'height': 3}")),
        json!(9)
    );
    assert_eq!(
        rt.execute_ok(s, "echo", json!("plain words")),
        json!({"echo": "plain words", "type": "str"})
    );
    // scalars and nothing.
    assert_eq!(
        rt.execute_ok(s, "echo", json!(5)),
        json!({"echo": 5, "type": "int"})
    );
    assert_eq!(
        rt.execute_ok(s, "echo", json!(null)),
        json!({"echo": {}, "type": "dict"})
    );
    assert_eq!(rt.execute_ok(s, "nothing", json!(null)), json!("nothing"));
    let r = rt.post(
        "/api/script/scripts/execute-function",
        &json!({"function_name": "nothing"}),
    );
    assert_eq!(r.get("result"), &json!("nothing"), "{}", r.text);
    // async functions are awaited.
    assert_eq!(
        rt.execute_ok(s, "async_process", json!("{'x': 1}"))["args"],
        json!({"x": 1})
    );

    // A string is never evaluated.
    let dir = TempDir::new("inject");
    let marker = dir.path().join("pwned");
    for code in [
        format!("__import__('os').system('touch {}')", marker.display()),
        format!("open('{}', 'w').write('x')", marker.display()),
        format!("[__import__('os').system('touch {}')]", marker.display()),
    ] {
        let r = rt.execute(s, "echo", json!(code));
        r.ok();
        assert_eq!(
            r.get("result")["echo"],
            json!(code),
            "passed on as the text it is"
        );
        assert_eq!(r.get("result")["type"], "str");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(!marker.exists(), "a string argument was evaluated");
    // Arguments that do not fit the signature are the caller's mistake: 400, with
    // the signature in the message. The function never ran.
    rt.execute(s, "add", json!([1])).fails(400, "add(a, b)");
}

#[test]
fn calls_between_scripts_and_list_all() {
    let (rt, sid) = runtime();
    let caller = rt.deploy(
        "p",
        "caller.py",
        &py(r#"
            def boot():
                @VWED.function.register("call_other")
                def call_other(args):
                    return VWED.function.call("add_numbers", {"a": args["a"], "b": 100})

                @VWED.function.register("call_other_async")
                async def call_other_async(args):
                    return await VWED.function.call_async("async_process", {"z": 1})

                @VWED.function.register("call_missing")
                def call_missing(args):
                    return VWED.function.call("no_such_fn", {})

                @VWED.function.register("call_failing")
                def call_failing(args):
                    try:
                        VWED.function.call("fails", {"v": 1})
                    except VWED.Error as e:
                        return "caught: " + str(e)

                @VWED.function.register("names")
                def names(args):
                    return sorted(f["function_name"] for f in VWED.function.list_all())

                @VWED.api.get("/via_route")
                def via(req):
                    return {"sum": VWED.function.call("add", [2, 2])}
        "#),
    );
    assert_eq!(
        rt.execute_ok(Some(&caller), "call_other", json!({"a": 1})),
        json!(101)
    );
    assert_eq!(
        rt.execute_ok(Some(&caller), "call_other_async", json!({})),
        json!({"processed": true, "args": {"z": 1}})
    );
    rt.execute(Some(&caller), "call_missing", json!({}))
        .fails(500, "未注册");
    let caught = rt.execute_ok(Some(&caller), "call_failing", json!({}));
    assert!(
        caught.as_str().is_some_and(|c| c.contains("bad input 1")),
        "{caught}"
    );
    let names = rt.execute_ok(Some(&caller), "names", json!({}));
    for n in ["add_numbers", "complex_calc", "call_other", "names", "area"] {
        assert!(
            names.as_array().is_some_and(|a| a.contains(&json!(n))),
            "{n} in {names}"
        );
    }
    assert_eq!(
        rt.call_route("GET", "/via_route", None).json,
        json!({"sum": 4})
    );
    // The callee's stats count the calls from the other script.
    let reg = rt.registry();
    assert_eq!(
        reg["registered_functions"]["add_numbers"]["script_id"],
        json!(sid)
    );
    assert_eq!(
        reg["registered_functions"]["add_numbers"]["call_count"],
        json!(1)
    );

    // Once the callee stops, the call fails cleanly.
    rt.stop(&sid).ok();
    rt.execute(Some(&caller), "call_other", json!({"a": 1}))
        .fails(500, "未注册");
}

#[test]
fn registry_status_and_integration_functions() {
    let (rt, sid) = runtime();
    rt.execute_ok(None, "complex_calc", json!({"x": 1, "y": 1}));
    rt.execute_ok(None, "complex_calc", json!({"x": 2, "y": 1}));
    rt.execute(None, "complex_calc", json!({"x": 2}))
        .fails(500, "KeyError");

    let reg = rt.registry();
    let f = &reg["registered_functions"]["complex_calc"];
    assert_eq!(f["script_id"], json!(sid));
    assert_eq!(f["description"], "复杂计算");
    assert_eq!(f["is_async"], json!(false));
    assert_eq!(f["call_count"], json!(3));
    assert_eq!(f["success_count"], json!(2));
    assert_eq!(f["error_count"], json!(1));
    assert!(
        f["average_execution_time_ms"]
            .as_f64()
            .is_some_and(|t| t > 0.0),
        "{f}"
    );
    let active = &reg["active_scripts"][&sid];
    assert_eq!(active["script_path"], "p/funcs.py");
    assert_eq!(active["status"], "running");
    assert!(active["started_at"].as_str().is_some());
    let hb = active["heartbeat"].as_f64().expect("heartbeat");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!((now - hb).abs() < 120.0, "heartbeat {hb} vs now {now}");
    assert!(reg["event_listeners"].is_object());
    assert!(reg["timers"].is_object());

    let r = rt.get("/api/script/integration/functions");
    r.ok();
    let all = r.data().as_array().expect("list").clone();
    assert_eq!(all.len(), 13, "{}", r.text);
    let c = all
        .iter()
        .find(|f| f["function_name"] == "complex_calc")
        .expect("complex_calc listed");
    assert_eq!(c["script_id"], json!(sid));
    assert_eq!(c["is_running"], json!(true));
    assert_eq!(c["tags"], json!(["math", "calculation"]));
    assert_eq!(
        c["parameters"],
        json!([
            {"name": "x", "type": "number", "required": true},
            {"name": "y", "type": "number", "required": true}
        ])
    );
    assert_eq!(c["return_schema"]["type"], "object");
    assert_eq!(c["stats"]["call_count"], json!(3));
    assert_eq!(c["stats"]["error_count"], json!(1));

    let tagged = |q: &str| -> Vec<String> {
        let r = rt.get(&format!("/api/script/integration/functions?tags={q}"));
        r.ok();
        let mut v: Vec<String> = r
            .data()
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|f| f["function_name"].as_str().map(str::to_string))
            .collect();
        v.sort();
        v
    };
    assert_eq!(tagged("math"), vec!["complex_calc"]);
    assert_eq!(tagged("geometry,calculation"), vec!["area", "complex_calc"]);
    assert_eq!(tagged("none-such"), Vec::<String>::new());

    // Duplicate function names across scripts: the second start fails with 409.
    let pid = rt.project_id("p").expect("p");
    rt.create_file(
        pid,
        "dup.py",
        "def boot():\n    VWED.function.register('add', lambda a, b: 0)\n",
    );
    let r = rt.start_script("p/dup.py", None);
    r.fails(409, &sid);
    assert!(r.error().contains("函数 add"), "{}", r.text);

    rt.stop(&sid).ok();
    let r = rt.get("/api/script/integration/functions");
    assert_eq!(r.data(), &json!([]));
}
