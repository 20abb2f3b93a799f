//! Fleet sync: a power cut (SIGKILL of the runtime, by the test hook
//! `VWED_FLEET_CRASH_AT`) at every step of an apply. After the restart the device
//! runs the new revision, committed, or the old one, never a mix of files or
//! scripts.

use std::time::Duration;

use vwed_e2e::fleet::{Fleet, project_dir, write_files};
use vwed_e2e::{Runtime, json};

use crate::fleet_deploy::{app, crashing, helper};

const CRASH_AT: &str = "VWED_FLEET_CRASH_AT";

/// What one revision is on disk and in the running set.
struct Revision {
    files: Vec<(&'static str, String)>,
    version: &'static str,
}

fn good(version: &'static str) -> Revision {
    Revision {
        files: vec![("main.py", app(version)), ("helper.py", helper(version))],
        version,
    }
}

/// The files and the running script are all of `r`.
#[track_caller]
fn runs(rt: &Runtime, fleet: &Fleet, device: &str, r: &Revision) {
    for (file, content) in &r.files {
        let on_disk = std::fs::read_to_string(rt.project_dir("app").join(file)).expect("file");
        assert_eq!(&on_disk, content, "{device}: {file} is of {}", r.version);
    }
    let running: Vec<_> = rt
        .running()
        .into_iter()
        .filter(|s| s["status"] == json!("running"))
        .collect();
    assert_eq!(running.len(), 1, "{device}: one script runs: {running:?}");
    let out = fleet.cli("call", &[device, "whoami", "{}"]);
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(
        reply["result"]["version"],
        json!(r.version),
        "{device}: {reply}"
    );
}

/// Deploys `old` (committed), then `new` on a runtime that kills itself at
/// `step`, restarts it, and returns it once its apply has ended.
fn cut_at(
    fleet: &Fleet,
    step: &str,
    old: &Revision,
    new: &[(&str, String)],
) -> (Runtime, serde_json::Value) {
    let device = format!("d-{step}");
    let rt = fleet.start_device(&device, &[]);
    let src = project_dir(&[]);
    let refs: Vec<(&str, &str)> = old.files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    write_files(src.path(), &refs);
    let project = format!("app={}", src.path().display());
    let args = [
        "--device",
        &device,
        "--project",
        &project,
        "--run",
        "main.py",
    ];
    fleet.deploy(&args);
    fleet.converge(&["--device", &device], 1);

    let data = rt.terminate_keep_data(Duration::from_secs(20));
    let rt = Runtime::start_in(data, fleet.device(&device, &[]).env(CRASH_AT, step));
    let refs: Vec<(&str, &str)> = new.iter().map(|(p, c)| (*p, c.as_str())).collect();
    write_files(src.path(), &refs);
    let printed = fleet.deploy(&args);
    let data = rt.wait_dead_keep_data(Duration::from_secs(90));
    let rt = Runtime::start_in(data, fleet.device(&device, &[]));
    fleet.wait_state(&device, &format!("the apply cut at {step} ended"), |s| {
        matches!(
            s["apply"]["state"].as_str(),
            Some("committed" | "rolled_back")
        ) && (s["revision"] == printed["revision"]
            || s["last_error"]["deployment_id"] == printed["deployment_id"])
    });
    if step == "switching" || step == "rolling_back" {
        // Cut in the middle of writing files: finished before scripts restored.
        assert!(rt.stderr().contains("finishing a"), "{}", rt.stderr());
    }
    (rt, printed)
}

#[test]
fn a_kill_at_every_step_before_the_commit_ends_with_the_new_revision_committed() {
    let fleet = Fleet::new();
    let old = good("v1");
    let new = good("v2");
    for step in [
        "received",
        "verified",
        "staged",
        "switching",
        "switched",
        "health",
        "committed",
    ] {
        let (rt, printed) = cut_at(&fleet, step, &old, &new.files);
        let device = format!("d-{step}");
        let state = fleet.state(&device);
        assert_eq!(
            state["revision"], printed["revision"],
            "cut at {step}: {state}"
        );
        assert_eq!(state["apply"]["state"], json!("committed"), "cut at {step}");
        runs(&rt, &fleet, &device, &new);
    }
}

#[test]
fn a_kill_during_a_rollback_ends_with_the_old_revision_running() {
    let fleet = Fleet::new();
    let old = good("v1");
    let crashes = crashing();
    let bad = vec![("main.py", crashes), ("helper.py", helper("bad"))];
    for step in ["rolling_back", "rolled_back"] {
        let (rt, printed) = cut_at(&fleet, step, &old, &bad);
        let device = format!("d-{step}");
        let state = fleet.state(&device);
        assert_eq!(
            state["apply"]["state"],
            json!("rolled_back"),
            "cut at {step}: {state}"
        );
        assert_eq!(
            state["last_error"]["deployment_id"],
            printed["deployment_id"]
        );
        assert_ne!(state["revision"], printed["revision"]);
        runs(&rt, &fleet, &device, &old);
    }
}
