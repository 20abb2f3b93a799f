//! Jobs (seed 002, the orchestration service): one-shot Python and Bash scripts
//! that run to completion, started by hand, by the API, by cron or by an event,
//! with a timeout, retries, a recorded history, cancel, versions, templates and
//! statistics. "Jobs", to keep them apart from the service scripts whose `boot()`
//! registers routes; the API calls them scripts, as the seed does
//! (`/api/v1/scripts`, see `api/jobs.rs`).
//!
//! - `model` the records, `store` their redb tables, `spec` checks on input,
//!   `view` their JSON.
//! - `scheduler` the bounded queue and the concurrency limit; `run` one
//!   execution's attempts, retries and recovery after a restart; `python` and
//!   `bash` one attempt; `process` its process group, timeout and cancel;
//!   `capture` its bounded output; `orphans` what a crash left running.
//! - `triggers` cron (time zone, missed runs) and events (filters); `danger`
//!   dangerous Bash commands; `templates`, `diff`, `stats`.
//!
//! Sandbox: a Python job's worker is spawned like a service script's
//! (`Engine::fresh_worker`) and confines itself when the `Job` arrives, with the
//! job's work dir as its one writable folder. A Bash job's process confines
//! itself before it execs bash, with a profile that lets it start programs
//! (`bash.rs`, `vwed_sandbox::shell`). Both report what held; each attempt records it.

mod attempt;
mod bash;
mod capture;
mod danger;
mod diff;
mod execs;
mod model;
mod ops;
mod orphans;
mod process;
mod python;
mod run;
mod scheduler;
mod settings;
mod spec;
mod stats;
mod store;
mod templates;
mod triggers;
mod view;

use std::sync::{Arc, Weak};

pub use danger::Finding;
pub use model::{ExecStatus, JobRec, JobStatus, Language, TemplateSpec, TriggerKind};
pub use ops::{JobInput, ToJob};
pub use settings::JobSettings;
pub use store::{ExecFilter, JobStoreError};
pub use triggers::TriggerTap;
pub use view::{
    exec as view_exec, job as view_job, template as view_template, version as view_version,
};

use model::{ExecDetail, ExecRec};
use scheduler::Scheduler;
use store::JobStore;
use triggers::TriggerSet;

use vwed_engine::Engine;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("脚本 {0} 不存在")]
    NotFound(u64),
    #[error("执行记录 {0} 不存在")]
    ExecNotFound(String),
    #[error("模板 {0} 不存在")]
    TemplateNotFound(u64),
    #[error("脚本 {job} 没有版本 {version}")]
    VersionNotFound { job: u64, version: u64 },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("脚本含有 {} 处危险命令, 须由工程师确认 (acknowledge) 后才能激活或执行", .0.len())]
    Dangerous(Vec<Finding>),
    #[error("执行队列已满 ({len} 个执行在等待), 本次执行 {execution_id} 已记录为失败")]
    QueueFull { execution_id: String, len: usize },
    #[error("作业服务正在停止")]
    Stopping,
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] JobStoreError),
}

pub struct Jobs {
    engine: Weak<Engine>,
    settings: JobSettings,
    /// The engine's configuration (line and output bounds, data dir, sandbox),
    /// which a job's run shares with scripts.
    engine_cfg: Arc<vwed_engine::EngineConfig>,
    store: JobStore,
    sched: Scheduler,
    triggers: TriggerSet,
    /// One definition change at a time: names stay unique, versions in order.
    edits: tokio::sync::Mutex<()>,
}

impl Jobs {
    /// Opens the tables and ships the built-in templates on a new data dir.
    pub fn open(engine: &Arc<Engine>, settings: JobSettings) -> Result<Arc<Jobs>, JobStoreError> {
        let store = JobStore::open(engine.store.db().clone())?;
        if !store.templates()?.iter().any(|t| t.builtin) {
            for t in templates::builtins() {
                store.put_template(t)?;
            }
        }
        Ok(Arc::new(Jobs {
            engine: Arc::downgrade(engine),
            settings,
            engine_cfg: engine.cfg.clone(),
            store,
            sched: Scheduler::default(),
            triggers: TriggerSet::default(),
            edits: tokio::sync::Mutex::new(()),
        }))
    }

    /// Takes up what the last run of the runtime left (interrupted and queued
    /// executions), arms the triggers of active jobs, and keeps the queue moving
    /// while service scripts hold the shared worker budget.
    pub async fn start(self: &Arc<Self>) {
        let queued = self.recover().await;
        let _ = std::fs::remove_dir_all(self.engine_cfg.data_dir.join("jobs").join("work"));
        match self.blocking(|s| s.jobs()).await {
            Ok(all) => {
                for rec in &all {
                    self.triggers.arm(self, rec, false);
                }
            }
            Err(e) => tracing::error!("cannot read jobs to arm their triggers: {e}"),
        }
        if queued > 0 {
            tracing::info!("{queued} job executions queued again after restart");
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
            loop {
                tick.tick().await;
                let Some(j) = me.upgrade() else { return };
                if j.sched.has_queued() {
                    j.pump();
                }
            }
        });
    }

    /// Ends running executions (recorded as interrupted, so that the next start
    /// retries them if their policy says so); queued ones stay queued on disk.
    pub async fn shutdown(&self) {
        self.triggers.disarm_all();
        if self.sched.stop() == 0 {
            return;
        }
        let limit = std::time::Duration::from_millis(self.settings.job_kill_grace_ms + 5_000);
        let t0 = std::time::Instant::now();
        while self.sched.running() > 0 && t0.elapsed() < limit {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Runs store work off the executor threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&JobStore) -> Result<T, JobStoreError> + Send + 'static,
    ) -> Result<T, JobError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => r.map_err(JobError::from),
            Err(e) => Err(JobError::Unavailable(e.to_string())),
        }
    }

    /// Stores an execution's record (and detail); a failure is logged, as the run
    /// itself goes on.
    async fn save(&self, exec: &ExecRec, detail: Option<&ExecDetail>) {
        let (e, d) = (exec.clone(), detail.cloned());
        if let Err(err) = self.blocking(move |s| s.put_exec(&e, d.as_ref())).await {
            tracing::error!("cannot record job execution {}: {err}", exec.id);
        }
    }

    async fn is_finished(&self, id: &str) -> bool {
        let id = id.to_string();
        self.blocking(move |s| s.exec(&id))
            .await
            .ok()
            .flatten()
            .is_none_or(|e| e.status.is_final())
    }

    async fn cron_mark(&self, job: u64) -> Option<u64> {
        self.blocking(move |s| s.cron_mark(job))
            .await
            .ok()
            .flatten()
    }

    async fn set_cron_mark(&self, job: u64, ms: u64) {
        if let Err(e) = self.blocking(move |s| s.set_cron_mark(job, ms)).await {
            tracing::error!("cannot record the cron time of job {job}: {e}");
        }
    }
}
