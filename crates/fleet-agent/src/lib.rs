//! Fleet sync over MQTT (docs/fleet.md). The central server publishes, retained,
//! one signed desired state per device or group; the device verifies it, fetches
//! the files it lacks by content hash, applies it as a state machine kept in redb
//! (staged beside the old files, switched, watched for a health window,
//! committed or rolled back), reports its state and events through an outbox,
//! and answers remote calls. What both sides speak (manifest, topics, signing,
//! the MQTT link) is `vwed_fleet_proto`; the other side, the central command
//! line, is the `vwed-fleet` binary (crates/fleet), not part of this library.
//! Scripts are started, stopped and called through a [`ScriptHost`]: the agent
//! knows no engine.

mod agent;
mod apply;
mod blobs;
mod calls;
pub mod host;
mod outbox;
mod report;
mod settings;
mod shared;
mod state;
mod switch;

use std::path::PathBuf;

use serde_json::{Value, json};
use vwed_fleet_proto::manifest;

pub use agent::{Agent, AgentHandle, CRASH_AT_ENV};
pub use host::{HostError, NullHost, ScriptHost, ScriptStatus};
pub use settings::{FleetSettings, Settings};
pub use state::in_projects;

use vwed_db::{Db, DbError};

/// The device's MQTT packets may not be smaller: the largest manifest envelope
/// and the largest file chunk must fit, with their topic and header.
pub const MIN_PACKET_BYTES: usize = manifest::MAX_ENVELOPE_BYTES + 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("fleet 配置无效: {0}")]
    Settings(String),
    /// The broker's address, a name, the password file.
    #[error("fleet 配置无效")]
    Broker(#[from] vwed_fleet_proto::BrokerError),
    /// The `mqtts://` files (CA, client certificate and key).
    #[error("fleet 配置无效")]
    Tls(#[from] vwed_fleet_proto::tls::TlsError),
    #[error("cannot use {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Switch(#[from] switch::SwitchError),
    #[error("文件读写失败: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Fs(#[from] vwed_base::fsio::FsError),
    #[error("fleet 状态损坏: {0}")]
    Corrupt(String),
}

vwed_db::from_redb_errors!(FleetError);

/// Whether the local API may change a project: not while fleet sync owns it,
/// unless an engineer detached it.
pub fn read_only(db: &Db, project: &str) -> Result<bool, DbError> {
    Ok(state::managed_one(db, project)?.is_some_and(|m| !m.detached))
}

/// Detaches a managed project from fleet sync (local changes allowed, reported as
/// drift) or attaches it again. `Ok(false)`: the project is not managed.
pub fn set_detached(
    db: &Db,
    settings: &FleetSettings,
    project: &str,
    detached: bool,
) -> Result<bool, DbError> {
    let event = json!({
        "type": if detached { "detached" } else { "attached" },
        "project": project,
    });
    let stamp = outbox::Stamp {
        device: &settings.device_id,
        max: settings.outbox_max_events.max(1),
    };
    state::set_detached(db, project, detached, event, &stamp)
}

/// What the local API shows of fleet sync: settings, apply state, projects.
pub fn local_status(db: &Db, settings: &FleetSettings) -> Result<Value, DbError> {
    let enabled = settings.enabled();
    let rec = state::load(db)?;
    let managed = state::managed(db)?;
    Ok(json!({
        "enabled": enabled,
        "broker_url": settings.broker_url,
        "device_id": settings.device_id,
        "fleet": settings.fleet,
        "groups": settings.groups,
        "apply_state": rec.step.as_str(),
        "revision": rec.current.as_ref().map_or(0, |c| c.revision),
        "deployment_id": rec.current.as_ref().map(|c| c.deployment_id.clone()),
        "last_error": rec.last_error.as_ref().map(state::ErrorRec::to_json),
        "projects": managed.iter().map(|(name, m)| json!({
            "project": name,
            "detached": m.detached,
            "since_ms": m.since_ms,
        })).collect::<Vec<_>>(),
    }))
}
