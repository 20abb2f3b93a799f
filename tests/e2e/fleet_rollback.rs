//! Fleet sync: a deployment whose scripts do not stay up in their health window
//! is rolled back by the device itself; `fleet rollback` publishes the previous
//! deployment again.

use vwed_e2e::fleet::{Fleet, project_dir, write_files};
use vwed_e2e::{json, py};

use crate::fleet_deploy::{app, crashing, helper};

fn whoami(fleet: &Fleet, device: &str) -> serde_json::Value {
    let out = fleet.cli("call", &[device, "whoami", "{}"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("reply");
    reply["result"]["version"].clone()
}

#[test]
fn a_deployment_that_crashes_or_fails_to_boot_is_rolled_back_by_the_device() {
    let fleet = Fleet::new();
    let rt = fleet.start_device("d1", &[]);
    let src = project_dir(&[("main.py", &app("v1")), ("helper.py", &helper("v1"))]);
    let project = format!("app={}", src.path().display());
    let deploy = || fleet.deploy(&["--device", "d1", "--project", &project, "--run", "main.py"]);
    let v1 = deploy();
    fleet.converge(&["--device", "d1"], 1);

    let crashes = crashing();
    let boot_fails = py(r#"
        def boot():
            raise RuntimeError("the PLC is not there")
        "#);
    for (bad, why) in [(crashes, "健康检查"), (boot_fails, "启动失败")] {
        write_files(
            src.path(),
            &[("main.py", &bad), ("helper.py", &helper("bad"))],
        );
        let v2 = deploy();
        let (code, status) = fleet.wait(&["--device", "d1"], 1);
        assert_eq!(code, 1, "a failed deployment is exit code 1: {status}");
        let state = fleet.state("d1");
        assert_eq!(state["revision"], v1["revision"], "{state}");
        assert_eq!(state["apply"]["state"], json!("rolled_back"), "{state}");
        assert_eq!(state["last_error"]["deployment_id"], v2["deployment_id"]);
        assert_eq!(state["last_error"]["code"], json!("health"));
        assert!(
            state["last_error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(why),
            "{state}"
        );
        assert_eq!(whoami(&fleet, "d1"), json!("v1"), "the old code runs again");
        for (file, content) in [("main.py", app("v1")), ("helper.py", helper("v1"))] {
            let on_disk = std::fs::read_to_string(rt.project_dir("app").join(file)).expect("file");
            assert_eq!(on_disk, content, "{file} is the old one again");
        }
        let running: Vec<_> = rt
            .running()
            .into_iter()
            .filter(|s| s["status"] == json!("running"))
            .collect();
        assert_eq!(running.len(), 1, "{running:?}");
    }
}

#[test]
fn the_rollback_command_publishes_the_previous_deployment_again() {
    let fleet = Fleet::new();
    let rt = fleet.start_device("d1", &["g"]);
    let src = project_dir(&[("main.py", &app("v1")), ("helper.py", &helper("v1"))]);
    let project = format!("app={}", src.path().display());
    let deploy = || fleet.deploy(&["--group", "g", "--project", &project, "--run", "main.py"]);
    deploy();
    fleet.converge(&["--group", "g"], 1);
    write_files(
        src.path(),
        &[("main.py", &app("v2")), ("helper.py", &helper("v2"))],
    );
    let v2 = deploy();
    fleet.converge(&["--group", "g"], 1);
    assert_eq!(whoami(&fleet, "d1"), json!("v2"));

    let key = fleet.key.display().to_string();
    let out = fleet.cli("rollback", &["--group", "g", "--key", &key]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back: serde_json::Value = serde_json::from_slice(&out.stdout).expect("rollback JSON");
    assert!(
        back["revision"].as_u64() > v2["revision"].as_u64(),
        "a rollback is a new revision"
    );
    fleet.converge(&["--group", "g"], 1);
    assert_eq!(whoami(&fleet, "d1"), json!("v1"));
    let on_disk = std::fs::read_to_string(rt.project_dir("app").join("helper.py")).expect("file");
    assert_eq!(on_disk, helper("v1"));
}
