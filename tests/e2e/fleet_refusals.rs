//! Fleet sync refuses, and says why: a forged signature, none, an untrusted key,
//! a replayed old revision, an expired manifest, another device's deployment, a
//! tampered file. The device keeps running what it ran.

use std::time::Duration;

use vwed_e2e::fleet::{Fleet, cli_output, project_dir, write_files};
use vwed_e2e::{Runtime, Value, json};

use crate::fleet_deploy::{app, helper};

/// Waits until the device reports a refusal with `code`, and returns its state.
#[track_caller]
fn refused(fleet: &Fleet, device: &str, code: &str) -> Value {
    fleet.wait_state(device, &format!("refused with {code}"), |s| {
        s["last_error"]["code"] == json!(code) && s["apply"]["state"] == json!("refused")
    })
}

fn whoami(fleet: &Fleet, device: &str) -> Value {
    let out = fleet.cli("call", &[device, "whoami", "{}"]);
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    reply["result"]["version"].clone()
}

/// The retained envelope on `topic`, with its manifest parsed.
fn envelope(fleet: &Fleet, topic: &str) -> (Value, Value) {
    let env = fleet.broker.retained_json(topic);
    let manifest =
        serde_json::from_str(env["manifest"].as_str().unwrap_or("null")).unwrap_or_default();
    (env, manifest)
}

#[test]
fn forged_unsigned_foreign_replayed_expired_and_misaddressed_deployments_are_refused() {
    let fleet = Fleet::new();
    let _rt = fleet.start_device("d1", &["g"]);
    let src = project_dir(&[("main.py", &app("v1")), ("helper.py", &helper("v1"))]);
    let project = format!("app={}", src.path().display());
    let mine = fleet.topic("desired/device/d1");
    fleet.deploy(&["--device", "d1", "--project", &project, "--run", "main.py"]);
    fleet.converge(&["--device", "d1"], 1);
    let (old, _) = envelope(&fleet, &mine);
    write_files(src.path(), &[("main.py", &app("v2"))]);
    let v2 = fleet.deploy(&["--device", "d1", "--project", &project, "--run", "main.py"]);
    fleet.converge(&["--device", "d1"], 1);

    // The exact bytes of the old deployment, signed and all: a replay.
    fleet
        .broker
        .publish(&mine, old.to_string().as_bytes(), true);
    refused(&fleet, "d1", "stale_revision");

    // A manifest changed after signing.
    let forged = old["manifest"].as_str().unwrap_or("").replace(
        &format!("\"revision\":{}", old_revision(&old)),
        "\"revision\":99999999999999",
    );
    let mut env = old.clone();
    env["manifest"] = json!(forged);
    fleet
        .broker
        .publish(&mine, env.to_string().as_bytes(), true);
    refused(&fleet, "d1", "bad_signature");

    env["signature"] = json!("");
    fleet
        .broker
        .publish(&mine, env.to_string().as_bytes(), true);
    refused(&fleet, "d1", "no_signature");

    let expired = fleet.deploy(&[
        "--device",
        "d1",
        "--project",
        &project,
        "--run",
        "main.py",
        "--expires-at-ms",
        "1000",
    ]);
    let s = refused(&fleet, "d1", "expired");
    assert_eq!(s["last_error"]["deployment_id"], expired["deployment_id"]);

    let stranger = fleet.dir().join("stranger.key");
    let out = cli_output(&["keygen", "--out", &stranger.display().to_string()]);
    assert!(out.status.success());
    fleet.deploy_signed(
        &stranger,
        &["--device", "d1", "--project", &project, "--run", "main.py"],
    );
    refused(&fleet, "d1", "untrusted_key");

    // Signed for another device, published on this one's topic.
    fleet.deploy(&["--device", "d2", "--project", &project, "--run", "main.py"]);
    let other = fleet
        .broker
        .retained(&fleet.topic("desired/device/d2"))
        .expect("d2's deployment");
    fleet.broker.publish(&mine, &other, true);
    refused(&fleet, "d1", "wrong_scope");

    let state = fleet.state("d1");
    assert_eq!(state["revision"], v2["revision"], "still on v2: {state}");
    assert_eq!(whoami(&fleet, "d1"), json!("v2"));
}

fn old_revision(env: &Value) -> u64 {
    let m: Value =
        serde_json::from_str(env["manifest"].as_str().unwrap_or("null")).unwrap_or_default();
    m["revision"].as_u64().unwrap_or(0)
}

#[test]
fn a_tampered_file_is_refused_and_the_old_revision_keeps_running() {
    let fleet = Fleet::new();
    let rt = fleet.start_device("d1", &[]);
    let src = project_dir(&[("main.py", &app("v1")), ("helper.py", &helper("v1"))]);
    let project = format!("app={}", src.path().display());
    fleet.deploy(&["--device", "d1", "--project", &project, "--run", "main.py"]);
    fleet.converge(&["--device", "d1"], 1);
    let data = rt.terminate_keep_data(Duration::from_secs(20));

    // Deployed while the device is away; then someone swaps the file's bytes.
    write_files(src.path(), &[("main.py", &app("v2"))]);
    let v2 = fleet.deploy(&["--device", "d1", "--project", &project, "--run", "main.py"]);
    let (_, manifest) = envelope(&fleet, &fleet.topic("desired/device/d1"));
    let digest = manifest["projects"][0]["files"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x["path"] == json!("main.py")))
        .and_then(|f| f["sha256"].as_str())
        .expect("main.py in the manifest")
        .to_string();
    let evil = app("v2").replace("def whoami", "import os; os.system('true')\n    def whoami");
    fleet.broker.publish(
        &fleet.topic(&format!("blob/{digest}/0")),
        evil.as_bytes(),
        true,
    );

    let rt = Runtime::start_in(data, fleet.device("d1", &[]));
    let s = refused(&fleet, "d1", "hash_mismatch");
    assert_eq!(s["last_error"]["deployment_id"], v2["deployment_id"]);
    assert!(
        s["last_error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("main.py"),
        "{s}"
    );
    let on_disk = std::fs::read_to_string(rt.project_dir("app").join("main.py")).expect("file");
    assert_eq!(on_disk, app("v1"));
    assert_eq!(whoami(&fleet, "d1"), json!("v1"));
}
