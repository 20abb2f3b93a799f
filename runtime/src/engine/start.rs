use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::oneshot;
use vwed_ipc::{Boot, BootOutcome, Level, SandboxPolicy, SyntaxError, ToWorker};

use super::Engine;
use super::instance::{BootPhase, ExitInfo, Instance, State};
use super::sink::ScriptSink;
use crate::registry::{Counts, RegError};
use crate::store::{RunningRec, StoreError};
use crate::worker::WorkerConn;

#[derive(Debug, Clone)]
pub struct StartRequest {
    pub script_path: Option<String>,
    pub file_id: Option<u64>,
    pub start_params: Value,
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
}

/// `<file_name>_<unix_ms>_<8 hex>`, as the seed's examples show.
fn new_script_id(file_name: &str) -> String {
    format!(
        "{file_name}_{}_{:08x}",
        crate::clock::unix_ms(),
        rand::random::<u32>()
    )
}

impl Engine {
    pub async fn start(self: &Arc<Self>, req: StartRequest) -> Result<StartOk, StartError> {
        let params = match req.start_params.clone() {
            Value::Null => Value::Object(Default::default()),
            v @ Value::Object(_) => v,
            _ => return Err(StartError::BadParams),
        };
        let store = self.store.clone();
        let lookup = req.clone();
        let found = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let (project, file) = match (&lookup.script_path, lookup.file_id) {
                (Some(p), _) if !p.is_empty() => store.resolve_script_path(p)?,
                (_, Some(id)) => {
                    let f = store.get_file(id)?;
                    (store.get_project(f.project_id)?, f)
                }
                _ => {
                    return Err(StoreError::Invalid(
                        "缺少 script_path 或 file_id 参数".into(),
                    ));
                }
            };
            let (_, _, source) = store.read_file(file.id)?;
            Ok((project, file, source))
        })
        .await
        .map_err(|e| StartError::Store(StoreError::Invalid(e.to_string())))?;
        let (project, file, source) = found.map_err(|e| match e {
            StoreError::FileNotFound(_) | StoreError::ProjectNotFound(_) | StoreError::Path(_) => {
                StartError::NotFound(
                    req.script_path
                        .clone()
                        .unwrap_or_else(|| req.file_id.map(|i| i.to_string()).unwrap_or_default()),
                )
            }
            other => StartError::Store(other),
        })?;
        if source.len() as u64 > self.cfg.max_script_bytes {
            return Err(StartError::Store(StoreError::Invalid(format!(
                "脚本过大: {} 字节, 上限 {} 字节",
                source.len(),
                self.cfg.max_script_bytes
            ))));
        }
        let script_path = format!("{}/{}", project.project_name, file.file_path);
        if let Some(why) = crate::sandbox::host().refusal(&project.project_name) {
            return Err(StartError::Sandbox(why));
        }
        let sandbox = crate::sandbox::policy(&self.cfg, &project.project_name)
            .map_err(|e| StartError::Store(StoreError::Io(e)))?;

        // Claim the path before spawning, so two concurrent starts cannot both win.
        let inst = {
            let mut scripts = self.scripts();
            if let Some(existing) = scripts
                .values()
                .find(|i| i.script_path == script_path && i.state().occupies_path())
            {
                return Err(StartError::AlreadyRunning {
                    script_path,
                    script_id: existing.script_id.to_string(),
                });
            }
            let live = scripts
                .values()
                .filter(|i| i.state().occupies_path())
                .count();
            if live >= self.cfg.max_running_scripts {
                return Err(StartError::Busy(self.cfg.max_running_scripts));
            }
            // A crashed instance of the same script gives way to the new one.
            let crashed: Vec<String> = scripts
                .values()
                .filter(|i| i.script_path == script_path)
                .map(|i| i.script_id.to_string())
                .collect();
            for id in crashed {
                scripts.remove(&id);
            }
            let inst = Arc::new(Instance::new(
                new_script_id(&file.file_name),
                script_path.clone(),
                file.id,
                file.file_name.clone(),
                params.clone(),
                self.cfg.output_lines,
                &self.logs,
            ));
            scripts.insert(inst.script_id.to_string(), inst.clone());
            inst
        };

        let result = self.boot(&inst, &source, &params, sandbox).await;
        self.refill_spare();
        match result {
            Ok(counts) => {
                let rec = RunningRec {
                    script_id: inst.script_id.to_string(),
                    file_id: file.id,
                    start_params: params.to_string(),
                    started_at: inst.started_at.clone(),
                };
                let set = self.running_set.clone();
                let path = script_path.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || set.put(&path, &rec)).await
                {
                    tracing::error!("cannot record {script_path} as running: {e}");
                }
                inst.note(Level::Info, "脚本启动成功");
                tokio::spawn(heartbeat(inst.clone()));
                self.logs.status(&inst.script_id, "started", "脚本启动成功");
                self.emit(
                    "script_started",
                    &serde_json::json!({
                        "script_id": &*inst.script_id,
                        "script_path": inst.script_path,
                        "started_at": inst.started_at,
                    }),
                );
                Ok(StartOk {
                    script_id: inst.script_id.to_string(),
                    script_path,
                    counts,
                })
            }
            Err(e) => {
                inst.note(Level::Error, e.to_string());
                inst.kill();
                inst.wait_exit(Duration::from_secs(5)).await;
                self.retire(&inst);
                Err(e)
            }
        }
    }

    /// Spawns the worker, runs `boot()` and commits its registrations.
    async fn boot(
        self: &Arc<Self>,
        inst: &Arc<Instance>,
        source: &str,
        params: &Value,
        sandbox: SandboxPolicy,
    ) -> Result<Counts, StartError> {
        let (done_tx, done_rx) = oneshot::channel();
        *inst.boot.lock().unwrap_or_else(|p| p.into_inner()) = Some(BootPhase {
            staged: Vec::new(),
            conflict: None,
            done: Some(done_tx),
        });
        let mut spawned = self.take_worker().map_err(StartError::Spawn)?;
        inst.set_pid(spawned.pid);
        let sink = Arc::new(ScriptSink::new(Arc::downgrade(self), inst.clone()));
        let conn = WorkerConn::start(spawned.stream, sink);
        inst.set_conn(conn.clone());
        if let Some(out) = spawned.stdout.take() {
            tokio::spawn(pipe_lines(out, inst.clone(), "stdout", Level::Info));
        }
        if let Some(err) = spawned.stderr.take() {
            tokio::spawn(pipe_lines(err, inst.clone(), "stderr", Level::Error));
        }
        let (kill_tx, kill_rx) = oneshot::channel();
        *inst.kill.lock().unwrap_or_else(|p| p.into_inner()) = Some(kill_tx);
        tokio::spawn(watch_process(
            Arc::downgrade(self),
            inst.clone(),
            spawned.child,
            kill_rx,
        ));

        let boot = ToWorker::Boot(Boot {
            script_id: inst.script_id.to_string(),
            script_path: inst.script_path.clone(),
            file_name: inst.file_name.clone(),
            source: source.to_string(),
            start_params: params.to_string(),
            sandbox,
        });
        conn.send(&boot).map_err(|_| self.died(inst))?;

        let timeout = Duration::from_millis(self.cfg.boot_timeout_ms);
        let mut exited = inst.exited.subscribe();
        let outcome = tokio::select! {
            o = done_rx => o.ok(),
            _ = exited.wait_for(|e| e.is_some()) => None,
            _ = tokio::time::sleep(timeout) => {
                return Err(StartError::BootTimeout {
                    script_id: inst.script_id.to_string(),
                    ms: self.cfg.boot_timeout_ms,
                });
            }
        };
        let mut phase = inst.boot.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(outcome) = outcome else {
            // Give the exit watcher a moment so the error can name the exit status.
            inst.wait_exit(Duration::from_millis(500)).await;
            return Err(self.died(inst));
        };
        // A registration that clashed with another script's is why the start failed,
        // even when the clash reached boot() as an exception it did not catch.
        if let Some(c) = phase.as_mut().and_then(|p| p.conflict.take()) {
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
        let phase = phase.unwrap_or(BootPhase {
            staged: Vec::new(),
            conflict: None,
            done: None,
        });
        if let Some(c) = phase.conflict {
            return Err(StartError::Conflict(c));
        }
        self.registry
            .commit(phase.staged)
            .map_err(StartError::Conflict)?;
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

    /// Called by the process watcher when a worker has exited.
    fn on_exit(&self, inst: &Arc<Instance>, exit: ExitInfo) {
        let before = inst.state();
        if before == State::Running {
            inst.set_state(State::Crashed(exit));
            let counts = self.registry.remove_script(&inst.script_id);
            inst.note(
                Level::Error,
                format!(
                    "脚本进程异常退出 ({exit}), 已清理 {} 个接口、{} 个函数、{} 个事件监听器、{} 个定时任务",
                    counts.apis, counts.functions, counts.events, counts.timers
                ),
            );
            tracing::warn!("script {} crashed: {exit}", inst.script_id);
            self.logs.status(
                &inst.script_id,
                "crashed",
                &format!("脚本进程异常退出 ({exit})"),
            );
            self.emit(
                "script_crashed",
                &serde_json::json!({
                    "script_id": &*inst.script_id,
                    "script_path": inst.script_path,
                    "exit_code": exit.code,
                    "signal": exit.signal,
                }),
            );
            if !self.is_shutting_down() {
                let set = self.running_set.clone();
                let path = inst.script_path.clone();
                tokio::task::spawn_blocking(move || set.remove(&path));
            }
        }
        let _ = inst.exited.send(Some(exit));
    }
}

/// How often a running worker is asked whether its loop is free.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Keeps the heartbeat of an idle, healthy script fresh; a script stuck in a
/// handler does not answer, and its heartbeat shows how long it has been stuck.
async fn heartbeat(inst: Arc<Instance>) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        if inst.state() != State::Running {
            return;
        }
        let Some(conn) = inst.conn() else { return };
        let req = conn.next_req();
        let _ = conn.request(req, &ToWorker::Ping { req }, HEARTBEAT).await;
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
    match engine.upgrade() {
        Some(e) => e.on_exit(&inst, exit),
        None => {
            let _ = inst.exited.send(Some(exit));
        }
    }
}

/// Output written straight to the worker's fd 1/2 (interpreter fatal errors, C
/// extensions) is kept with the script's output too. A line is held only up to
/// [`crate::output::MAX_LINE_BYTES`]: the rest is counted and dropped as it comes.
async fn pipe_lines(
    r: impl AsyncRead + Unpin,
    inst: Arc<Instance>,
    stream: &'static str,
    level: Level,
) {
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    let mut dropped = 0usize;
    loop {
        let (taken, complete) = match r.fill_buf().await {
            Ok(buf) if !buf.is_empty() => {
                let end = buf.iter().position(|&b| b == b'\n');
                let part = &buf[..end.unwrap_or(buf.len())];
                let room = crate::output::MAX_LINE_BYTES.saturating_sub(line.len());
                line.extend_from_slice(&part[..part.len().min(room)]);
                dropped += part.len().saturating_sub(room);
                (end.map_or(buf.len(), |e| e + 1), end.is_some())
            }
            _ => (0, true),
        };
        r.consume(taken);
        if complete && (taken > 0 || !line.is_empty()) {
            let text = crate::output::clip(&String::from_utf8_lossy(&line), dropped);
            inst.log.script_line(level, stream, text.clone(), None);
            inst.output
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(level, stream, text, None);
            line.clear();
            dropped = 0;
        }
        if taken == 0 {
            return;
        }
    }
}
