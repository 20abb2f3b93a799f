//! Scripts tell failures apart by their `VWEDError` subclass and `.kind`: a Modbus
//! exception from a device that answered, a device that is down, a timeout, bad
//! arguments, a refused permission. Tracebacks reach the output as one record, a
//! timer that keeps failing is counted instead of flooding it, and a function call
//! whose arguments do not fit the signature is the caller's 400.

use std::time::Duration;

use vwed_e2e::{Opts, Runtime, Value, json, py, wait_until};

use crate::io::{ModbusServer, WAIT, point, runtime_with_io};

const PROBE: &str = r#"
    def caught(f):
        try:
            f()
        except VWEDError as e:
            return {
                "class": type(e).__name__,
                "kind": e.kind,
                "code": e.code,
                "same_class": type(e) is getattr(VWED.errors, type(e).__name__),
                "message": str(e),
            }
        return None

    def boot():
        plc = VWED.device.modbus("plc1")

        @VWED.function.register("device_up")
        def device_up(args):
            out = {
                "device_exception": caught(lambda: plc.read_holding(500)),
                "bad_arguments": caught(lambda: plc.read_holding(70000)),
                "unknown_service_shape": caught(lambda: VWED.io.write("plc1.setpoint", object())),
                "read_only": caught(lambda: VWED.io.write("plc1.limit", 1)),
                "not_allowed_host": caught(lambda: VWED.http.get("http://127.0.0.1:9/x")),
                "not_found": caught(lambda: VWED.io.read("no.such.tag")),
            }
            # Coil 98 makes the peer's next read of register 50 answer late.
            plc.write_coil(98, True)
            out["timeout"] = caught(lambda: plc.read_holding(50))
            try:
                plc.read_holding(500)
            except VWEDDeviceError as e:
                out["except_by_global_name"] = e.code
            try:
                VWED.io.write("plc1.limit", 1)
            except VWED.errors.VWEDPermissionError:
                out["except_by_vwed_errors"] = True
            return out

        @VWED.function.register("device_down")
        def device_down(args):
            return caught(lambda: plc.read_holding(0))
"#;

fn class_and_kind(v: &Value) -> (String, String) {
    (
        v["class"].as_str().unwrap_or("").to_string(),
        v["kind"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn a_script_tells_modbus_exceptions_from_transport_failures_timeouts_bad_arguments_and_refusals() {
    let server = ModbusServer::start();
    let (rt, _dir) = runtime_with_io(server.port);
    let id = rt.deploy("errors", "probe.py", &py(PROBE));
    wait_until(WAIT, "point plc1.setpoint good", || {
        point(&rt, "plc1.setpoint")["quality"] == "good"
    });
    let r = rt.execute_ok(Some(&id), "device_up", json!({}));
    let expect = [
        ("device_exception", "VWEDDeviceError", "device_exception"),
        ("bad_arguments", "VWEDArgumentError", "bad_arguments"),
        (
            "unknown_service_shape",
            "VWEDArgumentError",
            "bad_arguments",
        ),
        ("read_only", "VWEDPermissionError", "permission_denied"),
        (
            "not_allowed_host",
            "VWEDPermissionError",
            "permission_denied",
        ),
        ("not_found", "VWEDNotFoundError", "not_found"),
        ("timeout", "VWEDTimeoutError", "timeout"),
    ];
    for (case, class, kind) in expect {
        assert_eq!(
            class_and_kind(&r[case]),
            (class.to_string(), kind.to_string()),
            "{case}: {r}"
        );
        assert_eq!(r[case]["same_class"], json!(true), "{case}: {r}");
    }
    assert_eq!(
        r["device_exception"]["code"],
        json!(2),
        "illegal data address: {r}"
    );
    assert!(
        r["device_exception"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("illegal data address")),
        "{r}"
    );
    assert_eq!(r["timeout"]["code"], Value::Null);
    assert!(
        r["not_allowed_host"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("http_allow_hosts")),
        "{r}"
    );
    assert_eq!(r["except_by_global_name"], json!(2));
    assert_eq!(r["except_by_vwed_errors"], json!(true));

    // The device goes away: the same read is now a transport failure.
    server.kill();
    wait_until(
        WAIT,
        "a read of the stopped device fails as transport",
        || {
            let r = rt.execute_ok(Some(&id), "device_down", json!({}));
            class_and_kind(&r) == ("VWEDTransportError".into(), "transport".into())
        },
    );
}

#[test]
fn log_flush_with_a_nan_timeout_raises_an_argument_error_instead_of_panicking_the_worker() {
    let rt = Runtime::start();
    let id = rt.deploy(
        "errors",
        "flush.py",
        &py(r#"
        def boot():
            @VWED.function.register("flush")
            def flush(args):
                out = {}
                for name, t in [("nan", float("nan")), ("inf", float("inf")), ("negative", -1.0)]:
                    try:
                        VWED.log.flush(t)
                        out[name] = None
                    except VWEDArgumentError as e:
                        out[name] = e.kind
                out["still_flushes"] = VWED.log.flush(5.0)["committed"] >= 0
                return out
        "#),
    );
    let r = rt.execute_ok(Some(&id), "flush", json!({}));
    for case in ["nan", "inf", "negative"] {
        assert_eq!(r[case], json!("bad_arguments"), "{case}: {r}");
    }
    assert_eq!(r["still_flushes"], json!(true));
}

#[test]
fn execute_function_with_arguments_that_do_not_fit_the_signature_is_400_not_500() {
    let rt = Runtime::start();
    let id = rt.deploy(
        "errors",
        "sig.py",
        &py(r#"
        def boot():
            @VWED.function.register("move")
            def move(x, y, speed=1.0):
                return x + y

            @VWED.function.register("inner_type_error")
            def inner_type_error(args):
                return len(5)

            @VWED.function.register("caller")
            def caller(args):
                try:
                    VWED.function.call("move", {"x": 1, "z": 2})
                except VWEDArgumentError as e:
                    return {"kind": e.kind, "message": str(e)}
        "#),
    );
    let r = rt.execute(Some(&id), "move", json!({"x": 1, "z": 2}));
    r.fails(400, "move(x, y, speed=1.0)");
    // A TypeError the body raises is the function's own failure.
    rt.execute(Some(&id), "inner_type_error", json!({}))
        .fails(500, "TypeError");
    assert_eq!(rt.execute_ok(Some(&id), "move", json!([1, 2])), json!(3));
    let c = rt.execute_ok(Some(&id), "caller", json!({}));
    assert_eq!(c["kind"], "bad_arguments", "{c}");
    let reg = rt.registry();
    assert_eq!(
        reg["registered_functions"]["move"]["error_count"],
        json!(1),
        "the refused call is still counted: {reg}"
    );
}

/// Output records of a script, one per entry.
fn records(rt: &Runtime, id: &str) -> Vec<String> {
    let r = rt.get(&format!("/api/script/scripts/{id}/output?limit=10000"));
    r.ok();
    r.data()["lines"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|x| x["message"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_traceback_is_one_record_without_the_runtimes_frames_and_a_failing_timer_is_counted() {
    let rt = Runtime::with(Opts::default());
    let id = rt.deploy(
        "errors",
        "tb.py",
        &py(r#"
        def divide(n):
            return n / 0

        def boot():
            @VWED.api.get("/divide")
            def route(req):
                return divide(1)

            @VWED.timer.interval(0.05)
            def tick():
                raise KeyError("tick-failure")
        "#),
    );
    rt.call_route("GET", "/divide", None)
        .fails(500, "ZeroDivisionError");
    wait_until(WAIT, "the route's traceback", || {
        records(&rt, &id)
            .iter()
            .any(|m| m.contains("ZeroDivisionError"))
    });
    let recs = records(&rt, &id);
    let tb = recs
        .iter()
        .find(|m| m.contains("ZeroDivisionError"))
        .expect("traceback record");
    assert!(tb.starts_with("Traceback (most recent call last):"), "{tb}");
    assert!(tb.contains("tb.py") && tb.contains("in divide"), "{tb}");
    assert!(
        !tb.contains("vwed_runtime"),
        "runtime frames left out: {tb}"
    );

    wait_until(WAIT, "a summary of the repeated timer failure", || {
        records(&rt, &id)
            .iter()
            .any(|m| m.contains("又抛出同一异常"))
    });
    std::thread::sleep(Duration::from_millis(500));
    let recs = records(&rt, &id);
    let full = recs
        .iter()
        .filter(|m| m.starts_with("Traceback") && m.contains("tick-failure"))
        .count();
    assert_eq!(full, 1, "the timer's traceback once in full: {recs:#?}");
    let summary = recs
        .iter()
        .find(|m| m.contains("又抛出同一异常"))
        .expect("summary");
    assert!(
        summary.contains("tick") && summary.contains("KeyError"),
        "{summary}"
    );
    assert!(
        recs.len() < 20,
        "no stream of records for a timer failing 20 times a second: {recs:#?}"
    );
}

#[test]
fn a_refused_registration_raises_its_kind() {
    let rt = Runtime::start();
    rt.deploy(
        "errors",
        "owner.py",
        &py(r#"
        def boot():
            @VWED.api.get("/taken")
            def taken(req):
                return {}
        "#),
    );
    let id = rt.deploy(
        "errors",
        "late.py",
        &py(r#"
        def boot():
            @VWED.function.register("grab")
            def grab(args):
                try:
                    VWED.api.register_route("/taken", "GET", lambda req: {})
                except VWEDConflictError as e:
                    return {"kind": e.kind, "message": str(e)}
        "#),
    );
    let r = rt.execute_ok(Some(&id), "grab", json!({}));
    assert_eq!(r["kind"], "conflict", "{r}");
    assert!(
        r["message"].as_str().is_some_and(|m| m.contains("/taken")),
        "{r}"
    );
}
