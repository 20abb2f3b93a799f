//! One execution's attempts: start one when the scheduler says so, record it,
//! run it (Python or Bash), record how it ended, and retry after a backoff if the
//! policy says so. Also what a restart finds: executions that were running are
//! `interrupted` (and retried if their policy says so), queued ones queue again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use vwed_ipc::Level;

use super::attempt::AttemptRun;
use super::capture::Capture;
use super::model::{Attempt, ExecDetail, ExecRec, ExecStatus, JobSpec, Language};
use super::process::Outcome;
use super::scheduler::SHUTDOWN;
use super::{Jobs, bash, python, spec};
use vwed_base::fsio::Dir;
use vwed_logs::ScriptLogger;

/// `PATH` of a job: the system's, never the supervisor's.
const JOB_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The whole environment of a job: nothing of the supervisor's but the locale and
/// time zone; the execution's identity, its parameters, and `environment_vars`.
fn job_env(exec: &ExecRec, spec: &JobSpec, work_dir: &std::path::Path) -> Vec<(String, String)> {
    let dir = work_dir.display().to_string();
    let mut env = vec![
        ("PATH".to_string(), JOB_PATH.to_string()),
        ("HOME".to_string(), dir.clone()),
        ("TMPDIR".to_string(), dir.clone()),
        (
            "LANG".to_string(),
            std::env::var("LANG").unwrap_or_else(|_| "C.UTF-8".to_string()),
        ),
        ("VWED_EXECUTION_ID".to_string(), exec.id.clone()),
        ("VWED_JOB_ID".to_string(), exec.job_id.to_string()),
        ("VWED_JOB_NAME".to_string(), spec.name.clone()),
        (
            "VWED_ATTEMPT".to_string(),
            (exec.attempts.len()).to_string(),
        ),
        (
            "VWED_TRIGGER".to_string(),
            exec.trigger.kind.as_str().to_string(),
        ),
        ("VWED_PARAMS".to_string(), exec.params.to_string()),
        ("VWED_WORK_DIR".to_string(), dir.clone()),
        ("VWED_RESULT".to_string(), format!("{dir}/result")),
    ];
    if let Ok(tz) = std::env::var("TZ") {
        env.push(("TZ".to_string(), tz));
    }
    if spec.language == Language::Bash
        && let Value::Object(params) = &exec.params
    {
        for (k, v) in params {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            env.push((spec::param_env_name(k), text));
        }
    }
    env.extend(exec.env.iter().cloned());
    env
}

impl Jobs {
    /// Starts whatever may start now. Called after every change of the queue or
    /// of the running set, and on a tick while service scripts hold the budget.
    pub(super) fn pump(self: &Arc<Self>) {
        let Some(engine) = self.engine.upgrade() else {
            return;
        };
        let services = engine
            .instances()
            .iter()
            .filter(|i| i.state().occupies_path())
            .count();
        let ready = self.sched.take_ready(
            self.settings.job_max_concurrent.max(1),
            services,
            self.engine_cfg.engine.max_running_scripts,
        );
        for (id, cancel) in ready {
            let jobs = self.clone();
            tokio::spawn(async move {
                jobs.attempt(&id, cancel).await;
                jobs.sched.done(&id);
                jobs.pump();
            });
        }
    }

    /// Runs the next attempt of execution `id` and records how it went.
    async fn attempt(self: &Arc<Self>, id: &str, cancel: watch::Receiver<Option<String>>) {
        let Some(engine) = self.engine.upgrade() else {
            return;
        };
        let loaded = self.load_for_run(id).await;
        let (mut exec, spec, detail) = match loaded {
            Ok(Some(x)) => x,
            Ok(None) => return,
            Err(message) => {
                self.fail_unrunnable(id, message).await;
                return;
            }
        };
        let n = exec.attempts.len() as u32 + 1;
        let capture = Arc::new(Capture::new(
            self.settings.job_output_bytes as usize,
            &detail.output,
            detail.output_cut_bytes,
        ));
        if n > 1 {
            capture.push(&format!("—— 第 {n} 次尝试 ——"));
        }
        self.sched.set_capture(id, capture.clone());
        let now = vwed_base::clock::unix_ms();
        exec.status = ExecStatus::Running;
        exec.started_ms.get_or_insert(now);
        exec.next_attempt_ms = None;
        exec.attempts.push(Attempt {
            number: n,
            status: ExecStatus::Running,
            started_ms: now,
            finished_ms: None,
            exit_code: None,
            signal: None,
            exception: None,
            error: None,
            sandbox: None,
        });
        self.save(&exec, None).await;
        let log = engine
            .logs
            .script(&exec.id, &super::model::job_path(exec.job_id));
        log.system(Level::Info, format!("作业 {} 第 {n} 次尝试开始", spec.name));
        self.publish(&exec);
        let made = self.make_work_dir(&exec.id, spec.language);
        let (outcome, asked) = match &made {
            Ok(work_dir) => {
                let mut run = AttemptRun {
                    env: job_env(&exec, &spec, work_dir),
                    engine,
                    exec: exec.clone(),
                    timeout: Duration::from_secs_f64(spec.timeout.max(0.1)),
                    spec,
                    work_dir: work_dir.clone(),
                    capture: capture.clone(),
                    log: log.clone(),
                    cancel,
                    grace: Duration::from_millis(self.settings.job_kill_grace_ms),
                    bash: self.settings.job_bash_path.clone(),
                };
                let outcome = match run.spec.language {
                    Language::Python => python::run(&mut run).await,
                    Language::Bash => bash::run(&mut run).await,
                };
                let asked = run.cancel.borrow().clone();
                (outcome, asked)
            }
            Err(e) => (Outcome::failed(e.clone()), None),
        };
        if let Ok(dir) = &made {
            let _ = std::fs::remove_dir_all(dir);
        }
        self.finish_attempt(exec, outcome, asked, &capture, &log)
            .await;
    }

    /// The execution, the version it runs and its output so far; `None` when
    /// there is nothing to run (gone, or already over).
    async fn load_for_run(
        &self,
        id: &str,
    ) -> Result<Option<(ExecRec, JobSpec, ExecDetail)>, String> {
        let store = self.store.clone();
        let id = id.to_string();
        let found = tokio::task::spawn_blocking(move || {
            let Some(exec) = store.exec(&id)? else {
                return Ok(None);
            };
            let version = store.version(exec.job_id, exec.version)?;
            let detail = store.detail(&id)?.unwrap_or_default();
            Ok(Some((exec, version, detail)))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e: super::store::JobStoreError| e.to_string())?;
        match found {
            None => Ok(None),
            Some((exec, _, _)) if exec.status.is_final() => Ok(None),
            Some((exec, None, _)) => Err(format!(
                "作业 {} 的版本 {} 已不存在",
                exec.job_id, exec.version
            )),
            Some((exec, Some(v), detail)) => Ok(Some((exec, v.spec, detail))),
        }
    }

    async fn fail_unrunnable(&self, id: &str, message: String) {
        let store = self.store.clone();
        let id = id.to_string();
        let rec = tokio::task::spawn_blocking(move || store.exec(&id).ok().flatten())
            .await
            .ok()
            .flatten();
        if let Some(mut exec) = rec {
            exec.status = ExecStatus::Failed;
            exec.error = Some(message);
            exec.finished_ms = Some(vwed_base::clock::unix_ms());
            self.save(&exec, None).await;
            self.publish(&exec);
        }
    }

    /// Records the attempt; retries after the backoff, or ends the execution.
    async fn finish_attempt(
        self: &Arc<Self>,
        mut exec: ExecRec,
        mut outcome: Outcome,
        cancelled_by: Option<String>,
        capture: &Capture,
        log: &ScriptLogger,
    ) {
        let now = vwed_base::clock::unix_ms();
        let cancelled = outcome.status == ExecStatus::Cancelled;
        let shutdown = cancelled && cancelled_by.as_deref() == Some(SHUTDOWN);
        if shutdown {
            outcome.status = ExecStatus::Interrupted;
            outcome.error = Some("运行时停止, 尝试被中断".to_string());
        } else if cancelled {
            exec.cancelled_by = cancelled_by;
        }
        if let Some(a) = exec.attempts.last_mut() {
            a.status = outcome.status;
            a.finished_ms = Some(now);
            a.exit_code = outcome.exit_code;
            a.signal = outcome.signal;
            a.exception = outcome.exception.clone();
            a.error = outcome.error.clone();
            a.sandbox = outcome.sandbox.take();
        }
        let retry = self.retry_wait(&exec, outcome.status).await;
        let (output, cut) = capture.snapshot();
        let detail = ExecDetail {
            output,
            output_cut_bytes: cut,
            result: outcome.result.clone(),
            traceback: outcome.traceback.clone(),
        };
        match retry {
            Some(wait) => {
                exec.status = ExecStatus::Queued;
                exec.next_attempt_ms = Some(now + wait);
            }
            None => {
                exec.status = outcome.status;
                exec.finished_ms = Some(now);
            }
        }
        self.save(&exec, Some(&detail)).await;
        let said = match retry {
            Some(wait) => format!(
                "第 {} 次尝试{}, {} 毫秒后重试",
                exec.attempts.len(),
                outcome.status.as_str(),
                wait
            ),
            None => format!("作业结束: {}", exec.status.as_str()),
        };
        let level = if exec.status == ExecStatus::Succeeded {
            Level::Info
        } else {
            Level::Warning
        };
        log.system(level, said);
        self.publish(&exec);
        if let Some(wait) = retry
            && !shutdown
        {
            self.retry_after(exec.id.clone(), wait);
        }
    }

    /// The wait before the next attempt, if the policy gives one after `status`.
    async fn retry_wait(&self, exec: &ExecRec, status: ExecStatus) -> Option<u64> {
        let store = self.store.clone();
        let (job, version) = (exec.job_id, exec.version);
        let policy = tokio::task::spawn_blocking(move || store.version(job, version))
            .await
            .ok()?
            .ok()??
            .spec
            .retry_policy;
        let retriable = match status {
            ExecStatus::Failed => true,
            ExecStatus::Timeout => policy.retry_on_timeout,
            ExecStatus::Interrupted => policy.retry_on_interrupt,
            _ => false,
        };
        let made = exec.attempts.len() as u32;
        (retriable && made < exec.max_attempts).then(|| policy.backoff_ms(made))
    }

    pub(super) fn retry_after(self: &Arc<Self>, id: String, wait_ms: u64) {
        let jobs = Arc::downgrade(self);
        let key = id.clone();
        let wait = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            if let Some(j) = jobs.upgrade() {
                j.sched.readmit(&id, true);
                j.pump();
            }
        });
        self.sched.hold_backoff(&key, wait.abort_handle());
    }

    /// The attempt's own folder, made: `<data-dir>/jobs/work/<id>`, or for a
    /// Bash job one its user can reach (`sandbox::shell::work_root`); reached
    /// without following a link, so that a link planted by that name cannot send
    /// the job's files elsewhere. Canonical: the sandbox names the folder a job
    /// may write by its real path.
    fn make_work_dir(&self, id: &str, language: Language) -> Result<PathBuf, String> {
        let made = || -> Result<PathBuf, String> {
            let err = |e: &dyn std::fmt::Display| e.to_string();
            // `<data-dir>/jobs/work`, made: every Python job's root, and a Bash
            // job's unless it runs as a user of its own.
            let data = Dir::open(&self.engine_cfg.data_dir).map_err(|e| err(&e))?;
            data.walk(["jobs", "work"], true).map_err(|e| err(&e))?;
            let root = match language {
                Language::Python => self.engine_cfg.data_dir.join("jobs").join("work"),
                Language::Bash => {
                    vwed_sandbox::job::work_root(&self.engine_cfg.data_dir).map_err(|e| err(&e))?
                }
            };
            let root = std::fs::canonicalize(root).map_err(|e| err(&e))?;
            let dir = Dir::open(&root).map_err(|e| err(&e))?;
            dir.child(id, true).map_err(|e| err(&e))?;
            Ok(root.join(id))
        };
        made().map_err(|e| format!("无法创建工作目录 ({id}): {e}"))
    }

    /// A live `job_execution` message to the execution's WebSocket subscribers
    /// (its id, the job's path `jobs/<id>`, and `*`).
    pub(super) fn publish(&self, exec: &ExecRec) {
        let Some(engine) = self.engine.upgrade() else {
            return;
        };
        let path = super::model::job_path(exec.job_id);
        engine.logs.hub.publish_script(&exec.id, &path, || {
            json!({
                "type": "job_execution",
                "script_id": exec.id,
                "script_path": path,
                "execution_id": exec.id,
                "job_id": exec.job_id,
                "status": exec.status.as_str(),
                "attempt": exec.attempts.len(),
                "timestamp": vwed_base::clock::utc_now(),
            })
        });
    }

    /// After a restart: a running execution was cut short (power cut, kill -9,
    /// shutdown); it is `interrupted`, or queued again if its policy retries it.
    /// Queued ones queue again, in their order. Returns how many queue again.
    pub(super) async fn recover(self: &Arc<Self>) -> usize {
        let store = self.store.clone();
        let all = match tokio::task::spawn_blocking(move || store.all_execs()).await {
            Ok(Ok(v)) => v,
            other => {
                tracing::error!("cannot read job executions: {other:?}");
                return 0;
            }
        };
        let cut_short = || {
            all.iter()
                .filter(|e| e.status == ExecStatus::Running)
                .map(|e| e.id.as_str())
        };
        super::orphans::sweep(cut_short());
        // Their folders outside the data dir (Bash jobs under a user of their own).
        if let Ok(root) = vwed_sandbox::job::work_root(&self.engine_cfg.data_dir) {
            for id in cut_short() {
                let _ = std::fs::remove_dir_all(root.join(id));
            }
        }
        let mut queued = 0;
        for mut exec in all.into_iter().filter(|e| !e.status.is_final()) {
            if exec.status == ExecStatus::Running {
                let outcome = {
                    let mut o = Outcome::new(ExecStatus::Interrupted);
                    o.error = Some("运行时重启, 尝试被中断 (断电或进程被杀)".to_string());
                    o
                };
                let retry = self.retry_wait(&exec, ExecStatus::Interrupted).await;
                self.mark_interrupted(&mut exec, outcome, retry).await;
                if retry.is_none() {
                    continue;
                }
            }
            match exec.next_attempt_ms {
                Some(at) if at > vwed_base::clock::unix_ms() => {
                    self.retry_after(exec.id.clone(), at - vwed_base::clock::unix_ms());
                }
                _ => self.sched.readmit(&exec.id, false),
            }
            queued += 1;
        }
        self.pump();
        queued
    }

    async fn mark_interrupted(&self, exec: &mut ExecRec, outcome: Outcome, retry: Option<u64>) {
        let now = vwed_base::clock::unix_ms();
        if let Some(a) = exec.attempts.last_mut() {
            a.status = ExecStatus::Interrupted;
            a.finished_ms.get_or_insert(now);
            a.error = outcome.error.clone();
        }
        match retry {
            Some(wait) => {
                exec.status = ExecStatus::Queued;
                exec.next_attempt_ms = Some(now + wait);
            }
            None => {
                exec.status = ExecStatus::Interrupted;
                exec.finished_ms = Some(now);
            }
        }
        self.save(exec, None).await;
    }
}
