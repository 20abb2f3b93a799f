//! `status`: the devices of a fleet from their retained state and presence, and
//! `--wait` for a deployment to converge.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};
use tokio::time::Instant;

use vwed_fleet_proto::manifest::{Envelope, Manifest};

use crate::args::{BrokerArgs, CentralError, TargetArgs};
use crate::session::Session;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Only this device.
    #[arg(long)]
    pub device: Option<String>,
    /// Only the devices of this group.
    #[arg(long, conflicts_with = "device")]
    pub group: Option<String>,
    /// Wait until every targeted device committed the current deployment.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: the group has at least this many devices (devices that have
    /// never reported are not known otherwise).
    #[arg(long, default_value_t = 1)]
    pub expect: usize,
    /// With --wait: give up after this long (exit 2).
    #[arg(long, default_value_t = 300)]
    pub wait_s: u64,
    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What the broker retains of one device.
#[derive(Debug, Default, Clone)]
struct Device {
    state: Value,
    presence: Value,
}

/// The current deployment of the target: revision and id.
fn target_deployment(retained: Option<&bytes::Bytes>) -> Option<(u64, String)> {
    let env: Envelope = serde_json::from_slice(retained?).ok()?;
    let m: Manifest = serde_json::from_str(&env.manifest).ok()?;
    Some((m.revision, m.deployment_id))
}

enum Verdict {
    Waiting,
    Converged,
    Failed,
}

fn in_target(a: &StatusArgs, name: &str, d: &Device) -> bool {
    match (&a.device, &a.group) {
        (Some(want), _) => want == name,
        (_, Some(g)) => {
            d.state["groups"]
                .as_array()
                .is_some_and(|gs| gs.iter().any(|x| x == g))
                && d.state["source"] != json!("device")
        }
        _ => true,
    }
}

fn verdict(a: &StatusArgs, devices: &BTreeMap<String, Device>, target: &(u64, String)) -> Verdict {
    let targeted: Vec<&Device> = devices
        .iter()
        .filter(|(n, d)| in_target(a, n, d))
        .map(|(_, d)| d)
        .collect();
    let failed = targeted.iter().any(|d| {
        d.state["last_error"]["deployment_id"] == json!(target.1)
            || d.state["revision"].as_u64().is_some_and(|r| r > target.0)
    });
    if failed {
        return Verdict::Failed;
    }
    let done = targeted
        .iter()
        .filter(|d| d.state["revision"].as_u64() == Some(target.0))
        .count();
    if done >= a.expect.max(1) && done == targeted.len() {
        Verdict::Converged
    } else {
        Verdict::Waiting
    }
}

fn note(devices: &mut BTreeMap<String, Device>, s: &Session, topic: &str, payload: &[u8]) {
    let value: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    if let Some(d) = s.topics.device_of(topic, "state") {
        devices.entry(d.to_string()).or_default().state = value;
    } else if let Some(d) = s.topics.device_of(topic, "presence") {
        devices.entry(d.to_string()).or_default().presence = value;
    }
}

pub async fn status(a: &StatusArgs) -> Result<i32, CentralError> {
    let target_args = TargetArgs {
        device: a.device.clone(),
        group: a.group.clone(),
    };
    let mut s = Session::connect(&a.broker).await?;
    let mut topics = vec![
        s.topics.all_devices("state"),
        s.topics.all_devices("presence"),
    ];
    let desired = match (&a.device, &a.group) {
        (Some(d), _) => Some(s.topics.desired_device(d)),
        (_, Some(g)) => Some(s.topics.desired_group(g)),
        _ => None,
    };
    topics.extend(desired.clone());
    let retained = s.retained(&topics).await?;
    let mut devices = BTreeMap::new();
    for (topic, payload) in &retained {
        note(&mut devices, &s, topic, payload);
    }
    let target = desired
        .as_ref()
        .and_then(|t| target_deployment(retained.get(t)));
    let code = if a.wait {
        target_args.check()?;
        let Some(target) = target.clone() else {
            s.close();
            return Err(CentralError::Usage(
                "no deployment is published for this target".into(),
            ));
        };
        let deadline = Instant::now() + Duration::from_secs(a.wait_s);
        let mut verdict_now = verdict(a, &devices, &target);
        while matches!(verdict_now, Verdict::Waiting) {
            let mut news = Vec::new();
            let more = s
                .watch(deadline, |topic, payload| {
                    news.push((topic.to_string(), payload.to_vec()));
                    true
                })
                .await?;
            for (topic, payload) in news {
                note(&mut devices, &s, &topic, &payload);
            }
            verdict_now = verdict(a, &devices, &target);
            if !more {
                break;
            }
        }
        match verdict_now {
            Verdict::Converged => 0,
            Verdict::Failed => 1,
            Verdict::Waiting => 2,
        }
    } else {
        0
    };
    s.close();
    print_devices(a, &devices, target.as_ref());
    Ok(code)
}

fn print_devices(
    a: &StatusArgs,
    devices: &BTreeMap<String, Device>,
    target: Option<&(u64, String)>,
) {
    let shown: Vec<(&String, &Device)> =
        devices.iter().filter(|(n, d)| in_target(a, n, d)).collect();
    if a.json {
        let list: Vec<Value> = shown
            .iter()
            .map(|(n, d)| json!({"device": n, "state": d.state, "presence": d.presence}))
            .collect();
        let target = target.map(|(r, id)| json!({"revision": r, "deployment_id": id}));
        println!("{}", json!({"target": target, "devices": list}));
        return;
    }
    println!(
        "{:<24} {:<7} {:<15} {:<13} {:<15} drift / last error",
        "device", "online", "revision", "apply", "last seen ms"
    );
    for (name, d) in shown {
        let st = &d.state;
        let drift: Vec<String> = st["drift"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|x| format!("{}:{}", x["project"], x["reason"]))
                    .collect()
            })
            .unwrap_or_default();
        let error = st["last_error"]["code"].as_str().unwrap_or("");
        println!(
            "{:<24} {:<7} {:<15} {:<13} {:<15} {} {}",
            name,
            d.presence["online"].as_bool().unwrap_or(false),
            st["revision"].as_u64().unwrap_or(0),
            st["apply"]["state"].as_str().unwrap_or("-"),
            d.presence["at_ms"].as_u64().unwrap_or(0),
            drift.join(","),
            error
        );
    }
}
