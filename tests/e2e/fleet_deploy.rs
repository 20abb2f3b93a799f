//! Fleet sync: deployments through a real Mosquitto to several real runtimes,
//! convergence, remote calls, redeploys that send only what changed, a
//! deployment above 2 MiB, and projects that are read-only until detached.

use vwed_e2e::fleet::{CONVERGE, Fleet, cli_output, project_dir, write_files};
use vwed_e2e::{json, py, wait_until};

/// A script whose function tells which version of the code runs.
pub fn app(version: &str) -> String {
    py(&format!(
        r#"
        def boot(params):
            @VWED.function.register("whoami")
            def whoami(args):
                return {{"version": "{version}", "params": params}}
        "#
    ))
}

/// A script that boots and then dies, inside any health window of a test.
pub fn crashing() -> String {
    py(r#"
        import os

        def boot():
            @VWED.timer.once(delay=0.3)
            def die():
                os._exit(3)
        "#)
}

/// A file beside the script (scripts do not import each other: it is data).
pub fn helper(text: &str) -> String {
    format!("greeting = \"{text}\"\n")
}

fn call_ok(fleet: &Fleet, device: &str, function: &str) -> serde_json::Value {
    let out = fleet.cli("call", &[device, function, "{}"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "call {function} on {device}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("reply JSON");
    reply["result"].clone()
}

#[test]
fn a_group_deployment_converges_on_every_device_and_its_functions_answer() {
    let fleet = Fleet::new();
    let devices: Vec<_> = ["d1", "d2", "d3"]
        .iter()
        .map(|d| (d.to_string(), fleet.start_device(d, &["line"])))
        .collect();
    let src = project_dir(&[("main.py", &app("v1")), ("helper.py", &helper("hello"))]);
    let project = format!("app={}", src.path().display());
    let printed = fleet.deploy(&[
        "--group",
        "line",
        "--project",
        &project,
        "--run",
        r#"main.py:{"speed": 2}"#,
    ]);
    assert_eq!(printed["files"], json!(2));
    let status = fleet.converge(&["--group", "line"], 3);
    assert_eq!(
        status["devices"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );
    for (id, rt) in &devices {
        let result = call_ok(&fleet, id, "whoami");
        assert_eq!(result["version"], json!("v1"));
        assert_eq!(result["params"], json!({"speed": 2}));
        let on_disk =
            std::fs::read_to_string(rt.project_dir("app").join("helper.py")).expect("file");
        assert_eq!(on_disk, helper("hello"));
        let running = rt.running();
        assert!(
            running.iter().any(
                |s| s["script_path"] == json!("app/main.py") && s["status"] == json!("running")
            ),
            "{running:?}"
        );
        let state = fleet.state(id);
        assert_eq!(state["apply"]["state"], json!("committed"), "{state}");
        assert_eq!(state["scripts"][0]["status"], json!("running"), "{state}");
        assert_eq!(state["revision"], printed["revision"]);
    }
}

#[test]
fn a_redeploy_fetches_only_the_changed_file_and_runs_the_new_code() {
    let fleet = Fleet::new();
    let rt = fleet.start_device("d1", &[]);
    let events = fleet.broker.record(&fleet.topic("device/d1/events"), None);
    let src = project_dir(&[("main.py", &app("v1")), ("helper.py", &helper("one"))]);
    let project = format!("app={}", src.path().display());
    fleet.deploy(&["--device", "d1", "--project", &project, "--run", "main.py"]);
    fleet.converge(&["--device", "d1"], 1);
    assert_eq!(call_ok(&fleet, "d1", "whoami")["version"], json!("v1"));

    write_files(src.path(), &[("main.py", &app("v2"))]);
    let second = fleet.deploy(&["--device", "d1", "--project", &project, "--run", "main.py"]);
    fleet.converge(&["--device", "d1"], 1);
    assert_eq!(call_ok(&fleet, "d1", "whoami")["version"], json!("v2"));
    assert_eq!(
        std::fs::read_to_string(rt.project_dir("app").join("helper.py")).expect("file"),
        helper("one")
    );
    let staged = || {
        events.lines().into_iter().find(|e| {
            e["state"] == json!("staged") && e["deployment_id"] == second["deployment_id"]
        })
    };
    wait_until(CONVERGE, "the staged event of the redeploy", || {
        staged().is_some()
    });
    let staged = staged().unwrap_or_default();
    assert_eq!(staged["files"], json!(2), "{staged}");
    assert_eq!(
        staged["fetched"],
        json!(1),
        "only the changed file travels: {staged}"
    );
    assert_eq!(staged["reused"], json!(1), "{staged}");
    let seqs: Vec<u64> = events
        .lines()
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "events in order: {seqs:?}"
    );
}

#[test]
fn a_deployment_of_more_than_two_mib_applies() {
    let fleet = Fleet::new();
    let rt = fleet.start_device("big", &[]);
    // Text files of about 700 KiB each, 2.7 MiB together: many chunks each.
    let line = "# ".to_string() + &"x".repeat(98) + "\n";
    let data: Vec<String> = (0..4)
        .map(|i| format!("# part {i}\n{}", line.repeat(7_000)))
        .collect();
    let files: Vec<(String, String)> = data
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("data/part{i}.txt"), d.clone()))
        .chain([("main.py".to_string(), app("big"))])
        .chain([("helper.py".to_string(), helper("big"))])
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let src = project_dir(&refs);
    let project = format!("bulk={}", src.path().display());
    let printed = fleet.deploy(&["--device", "big", "--project", &project, "--run", "main.py"]);
    assert!(
        printed["bytes"].as_u64().unwrap_or(0) > 2 * 1024 * 1024,
        "{printed}"
    );
    fleet.converge(&["--device", "big"], 1);
    for (i, d) in data.iter().enumerate() {
        let on_disk =
            std::fs::read_to_string(rt.project_dir("bulk").join(format!("data/part{i}.txt")))
                .expect("deployed file");
        assert!(on_disk == *d, "part{i} arrived whole");
    }
    assert_eq!(call_ok(&fleet, "big", "whoami")["version"], json!("big"));
}

#[test]
fn managed_projects_are_read_only_until_detached_and_detached_ones_are_drift() {
    let fleet = Fleet::new();
    let rt = fleet.start_device("d1", &[]);
    let src = project_dir(&[("main.py", &app("v1")), ("helper.py", &helper("a"))]);
    let project = format!("app={}", src.path().display());
    fleet.deploy(&["--device", "d1", "--project", &project, "--run", "main.py"]);
    fleet.converge(&["--device", "d1"], 1);

    let pid = rt.project_id("app").expect("deployed project");
    let files = rt.get(&format!("/api/script/projects/{pid}/files"));
    files.ok();
    let helper_id = files.data()["files"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x["file_path"] == json!("helper.py")))
        .and_then(|f| f["id"].as_u64())
        .expect("helper.py record");
    rt.put(
        &format!("/api/script/files/{helper_id}"),
        &json!({"content": "x = 1\n"}),
    )
    .fails(409, "fleet");
    rt.delete(&format!("/api/script/files/{helper_id}"))
        .fails(409, "fleet");
    rt.create_file_resp(pid, "extra.py", "x = 1\n")
        .fails(409, "fleet");
    // Folders, moves and copies into the project are changes too.
    for (op, body) in [
        ("dirs", json!({"path": "lib"})),
        ("move", json!({"from": "helper.py", "to": "h2.py"})),
        ("copy", json!({"from": "helper.py", "to": "h3.py"})),
    ] {
        rt.post(&format!("/api/script/projects/{pid}/{op}"), &body)
            .fails(409, "fleet");
    }
    rt.delete(&format!("/api/script/projects/{pid}/dirs?path=lib"))
        .fails(409, "fleet");

    rt.post("/api/fleet/projects/app/detach", &json!({})).ok();
    rt.put(
        &format!("/api/script/files/{helper_id}"),
        &json!({"content": helper("local")}),
    )
    .ok();
    let state = fleet.wait_state("d1", "drift reported", |s| {
        s["drift"][0]["project"] == json!("app") && s["drift"][0]["reason"] == json!("detached")
    });
    assert_eq!(state["apply"]["state"], json!("committed"));

    // A deployment that includes the detached project waits until it is attached.
    write_files(src.path(), &[("helper.py", &helper("b"))]);
    let next = fleet.deploy(&["--device", "d1", "--project", &project, "--run", "main.py"]);
    fleet.wait_state("d1", "refused as detached", |s| {
        s["last_error"]["code"] == json!("detached")
            && s["last_error"]["deployment_id"] == next["deployment_id"]
    });
    assert_eq!(
        std::fs::read_to_string(rt.project_dir("app").join("helper.py")).expect("file"),
        helper("local"),
        "a detached project keeps its local change"
    );
    rt.post("/api/fleet/projects/app/attach", &json!({})).ok();
    let state = fleet.wait_state("d1", "applied after attach", |s| {
        s["revision"] == next["revision"]
    });
    assert_eq!(state["drift"], json!([]));
    assert_eq!(
        std::fs::read_to_string(rt.project_dir("app").join("helper.py")).expect("file"),
        helper("b")
    );
    rt.post("/api/fleet/projects/nope/detach", &json!({}))
        .fails(404, "fleet");
    let local = rt.get("/api/fleet/status");
    local.ok();
    assert_eq!(local.data()["device_id"], json!("d1"));
    assert_eq!(local.data()["projects"][0]["project"], json!("app"));
}

/// The central commands live in `vwed-fleet`: the device binary, which must fit the
/// controller's size budget, refuses them and writes no key.
#[test]
fn the_device_binary_has_no_central_commands_and_vwed_fleet_has_them() {
    let dir = vwed_e2e::TempDir::new("fleet-cli");
    let key = dir.path().join("k.key");
    let key = key.display().to_string();
    let device = std::process::Command::new(vwed_e2e::binary())
        .args(["fleet", "keygen", "--out", &key])
        .output()
        .expect("run vwed-edge");
    assert!(!device.status.success());
    assert!(!dir.path().join("k.key").exists());
    let central = cli_output(&["keygen", "--out", &key]);
    assert!(central.status.success(), "{central:?}");
    assert_eq!(String::from_utf8_lossy(&central.stdout).trim().len(), 64);
}
