use std::sync::Arc;
use std::time::Duration;
use vwed_base::sync::Locked;

use serde_json::Value;
use tokio::io::AsyncRead;
use tokio::sync::oneshot;
use vwed_ipc::{Boot, BootOutcome, Level, SandboxPolicy, Stream, SyntaxError, ToWorker};

use super::Engine;
use super::instance::{BootPhase, ExitInfo, Instance, State};
use super::sink::ScriptSink;
use super::supervise::{EndReason, Supervised, permanent};
use crate::supervision::RestartPolicy;
use crate::worker::WorkerConn;
use vwed_registry::{Counts, RegError};
use vwed_store::{FileRec, RunningRec, StoreError};

#[derive(Clone, Default)]
pub struct StartRequest {
    pub script_path: Option<String>,
    pub file_id: Option<u64>,
    pub start_params: Value,
    /// `None`: the configured default policy.
    pub restart_policy: Option<RestartPolicy>,
    /// An automatic restart continues this supervision (its restarts count on);
    /// any other start begins a new one.
    pub resume: Option<Arc<Supervised>>,
}

#[derive(Debug, Clone)]
pub struct StartOk {
    pub script_id: String,
    pub script_path: String,
    pub counts: Counts,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("脚本文件不存在: {0}")]
    NotFound(String),
    #[error("脚本 {script_path} 已在运行中，script_id: {script_id}")]
    AlreadyRunning {
        script_path: String,
        script_id: String,
    },
    #[error("脚本注册冲突: {0}")]
    Conflict(RegError),
    #[error("脚本缺少boot()入口函数")]
    NoBoot,
    #[error("脚本加载失败: {}", .0.message)]
    Syntax(SyntaxError),
    #[error("脚本启动失败: {message}")]
    BootFailed {
        script_id: String,
        message: String,
        traceback: String,
    },
    #[error("脚本启动超时: boot() 未在 {ms} ms 内完成")]
    BootTimeout { script_id: String, ms: u64 },
    #[error("脚本进程启动后异常退出 ({exit})")]
    WorkerDied {
        script_id: String,
        exit: String,
        output: String,
    },
    #[error("系统繁忙: 运行中的脚本已达上限 {0}")]
    Busy(usize),
    #[error("start_params 必须是 JSON 对象")]
    BadParams,
    #[error("{0}")]
    Store(StoreError),
    #[error("脚本进程无法启动: {0}")]
    Spawn(std::io::Error),
    #[error("脚本沙箱不完整, 按配置 (sandbox.required) 拒绝启动: {0}")]
    Sandbox(String),
    /// An automatic restart found the script stopped or started anew meanwhile.
    #[error("脚本已被停止或重新启动, 不再自动重启")]
    Superseded,
}

/// `<file_name>_<unix_ms>_<8 hex>`, as the seed's examples show.
fn new_script_id(file_name: &str) -> String {
    format!(
        "{file_name}_{}_{:08x}",
        vwed_base::clock::unix_ms(),
        rand::random::<u32>()
    )
}

/// A script's file as a start finds it, and the confinement of its project.
struct Source {
    script_path: String,
    file: FileRec,
    text: String,
    sandbox: SandboxPolicy,
}

/// `null` means no parameters; anything but an object is refused.
fn start_params(v: &Value) -> Result<Value, StartError> {
    match v {
        Value::Null => Ok(Value::Object(Default::default())),
        Value::Object(_) => Ok(v.clone()),
        _ => Err(StartError::BadParams),
    }
}

impl Engine {
    pub async fn start(self: &Arc<Self>, req: StartRequest) -> Result<StartOk, StartError> {
        let params = start_params(&req.start_params)?;
        let source = self.load_source(&req).await?;
        let inst = self.claim(&source, &params, &req)?;
        let result = self.boot(&inst, &source, &params).await;
        self.refill_spare();
        match result {
            Ok(counts) => {
                self.on_started(&inst, &params).await;
                Ok(StartOk {
                    script_id: inst.script_id.to_string(),
                    script_path: source.script_path,
                    counts,
                })
            }
            Err(e) => {
                inst.note(Level::Error, e.to_string());
                inst.kill();
                let exit = inst.wait_exit(Duration::from_secs(5)).await;
                if req.resume.is_some() && self.is_current(&inst.supervised) {
                    // An automatic restart that failed stays listed, crashed, and
                    // counts as another failure.
                    inst.set_state(State::Crashed(exit.unwrap_or(ExitInfo {
                        code: None,
                        signal: None,
                    })));
                    inst.set_end_reason(EndReason::StartFailed(e.to_string()));
                    self.after_failure(&inst, permanent(&e));
                } else {
                    self.end_supervision(&inst);
                    inst.set_state(State::Failed);
                    self.retire(&inst);
                }
                Err(e)
            }
        }
    }

    /// Finds the file by `script_path` or `file_id` and reads its source.
    async fn load_source(&self, req: &StartRequest) -> Result<Source, StartError> {
        let store = self.store.clone();
        let lookup = req.clone();
        let found = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let id = match (&lookup.script_path, lookup.file_id) {
                (Some(p), _) if !p.is_empty() => store.resolve_script_path(p)?.1.id,
                (_, Some(id)) => id,
                _ => {
                    return Err(StoreError::Invalid(
                        "缺少 script_path 或 file_id 参数".into(),
                    ));
                }
            };
            store.read_file(id)
        })
        .await
        .map_err(|e| StartError::Store(StoreError::Invalid(e.to_string())))?;
        let (project, file, text) = found.map_err(|e| match e {
            StoreError::FileNotFound(_) | StoreError::ProjectNotFound(_) | StoreError::Path(_) => {
                StartError::NotFound(
                    req.script_path
                        .clone()
                        .unwrap_or_else(|| req.file_id.map(|i| i.to_string()).unwrap_or_default()),
                )
            }
            other => StartError::Store(other),
        })?;
        if text.len() as u64 > self.cfg.engine.max_script_bytes {
            return Err(StartError::Store(StoreError::Invalid(format!(
                "脚本过大: {} 字节, 上限 {} 字节",
                text.len(),
                self.cfg.engine.max_script_bytes
            ))));
        }
        if let Some(why) = crate::confinement::machine().refusal(&project.project_name) {
            return Err(StartError::Sandbox(why));
        }
        let sandbox = crate::confinement::policy(&self.cfg, &project.project_name)
            .map_err(|e| StartError::Store(StoreError::Io(e)))?;
        Ok(Source {
            script_path: format!("{}/{}", project.project_name, file.file_path),
            file,
            text,
            sandbox,
        })
    }

    /// Claims the script path for a new instance before anything is spawned, so
    /// that two concurrent starts of one script cannot both win.
    fn claim(
        &self,
        source: &Source,
        params: &Value,
        req: &StartRequest,
    ) -> Result<Arc<Instance>, StartError> {
        let script_path = &source.script_path;
        let mut scripts = self.scripts();
        if let Some(existing) = scripts
            .values()
            .find(|i| i.script_path == *script_path && i.state().occupies_path())
        {
            return Err(StartError::AlreadyRunning {
                script_path: script_path.clone(),
                script_id: existing.script_id.to_string(),
            });
        }
        let live = scripts
            .values()
            .filter(|i| i.state().occupies_path())
            .count();
        if live >= self.cfg.engine.max_running_scripts {
            return Err(StartError::Busy(self.cfg.engine.max_running_scripts));
        }
        let supervised = self.supervise(script_path, params, req)?;
        // A crashed instance of the same script gives way to the new one; its
        // output stays queryable for a while.
        let crashed: Vec<Arc<Instance>> = scripts
            .values()
            .filter(|i| i.script_path == *script_path)
            .cloned()
            .collect();
        for old in crashed {
            scripts.remove(&*old.script_id);
            self.keep_ended(&old);
        }
        let file = &source.file;
        let inst = Arc::new(Instance::new(
            new_script_id(&file.file_name),
            file.id,
            file.file_name.clone(),
            crate::output::OutputRing::new(
                self.cfg.engine.output_lines,
                self.cfg.engine.output_max_bytes,
            ),
            &self.logs,
            supervised,
        ));
        scripts.insert(inst.script_id.to_string(), inst.clone());
        Ok(inst)
    }

    /// The supervision the new instance belongs to: the one an automatic restart
    /// continues (if still current), or a new one that replaces any before.
    fn supervise(
        &self,
        script_path: &str,
        params: &Value,
        req: &StartRequest,
    ) -> Result<Arc<Supervised>, StartError> {
        if let Some(sup) = &req.resume {
            if !self.is_current(sup) {
                return Err(StartError::Superseded);
            }
            return Ok(sup.clone());
        }
        let policy = req
            .restart_policy
            .clone()
            .unwrap_or_else(|| self.cfg.supervision.default_policy());
        let sup = Arc::new(Supervised::new(
            script_path.to_string(),
            policy,
            params.clone(),
        ));
        if let Some(old) = self
            .supervised()
            .insert(script_path.to_string(), sup.clone())
        {
            old.cancel();
        }
        Ok(sup)
    }

    /// Records a successful start: the running set (so that a restart brings it
    /// back), the heartbeat, the log and the `script_started` event.
    async fn on_started(self: &Arc<Self>, inst: &Arc<Instance>, params: &Value) {
        let rec = RunningRec {
            script_id: inst.script_id.to_string(),
            file_id: inst.file_id,
            start_params: params.to_string(),
            started_at: inst.started_at.clone(),
            restart_policy: Some(inst.supervised.policy.clone()),
        };
        let set = self.running_set.clone();
        let path = inst.script_path.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || set.put(&path, &rec)).await {
            tracing::error!("cannot record {} as running: {e}", inst.script_path);
        }
        inst.note(Level::Info, "脚本启动成功");
        self.safe_mode.started(&inst.script_path);
        tokio::spawn(super::watch::watch(Arc::downgrade(self), inst.clone()));
        inst.log.status("started", "脚本启动成功");
        self.emit_lifecycle(
            "script_started",
            inst,
            serde_json::json!({"started_at": inst.started_at}),
        );
    }

    /// `script_started`, `script_stopped`, `script_crashed`: which script, and
    /// the `details` of what happened.
    pub(super) fn emit_lifecycle(&self, event: &str, inst: &Instance, details: Value) {
        let mut data = serde_json::json!({
            "script_id": &*inst.script_id,
            "script_path": inst.script_path,
        });
        if let (Some(d), Value::Object(more)) = (data.as_object_mut(), details) {
            d.extend(more);
        }
        self.emit(event, &data);
    }

    /// Spawns the worker, runs `boot()` and commits its registrations.
    async fn boot(
        self: &Arc<Self>,
        inst: &Arc<Instance>,
        source: &Source,
        params: &Value,
    ) -> Result<Counts, StartError> {
        let (done_tx, done_rx) = oneshot::channel();
        *inst.boot.locked() = Some(BootPhase {
            staged: Vec::new(),
            conflict: None,
            done: Some(done_tx),
        });
        let conn = self.attach_worker(inst)?;
        let boot = ToWorker::Boot(Boot {
            script_id: inst.script_id.to_string(),
            script_path: inst.script_path.clone(),
            file_name: inst.file_name.clone(),
            source: source.text.clone(),
            start_params: params.to_string(),
            sandbox: source.sandbox.clone(),
            max_line_bytes: u32::try_from(self.cfg.engine.max_line_bytes).unwrap_or(u32::MAX),
        });
        conn.send(&boot).map_err(|_| self.died(inst))?;
        let outcome = self.boot_outcome(inst, done_rx).await;
        // Boot is over either way: registrations from now on are refused.
        let phase = inst.boot.locked().take();
        self.commit_boot(inst, outcome?, phase)
    }

    /// Gives the instance a worker: its connection, its output pipes and the task
    /// that watches the process.
    fn attach_worker(
        self: &Arc<Self>,
        inst: &Arc<Instance>,
    ) -> Result<Arc<WorkerConn>, StartError> {
        let mut spawned = self.take_worker().map_err(StartError::Spawn)?;
        inst.set_pid(spawned.pid);
        if let Some(dir) = spawned.cgroup.take() {
            inst.set_cgroup(dir);
        }
        let sink = Arc::new(ScriptSink::new(Arc::downgrade(self), inst.clone()));
        let conn = WorkerConn::start(spawned.stream, sink);
        inst.set_conn(conn.clone());
        let limit = self.cfg.engine.max_line_bytes;
        if let Some(out) = spawned.stdout.take() {
            tokio::spawn(pipe_lines(out, inst.clone(), Stream::Stdout, limit));
        }
        if let Some(err) = spawned.stderr.take() {
            tokio::spawn(pipe_lines(err, inst.clone(), Stream::Stderr, limit));
        }
        let (kill_tx, kill_rx) = oneshot::channel();
        *inst.kill.locked() = Some(kill_tx);
        tokio::spawn(watch_process(
            Arc::downgrade(self),
            inst.clone(),
            spawned.child,
            kill_rx,
        ));
        Ok(conn)
    }

    /// Waits for the worker to report how `boot()` went, for it to exit, or for
    /// the boot timeout.
    async fn boot_outcome(
        &self,
        inst: &Arc<Instance>,
        done: oneshot::Receiver<BootOutcome>,
    ) -> Result<BootOutcome, StartError> {
        let timeout = Duration::from_millis(self.cfg.engine.boot_timeout_ms);
        let mut exited = inst.exited.subscribe();
        let outcome = tokio::select! {
            o = done => o.ok(),
            _ = exited.wait_for(|e| e.is_some()) => None,
            _ = tokio::time::sleep(timeout) => {
                return Err(StartError::BootTimeout {
                    script_id: inst.script_id.to_string(),
                    ms: self.cfg.engine.boot_timeout_ms,
                });
            }
        };
        match outcome {
            Some(o) => Ok(o),
            None => {
                // Give the exit watcher a moment so the error can name the exit status.
                inst.wait_exit(Duration::from_millis(500)).await;
                Err(self.died(inst))
            }
        }
    }

    /// Commits what `boot()` staged, unless boot failed or a registration clashed.
    fn commit_boot(
        &self,
        inst: &Arc<Instance>,
        outcome: BootOutcome,
        phase: Option<BootPhase>,
    ) -> Result<Counts, StartError> {
        let (staged, conflict) = phase.map_or((Vec::new(), None), |p| (p.staged, p.conflict));
        // A registration that clashed with another script's is why the start failed,
        // even when the clash reached boot() as an exception it did not catch.
        if let Some(c) = conflict {
            return Err(StartError::Conflict(c));
        }
        if let Some(why) = self.sandbox_shortfall(inst) {
            return Err(StartError::Sandbox(why));
        }
        match outcome {
            BootOutcome::Ok => {}
            BootOutcome::NoBoot => return Err(StartError::NoBoot),
            BootOutcome::Syntax(s) => return Err(StartError::Syntax(s)),
            BootOutcome::Failed { message, traceback } => {
                return Err(StartError::BootFailed {
                    script_id: inst.script_id.to_string(),
                    message,
                    traceback,
                });
            }
        }
        self.registry.commit(staged).map_err(StartError::Conflict)?;
        if !inst.transition(State::Starting, State::Running) {
            // Died between boot and commit: take back what was just committed.
            self.registry.remove_script(&inst.script_id);
            return Err(self.died(inst));
        }
        Ok(self.registry.counts(&inst.script_id))
    }

    /// With `sandbox.required`, what the worker reported it could not put in force.
    fn sandbox_shortfall(&self, inst: &Instance) -> Option<String> {
        let missing = &inst.sandbox.get()?.missing;
        (self.cfg.sandbox.required && !missing.is_empty()).then(|| missing.join("; "))
    }

    fn died(&self, inst: &Instance) -> StartError {
        StartError::WorkerDied {
            script_id: inst.script_id.to_string(),
            exit: inst
                .exit_info()
                .map_or_else(|| "未知原因".to_string(), |e| e.to_string()),
            output: inst.output_text(50),
        }
    }

    /// Called by the process watcher when a worker has exited. A worker that
    /// ended while running failed: why is noted, and its policy decides.
    fn on_exit(self: &Arc<Self>, inst: &Arc<Instance>, exit: ExitInfo) {
        let before = inst.state();
        if before == State::Running {
            inst.set_state(State::Crashed(exit));
            inst.set_end_reason(EndReason::Exited(exit));
            let reason = inst.end_reason().unwrap_or(EndReason::Exited(exit));
            let counts = self.registry.remove_script(&inst.script_id);
            inst.note(
                Level::Error,
                format!(
                    "{reason}, 已清理 {} 个接口、{} 个函数、{} 个事件监听器、{} 个定时任务",
                    counts.apis, counts.functions, counts.events, counts.timers
                ),
            );
            tracing::warn!("script {} ended: {reason}", inst.script_id);
            inst.log.status("crashed", &reason.to_string());
            self.emit_lifecycle(
                "script_crashed",
                inst,
                serde_json::json!({
                    "exit_code": exit.code,
                    "signal": exit.signal,
                    "reason": reason.kind(),
                }),
            );
            self.after_failure(inst, false);
        }
        let _ = inst.exited.send(Some(exit));
    }
}

async fn watch_process(
    engine: std::sync::Weak<Engine>,
    inst: Arc<Instance>,
    mut child: tokio::process::Child,
    kill_rx: oneshot::Receiver<()>,
) {
    // The worker leads its own process group (see spawn): its pid is the group id.
    let group = child.id();
    let status = tokio::select! {
        s = child.wait() => s,
        _ = kill_rx => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    // Whatever the script started (subprocess, os.system("... &")) ends with it.
    // While such a process lives it pins the group id, so the id cannot be reused.
    if let Some(pgid) = group.and_then(|g| libc::pid_t::try_from(g).ok()) {
        // SAFETY: kill(2) on the script's own process group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let exit = match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            ExitInfo {
                code: s.code(),
                signal: s.signal(),
            }
        }
        Err(_) => ExitInfo {
            code: None,
            signal: None,
        },
    };
    // Killed by the kernel at its cgroup's memory.max: say so rather than "signal 9".
    if let Some(dir) = inst.cgroup()
        && crate::confinement::cgroup::oom_kills(dir) > 0
    {
        inst.set_end_reason(EndReason::Memory {
            limit_bytes: crate::confinement::machine().memory_bytes.unwrap_or(0),
        });
    }
    match engine.upgrade() {
        Some(e) => e.on_exit(&inst, exit),
        None => {
            let _ = inst.exited.send(Some(exit));
        }
    }
}

/// Output written straight to the worker's fd 1/2 (interpreter fatal errors, C
/// extensions) is kept with the script's output too, in lines of at most `limit`
/// (`max_line_bytes`).
async fn pipe_lines(r: impl AsyncRead + Unpin, inst: Arc<Instance>, stream: Stream, limit: usize) {
    let (level, stream) = stream.logged_as();
    vwed_base::pipe::read_lines(r, limit, |text| {
        inst.log.script_line(level, stream, text.clone(), None);
        inst.output.locked().push(level, stream, text, None);
    })
    .await;
}
