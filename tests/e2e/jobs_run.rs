//! Running jobs: results, exceptions and exit codes; parameters and a clean
//! environment; timeout, retries, cancel; bounded output streamed live.

use std::time::Duration;

use vwed_e2e::{Opts, Runtime, json, process_alive, py, ws};

use crate::jobs_util::{SCRIPTS, detail, execute, finished, job, printed_pid, run, wait_for};

#[test]
fn python_jobs_answer_with_result_exception_or_exit_code() {
    let rt = Runtime::start();
    let result = job(
        &rt,
        "result",
        "python",
        &py(r#"
            import os
            def main(params):
                print("working on", params["n"])
                VWED.log.info("counted", n=params["n"])
                VWED.data.set("last", params["n"])
                return {"double": params["n"] * 2, "cwd_is_home": os.getcwd() == os.environ["HOME"]}
        "#),
        json!({"parameters": [{"name": "n", "type": "integer", "default": 4}]}),
    );
    let d = run(&rt, result, json!({"n": 21}));
    assert_eq!(d["status"], "succeeded", "{d:#}");
    assert_eq!(d["result"], json!({"double": 42, "cwd_is_home": true}));
    assert_eq!(d["exit_code"], 0);
    let out = d["output"].as_str().expect("output");
    assert!(
        out.contains("working on 21") && out.contains("[INFO] counted"),
        "{out}"
    );

    // No main(): the module body is the job; PARAMS holds the input.
    let body = job(&rt, "body", "python", "print('got', PARAMS)\n", json!({}));
    let d = run(&rt, body, json!({}));
    assert_eq!(
        (d["status"].clone(), d["result"].clone()),
        (json!("succeeded"), json!(null))
    );
    assert!(d["output"].as_str().expect("output").contains("got {}"));

    let raises = job(
        &rt,
        "raises",
        "python",
        &py(r#"
            def helper():
                raise ValueError("boom")
            async def main():
                helper()
        "#),
        json!({}),
    );
    let d = run(&rt, raises, json!({}));
    assert_eq!(d["status"], "failed");
    assert_eq!(d["exception"], "ValueError: boom");
    let tb = d["traceback"].as_str().expect("traceback");
    assert!(tb.contains("in helper") && tb.contains("jobs/"), "{tb}");

    let exits = job(
        &rt,
        "exits",
        "python",
        "import sys\nprint('bye')\nsys.exit(3)\n",
        json!({}),
    );
    let d = run(&rt, exits, json!({}));
    assert_eq!(
        (d["status"].clone(), d["exit_code"].clone()),
        (json!("failed"), json!(3))
    );
    assert!(d["output"].as_str().expect("output").contains("bye"));
    let clean_exit = job(
        &rt,
        "exit0",
        "python",
        "import sys\nsys.exit(0)\n",
        json!({}),
    );
    assert_eq!(run(&rt, clean_exit, json!({}))["status"], "succeeded");

    let registers = job(
        &rt,
        "registers",
        "python",
        "def main():\n    VWED.api.register_route('/x', 'GET', lambda r: 1)\n",
        json!({}),
    );
    let d = run(&rt, registers, json!({}));
    assert_eq!(d["status"], "failed");
    assert!(
        d["exception"]
            .as_str()
            .expect("exception")
            .contains("作业不能注册"),
        "{d:#}"
    );
    assert_eq!(rt.call_route("GET", "/x", None).status, 404);
}

#[test]
fn bash_jobs_get_parameters_as_environment_and_nothing_of_the_supervisor() {
    let rt = Runtime::with(Opts::default().env("VWED_SMTP_PASSWORD", "s3cret-of-the-supervisor"));
    let id = job(
        &rt,
        "env",
        "bash",
        "echo \"host=$PARAM_HOST port=$PARAM_PORT\"\nenv\necho '{\"ok\": true}' > \"$VWED_RESULT\"\nexit \"$PARAM_CODE\"\n",
        json!({"parameters": [
            {"name": "host", "type": "string", "required": true},
            {"name": "port", "type": "integer", "default": 502},
            {"name": "code", "type": "integer", "default": 0},
        ]}),
    );
    let r = crate::jobs_util::execute_resp(
        &rt,
        id,
        json!({"input_parameters": {"host": "plc-1"}, "environment_vars": {"ENV": "production"}}),
    );
    r.expect_status(202);
    let d = finished(&rt, r.data()["execution_id"].as_str().expect("id"));
    assert_eq!(d["status"], "succeeded", "{d:#}");
    assert_eq!(d["result"], json!({"ok": true}));
    let out = d["output"].as_str().expect("output");
    assert!(out.contains("host=plc-1 port=502"), "{out}");
    assert!(out.contains("ENV=production"), "{out}");
    assert!(out.contains(&format!(
        "VWED_EXECUTION_ID={}",
        d["execution_id"].as_str().unwrap_or("?")
    )));
    assert!(
        !out.contains("s3cret"),
        "the supervisor's secrets stay out: {out}"
    );
    assert!(
        !out.contains("RUST_LOG"),
        "nothing of the supervisor's environment: {out}"
    );

    let d = run(&rt, id, json!({"host": "x", "code": 4}));
    assert_eq!(
        (d["status"].clone(), d["exit_code"].clone()),
        (json!("failed"), json!(4))
    );
}

#[test]
fn a_missing_bash_is_a_clear_failure() {
    let rt = Runtime::with(Opts::default().env("VWED_JOB_BASH_PATH", "/nonexistent/bash"));
    let id = job(&rt, "nobash", "bash", "echo hi\n", json!({}));
    let d = run(&rt, id, json!({}));
    assert_eq!(d["status"], "failed");
    assert!(
        d["error"]
            .as_str()
            .expect("error")
            .contains("/nonexistent/bash"),
        "{d:#}"
    );
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let rt = Runtime::with(Opts::default().env("VWED_JOB_KILL_GRACE_MS", "300"));
    let bash = job(
        &rt,
        "slow-bash",
        "bash",
        "sleep 300 &\necho pid=$!\nwait\n",
        json!({"timeout": 1}),
    );
    let d = run(&rt, bash, json!({}));
    assert_eq!(d["status"], "timeout", "{d:#}");
    assert!(d["error"].as_str().expect("error").contains("超时"));
    let child = printed_pid(d["output"].as_str().expect("output"));
    vwed_e2e::wait_until(
        Duration::from_secs(10),
        "the background sleep is killed",
        || !process_alive(child),
    );

    let python = job(
        &rt,
        "slow-python",
        "python",
        "import os, time\nprint(f'pid={os.getpid()}', flush=True)\ntime.sleep(300)\n",
        json!({"timeout": 1.5}),
    );
    let d = run(&rt, python, json!({}));
    assert_eq!(d["status"], "timeout", "{d:#}");
    let worker = printed_pid(d["output"].as_str().expect("output"));
    vwed_e2e::wait_until(
        Duration::from_secs(10),
        "the job's worker is killed",
        || !process_alive(worker),
    );
}

#[test]
fn a_python_job_is_confined_like_a_service_script() {
    let rt = Runtime::start();
    let id = job(
        &rt,
        "confined",
        "python",
        &py(r#"
            import os, subprocess
            def attempt(f):
                try:
                    f()
                    return "allowed"
                except OSError as e:
                    return type(e).__name__
            def main():
                with open("mine.txt", "w") as f:
                    f.write("x")
                return {
                    "own_dir": os.path.exists(os.path.join(os.getcwd(), "mine.txt")),
                    "tmp": attempt(lambda: open("/tmp/job-escape.txt", "w")),
                    "exec": attempt(lambda: subprocess.run(["true"])),
                    "etc": attempt(lambda: open("/etc/hostname").read()),
                }
        "#),
        json!({}),
    );
    let d = run(&rt, id, json!({}));
    assert_eq!(d["status"], "succeeded", "{d:#}");
    assert_eq!(d["result"]["own_dir"], true);
    for what in ["tmp", "exec", "etc"] {
        assert_eq!(d["result"][what], "PermissionError", "{what}: {d:#}");
    }
}

#[test]
fn a_failing_job_is_retried_with_backoff_until_it_succeeds() {
    let rt = Runtime::start();
    let id = job(
        &rt,
        "flaky",
        "python",
        &py(r#"
            def main():
                n = VWED.data.get("tries", 0) + 1
                VWED.data.set("tries", n)
                if n < 3:
                    raise RuntimeError(f"attempt {n} fails")
                return {"tries": n}
        "#),
        json!({"retry_policy": {"max_retries": 3, "backoff_seconds": 0.2, "backoff_factor": 2}}),
    );
    let d = run(&rt, id, json!({}));
    assert_eq!(d["status"], "succeeded", "{d:#}");
    assert_eq!(d["result"], json!({"tries": 3}));
    assert_eq!(
        (d["attempts"].clone(), d["max_attempts"].clone()),
        (json!(3), json!(4))
    );
    let statuses: Vec<&str> = d["attempt_history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|a| a["status"].as_str())
        .collect();
    assert_eq!(statuses, ["failed", "failed", "succeeded"]);
    assert_eq!(
        d["attempt_history"][0]["exception"],
        "RuntimeError: attempt 1 fails"
    );
    // The backoff doubles: the second wait is at least twice the first.
    let h = d["attempt_history"].as_array().expect("history");
    let gap = |k: usize| {
        h[k + 1]["started_at_ms"].as_u64().unwrap_or(0)
            - h[k]["finished_at_ms"].as_u64().unwrap_or(0)
    };
    assert!(
        gap(0) >= 200 && gap(1) >= 400,
        "backoff {} then {}",
        gap(0),
        gap(1)
    );
    let out = d["output"].as_str().expect("output");
    assert!(out.contains("第 3 次尝试"), "{out}");

    // Without retries a failure is final at once.
    let once = job(&rt, "once", "bash", "exit 1\n", json!({}));
    assert_eq!(run(&rt, once, json!({}))["attempts"], 1);
    // A timeout is retried only when the policy says so.
    let t = job(
        &rt,
        "timeout-no-retry",
        "bash",
        "sleep 30\n",
        json!({"timeout": 0.5, "retry_policy": {"max_retries": 2, "backoff_seconds": 0, "retry_on_timeout": false}}),
    );
    let d = run(&rt, t, json!({}));
    assert_eq!(
        (d["status"].clone(), d["attempts"].clone()),
        (json!("timeout"), json!(1))
    );
}

#[test]
fn cancel_stops_a_running_python_and_a_running_bash_job() {
    let rt = Runtime::with(Opts::default().env("VWED_JOB_KILL_GRACE_MS", "500"));
    let bash = job(
        &rt,
        "long-bash",
        "bash",
        "echo pid=$$\nsleep 300\n",
        json!({}),
    );
    let python = job(
        &rt,
        "long-python",
        "python",
        "import os, time\nprint(f'pid={os.getpid()}', flush=True)\ntime.sleep(300)\n",
        json!({}),
    );
    let (_, operator) = crate::access::new_token(&rt, rt.token(), "operator", None);
    for id in [bash, python] {
        let exec = execute(&rt, id, json!({}));
        let running = wait_for(&rt, &exec, Duration::from_secs(30), |d| {
            d["status"] == "running" && d["output"].as_str().is_some_and(|o| o.contains("pid="))
        });
        let pid = printed_pid(running["output"].as_str().expect("output"));
        assert!(process_alive(pid));
        let cancel = format!("{SCRIPTS}/executions/{exec}/cancel");
        let r = rt.send_as(Some(&operator), "POST", &cancel, None);
        r.ok();
        assert_eq!(r.data()["status"], "cancelled", "{}", r.text);
        vwed_e2e::wait_until(Duration::from_secs(10), "the job's process is gone", || {
            !process_alive(pid)
        });
        let d = detail(&rt, &exec);
        assert_eq!(d["attempt_history"][0]["status"], "cancelled");
        assert!(
            d["cancelled_by"]
                .as_str()
                .expect("who")
                .contains("operator-e2e"),
            "{d}"
        );
        let audit = rt.get("/api/audit?user=operator-e2e&action=cancel");
        let entries = audit.ok().data()["entries"].clone();
        assert!(
            entries
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["target"] == json!(cancel) && e["status"] == 200),
            "the cancel is audited with its caller: {entries}"
        );
        rt.post(&format!("{SCRIPTS}/executions/{exec}/cancel"), &json!({}))
            .fails(409, "已结束");
    }
}

#[test]
fn output_is_bounded_with_the_cut_noted_and_streamed_live() {
    let rt = Runtime::with(Opts::default().env("VWED_JOB_OUTPUT_BYTES", "4096"));
    let noisy = job(
        &rt,
        "noisy",
        "bash",
        "for i in $(seq 1 2000); do echo \"line $i\"; done\nhead -c 100000 /dev/zero | tr '\\0' x\n",
        json!({}),
    );
    let d = run(&rt, noisy, json!({}));
    let out = d["output"].as_str().expect("output");
    assert!(
        out.starts_with("line 1\nline 2\n"),
        "{}",
        &out[..100.min(out.len())]
    );
    assert!(out.contains("省略"), "the cut is marked");
    assert!(out.len() < 4096 + 200, "{} bytes kept", out.len());
    assert!(d["output_truncated_bytes"].as_u64().expect("cut") > 10_000);
    assert!(
        out.contains("本行过长"),
        "the 100 kB line without end is cut too"
    );

    // While it runs, each line reaches the job's WebSocket subscribers.
    let live = job(
        &rt,
        "live",
        "python",
        "import time\nprint('first line', flush=True)\ntime.sleep(300)\n",
        json!({}),
    );
    let mut sock = ws::connect(&rt, "?client_id=jobs-test");
    ws::send(
        &mut sock,
        json!({"type": "subscribe", "script_path": format!("jobs/{live}")}),
    );
    ws::wait(&mut sock, "subscribed", |m| m["type"] == "subscribed");
    let exec = execute(&rt, live, json!({}));
    let line = ws::wait(&mut sock, "the first line", |m| {
        m["type"] == "script_log" && m["message"] == "first line"
    });
    assert_eq!(line["script_id"], json!(exec));
    assert_eq!(
        detail(&rt, &exec)["status"],
        "running",
        "streamed while it runs"
    );
    rt.post(&format!("{SCRIPTS}/executions/{exec}/cancel"), &json!({}))
        .ok();
    ws::wait(&mut sock, "the final status", |m| {
        m["type"] == "job_execution" && m["status"] == "cancelled"
    });
    // The lines are kept in the log store under the execution id too.
    let logs = rt.get(&format!("/api/script/logs?script_id={exec}"));
    logs.ok();
    assert!(logs.text.contains("first line"), "{}", logs.text);
}
