//! `/script-api/*`: the HTTP routes scripts register through `VWED.api`.

use std::time::{Duration, Instant};

use vwed_e2e::{Opts, Runtime, json, py};

const ROUTES: &str = r#"
def boot():
    @VWED.api.get("/test", description="测试接口")
    def handle_test(request_data):
        return {"message": "Hello from script!"}

    @VWED.api.post("/calculate", description="计算接口")
    def handle_calculate(request_data):
        a = request_data["body"].get("a", 0)
        b = request_data["body"].get("b", 0)
        return {"result": a + b}

    @VWED.api.put("/item")
    def put_item(request_data):
        return {"put": request_data["body"]}

    @VWED.api.delete("/item")
    def delete_item(request_data):
        return {"deleted": True}

    @VWED.api.register("/custom", "PUT", description="自定义接口")
    def handle_custom(request_data):
        return {"status": "success"}

    def plain(request_data):
        return {"plain": True, "method": request_data["method"]}
    VWED.api.register_route(path="/plain", method="PATCH", handler=plain)
    VWED.api.register_route("/plain2", "GET", plain)

    def no_args():
        return {"no_args": True}
    VWED.api.register_route(path="/noargs", method="GET", handler=no_args)

    @VWED.api.get("/echo/{id}/sub/{name}")
    def echo(request_data):
        h = request_data["headers"]
        return {
            "method": request_data["method"],
            "path": request_data["path"],
            "query_params": request_data["query_params"],
            "path_params": request_data["path_params"],
            "body": request_data["body"],
            "client": request_data["client"],
            "h_upper": h.get("X-Custom-Header"),
            "h_lower": h["x-custom-header"],
            "h_in": "X-CUSTOM-HEADER" in h,
        }

    @VWED.api.post("/echo_body")
    def echo_body(request_data):
        b = request_data["body"]
        return {"type": type(b).__name__, "body": b}

    @VWED.api.get("/items/{item_id}")
    def item(request_data):
        return {"item": request_data["path_params"]["item_id"]}

    @VWED.api.get("/items/special")
    def special(request_data):
        return {"special": True}

    @VWED.api.get("/async")
    async def async_handler(request_data):
        await asyncio.sleep(0.01)
        return {"async": True}

    @VWED.api.post("/created")
    def created(request_data):
        return VWED.api.response(201, {"id": 7}, {"X-Test": "yes", "Location": "/items/7"})

    @VWED.api.get("/text")
    def text(request_data):
        return VWED.api.response(200, "plain text", {"Content-Type": "text/plain"})

    @VWED.api.get("/teapot")
    async def teapot(request_data):
        return VWED.api.response(418, {"error": "teapot"})

    @VWED.api.get("/raise")
    def raise_it(request_data):
        raise KeyError("missing_key_xyz")

    @VWED.api.get("/araise")
    async def araise(request_data):
        raise ValueError("async failure xyz")

    @VWED.api.get("/unserializable")
    def unserializable(request_data):
        return {"obj": object()}

    @VWED.api.get("/slow")
    def slow(request_data):
        time.sleep(float(request_data["query_params"].get("s", "2")))
        return {"slow": True}

    @VWED.api.get("/aslow")
    async def aslow(request_data):
        await asyncio.sleep(2)
        return {"slow": True}

    @VWED.api.get("/list")
    def lst(request_data):
        return [1, "two", None, 3.5]
"#;

fn runtime() -> (Runtime, String) {
    let rt = Runtime::start();
    let sid = rt.deploy("p", "routes.py", ROUTES);
    (rt, sid)
}

#[test]
fn decorators_and_register_forms() {
    let (rt, sid) = runtime();
    let e = rt.running_entry(&sid).expect("running");
    assert_eq!(e["registrations"]["apis"], json!(22), "{e}");

    let r = rt.call_route("GET", "/test", None);
    r.expect_status(200);
    assert_eq!(r.json, json!({"message": "Hello from script!"}));
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.contains("application/json"))
    );
    let r = rt.call_route("POST", "/calculate", Some(&json!({"a": 2, "b": 40})));
    assert_eq!(r.json, json!({"result": 42}));
    let r = rt.call_route("PUT", "/item", Some(&json!({"x": 1})));
    assert_eq!(r.json, json!({"put": {"x": 1}}));
    assert_eq!(
        rt.call_route("DELETE", "/item", None).json,
        json!({"deleted": true})
    );
    assert_eq!(
        rt.call_route("PUT", "/custom", None).json,
        json!({"status": "success"})
    );
    assert_eq!(
        rt.call_route("PATCH", "/plain", None).json,
        json!({"plain": true, "method": "PATCH"})
    );
    assert_eq!(
        rt.call_route("GET", "/plain2", None).json["plain"],
        json!(true)
    );
    assert_eq!(
        rt.call_route("GET", "/noargs", None).json,
        json!({"no_args": true})
    );
    assert_eq!(
        rt.call_route("GET", "/list", None).json,
        json!([1, "two", null, 3.5])
    );
    // Trailing slash is the same route.
    assert_eq!(rt.call_route("GET", "/test/", None).status, 200);

    // The registry shows the routes with their descriptions and counts.
    let reg = rt.registry();
    let t = &reg["api_routes"]["GET:/test"];
    assert_eq!(t["path"], "/test");
    assert_eq!(t["method"], "GET");
    assert_eq!(t["script_id"], json!(sid));
    assert_eq!(t["description"], "测试接口");
    assert_eq!(t["call_count"], json!(2), "/test and /test/");
    assert!(t["average_response_time_ms"].as_f64().is_some());
    assert!(t["registered_at"].as_str().is_some());
    assert_eq!(
        reg["api_routes"]["PUT:/custom"]["description"],
        "自定义接口"
    );
}

#[test]
fn request_data_fields() {
    let (rt, _) = runtime();
    let r = rt.send(
        "GET",
        "/script-api/echo/123/sub/%E4%B8%AD?key=value&x=a+b&e=%26",
        Some(&json!({"data": "value"})),
        &[("X-Custom-Header", "hv")],
    );
    r.expect_status(200);
    let j = &r.json;
    assert_eq!(j["method"], "GET");
    assert!(
        j["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/echo/123/sub/中")),
        "{j}"
    );
    assert_eq!(
        j["query_params"],
        json!({"key": "value", "x": "a b", "e": "&"})
    );
    assert_eq!(j["path_params"], json!({"id": "123", "name": "中"}));
    assert_eq!(j["body"], json!({"data": "value"}));
    assert_eq!(j["client"], "127.0.0.1");
    assert_eq!(j["h_upper"], "hv");
    assert_eq!(j["h_lower"], "hv");
    assert_eq!(j["h_in"], json!(true));

    // Body: JSON when it parses, else text; empty is {}.
    let r = rt.send_raw(
        "POST",
        "/script-api/echo_body",
        "text/plain",
        b"not json at all".to_vec(),
    );
    assert_eq!(r.json, json!({"type": "str", "body": "not json at all"}));
    let r = rt.send_raw(
        "POST",
        "/script-api/echo_body",
        "application/json",
        b"[1,2]".to_vec(),
    );
    assert_eq!(r.json, json!({"type": "list", "body": [1, 2]}));
    let r = rt.send_raw(
        "POST",
        "/script-api/echo_body",
        "application/json",
        Vec::new(),
    );
    assert_eq!(r.json, json!({"type": "dict", "body": {}}));

    // Literal routes win over patterns.
    assert_eq!(
        rt.call_route("GET", "/items/42", None).json,
        json!({"item": "42"})
    );
    assert_eq!(
        rt.call_route("GET", "/items/special", None).json,
        json!({"special": true})
    );
}

#[test]
fn async_handlers_and_custom_responses() {
    let (rt, _) = runtime();
    assert_eq!(
        rt.call_route("GET", "/async", None).json,
        json!({"async": true})
    );
    let r = rt.call_route("POST", "/created", None);
    r.expect_status(201);
    assert_eq!(r.json, json!({"id": 7}));
    assert_eq!(r.header("x-test"), Some("yes"));
    assert_eq!(r.header("location"), Some("/items/7"));
    let r = rt.call_route("GET", "/text", None);
    r.expect_status(200);
    assert_eq!(r.text, "plain text");
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    let r = rt.call_route("GET", "/teapot", None);
    r.expect_status(418);
    assert_eq!(r.json, json!({"error": "teapot"}));
}

#[test]
fn handler_exceptions_are_500_with_the_traceback_in_the_output() {
    let (rt, sid) = runtime();
    let r = rt.call_route("GET", "/raise", None);
    r.fails(500, "missing_key_xyz");
    assert!(r.header("content-type").is_some_and(|c| c.contains("json")));
    let r = rt.call_route("GET", "/araise", None);
    r.fails(500, "async failure xyz");
    let r = rt.call_route("GET", "/unserializable", None);
    assert_eq!(r.status, 500, "{}", r.text);
    // The script keeps serving.
    rt.call_route("GET", "/test", None).expect_status(200);
    vwed_e2e::wait_until(Duration::from_secs(3), "traceback in the output", || {
        let out = rt.output(&sid);
        out.contains("Traceback")
            && out.contains("KeyError: 'missing_key_xyz'")
            && out.contains("async failure xyz")
    });
    let reg = rt.registry();
    let raise = &reg["api_routes"]["GET:/raise"];
    assert_eq!(raise["call_count"], json!(1));
    assert_eq!(raise["error_count"], json!(1));
}

#[test]
fn unknown_routes_and_methods() {
    let (rt, _) = runtime();
    let r = rt.call_route("GET", "/nope", None);
    r.fails(404, "未注册");
    assert!(r.header("content-type").is_some_and(|c| c.contains("json")));
    rt.call_route("GET", "/echo/1", None).fails(404, "未注册");
    rt.call_route("POST", "/test", None).fails(405, "不支持");
    rt.send("GET", "/script-api", None, &[]).expect_status(404);
    rt.send("GET", "/script-api/bad%zzpath", None, &[])
        .fails(400, "编码");
    let r = rt.get("/api/script/no-such-endpoint");
    r.fails(404, "接口不存在");
}

#[test]
fn route_conflict_raised_inside_boot_is_409_naming_the_owner() {
    let (rt, sid) = runtime();
    let pid = rt.project_id("p").expect("project p");
    rt.create_file(
        pid,
        "second.py",
        &py(r#"
        def boot():
            @VWED.api.get("/unique_second")
            def u(req):
                return {}

            @VWED.api.get("/test")
            def again(req):
                return {"second": True}
    "#),
    );
    let r = rt.start_script("p/second.py", None);
    r.fails(409, &sid);
    assert!(r.error().contains("GET /test"), "{}", r.text);
    assert_eq!(r.data()["owner_script_id"], json!(sid));
    // The first script still owns it, the second left nothing.
    assert_eq!(
        rt.call_route("GET", "/test", None).json["message"],
        "Hello from script!"
    );
    rt.call_route("GET", "/unique_second", None)
        .expect_status(404);
    assert_eq!(rt.running().len(), 1);

    // Same shape with another parameter name clashes too; another method does not.
    rt.create_file(
        pid,
        "third.py",
        &py(r#"
        def boot():
            VWED.api.register_route("/items/{other}", "GET", lambda r: {})
    "#),
    );
    rt.start_script("p/third.py", None).fails(409, &sid);
    rt.create_file(
        pid,
        "fourth.py",
        &py(r#"
        def boot():
            VWED.api.register_route("/test", "POST", lambda r: {"fourth": True})
    "#),
    );
    rt.start_ok("p/fourth.py", None);
    assert_eq!(
        rt.call_route("POST", "/test", None).json,
        json!({"fourth": true})
    );

    // Registering the same route twice in one script fails its start as well.
    rt.create_file(
        pid,
        "twice.py",
        &py(r#"
        def boot():
            VWED.api.register_route("/twice", "GET", lambda r: {})
            VWED.api.register_route("/twice", "GET", lambda r: {})
    "#),
    );
    let r = rt.start_script("p/twice.py", None);
    assert!(r.status == 409 || r.status == 500, "{}", r.text);
    rt.call_route("GET", "/twice", None).expect_status(404);
}

#[test]
fn handler_timeout_is_504() {
    let rt = Runtime::with(Opts::default().env("VWED_CALL_TIMEOUT_MS", 400));
    rt.deploy("p", "routes.py", ROUTES);
    let t0 = Instant::now();
    let r = rt.call_route("GET", "/aslow", None);
    r.fails(504, "超时");
    assert!(
        t0.elapsed() < Duration::from_millis(1900),
        "{:?}",
        t0.elapsed()
    );
    // The async handler was cancelled; the worker still answers.
    rt.call_route("GET", "/test", None).expect_status(200);

    // The header shortens the timeout of one request.
    let t0 = Instant::now();
    let r = rt.send(
        "GET",
        "/script-api/slow?s=1",
        None,
        &[("x-vwed-timeout-ms", "150")],
    );
    r.fails(504, "150 ms");
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    // ... or lengthens it up to the maximum.
    let r = rt.send(
        "GET",
        "/script-api/slow?s=0.6",
        None,
        &[("x-vwed-timeout-ms", "5000")],
    );
    r.expect_status(200);
    let reg = rt.registry();
    assert!(reg["api_routes"]["GET:/aslow"]["error_count"].as_u64() >= Some(1));
}

#[test]
fn async_handlers_run_concurrently_and_routes_can_change_at_run_time() {
    let rt = Runtime::start();
    let sid = rt.deploy(
        "p",
        "dyn.py",
        &py(r#"
            def boot():
                @VWED.api.get("/nap")
                async def nap(req):
                    await asyncio.sleep(0.5)
                    return {"napped": True}

                @VWED.api.post("/add_route")
                def add_route(req):
                    path = req["body"]["path"]
                    VWED.api.register_route(path, "GET", lambda r: {"dynamic": path})
                    return {"added": path}

                @VWED.api.post("/clear")
                def clear(req):
                    VWED.api.clear_all()
                    return {"cleared": True}
        "#),
    );
    // Ten requests to a handler that awaits 0.5 s take about 0.5 s, not 5 s.
    let t0 = Instant::now();
    let threads: Vec<_> = (0..10)
        .map(|_| {
            let (url, c) = (rt.url("/script-api/nap"), rt.client());
            std::thread::spawn(move || c.get(url).send().map(|r| r.status().as_u16()).unwrap_or(0))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread"), 200);
    }
    assert!(
        t0.elapsed() < Duration::from_millis(3000),
        "async handlers ran one after another: {:?}",
        t0.elapsed()
    );

    // A route registered by a handler after boot is live at once and owned by the script.
    let r = rt.call_route("POST", "/add_route", Some(&json!({"path": "/later"})));
    assert_eq!(r.json, json!({"added": "/later"}));
    assert_eq!(
        rt.call_route("GET", "/later", None).json,
        json!({"dynamic": "/later"})
    );
    assert_eq!(
        rt.running_entry(&sid).expect("listed")["registrations"]["apis"],
        json!(4)
    );
    // A clash at run time is the handler's error; the route stays with its owner.
    let r = rt.call_route("POST", "/add_route", Some(&json!({"path": "/nap"})));
    r.fails(500, "已被脚本");
    // clear_all withdraws every route of the script.
    rt.call_route("POST", "/clear", None).expect_status(200);
    vwed_e2e::wait_until(Duration::from_secs(3), "routes withdrawn", || {
        rt.call_route("GET", "/later", None).status == 404
    });
    rt.call_route("GET", "/nap", None).expect_status(404);
    assert_eq!(
        rt.running_entry(&sid).expect("listed")["registrations"]["apis"],
        json!(0)
    );
    let r = rt.stop(&sid);
    r.ok();
    assert_eq!(r.get("registrations")["apis"], json!(0));
}

/// Regression: the whole path was decoded before it was split, so `a%2Fb` became two
/// segments and a `{id}` route answered 404.
#[test]
fn encoded_slash_stays_inside_one_path_parameter() {
    let rt = Runtime::start();
    rt.deploy(
        "p",
        "items.py",
        "def boot():\n    @VWED.api.get('/items/{id}')\n    def item(r):\n        return r['path_params']\n",
    );
    let r = rt.call_route("GET", "/items/a%2Fb", None);
    r.expect_status(200);
    assert_eq!(r.json["id"], "a/b");
    rt.call_route("GET", "/items/a/b", None).expect_status(404);
}

/// Registering in a loop hits a limit with a clear error instead of growing the
/// supervisor without bound.
#[test]
fn registrations_per_script_are_bounded() {
    let rt = Runtime::with(Opts::default().env("VWED_MAX_REGISTRATIONS", 50));
    let pid = rt.create_project("p");
    rt.create_file(
        pid,
        "many.py",
        "def boot():\n    for i in range(51):\n        VWED.api.register_route(f'/r{i}', 'GET', lambda r: {})\n",
    );
    let r = rt.start_script("p/many.py", None);
    r.expect_status(500);
    assert!(r.text.contains("注册数量已达上限"), "{}", r.text);
    assert!(rt.running().is_empty());
}
