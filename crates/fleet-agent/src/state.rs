//! What fleet sync keeps in redb: the apply state machine (one record, written at
//! every step together with the step's event), the outbox, the answers to remote
//! calls and the projects under fleet control.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use vwed_db::{self as db, Db, DbError, RUNNING};
use vwed_store::RunningRec;

/// "apply" → [`ApplyRec`].
pub const APPLY: TableDefinition<&str, &[u8]> = TableDefinition::new("fleet_apply");
/// call id → [`CallRec`].
pub const CALLS: TableDefinition<&str, &[u8]> = TableDefinition::new("fleet_calls");
/// (received ms, call id): calls in arrival order, for pruning.
pub const CALLS_AGE: TableDefinition<(u64, &str), ()> = TableDefinition::new("fleet_calls_age");
/// project name → [`ManagedRec`]: the projects fleet sync owns.
pub const MANAGED: TableDefinition<&str, &[u8]> = TableDefinition::new("fleet_projects");

const APPLY_KEY: &str = "apply";

/// The steps of an apply, in order; `RollingBack`/`RolledBack` replace the last
/// two when the health window fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    Idle,
    Received,
    Verified,
    Staged,
    Switching,
    Switched,
    Health,
    Committed,
    RollingBack,
    RolledBack,
    Refused,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Idle => "idle",
            Step::Received => "received",
            Step::Verified => "verified",
            Step::Staged => "staged",
            Step::Switching => "switching",
            Step::Switched => "switched",
            Step::Health => "health",
            Step::Committed => "committed",
            Step::RollingBack => "rolling_back",
            Step::RolledBack => "rolled_back",
            Step::Refused => "refused",
        }
    }

    /// An apply is under way (after a restart it goes on from here).
    pub fn in_progress(self) -> bool {
        !matches!(
            self,
            Step::Idle | Step::Committed | Step::RolledBack | Step::Refused
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyRec {
    pub step: Step,
    pub since_ms: u64,
    pub pending: Option<Pending>,
    /// The deployment the device runs (last committed).
    pub current: Option<Applied>,
    /// Revision of the last deployment the device switched to, committed or
    /// rolled back: a deployment must be above it.
    pub last_revision: u64,
    /// Digest of the last envelope the device is done with, whatever the outcome:
    /// the same retained message, delivered again, is not applied again.
    pub handled: Option<String>,
    pub last_error: Option<ErrorRec>,
}

impl Default for ApplyRec {
    fn default() -> Self {
        ApplyRec {
            step: Step::Idle,
            since_ms: 0,
            pending: None,
            current: None,
            last_revision: 0,
            handled: None,
            last_error: None,
        }
    }
}

/// The deployment being applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// SHA-256 of the envelope as it arrived.
    pub digest: String,
    pub source: String,
    pub envelope: Vec<u8>,
    /// Known once verified.
    pub deployment_id: String,
    pub revision: u64,
    /// The verified manifest's JSON text.
    pub manifest: Option<String>,
    /// What the switch makes true, and what a rollback goes back to.
    pub plan: Option<Target>,
    pub snapshot: Option<Target>,
    pub rollback_reason: Option<ErrorRec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Applied {
    pub deployment_id: String,
    pub revision: u64,
    pub source: String,
    /// The manifest's JSON text: its files are what drift is measured against.
    pub manifest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorRec {
    pub code: String,
    pub message: String,
    pub deployment_id: String,
    pub revision: u64,
    pub at_ms: u64,
}

impl ErrorRec {
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "code": self.code,
            "message": self.message,
            "deployment_id": self.deployment_id,
            "revision": self.revision,
            "at_ms": self.at_ms,
        })
    }
}

/// The files of some projects and the scripts that run from them: what a switch
/// makes true on disk, in the file records and in the running set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Target {
    pub projects: Vec<TargetProject>,
    pub run: Vec<TargetRun>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetProject {
    pub name: String,
    /// Under fleet control after the switch.
    pub managed: bool,
    /// `None`: leave the files as they are.
    pub files: Option<Vec<TargetFile>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetFile {
    pub path: String,
    pub sha256: String,
    pub has_boot: bool,
    pub file_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetRun {
    pub script: String,
    /// JSON text.
    pub params: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManagedRec {
    pub detached: bool,
    pub since_ms: u64,
}

/// A remote call: received, and its answer once there is one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallRec {
    pub at_ms: u64,
    /// The agent run (a random number per start) that took the call.
    pub run: u64,
    /// The reply's JSON text; `None` while the call runs.
    pub reply: Option<String>,
}

/// Creates the fleet tables, so that readers never meet a missing one.
pub fn create_tables(db: &Db) -> Result<(), DbError> {
    let tx = db.begin_write()?;
    tx.open_table(APPLY)?;
    tx.open_table(super::outbox::OUTBOX)?;
    tx.open_table(CALLS)?;
    tx.open_table(CALLS_AGE)?;
    tx.open_table(MANAGED)?;
    tx.commit()?;
    Ok(())
}

pub fn load(db: &Db) -> Result<ApplyRec, DbError> {
    let rx = db.begin_read()?;
    let t = match rx.open_table(APPLY) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(ApplyRec::default()),
        Err(e) => return Err(e.into()),
    };
    match t.get(APPLY_KEY)? {
        Some(v) => db::decode(v.value()),
        None => Ok(ApplyRec::default()),
    }
}

/// Writes the record and queues its events, in one transaction: a step and the
/// news of it are durable together or not at all. With `sets`, the running set
/// and the managed set become the target's in the same transaction.
pub fn save(
    db: &Db,
    rec: &ApplyRec,
    events: &[Value],
    out: &super::outbox::Stamp<'_>,
    sets: Option<&Target>,
) -> Result<(), DbError> {
    let tx = db.begin_write()?;
    tx.open_table(APPLY)?
        .insert(APPLY_KEY, db::encode(rec)?.as_slice())?;
    if let Some(t) = sets {
        write_sets(&tx, t)?;
    }
    for e in events {
        super::outbox::append(&tx, e.clone(), out)?;
    }
    tx.commit()?;
    Ok(())
}

/// The managed projects, detached ones included.
pub fn managed(db: &Db) -> Result<Vec<(String, ManagedRec)>, DbError> {
    let rx = db.begin_read()?;
    let t = match rx.open_table(MANAGED) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        out.push((k.value().to_string(), db::decode(v.value())?));
    }
    Ok(out)
}

pub fn managed_one(db: &Db, project: &str) -> Result<Option<ManagedRec>, DbError> {
    let rx = db.begin_read()?;
    let t = match rx.open_table(MANAGED) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match t.get(project)? {
        Some(v) => Ok(Some(db::decode(v.value())?)),
        None => Ok(None),
    }
}

pub fn set_detached(
    db: &Db,
    project: &str,
    detached: bool,
    event: Value,
    out: &super::outbox::Stamp<'_>,
) -> Result<bool, DbError> {
    let tx = db.begin_write()?;
    {
        let mut t = tx.open_table(MANAGED)?;
        let rec: ManagedRec = match t.get(project)? {
            Some(v) => db::decode(v.value())?,
            None => return Ok(false),
        };
        if rec.detached == detached {
            return Ok(true);
        }
        let now = vwed_base::clock::unix_ms();
        let rec = ManagedRec {
            detached,
            since_ms: now,
        };
        t.insert(project, db::encode(&rec)?.as_slice())?;
    }
    super::outbox::append(&tx, event, out)?;
    tx.commit()?;
    Ok(true)
}

/// The running set and the managed set as the target has them, inside the
/// caller's transaction (which also records the step).
pub fn write_sets(tx: &redb::WriteTransaction, target: &Target) -> Result<(), DbError> {
    let names: Vec<&str> = target.projects.iter().map(|p| p.name.as_str()).collect();
    let mut running = tx.open_table(RUNNING)?;
    running.retain(|path, _| !in_projects(path, &names))?;
    let now = vwed_base::clock::local_now();
    for r in &target.run {
        let rec = RunningRec {
            script_id: String::new(),
            file_id: 0,
            start_params: r.params.clone(),
            started_at: now.clone(),
            restart_policy: None,
        };
        running.insert(r.script.as_str(), db::encode(&rec)?.as_slice())?;
    }
    let mut managed = tx.open_table(MANAGED)?;
    for p in &target.projects {
        if p.managed {
            if managed.get(p.name.as_str())?.is_none() {
                let rec = ManagedRec {
                    detached: false,
                    since_ms: vwed_base::clock::unix_ms(),
                };
                managed.insert(p.name.as_str(), db::encode(&rec)?.as_slice())?;
            }
        } else {
            managed.remove(p.name.as_str())?;
        }
    }
    Ok(())
}

/// Does `script` run from one of `projects`?
pub fn in_projects<S: AsRef<str>>(script: &str, projects: &[S]) -> bool {
    projects.iter().any(|p| {
        script
            .strip_prefix(p.as_ref())
            .is_some_and(|rest| rest.starts_with('/'))
    })
}
