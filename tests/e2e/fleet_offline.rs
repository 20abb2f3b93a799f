//! Fleet sync across outages: a device that was away during a deployment
//! converges when it comes back; a broker restarted in the middle of a deployment
//! loses no event and the deployment converges.

use std::time::Duration;

use vwed_e2e::fleet::{CONVERGE, Fleet, project_dir};
use vwed_e2e::{Runtime, json, wait_until};

use crate::fleet_deploy::{app, helper};

#[test]
fn a_device_offline_during_the_deploy_converges_when_it_comes_back() {
    let fleet = Fleet::new();
    let _d1 = fleet.start_device("d1", &["g"]);
    let d2 = fleet.start_device("d2", &["g"]);
    fleet.wait_state("d2", "d2 reported", |s| s["device"] == json!("d2"));
    let data = d2.terminate_keep_data(Duration::from_secs(20));
    let presence = fleet
        .broker
        .retained_json(&fleet.topic("device/d2/presence"));
    assert_eq!(presence["online"], json!(false), "{presence}");

    let src = project_dir(&[("main.py", &app("v1")), ("helper.py", &helper("v1"))]);
    let project = format!("app={}", src.path().display());
    let printed = fleet.deploy(&["--group", "g", "--project", &project, "--run", "main.py"]);
    fleet.wait_state("d1", "d1 committed", |s| {
        s["revision"] == printed["revision"]
    });
    let (code, _) = {
        // d2 is targeted but away: not converged yet (bounded wait, exit 2).
        let out = fleet.cli(
            "status",
            &[
                "--group", "g", "--wait", "--expect", "2", "--wait-s", "2", "--json",
            ],
        );
        (out.status.code(), out)
    };
    assert_eq!(code, Some(2), "d2 has not converged while it is away");

    let d2 = Runtime::start_in(data, fleet.device("d2", &["g"]));
    fleet.converge(&["--group", "g"], 2);
    let on_disk = std::fs::read_to_string(d2.project_dir("app").join("main.py")).expect("file");
    assert_eq!(on_disk, app("v1"));
    let presence = fleet
        .broker
        .retained_json(&fleet.topic("device/d2/presence"));
    assert_eq!(presence["online"], json!(true), "{presence}");
}

#[test]
fn a_broker_restarted_mid_deploy_loses_no_event_and_the_deploy_converges() {
    let mut fleet = Fleet::new();
    let events_topic = fleet.topic("device/+/events");
    // A persistent session, as a central server keeps: the broker queues events
    // for it while it is away.
    let mut first = fleet.broker.record(&events_topic, Some("central-test"));
    let rt = fleet.start_device("d1", &[]);
    let line = "# ".to_string() + &"y".repeat(98) + "\n";
    let big = line.repeat(25_000);
    let src = project_dir(&[
        ("main.py", &app("v1")),
        ("helper.py", &helper("v1")),
        ("data/big.txt", &big),
    ]);
    let project = format!("app={}", src.path().display());
    fleet.deploy(&["--device", "d1", "--project", &project, "--run", "main.py"]);
    first.stop();
    fleet.broker.restart();
    let second = fleet.broker.record(&events_topic, Some("central-test"));
    fleet.converge(&["--device", "d1"], 1);
    let on_disk =
        std::fs::read_to_string(rt.project_dir("app").join("data/big.txt")).expect("file");
    assert!(on_disk == big, "the big file arrived whole");

    let last = fleet.state("d1")["events"]["last_seq"]
        .as_u64()
        .unwrap_or(0);
    assert!(last >= 7, "an apply makes at least seven events: {last}");
    let seen = || {
        let mut seqs: Vec<u64> = first
            .lines()
            .iter()
            .chain(second.lines().iter())
            .filter_map(|e| e["seq"].as_u64())
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        seqs
    };
    wait_until(CONVERGE, "every event up to the last one arrived", || {
        seen().last() == Some(&last)
    });
    assert_eq!(seen(), (1..=last).collect::<Vec<_>>(), "no event lost");
}
