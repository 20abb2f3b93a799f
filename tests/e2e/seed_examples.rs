//! The example scripts of the source documents run unmodified: seed 001 §7.1, §7.2,
//! §7.3, the debug example of §8.3, and the standard template of seed 000 §13.1.
//! Only the indentation, lost in the seed's text, was restored.

use serde_json::json;
use std::time::Duration;

use vwed_e2e::{Opts, Runtime, wait_until};

fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/seed/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

#[test]
fn seed_001_7_1_complete_example() {
    let rt = Runtime::with(Opts::default());
    let sid = rt.deploy("seed", "main.py", &fixture("001_7_1_main.py"));
    let entry = rt.running_entry(&sid).expect("running");
    assert_eq!(
        entry["registrations"],
        json!({"apis": 2, "functions": 3, "events": 2, "timers": 3})
    );
    let r = rt.call_route("GET", "/hello?name=VWED", None);
    r.expect_status(200);
    assert_eq!(r.json["message"], "Hello, VWED!");
    let r = rt.call_route("POST", "/process", Some(&json!([1, 2, 3])));
    r.expect_status(200);
    assert_eq!(r.json["count"], 3);
    assert_eq!(
        rt.execute_ok(None, "calculate_sum", json!({"numbers": [1, 2, 3]})),
        json!({"sum": 6, "count": 3})
    );
    let v = rt.execute_ok(None, "async_task", json!({"task_name": "t1"}));
    assert_eq!(v["completed"], true);
    assert_eq!(v["task_name"], "t1");
    let v = rt.execute_ok(None, "data_validator", json!({"data": {}}));
    assert_eq!(v["is_valid"], false);
    // Events: task_completed updates the script's data, system_error emits an alert
    // from a sync listener through asyncio.create_task.
    rt.post(
        "/api/script/events/emit",
        &json!({"event_name": "task_completed", "data": {"task_id": 7}}),
    )
    .ok();
    rt.post(
        "/api/script/events/emit",
        &json!({"event_name": "system_error", "data": {"error": "boom"}}),
    )
    .ok();
    wait_until(Duration::from_secs(10), "listeners ran", || {
        let out = rt.output(&sid);
        out.contains("任务完成通知: 7") && out.contains("系统错误: boom")
    });
    assert!(
        !rt.output(&sid).contains("Traceback"),
        "{}",
        rt.output(&sid)
    );
}

#[test]
fn seed_001_7_2_api_service() {
    let rt = Runtime::with(Opts::default());
    let sid = rt.deploy("seed", "api_service.py", &fixture("001_7_2_api_service.py"));
    let r = rt.call_route("GET", "/status", None);
    r.expect_status(200);
    assert_eq!(r.json["status"], "running");
    let r = rt.call_route(
        "POST",
        "/webhook",
        Some(&json!({"event": "e", "event_type": "user_created", "user_id": "u1"})),
    );
    r.expect_status(200);
    assert_eq!(r.json, json!({"received": true, "processed": true}));
    rt.call_route(
        "POST",
        "/webhook",
        Some(&json!({"event_type": "order_completed", "order_id": 9})),
    )
    .expect_status(200);
    wait_until(Duration::from_secs(10), "webhook handlers logged", || {
        let out = rt.output(&sid);
        out.contains("新用户创建: u1") && out.contains("订单完成: 9")
    });
    assert!(
        !rt.output(&sid).contains("Traceback"),
        "{}",
        rt.output(&sid)
    );
}

#[test]
fn seed_001_7_3_data_processor() {
    let rt = Runtime::with(Opts::default());
    rt.deploy(
        "seed",
        "data_processor.py",
        &fixture("001_7_3_data_processor.py"),
    );
    let v = rt.execute_ok(
        None,
        "batch_process",
        json!({"data_list": [{"id": 1, "name": "a", "status": "active"}, {"id": 2, "name": "b"}], "process_type": "filter"}),
    );
    assert_eq!(v["original_count"], 2);
    assert_eq!(v["processed_data"].as_array().map(Vec::len), Some(1));
    let v = rt.execute_ok(
        None,
        "batch_process",
        json!({"data_list": [{"id": 1, "name": "abc"}], "process_type": "transform"}),
    );
    assert_eq!(v["processed_data"][0]["name"], "ABC");
    let v = rt.execute_ok(None, "data_aggregation", json!({}));
    assert_eq!(v["total"], 325);
}

#[test]
fn seed_001_8_3_debug_example() {
    let rt = Runtime::with(Opts::default());
    let sid = rt.deploy("seed", "debug.py", &fixture("001_8_3_debug.py"));
    let v = rt.execute_ok(None, "debug_test", json!({"x": 1, "y": 2}));
    assert_eq!(v, json!({"debug": true, "args_keys": ["x", "y"]}));
    // A list goes as positional arguments: the one-parameter function gets 2 and
    // fails inside its own try, answering with its error dict.
    let v = rt.execute_ok(None, "debug_test", json!([[1, 2]]));
    assert_eq!(v["debug"], true);
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("字典")),
        "{v}"
    );
    assert!(rt.output(&sid).contains("=== 脚本启动调试完成 ==="));
}

#[test]
fn seed_000_13_1_template() {
    let rt = Runtime::with(Opts::default());
    let sid = rt.deploy("seed", "template.py", &fixture("000_13_1_template.py"));
    let r = rt.call_route("GET", "/health", None);
    r.expect_status(200);
    assert_eq!(r.json["status"], "healthy");
    // The template calls helpers it never defines; its own except turns that into
    // an error answer.
    let r = rt.call_route("POST", "/process", Some(&json!({"a": 1})));
    r.expect_status(200);
    assert!(
        r.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("validate_input")),
        "{}",
        r.json
    );
    assert_eq!(
        rt.execute_ok(None, "calculate", json!({})),
        json!({"result": "calculated_value"})
    );
    // `validate_func` is registered but never defined: calling it is a NameError.
    let r = rt.execute(None, "validate", json!({}));
    r.fails(500, "validate_func");
    assert!(rt.output(&sid).contains("未定义"), "{}", rt.output(&sid));
}
