//! Script lifecycle: one worker process per running script.
//!
//! The engine owns the table of script instances. Start spawns a worker, feeds it
//! the source, stages the registrations `boot()` makes and commits them only when
//! boot succeeded. Stop withdraws the registrations first (so nothing new reaches
//! the script), asks the worker to exit, and kills it after the grace period. A
//! worker that dies on its own leaves a `crashed` instance behind.

pub mod analyzer;
pub mod confinement;
mod dispatch;
mod error_kinds;
pub mod events;
mod hosts;
mod instance;
pub mod output;
mod safe;
pub mod safe_mode;
mod settings;
mod sink;
mod spare;
mod start;
mod stop;
pub mod supervise;
pub mod supervision;
mod timers;
mod watch;
pub mod worker;

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vwed_base::sync::Locked;

use serde_json::{Value, json};
use vwed_ipc::{ScriptError, ScriptErrorKind, ToWorker};

pub use instance::{Instance, State};
pub use settings::{EngineConfig, EngineSettings};
pub use sink::{answer_request, log_fields, perform_notified};
pub use start::{StartError, StartOk, StartRequest};
pub use watch::spawn_priority;

use crate::analyzer::Analyzer;
use crate::supervision::RestartPolicy;
use crate::worker::{Answer, CallError, WorkerConn};
use vwed_registry::Wiring;
use vwed_store::{RunningSet, ScriptData, ScriptStore};

/// The registry as the engine fills it: targets answer through worker
/// connections, listeners are fed through event queues.
pub enum Wired {}

impl Wiring for Wired {
    type Conn = WorkerConn;
    type Queue = events::ListenerQueue;
    fn listener_queue(len: usize) -> events::ListenerQueue {
        events::ListenerQueue::new(len)
    }
}

pub type Registry = vwed_registry::Registry<Wired>;
pub type Target = vwed_registry::Target<Wired>;
pub type Prepared = vwed_registry::Prepared<Wired>;
pub type ListenerEntry = vwed_registry::ListenerEntry<Wired>;
pub type TimerEntry = vwed_registry::TimerEntry<Wired>;

/// Ended instances whose output stays queryable.
const ENDED_KEEP: usize = 64;
/// Bytes of output an ended instance keeps (its last lines say how it ended).
const ENDED_OUTPUT_BYTES: usize = 16 * 1024;

pub struct Engine {
    pub cfg: Arc<EngineConfig>,
    pub store: ScriptStore,
    pub running_set: RunningSet,
    pub data: ScriptData,
    pub registry: Registry,
    pub analyzer: Analyzer,
    pub logs: Arc<vwed_logs::Logs>,
    /// Accounts, tokens, sessions and the audit log.
    pub auth: Arc<vwed_auth::Auth>,
    /// What the services beyond the core (task server, HTTP, mail) are set up with.
    pub integrations: Arc<vwed_integrations::Setup>,
    exe: PathBuf,
    lock: Option<OwnedFd>,
    scripts: Mutex<HashMap<String, Arc<Instance>>>,
    ended: Mutex<VecDeque<Arc<Instance>>>,
    shutting_down: AtomicBool,
    /// The device I/O, when an `io_config` is set; set once at start-up.
    pub io: std::sync::OnceLock<Arc<vwed_io::IoRuntime>>,
    /// What sees every emitted event besides the listeners (the jobs' event
    /// triggers); set once at start-up.
    pub event_tap: std::sync::OnceLock<Arc<dyn events::EventTap>>,
    /// A worker started ahead of need (see spare.rs).
    spare: Mutex<Option<crate::worker::SpawnedWorker>>,
    /// Restart policy and recent restarts per script path (see supervise.rs).
    /// Locked after `scripts` when both are needed.
    supervised: Mutex<HashMap<String, Arc<supervise::Supervised>>>,
    /// Whether scripts were held back at start (see safe.rs).
    pub safe_mode: crate::safe_mode::SafeMode,
}

#[derive(Debug, thiserror::Error)]
pub enum FnCallError {
    #[error("脚本 {0} 未运行，无法执行函数")]
    ScriptNotRunning(String),
    #[error("函数 {0} 未注册")]
    NotRegistered(String),
    #[error("函数 {name} 执行超时 ({ms} ms)")]
    Timeout { name: String, ms: u64 },
    /// The arguments did not bind to the function's signature; it never ran.
    #[error("函数 {name} 参数不匹配: {message}")]
    ArgumentMismatch { name: String, message: String },
    #[error("函数 {name} 执行失败: {message}")]
    Failed { name: String, message: String },
    #[error("函数 {0} 所在的脚本进程已退出")]
    Gone(String),
    #[error("函数 {0} 所在的脚本繁忙 (等待中的请求或待发送的数据已达上限), 请稍后重试")]
    Busy(String),
}

impl Engine {
    pub fn new(
        cfg: Arc<EngineConfig>,
        integrations: vwed_integrations::Setup,
        store: ScriptStore,
        exe: PathBuf,
        lock: Option<OwnedFd>,
        logs: Arc<vwed_logs::Logs>,
        auth: Arc<vwed_auth::Auth>,
    ) -> Arc<Engine> {
        let db = store.db().clone();
        let safe_mode = crate::safe_mode::SafeMode::new(&cfg.data_dir);
        Arc::new(Engine {
            running_set: RunningSet::new(db.clone()),
            data: ScriptData::new(db),
            registry: Registry::new(cfg.engine.event_queue_len),
            analyzer: Analyzer::new(exe.clone()),
            integrations: Arc::new(integrations),
            cfg,
            store,
            exe,
            lock,
            logs,
            auth,
            scripts: Mutex::new(HashMap::new()),
            ended: Mutex::new(VecDeque::new()),
            shutting_down: AtomicBool::new(false),
            io: std::sync::OnceLock::new(),
            event_tap: std::sync::OnceLock::new(),
            spare: Mutex::new(None),
            supervised: Mutex::new(HashMap::new()),
            safe_mode,
        })
    }

    fn supervised(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<supervise::Supervised>>> {
        self.supervised.locked()
    }

    fn scripts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Instance>>> {
        self.scripts.locked()
    }

    pub fn instance(&self, script_id: &str) -> Option<Arc<Instance>> {
        self.scripts().get(script_id).cloned()
    }

    /// A live or recently ended instance, for its output.
    pub fn any_instance(&self, script_id: &str) -> Option<Arc<Instance>> {
        self.instance(script_id).or_else(|| {
            self.ended
                .locked()
                .iter()
                .find(|i| &*i.script_id == script_id)
                .cloned()
        })
    }

    pub fn instances(&self) -> Vec<Arc<Instance>> {
        let mut v: Vec<_> = self.scripts().values().cloned().collect();
        v.sort_by(|a, b| {
            a.started_at
                .cmp(&b.started_at)
                .then(a.script_id.cmp(&b.script_id))
        });
        v
    }

    /// Moves an instance whose worker is gone to the ended ones, with only the
    /// end of its output, and gives the memory its run used back.
    fn retire(&self, inst: &Arc<Instance>) {
        self.scripts().remove(&*inst.script_id);
        self.keep_ended(inst);
        // Once the run's last lines are written, its buffers are free.
        if tokio::runtime::Handle::try_current().is_ok() {
            let store = self.logs.store.clone();
            tokio::spawn(async move {
                let _ = store.flush().await;
                let _ = tokio::task::spawn_blocking(vwed_base::heap::give_back_free_pages).await;
            });
        }
    }

    /// Keeps an instance no longer listed, with only the end of its output, so
    /// that the output stays queryable.
    fn keep_ended(&self, inst: &Arc<Instance>) {
        inst.output.locked().retire(ENDED_OUTPUT_BYTES);
        let mut ended = self.ended.locked();
        ended.retain(|i| i.script_id != inst.script_id);
        ended.push_back(inst.clone());
        while ended.len() > ENDED_KEEP {
            ended.pop_front();
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub fn running_json(&self) -> Vec<Value> {
        self.instances()
            .iter()
            .map(|i| {
                i.to_json(
                    self.registry.counts(&i.script_id),
                    self.cfg.supervision.busy_grace_ms,
                )
            })
            .collect()
    }

    /// Calls a registered function; `script_id` restricts the call to one script.
    pub async fn call_function(
        &self,
        script_id: Option<&str>,
        name: &str,
        args: &Value,
        timeout_ms: Option<u64>,
    ) -> Result<Value, FnCallError> {
        if let Some(sid) = script_id {
            match self.instance(sid) {
                Some(i) if i.state() == State::Running => {}
                _ => return Err(FnCallError::ScriptNotRunning(sid.to_string())),
            }
        }
        let entry = self
            .registry
            .function(name)
            .filter(|f| script_id.is_none_or(|s| *f.target.script_id == *s))
            .ok_or_else(|| FnCallError::NotRegistered(name.to_string()))?;
        let timeout = Duration::from_millis(
            timeout_ms
                .unwrap_or(self.cfg.engine.call_timeout_ms)
                .clamp(1, self.cfg.engine.max_call_timeout_ms),
        );
        let conn = &entry.target.conn;
        let req = conn.next_req();
        let msg = ToWorker::Call {
            req,
            handler: entry.target.handler,
            args: args.to_string(),
        };
        let t0 = Instant::now();
        let res = conn.request(req, &msg, timeout).await;
        let us = t0.elapsed().as_micros() as u64;
        let out = match res {
            Ok(Answer::Call(Ok(json))) => {
                Ok(serde_json::from_str(&json).unwrap_or(Value::String(json)))
            }
            Ok(Answer::Call(Err(ScriptError {
                kind: ScriptErrorKind::ArgumentMismatch,
                message,
            }))) => Err(FnCallError::ArgumentMismatch {
                name: name.to_string(),
                message,
            }),
            Ok(Answer::Call(Err(ScriptError { message, .. }))) => Err(FnCallError::Failed {
                name: name.to_string(),
                message,
            }),
            Ok(_) => Err(FnCallError::Failed {
                name: name.to_string(),
                message: CallError::Protocol.to_string(),
            }),
            Err(CallError::Timeout(ms)) => Err(FnCallError::Timeout {
                name: name.to_string(),
                ms,
            }),
            Err(CallError::Busy(_)) => Err(FnCallError::Busy(name.to_string())),
            Err(_) => Err(FnCallError::Gone(name.to_string())),
        };
        entry.stats.record(out.is_ok(), us);
        if let Some(inst) = self.any_instance(&entry.target.script_id) {
            inst.log.function_execution(
                name,
                out.as_ref().map_err(|e| e.to_string()),
                us as f64 / 1000.0,
            );
        }
        out
    }

    pub fn functions_json(&self) -> Vec<Value> {
        self.registry
            .functions()
            .iter()
            .map(|f| {
                let running = self
                    .instance(&f.target.script_id)
                    .is_some_and(|i| i.state() == State::Running);
                json!({
                    "function_name": f.name,
                    "script_id": &*f.target.script_id,
                    "description": f.description,
                    "parameters": f.parameters,
                    "return_schema": f.return_schema,
                    "is_async": f.is_async,
                    "tags": f.tags,
                    "is_running": running,
                    "registered_at": f.registered_at,
                    "stats": f.stats.to_json(),
                })
            })
            .collect()
    }

    /// Starts again every script that was running before the runtime stopped.
    pub async fn restore(self: &Arc<Self>) {
        let records = match self.running_set.all() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("cannot read the set of running scripts: {e}");
                return;
            }
        };
        for (path, rec) in records {
            let params = serde_json::from_str(&rec.start_params).unwrap_or(Value::Null);
            let policy = rec.restart_policy;
            if let Err(e) = self.restore_one(&path, &params, &policy).await {
                // A script that was running must come back after a power cut: only a
                // failure no retry can cure gives up; anything else (a slow boot on a
                // busy controller, a PLC not up yet) is tried again in the background.
                self.retry_restore(path, params, policy, e);
            }
        }
    }

    async fn restore_one(
        self: &Arc<Self>,
        path: &str,
        params: &Value,
        policy: &Option<RestartPolicy>,
    ) -> Result<(), StartError> {
        let req = StartRequest {
            script_path: Some(path.to_string()),
            file_id: None,
            start_params: params.clone(),
            restart_policy: policy.clone(),
            resume: None,
        };
        match self.start(req).await {
            Ok(ok) => {
                tracing::info!("restored {path} as {}", ok.script_id);
                Ok(())
            }
            // Started by someone else meanwhile: restored all the same.
            Err(StartError::AlreadyRunning { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn retry_restore(
        self: &Arc<Self>,
        path: String,
        params: Value,
        policy: Option<RestartPolicy>,
        first: StartError,
    ) {
        use supervise::permanent;
        if permanent(&first) {
            tracing::error!("could not restore {path}, giving up: {first}");
            let _ = self.running_set.remove(&path);
            return;
        }
        tracing::warn!("could not restore {path}, will retry: {first}");
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut wait = std::time::Duration::from_secs(5);
            loop {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(300));
                let Some(e) = engine.upgrade() else { return };
                if e.is_shutting_down() {
                    return;
                }
                // Stopped for good meanwhile (its record removed): nothing to restore.
                match e.running_set.all() {
                    Ok(all) if all.iter().any(|(p, _)| *p == path) => {}
                    _ => return,
                }
                match e.restore_one(&path, &params, &policy).await {
                    Ok(()) => return,
                    Err(err) if permanent(&err) => {
                        tracing::error!("could not restore {path}, giving up: {err}");
                        let _ = e.running_set.remove(&path);
                        return;
                    }
                    Err(err) => tracing::warn!("could not restore {path}, will retry: {err}"),
                }
            }
        });
    }

    /// Stops every worker but keeps the running set, so the next start of the
    /// runtime brings the same scripts back.
    pub async fn shutdown(self: &Arc<Self>) {
        self.shutting_down.store(true, Ordering::Release);
        self.drop_spare();
        let ids: Vec<String> = self.scripts().keys().cloned().collect();
        let stops = ids.iter().map(|id| self.stop(id));
        futures::future::join_all(stops).await;
    }
}
