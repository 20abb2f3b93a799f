//! The sample project a new data dir starts with: it exists, starts, and its routes
//! and functions work.

use vwed_e2e::{Opts, Runtime, json};

#[test]
fn the_sample_project_starts_and_works() {
    let rt = Runtime::with(Opts::default().sample());
    let r = rt.get("/api/script/projects");
    r.ok();
    let projects = r.data().as_array().expect("list").clone();
    assert_eq!(projects.len(), 1, "{}", r.text);
    let pid = projects[0]["id"].as_u64().expect("id");
    assert_eq!(projects[0]["project_name"], "sample");
    let r = rt.get(&format!(
        "/api/script/projects/{pid}/files?include_content=true"
    ));
    let files = r.data()["files"].as_array().expect("files").clone();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["file_path"], "main.py");
    assert_eq!(files[0]["has_boot_function"], json!(true));
    assert!(
        files[0]["content"]
            .as_str()
            .is_some_and(|c| c.contains("def boot("))
    );
    assert!(rt.project_dir("sample").join("main.py").is_file());

    let r = rt.start_script("sample/main.py", Some(json!({"greeting": "Hallo"})));
    r.ok();
    assert_eq!(
        r.get("registrations"),
        &json!({"apis": 3, "functions": 4, "events": 1, "timers": 2})
    );
    let sid = r.get("script_id").as_str().expect("id").to_string();

    let r = rt.call_route("GET", "/hello?name=VWED", None);
    assert_eq!(r.json, json!({"message": "Hallo, VWED!"}));
    let r = rt.call_route("POST", "/process", Some(&json!([1, 2, 3])));
    assert_eq!(r.get("count"), &json!(3));
    assert_eq!(r.get("total"), &json!(3));
    let r = rt.call_route("POST", "/process", Some(&json!({"one": 1})));
    assert_eq!(
        r.get("total"),
        &json!(4),
        "VWED.data keeps the total: {}",
        r.text
    );
    assert_eq!(
        rt.call_route("GET", "/robots/AGV-7", None).json,
        json!({"robot_id": "AGV-7", "status": "idle"})
    );
    rt.call_route("GET", "/robots/x1", None).expect_status(404);

    assert_eq!(
        rt.execute_ok(Some(&sid), "calculate_sum", json!({"numbers": [1, 2, 3.5]})),
        json!({"sum": 6.5, "count": 3})
    );
    assert_eq!(
        rt.execute_ok(None, "area", json!({"width": 4, "height": 5})),
        json!(20)
    );
    let echo = rt.execute_ok(None, "slow_echo", json!({"a": 1}));
    assert_eq!(echo["echo"], json!({"a": 1}));
    assert_eq!(
        rt.execute_ok(None, "sum_and_area", json!({"numbers": [5, 5]})),
        json!({"sum": 10, "area": 6})
    );
    let out = rt.output(&sid);
    assert!(out.contains("sample script ready"), "{out}");
    // Its event listener, fed by the central server's emit endpoint.
    rt.post(
        "/api/script/events/emit",
        &json!({"event_name": "order_ready", "data": {"order": 7}}),
    )
    .ok();
    vwed_e2e::wait_until(
        std::time::Duration::from_secs(10),
        "the sample's listener ran",
        || rt.output(&sid).contains("order ready"),
    );

    // A data dir that has projects gets no second sample.
    let data = rt.kill9_keep_data();
    let rt = Runtime::start_in(data, Opts::default().sample());
    let r = rt.get("/api/script/projects?status=all");
    assert_eq!(r.data().as_array().map(Vec::len), Some(1));
}
