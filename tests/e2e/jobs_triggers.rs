//! Triggers of active jobs: cron (on its scheduled times, runs missed while the
//! runtime was down skipped or made up once) and events with a filter on their
//! data, from scripts, the API and the runtime itself.

use std::time::Duration;

use vwed_e2e::{Opts, Runtime, json, py};

use crate::jobs_util::{SCRIPTS, executions, finished, job};

/// Waits until job `id` has at least `n` executions; returns them, newest first.
#[track_caller]
fn at_least(rt: &Runtime, id: u64, n: usize) -> Vec<vwed_e2e::Value> {
    let mut seen = Vec::new();
    vwed_e2e::wait_until(
        Duration::from_secs(60),
        &format!("{n} executions of job {id}"),
        || {
            seen = executions(rt, id);
            seen.len() >= n
        },
    );
    seen
}

#[test]
fn a_cron_job_runs_on_its_scheduled_times() {
    let rt = Runtime::start();
    let id = job(
        &rt,
        "every-two-seconds",
        "bash",
        "echo tick\n",
        json!({"status": "active", "triggers": {"cron": {"expression": "*/2 * * * * *", "timezone": "UTC"}}}),
    );
    let draft = job(
        &rt,
        "draft-cron",
        "bash",
        "echo never\n",
        json!({"triggers": {"cron": {"expression": "* * * * * *"}}}),
    );
    let runs = at_least(&rt, id, 3);
    let mut due: Vec<u64> = Vec::new();
    for r in runs.iter().rev().take(3) {
        let d = finished(&rt, r["execution_id"].as_str().expect("id"));
        assert_eq!(d["status"], "succeeded");
        assert_eq!(d["trigger"]["type"], "cron");
        assert_eq!(d["trigger"]["detail"], "*/2 * * * * *");
        assert_eq!(d["triggered_by"], "cron");
        let at = d["trigger"]["scheduled_ms"].as_u64().expect("scheduled");
        assert_eq!(at % 2000, 0, "due on an even second");
        let started = d["started_at_ms"].as_u64().expect("started");
        assert!(started >= at, "never before its time: {started} < {at}");
        due.push(at);
    }
    assert!(due.windows(2).all(|w| w[1] - w[0] == 2000), "{due:?}");
    assert!(
        executions(&rt, draft).is_empty(),
        "only active jobs run from triggers"
    );

    // Disabled: the schedule stops.
    rt.put(&format!("{SCRIPTS}/{id}"), &json!({"status": "disabled"}))
        .ok();
    let before = executions(&rt, id).len();
    let other = job(
        &rt,
        "witness",
        "bash",
        "echo w\n",
        json!({"status": "active", "triggers": {"cron": {"expression": "* * * * * *"}}}),
    );
    at_least(&rt, other, 3);
    assert!(
        executions(&rt, id).len() <= before + 1,
        "a disabled job's cron stopped"
    );
}

#[test]
fn missed_cron_runs_are_skipped_or_made_up_once() {
    let rt = Runtime::start();
    let cron = |policy: &str| json!({"status": "active", "triggers": {"cron": {"expression": "*/2 * * * * *", "missed_runs": policy}}});
    let once = job(&rt, "run-once", "bash", "echo once\n", cron("run_once"));
    let skip = job(&rt, "skip", "bash", "echo skip\n", cron("skip"));
    at_least(&rt, once, 1);
    at_least(&rt, skip, 1);
    let data = rt.kill9_keep_data();
    // Down for several scheduled times.
    std::thread::sleep(Duration::from_secs(5));
    let rt = Runtime::start_in(data, Opts::default());
    let made_up = |id| {
        executions(&rt, id)
            .iter()
            .filter(|e| e["trigger"]["missed"] == json!(true))
            .count()
    };
    let before_once = executions(&rt, once).len();
    let before_skip = executions(&rt, skip).len();
    at_least(&rt, once, before_once + 2);
    at_least(&rt, skip, before_skip + 2);
    assert_eq!(
        made_up(once),
        1,
        "one run makes up for all that were missed"
    );
    assert_eq!(made_up(skip), 0);
}

#[test]
fn events_start_active_jobs_whose_filter_matches() {
    let rt = Runtime::start();
    let id = job(
        &rt,
        "big-orders",
        "python",
        "def main(params):\n    return params['event']\n",
        json!({"status": "active", "triggers": {"events": [
            {"event": "order_ready", "filter": {"qty": {"$gt": 5}, "line": "A"}},
        ]}}),
    );
    let inactive = job(
        &rt,
        "inactive",
        "bash",
        "echo no\n",
        json!({"triggers": {"events": [{"event": "order_ready"}]}}),
    );
    let emit = |data| {
        rt.post(
            "/api/script/events/emit",
            &json!({"event_name": "order_ready", "data": data}),
        )
        .ok();
    };
    emit(json!({"qty": 3, "line": "A"}));
    emit(json!({"qty": 9, "line": "B"}));
    emit(json!({"qty": 10, "line": "A"}));
    let runs = at_least(&rt, id, 1);
    let d = finished(&rt, runs[0]["execution_id"].as_str().expect("id"));
    assert_eq!(d["status"], "succeeded", "{d:#}");
    assert_eq!(
        d["trigger"],
        json!({"type": "event", "detail": "order_ready"})
    );
    assert_eq!(
        d["result"],
        json!({"name": "order_ready", "data": {"qty": 10, "line": "A"}})
    );
    // The two events before it were matched (or not) first, in order.
    assert_eq!(
        executions(&rt, id).len(),
        1,
        "the filter let only one through"
    );
    assert!(executions(&rt, inactive).is_empty());

    // A script's VWED.event.emit and the runtime's own events trigger too.
    let started = job(
        &rt,
        "on-start",
        "bash",
        "echo \"$VWED_PARAMS\"\n",
        json!({"status": "active", "triggers": {"events": [
            {"event": "script_*", "filter": {"script_path": "p/emitter.py"}},
            {"event": "io.*"},
        ]}}),
    );
    let from_script = job(
        &rt,
        "from-script",
        "bash",
        "echo got\n",
        json!({"status": "active", "triggers": {"events": [{"event": "machine.alarm", "filter": {"code": {"$in": [7, 8]}}}]}}),
    );
    rt.deploy(
        "p",
        "emitter.py",
        &py(r#"
        def boot():
            VWED.event.emit("machine.alarm", {"code": 7})
    "#),
    );
    let runs = at_least(&rt, started, 1);
    let d = finished(&rt, runs[0]["execution_id"].as_str().expect("id"));
    assert!(
        d["output"]
            .as_str()
            .expect("output")
            .contains("script_started"),
        "{d:#}"
    );
    at_least(&rt, from_script, 1);
}

#[test]
fn a_job_does_not_trigger_itself_with_its_own_event() {
    let rt = Runtime::start();
    let echo = job(
        &rt,
        "echo",
        "python",
        "def main(params):\n    VWED.event.emit('ping', {'n': params['event']['data']['n'] + 1})\n",
        json!({"status": "active", "triggers": {"events": [{"event": "ping"}]}}),
    );
    let other = job(
        &rt,
        "other",
        "bash",
        "echo pong\n",
        json!({"status": "active", "triggers": {"events": [{"event": "ping", "filter": {"n": 2}}]}}),
    );
    rt.post(
        "/api/script/events/emit",
        &json!({"event_name": "ping", "data": {"n": 1}}),
    )
    .ok();
    let runs = at_least(&rt, other, 1);
    finished(&rt, runs[0]["execution_id"].as_str().expect("id"));
    let d = finished(
        &rt,
        executions(&rt, echo)[0]["execution_id"]
            .as_str()
            .expect("id"),
    );
    assert_eq!(d["status"], "succeeded");
    assert_eq!(runs[0]["event_depth"], 1, "started by the job's own emit");
    assert_eq!(
        executions(&rt, echo).len(),
        1,
        "its own emit did not start it again"
    );
}
