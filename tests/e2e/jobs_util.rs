//! Helpers of the jobs tests (`/api/v1/scripts`): create a job, run it, wait for
//! an execution to end.

use std::time::{Duration, Instant};

use vwed_e2e::{Resp, Runtime, Value, json};

pub const SCRIPTS: &str = "/api/v1/scripts";

/// Creates a job from `body` (name, language, content, ...) and returns its id.
#[track_caller]
pub fn create(rt: &Runtime, body: Value) -> u64 {
    let r = rt.post(SCRIPTS, &body);
    r.ok();
    r.data()["id"].as_u64().expect("job id")
}

/// A job of `language` with `content`, named `name`, with more fields in `more`.
#[track_caller]
pub fn job(rt: &Runtime, name: &str, language: &str, content: &str, more: Value) -> u64 {
    let mut body = json!({"name": name, "language": language, "content": content});
    if let (Some(b), Value::Object(m)) = (body.as_object_mut(), more) {
        b.extend(m);
    }
    create(rt, body)
}

pub fn execute_resp(rt: &Runtime, id: u64, body: Value) -> Resp {
    rt.post(&format!("{SCRIPTS}/{id}/execute"), &body)
}

/// Queues an execution (202) and returns its id.
#[track_caller]
pub fn execute(rt: &Runtime, id: u64, params: Value) -> String {
    let r = execute_resp(rt, id, json!({"input_parameters": params}));
    r.expect_status(202);
    assert_eq!(r.json["success"], json!(true), "{}", r.text);
    r.data()["execution_id"]
        .as_str()
        .expect("execution_id")
        .to_string()
}

pub fn detail(rt: &Runtime, exec: &str) -> Value {
    let r = rt.get(&format!("{SCRIPTS}/executions/{exec}"));
    r.ok();
    r.data().clone()
}

/// Waits until the execution is in a state `pred` accepts; panics with the record
/// after `within`.
#[track_caller]
pub fn wait_for(
    rt: &Runtime,
    exec: &str,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let d = detail(rt, exec);
        if pred(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "execution {exec} did not get there within {within:?}: {d:#}\n--- runtime ---\n{}",
            rt.stderr()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

const FINAL: [&str; 5] = ["succeeded", "failed", "timeout", "cancelled", "interrupted"];

/// Waits for the execution to end (generously bounded) and returns its record.
#[track_caller]
pub fn finished(rt: &Runtime, exec: &str) -> Value {
    wait_for(rt, exec, Duration::from_secs(60), |d| {
        d["status"].as_str().is_some_and(|s| FINAL.contains(&s))
    })
}

/// Runs a job to its end with `params`.
#[track_caller]
pub fn run(rt: &Runtime, id: u64, params: Value) -> Value {
    let exec = execute(rt, id, params);
    finished(rt, &exec)
}

/// Every execution of a job, newest first.
pub fn executions(rt: &Runtime, id: u64) -> Vec<Value> {
    let r = rt.get(&format!("{SCRIPTS}/{id}/executions?limit=1000"));
    r.ok();
    r.data()["items"].as_array().cloned().unwrap_or_default()
}

/// The pid a job printed as `pid=<n>`.
#[track_caller]
pub fn printed_pid(out: &str) -> u32 {
    out.lines()
        .find_map(|l| l.strip_prefix("pid="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {out}"))
}
