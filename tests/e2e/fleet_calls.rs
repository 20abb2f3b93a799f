//! Remote calls over MQTT: one run per call id however often it is delivered,
//! the methods, the calls a device does not accept, deadlines.

use vwed_e2e::fleet::{CONVERGE, Fleet, project_dir};
use vwed_e2e::{Runtime, Value, json, py, wait_until};

const COUNTER: &str = r#"
    count = 0

    def boot():
        @VWED.function.register("bump")
        def bump(args):
            global count
            count += 1
            print("bumped", count)
            return {"count": count}
    "#;

/// Runs `fleet call`; its exit code and the replies it printed.
fn call(fleet: &Fleet, args: &[&str]) -> (i32, Vec<Value>) {
    let out = fleet.cli("call", args);
    let replies = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (out.status.code().unwrap_or(-1), replies)
}

fn counter_device(fleet: &Fleet, opts: vwed_e2e::Opts) -> Runtime {
    let rt = Runtime::with(opts);
    let src = project_dir(&[("main.py", &py(COUNTER))]);
    let project = format!("app={}", src.path().display());
    fleet.deploy(&["--device", "d1", "--project", &project, "--run", "main.py"]);
    fleet.converge(&["--device", "d1"], 1);
    rt
}

#[test]
fn a_call_delivered_twice_runs_once_and_every_delivery_gets_the_same_answer() {
    let fleet = Fleet::new();
    let rt = counter_device(&fleet, fleet.device("d1", &[]));
    let (code, replies) = call(
        &fleet,
        &["d1", "bump", "{}", "--id", "same-1", "--copies", "2"],
    );
    assert_eq!(code, 0, "{replies:?}");
    assert_eq!(
        replies.len(),
        2,
        "both deliveries are answered: {replies:?}"
    );
    assert_eq!(replies[0]["result"], json!({"count": 1}));
    assert_eq!(replies[0], replies[1], "the same answer, word for word");
    let (_, again) = call(&fleet, &["d1", "bump", "{}", "--id", "same-1"]);
    assert_eq!(
        again[0]["result"],
        json!({"count": 1}),
        "asked again: not run again"
    );
    let (_, fresh) = call(&fleet, &["d1", "bump", "{}"]);
    assert_eq!(fresh[0]["result"], json!({"count": 2}), "a new id runs");
    let ran: Vec<Value> = fleet_audit(&rt)
        .into_iter()
        .filter(|e| e["detail"] == json!("call same-1"))
        .collect();
    assert_eq!(ran.len(), 1, "run once, audited once: {ran:?}");
    assert_eq!(ran[0]["action"], json!("fleet.call.execute"));
    assert_eq!(ran[0]["status"], json!(200));

    let (code, status) = call(&fleet, &["d1", "-", "--method", "status"]);
    assert_eq!(code, 0);
    assert_eq!(status[0]["result"]["state"]["device"], json!("d1"));
    let (code, logs) = call(
        &fleet,
        &["d1", "app/main.py", "--method", "logs", "--lines", "50"],
    );
    assert_eq!(code, 0, "{logs:?}");
    let text = logs[0]["result"]["lines"].to_string();
    assert!(text.contains("bumped 2"), "{text}");
    assert!(!text.contains("bumped 3"), "{text}");
    let (code, restarted) = call(&fleet, &["d1", "app/main.py", "--method", "restart"]);
    assert_eq!(code, 0, "{restarted:?}");
    let (_, after) = call(&fleet, &["d1", "bump", "{}"]);
    assert_eq!(
        after[0]["result"],
        json!({"count": 1}),
        "a restart starts the script afresh"
    );
}

#[test]
fn calls_the_device_does_not_accept_or_too_late_are_refused() {
    let fleet = Fleet::new();
    let opts = fleet.device("d1", &[]).env("VWED_FLEET__CALLS", "status");
    let rt = counter_device(&fleet, opts);
    let (code, replies) = call(&fleet, &["d1", "bump", "{}"]);
    assert_eq!(code, 1, "{replies:?}");
    assert!(
        replies[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("fleet.calls"),
        "{replies:?}"
    );
    let (code, _) = call(&fleet, &["d1", "-", "--method", "status"]);
    assert_eq!(code, 0);

    let reply_to = fleet.topic("reply/late-test");
    let replies = fleet.broker.record(&reply_to, None);
    let late = json!({"id": "late-1", "method": "status", "deadline_ms": 1, "reply_to": reply_to});
    // The recorder subscribes in the background: send until it has an answer.
    wait_until(CONVERGE, "an answer to the late call", || {
        fleet.broker.publish(
            &fleet.topic("device/d1/call"),
            late.to_string().as_bytes(),
            false,
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        !replies.lines().is_empty()
    });
    let answer = &replies.lines()[0];
    assert_eq!(answer["ok"], json!(false));
    assert!(
        answer["error"].as_str().unwrap_or("").contains("期限"),
        "{answer}"
    );
    // Refused or run, every call is in the audit log, by the fleet.
    let entries = fleet_audit(&rt);
    let refused = entries
        .iter()
        .find(|e| e["action"] == json!("fleet.call.execute"))
        .unwrap_or_else(|| panic!("{entries:?}"));
    assert_eq!(refused["status"], json!(403), "{refused}");
    assert_eq!(refused["result"], json!("denied"), "{refused}");
    assert_eq!(refused["target"], json!("function:bump"), "{refused}");
    let late = entries
        .iter()
        .find(|e| {
            e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("call late-1:"))
        })
        .unwrap_or_else(|| panic!("{entries:?}"));
    assert_eq!(late["status"], json!(408), "{late}");
    assert_eq!(
        late["user"],
        json!(format!("fleet:{}", fleet.name)),
        "{late}"
    );
    assert_eq!(late["via"], json!("fleet"), "{late}");
}

/// The audit log's remote calls, newest first.
fn fleet_audit(rt: &Runtime) -> Vec<Value> {
    rt.get("/api/audit?action=fleet.call&limit=100").ok().data()["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
