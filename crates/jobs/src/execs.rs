//! Executions: queue one (by request or trigger), look at them, cancel one, and
//! the statistics over them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::model::{ExecDetail, ExecRec, ExecStatus, JobRec, JobStatus, TriggerInfo, TriggerKind};
use super::scheduler::{Found, Refusal};
use super::store::ExecFilter;
use super::{JobError, Jobs, spec, stats, view};

/// What an execution is asked to run with.
pub struct Request {
    pub params: Value,
    pub env: Vec<(String, String)>,
    pub trigger: TriggerInfo,
    pub by: String,
    pub depth: u8,
    /// For cron: the scheduled time this execution handles, stored with it.
    pub cron_mark: Option<u64>,
}

impl Jobs {
    /// `POST /api/v1/scripts/{id}/execute`: queued, answered with the execution
    /// at once (202).
    pub async fn execute(
        self: &Arc<Self>,
        id: u64,
        params: Value,
        env: Value,
        kind: TriggerKind,
        by: &str,
    ) -> Result<ExecRec, JobError> {
        let job = self.job(id).await?;
        if job.status == JobStatus::Archived {
            return Err(JobError::Conflict(format!(
                "脚本 {} 已归档, 不能执行",
                job.spec.name
            )));
        }
        let found = view::findings(job.spec.language, &job.spec.content);
        if view::unacknowledged(&job, &found) {
            return Err(JobError::Dangerous(found));
        }
        let params =
            spec::resolve_params(&job.spec.parameters, &params, None).map_err(JobError::Invalid)?;
        let env = spec::check_env(&env).map_err(JobError::Invalid)?;
        let trigger = TriggerInfo {
            kind,
            detail: None,
            scheduled_ms: None,
            missed: false,
        };
        let req = Request {
            params,
            env,
            trigger,
            by: by.to_string(),
            depth: 0,
            cron_mark: None,
        };
        self.enqueue(&job, req).await
    }

    /// A trigger fired for job `id`: only an active job runs. Its input is the
    /// parameters' defaults, plus `event` ({name, data}) for an event.
    pub(super) async fn trigger(
        self: &Arc<Self>,
        id: u64,
        trigger: TriggerInfo,
        event: Option<Value>,
        depth: u8,
        cron_mark: Option<u64>,
    ) -> Result<String, JobError> {
        let job = self.job(id).await?;
        if job.status != JobStatus::Active {
            return Err(JobError::Conflict(format!("脚本 {id} 未激活")));
        }
        let by = trigger.kind.as_str().to_string();
        let extra = event.map(|e| ("event", e));
        let req = |params| Request {
            params,
            env: Vec::new(),
            trigger: trigger.clone(),
            by: by.clone(),
            depth,
            cron_mark,
        };
        match spec::resolve_params(&job.spec.parameters, &Value::Null, extra) {
            Ok(params) => Ok(self.enqueue(&job, req(params)).await?.id),
            // Recorded, so that the job's history shows why its trigger did nothing.
            Err(message) => {
                let rec = self
                    .record_refused(&job, req(Value::Null), message.clone())
                    .await?;
                Err(JobError::Invalid(format!("{message} (执行 {})", rec.id)))
            }
        }
    }

    fn new_exec(&self, job: &JobRec, req: &Request) -> ExecRec {
        ExecRec {
            id: String::new(),
            seq: 0,
            job_id: job.id,
            job_name: job.spec.name.clone(),
            version: job.version,
            language: job.spec.language,
            status: ExecStatus::Queued,
            trigger: req.trigger.clone(),
            triggered_by: req.by.clone(),
            params: req.params.clone(),
            env: req.env.clone(),
            depth: req.depth,
            max_attempts: job.spec.retry_policy.max_retries.saturating_add(1),
            attempts: Vec::new(),
            queued_ms: vwed_base::clock::unix_ms(),
            started_ms: None,
            finished_ms: None,
            next_attempt_ms: None,
            error: None,
            cancelled_by: None,
        }
    }

    /// Records the execution, then queues it; a full queue refuses it, and the
    /// refusal is recorded on the execution.
    async fn enqueue(self: &Arc<Self>, job: &JobRec, req: Request) -> Result<ExecRec, JobError> {
        let rec = self.new_exec(job, &req);
        let (keep, mark) = (
            self.settings.job_history_max,
            req.cron_mark.map(|m| (job.id, m)),
        );
        let mut rec = self
            .blocking(move |s| s.insert_exec(rec, mark, keep))
            .await?;
        match self.sched.admit(&rec.id, self.settings.job_queue_len) {
            Ok(()) => {
                self.publish(&rec);
                self.pump();
                Ok(rec)
            }
            Err(refusal) => {
                let err = match refusal {
                    Refusal::Full(len) => JobError::QueueFull {
                        execution_id: rec.id.clone(),
                        len,
                    },
                    Refusal::Stopping => JobError::Stopping,
                };
                rec.status = ExecStatus::Failed;
                rec.error = Some(err.to_string());
                rec.finished_ms = Some(vwed_base::clock::unix_ms());
                self.save(&rec, None).await;
                self.publish(&rec);
                Err(err)
            }
        }
    }

    async fn record_refused(
        &self,
        job: &JobRec,
        req: Request,
        message: String,
    ) -> Result<ExecRec, JobError> {
        let mut rec = self.new_exec(job, &req);
        rec.status = ExecStatus::Failed;
        rec.error = Some(message);
        rec.finished_ms = Some(vwed_base::clock::unix_ms());
        let (keep, mark) = (
            self.settings.job_history_max,
            req.cron_mark.map(|m| (job.id, m)),
        );
        self.blocking(move |s| s.insert_exec(rec, mark, keep)).await
    }

    pub async fn executions(
        &self,
        filter: ExecFilter,
        skip: usize,
        limit: usize,
    ) -> Result<(Vec<ExecRec>, usize), JobError> {
        let job = filter.job_id;
        let (list, total) = self
            .blocking(move |s| s.execs(&filter, skip, limit))
            .await?;
        // A deleted job's executions stay listed; an id never used is a 404.
        if total == 0
            && let Some(job) = job
            && self.blocking(move |s| s.job(job)).await?.is_none()
        {
            return Err(JobError::NotFound(job));
        }
        Ok((list, total))
    }

    /// An execution with its output (live while it runs), result and traceback.
    pub async fn execution(&self, id: &str) -> Result<(ExecRec, ExecDetail), JobError> {
        let key = id.to_string();
        let (rec, detail) = self
            .blocking(move |s| Ok((s.exec(&key)?, s.detail(&key)?)))
            .await?;
        let rec = rec.ok_or_else(|| JobError::ExecNotFound(id.to_string()))?;
        let mut detail = detail.unwrap_or_default();
        if let Some(live) = self.sched.capture(id) {
            (detail.output, detail.output_cut_bytes) = live.snapshot();
        }
        Ok((rec, detail))
    }

    /// Cancels a queued, waiting or running execution; answers once it is over.
    pub async fn cancel(&self, id: &str, by: &str) -> Result<ExecRec, JobError> {
        let (rec, _) = self.execution(id).await?;
        if rec.status.is_final() {
            return Err(JobError::Conflict(format!(
                "执行 {id} 已结束 ({}), 不能取消",
                rec.status.as_str()
            )));
        }
        if self.sched.cancel(id, by) == Found::Running {
            let limit = Duration::from_millis(self.settings.job_kill_grace_ms + 10_000);
            let t0 = std::time::Instant::now();
            while t0.elapsed() < limit {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let (now, _) = self.execution(id).await?;
                if now.status.is_final() {
                    return Ok(now);
                }
            }
            return self.execution(id).await.map(|(r, _)| r);
        }
        let (mut rec, _) = self.execution(id).await?;
        rec.status = ExecStatus::Cancelled;
        rec.cancelled_by = Some(by.to_string());
        rec.next_attempt_ms = None;
        rec.finished_ms = Some(vwed_base::clock::unix_ms());
        self.save(&rec, None).await;
        self.publish(&rec);
        Ok(rec)
    }

    pub async fn overview(&self) -> Result<Value, JobError> {
        let (jobs, execs, templates) = self
            .blocking(|s| Ok((s.jobs()?, s.all_execs()?, s.templates()?)))
            .await?;
        Ok(stats::overview(
            &jobs,
            &execs,
            &templates,
            &self.sched.counts(),
        ))
    }
}
