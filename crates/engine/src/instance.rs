//! One started script: its worker, its state and its recent output.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use vwed_base::sync::Locked;

use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use vwed_ipc::{BootOutcome, Level, SandboxReport};

use super::Prepared;
use super::supervise::{EndReason, Supervised};
use crate::output::OutputRing;
use crate::worker::{CpuMeter, WorkerConn, rss_bytes};
use vwed_logs::{Logs, ScriptLogger};
use vwed_registry::{Counts, RegError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (_, Some(s)) => write!(f, "signal {s}"),
            (Some(c), None) => write!(f, "exit code {c}"),
            (None, None) => write!(f, "unknown exit"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Starting,
    Running,
    Stopping,
    /// Stopped by a user or by the runtime's shutdown; the worker has exited.
    Stopped,
    /// The start failed; the worker was ended.
    Failed,
    Crashed(ExitInfo),
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Failed => "failed",
            State::Crashed(_) => "crashed",
        }
    }

    /// Holds its script path: another start of the same script must wait.
    pub fn occupies_path(self) -> bool {
        !self.ended()
    }

    /// The worker is gone for good: the final state of a run.
    pub fn ended(self) -> bool {
        matches!(self, State::Stopped | State::Failed | State::Crashed(_))
    }
}

/// Registrations made during `boot()`, committed only if boot succeeds.
pub struct BootPhase {
    pub staged: Vec<Prepared>,
    pub conflict: Option<RegError>,
    pub done: Option<oneshot::Sender<BootOutcome>>,
}

pub struct Instance {
    pub script_id: Arc<str>,
    pub script_path: String,
    pub file_id: u64,
    pub file_name: String,
    pub start_params: Value,
    pub started_at: String,
    pid: AtomicU32,
    conn: OnceLock<Arc<WorkerConn>>,
    state: Mutex<State>,
    pub output: Mutex<OutputRing>,
    /// Persists and broadcasts every line of this run.
    pub log: Arc<ScriptLogger>,
    pub boot: Mutex<Option<BootPhase>>,
    pub exited: watch::Sender<Option<ExitInfo>>,
    pub kill: Mutex<Option<oneshot::Sender<()>>>,
    /// Registrations made by this run, counted against a limit.
    pub registrations: std::sync::atomic::AtomicUsize,
    /// How its worker is confined, as the worker reported at boot.
    pub sandbox: OnceLock<SandboxReport>,
    /// Policy, start parameters and restarts of its script path.
    pub supervised: Arc<Supervised>,
    /// Why its worker ended, when it was not stopped.
    end_reason: Mutex<Option<EndReason>>,
    /// The worker's own cgroup (with a delegated cgroup), for `memory.events`.
    cgroup: OnceLock<std::path::PathBuf>,
    pub cpu: CpuMeter,
    /// Decides its worker's CPU priority from its CPU use (`worker::priority`;
    /// made at the first sample).
    pub governor: Mutex<Option<crate::worker::priority::Governor>>,
    started_mono: std::time::Instant,
}

impl Instance {
    /// A new run of the script `supervised` names, with its start parameters.
    pub fn new(
        script_id: String,
        file_id: u64,
        file_name: String,
        output: OutputRing,
        logs: &Arc<Logs>,
        supervised: Arc<Supervised>,
    ) -> Instance {
        let script_path = supervised.script_path.clone();
        let log = logs.script(&script_id, &script_path);
        Instance {
            script_id: Arc::from(script_id),
            script_path,
            file_id,
            file_name,
            start_params: supervised.start_params.clone(),
            started_at: vwed_base::clock::local_now(),
            pid: AtomicU32::new(0),
            conn: OnceLock::new(),
            state: Mutex::new(State::Starting),
            output: Mutex::new(output),
            log,
            boot: Mutex::new(None),
            exited: watch::channel(None).0,
            kill: Mutex::new(None),
            registrations: std::sync::atomic::AtomicUsize::new(0),
            sandbox: OnceLock::new(),
            supervised,
            end_reason: Mutex::new(None),
            cgroup: OnceLock::new(),
            cpu: CpuMeter::default(),
            governor: Mutex::new(None),
            started_mono: std::time::Instant::now(),
        }
    }

    /// Records why the worker ends; the first reason given stays.
    pub fn set_end_reason(&self, reason: EndReason) {
        let mut r = self.end_reason.locked();
        if r.is_none() {
            *r = Some(reason);
        }
    }

    pub fn end_reason(&self) -> Option<EndReason> {
        self.end_reason.locked().clone()
    }

    pub fn set_cgroup(&self, dir: std::path::PathBuf) {
        let _ = self.cgroup.set(dir);
    }

    pub fn cgroup(&self) -> Option<&std::path::Path> {
        self.cgroup.get().map(std::path::PathBuf::as_path)
    }

    pub fn state(&self) -> State {
        *self.state.locked()
    }

    /// Its status as every listing shows it: the state, except that a crashed
    /// script its supervision gave up on is `broken`.
    pub fn status(&self) -> &'static str {
        match self.state() {
            State::Crashed(_) if self.supervised.is_broken() => "broken",
            s => s.as_str(),
        }
    }

    pub fn set_state(&self, s: State) {
        *self.state.locked() = s;
    }

    /// Moves to `to` only from `from`; tells whether it did.
    pub fn transition(&self, from: State, to: State) -> bool {
        let mut g = self.state.locked();
        if *g == from {
            *g = to;
            true
        } else {
            false
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    pub fn set_pid(&self, pid: u32) {
        self.pid.store(pid, Ordering::Relaxed);
    }

    pub fn conn(&self) -> Option<&Arc<WorkerConn>> {
        self.conn.get()
    }

    pub fn set_conn(&self, c: Arc<WorkerConn>) {
        let _ = self.conn.set(c);
    }

    pub fn exit_info(&self) -> Option<ExitInfo> {
        *self.exited.borrow()
    }

    /// Asks the process-watching task to SIGKILL the worker.
    pub fn kill(&self) {
        if let Some(tx) = self.kill.locked().take() {
            let _ = tx.send(());
        }
    }

    pub async fn wait_exit(&self, timeout: std::time::Duration) -> Option<ExitInfo> {
        let mut rx = self.exited.subscribe();
        let r = tokio::time::timeout(timeout, rx.wait_for(|e| e.is_some())).await;
        match r {
            Ok(Ok(v)) => *v,
            _ => None,
        }
    }

    pub fn note(&self, level: Level, message: impl Into<String>) {
        let message = message.into();
        self.log.system(level, message.clone());
        self.output.locked().push(level, "system", message, None);
    }

    /// `idle` while its worker is held at idle priority, else `normal`.
    pub fn cpu_priority(&self) -> &'static str {
        let governor = self.governor.locked();
        governor
            .as_ref()
            .map_or(crate::worker::priority::Class::Normal, |g| g.class())
            .as_str()
    }

    pub fn output_text(&self, limit: usize) -> String {
        self.output.locked().text(limit)
    }

    /// Its running-list entry; `busy_grace_ms` says when a busy worker is ended.
    pub fn to_json(&self, counts: Counts, busy_grace_ms: u64) -> Value {
        let state = self.state();
        let pid = self.pid();
        let alive = !state.ended();
        let status = self.status();
        let mut v = json!({
            "script_id": &*self.script_id,
            "script_path": self.script_path,
            "file_id": self.file_id,
            "started_at": self.started_at,
            "status": status,
            "registrations": counts.to_json(),
            "pid": pid,
            "rss_bytes": if alive { rss_bytes(pid) } else { None },
            "start_params": self.start_params,
            "heartbeat": self.conn().map(|c| c.last_seen_secs()),
            "busy": self.busy_json(alive, busy_grace_ms),
            "sandbox": crate::confinement::status_json(self.sandbox.get()),
            "cpu_percent": if alive { self.cpu.percent(pid) } else { None },
            "cpu_priority": self.cpu_priority(),
            "uptime_s": self.started_mono.elapsed().as_secs(),
        });
        if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), self.supervised.to_json()) {
            obj.extend(more);
        }
        if let State::Crashed(e) = state {
            v["exit_code"] = json!(e.code);
            v["signal"] = json!(e.signal);
            v["exit_reason"] = self.end_reason().unwrap_or(EndReason::Exited(e)).to_json();
        }
        v
    }

    /// A handler running past its timeout: since when, what, and when the worker
    /// is ended unless it becomes free first.
    fn busy_json(&self, alive: bool, grace: u64) -> Value {
        let Some(b) = self.conn().and_then(|c| c.busy()).filter(|_| alive) else {
            return Value::Null;
        };
        json!({
            "since": vwed_base::clock::local_at(b.since_ms),
            "work": b.work,
            "timeout_ms": b.timeout_ms,
            "ended_after": (grace > 0).then(|| vwed_base::clock::local_at(b.since_ms + grace)),
        })
    }
}
