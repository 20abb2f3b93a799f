//! The reported state (retained on `device/<id>/state`): what the device runs,
//! where its apply stands, how its scripts are, what drifted, its last error.

use serde_json::{Value, json};

use super::host::ScriptHost;
use super::shared::Core;
use super::state::{self, ApplyRec};
use super::{FleetError, outbox};
use vwed_fleet_proto::manifest::{self, Manifest};
use vwed_fleet_proto::topics;

/// The scripts the device should be running: the pending plan's while an apply
/// is past its switch, else the committed deployment's.
fn run_list(rec: &ApplyRec) -> Vec<String> {
    if let Some(plan) = rec
        .pending
        .as_ref()
        .and_then(|p| p.plan.as_ref())
        .filter(|_| rec.step.in_progress())
    {
        return plan.run.iter().map(|r| r.script.clone()).collect();
    }
    rec.current
        .as_ref()
        .and_then(|c| serde_json::from_str::<Manifest>(&c.manifest).ok())
        .map(|m| m.run.into_iter().map(|r| r.script).collect())
        .unwrap_or_default()
}

/// Built from redb and the host; blocking (redb reads).
pub fn build<H: ScriptHost>(core: &Core<H>, online: bool) -> Result<Value, FleetError> {
    let rec = state::load(&core.db)?;
    let managed = state::managed(&core.db)?;
    let (waiting, dropped, last_seq) = outbox::stats(&core.db)?;
    let scripts: Vec<Value> = run_list(&rec)
        .iter()
        .map(|s| core.host.status(s).to_json())
        .collect();
    let drift: Vec<Value> = managed
        .iter()
        .filter(|(_, m)| m.detached)
        .map(|(name, m)| json!({"project": name, "reason": "detached", "since_ms": m.since_ms}))
        .collect();
    let apply = match &rec.pending {
        Some(p) if rec.step.in_progress() => json!({
            "state": rec.step.as_str(),
            "deployment_id": p.deployment_id,
            "revision": p.revision,
            "since_ms": rec.since_ms,
        }),
        _ => json!({"state": rec.step.as_str(), "since_ms": rec.since_ms}),
    };
    let current = rec.current.as_ref();
    Ok(json!({
        "device": core.s.device_id,
        "fleet": core.s.fleet,
        "groups": core.s.groups,
        "online": online,
        "revision": current.map_or(0, |c| c.revision),
        "deployment_id": current.map(|c| c.deployment_id.clone()),
        "source": current.map(|c| c.source.clone()),
        "apply": apply,
        "scripts": scripts,
        "projects": managed.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "drift": drift,
        "last_error": rec.last_error.as_ref().map(state::ErrorRec::to_json),
        "events": {"last_seq": last_seq, "waiting": waiting, "dropped": dropped},
        "versions": {
            "runtime": env!("CARGO_PKG_VERSION"),
            "protocol": topics::PROTOCOL,
            "manifest_format": manifest::FORMAT,
        },
    }))
}
