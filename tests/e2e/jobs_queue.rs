//! The queue: at most `job_max_concurrent` executions at once, the rest wait in a
//! bounded queue whose overflow is refused and recorded; a `kill -9` of the
//! runtime during a run leaves it `interrupted`, retried if its policy says so,
//! and loses nothing that was acknowledged.

use std::time::Duration;

use vwed_e2e::{Opts, Runtime, json, process_alive};

use crate::jobs_util::{
    SCRIPTS, detail, execute, execute_resp, executions, finished, job, printed_pid, wait_for,
};

#[test]
fn fifty_executions_run_ten_at_a_time_and_all_finish() {
    let rt = Runtime::with(Opts::default().env("VWED_JOB_MAX_CONCURRENT", "10"));
    let id = job(
        &rt,
        "short",
        "bash",
        "sleep 0.3\necho done $PARAM_N\n",
        json!({
            "parameters": [{"name": "n", "type": "integer", "required": true}],
        }),
    );
    let execs: Vec<String> = (0..50).map(|n| execute(&rt, id, json!({"n": n}))).collect();
    let done: Vec<_> = execs.iter().map(|e| finished(&rt, e)).collect();
    assert!(done.iter().all(|d| d["status"] == "succeeded"), "{done:#?}");
    for (n, d) in done.iter().enumerate() {
        assert!(
            d["output"]
                .as_str()
                .is_some_and(|o| o.contains(&format!("done {n}")))
        );
    }
    // How many ran at the same time, from the records: never more than ten.
    let mut edges: Vec<(u64, i32)> = Vec::new();
    for d in &done {
        let a = &d["attempt_history"][0];
        edges.push((a["started_at_ms"].as_u64().expect("start"), 1));
        edges.push((a["finished_at_ms"].as_u64().expect("end"), -1));
    }
    // An end and a start at the same millisecond: the end first.
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    assert!(most <= 10, "{most} executions overlapped");
    let stats = rt.get(&format!("{SCRIPTS}/statistics/overview"));
    let peak = stats.data()["executions"]["peak_concurrent"]
        .as_u64()
        .expect("peak");
    assert!((2..=10).contains(&peak), "peak {peak}");
    assert_eq!(stats.data()["executions"]["by_status"]["succeeded"], 50);
}

#[test]
fn a_full_queue_refuses_and_records_the_refusal() {
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_JOB_MAX_CONCURRENT", "1")
            .env("VWED_JOB_QUEUE_LEN", "2"),
    );
    let id = job(&rt, "blocker", "bash", "sleep 300\n", json!({}));
    let running = execute(&rt, id, json!({}));
    wait_for(&rt, &running, Duration::from_secs(30), |d| {
        d["status"] == "running"
    });
    let queued = [execute(&rt, id, json!({})), execute(&rt, id, json!({}))];
    let refused = execute_resp(&rt, id, json!({}));
    refused.fails(429, "队列已满");
    let rid = refused.data()["execution_id"]
        .as_str()
        .expect("recorded id")
        .to_string();
    let d = detail(&rt, &rid);
    assert_eq!(d["status"], "failed");
    assert!(d["error"].as_str().expect("error").contains("队列已满"));
    assert_eq!(executions(&rt, id).len(), 4);
    for q in &queued {
        assert_eq!(detail(&rt, q)["status"], "queued");
        let r = rt.post(&format!("{SCRIPTS}/executions/{q}/cancel"), &json!({}));
        r.ok();
        assert_eq!(r.data()["status"], "cancelled");
    }
    rt.post(
        &format!("{SCRIPTS}/executions/{running}/cancel"),
        &json!({}),
    )
    .ok();
    // Room again: a new execution is taken.
    let next = execute(&rt, id, json!({}));
    wait_for(&rt, &next, Duration::from_secs(30), |d| {
        d["status"] == "running"
    });
    rt.post(&format!("{SCRIPTS}/executions/{next}/cancel"), &json!({}))
        .ok();
}

#[test]
fn kill_9_during_a_run_interrupts_it_and_retries_per_policy() {
    let opts = Opts::default().env("VWED_JOB_MAX_CONCURRENT", "2");
    let rt = Runtime::with(opts.clone());
    let retried = job(
        &rt,
        "retried",
        "bash",
        "echo attempt $VWED_ATTEMPT\nif [ \"$VWED_ATTEMPT\" = 1 ]; then sleep 300 & echo pid=$!; wait; fi\n",
        json!({
            "retry_policy": {"max_retries": 1, "backoff_seconds": 0, "retry_on_interrupt": true},
        }),
    );
    let given_up = job(
        &rt,
        "given-up",
        "bash",
        "sleep 300 &\necho pid=$!\nwait\n",
        json!({}),
    );
    let quick = job(&rt, "quick", "bash", "echo queued and kept\n", json!({}));
    let a = execute(&rt, retried, json!({}));
    let b = execute(&rt, given_up, json!({}));
    // The pid of each job's background process, from its live output.
    let background_pid = |e: &str| -> u32 {
        let d = wait_for(&rt, e, Duration::from_secs(30), |d| {
            d["status"] == "running" && d["output"].as_str().is_some_and(|o| o.contains("pid="))
        });
        printed_pid(d["output"].as_str().unwrap_or(""))
    };
    let orphans = [background_pid(&a), background_pid(&b)];
    // Both slots are taken: this one waits in the queue when the runtime dies.
    let c = execute(&rt, quick, json!({}));
    assert_eq!(detail(&rt, &c)["status"], "queued");

    let data = rt.kill9_keep_data();
    let rt = Runtime::start_in(data, opts);
    // What the killed jobs left running is gone: a retry never runs beside it.
    for pid in orphans {
        vwed_e2e::wait_until(Duration::from_secs(10), "the orphan is killed", || {
            !process_alive(pid)
        });
    }
    let da = finished(&rt, &a);
    assert_eq!(da["status"], "succeeded", "{da:#}");
    let statuses: Vec<&str> = da["attempt_history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|x| x["status"].as_str())
        .collect();
    assert_eq!(statuses, ["interrupted", "succeeded"]);
    assert!(
        da["attempt_history"][0]["error"]
            .as_str()
            .expect("why")
            .contains("中断")
    );
    let db = finished(&rt, &b);
    assert_eq!(
        (db["status"].clone(), db["attempts"].clone()),
        (json!("interrupted"), json!(1))
    );
    let dc = finished(&rt, &c);
    assert_eq!(
        dc["status"], "succeeded",
        "the queued execution survived: {dc:#}"
    );
    assert!(
        dc["output"]
            .as_str()
            .expect("output")
            .contains("queued and kept")
    );
}
