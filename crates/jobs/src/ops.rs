//! Definitions: create, change (every change of the definition is a new version),
//! status, delete, versions, diff, rollback, the acknowledgement of dangerous
//! commands, and templates.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use vwed_ipc::Analysis;

use super::model::{
    Ack, JobRec, JobSpec, JobStatus, Language, ParamSpec, RetryPolicy, TemplateRec, TemplateSpec,
    Triggers, VersionRec,
};
use super::{JobError, Jobs, spec, templates, view};

/// A create or update request; absent fields keep their value (update) or
/// their default (create).
#[derive(Deserialize, Default, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub tags: Option<Vec<String>>,
    pub language: Option<Language>,
    pub content: Option<String>,
    pub timeout: Option<f64>,
    pub retry_policy: Option<RetryPolicy>,
    pub parameters: Option<Vec<ParamSpec>>,
    pub triggers: Option<Triggers>,
    pub status: Option<JobStatus>,
    /// Acknowledges the dangerous commands of the version this request saves.
    #[serde(default)]
    pub acknowledge_danger: bool,
    pub acknowledge_reason: Option<String>,
}

/// Making a job from a template: its values, and the job's own fields.
#[derive(Deserialize, Default, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToJob {
    #[serde(default)]
    pub values: Value,
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub tags: Option<Vec<String>>,
    pub timeout: Option<f64>,
    pub retry_policy: Option<RetryPolicy>,
    pub triggers: Option<Triggers>,
    pub status: Option<JobStatus>,
    #[serde(default)]
    pub acknowledge_danger: bool,
    pub acknowledge_reason: Option<String>,
}

fn merged(
    input: &JobInput,
    base: Option<&JobSpec>,
    default_timeout: f64,
) -> Result<JobSpec, JobError> {
    let need = |field: &str| JobError::Invalid(format!("缺少 {field}"));
    let pick = |v: &Option<String>, b: Option<&String>| v.clone().or_else(|| b.cloned());
    Ok(JobSpec {
        name: pick(&input.name, base.map(|b| &b.name)).ok_or_else(|| need("name"))?,
        description: pick(&input.description, base.map(|b| &b.description)).unwrap_or_default(),
        category: pick(&input.category, base.map(|b| &b.category)).unwrap_or_default(),
        tags: input
            .tags
            .clone()
            .or_else(|| base.map(|b| b.tags.clone()))
            .unwrap_or_default(),
        language: input
            .language
            .or(base.map(|b| b.language))
            .ok_or_else(|| need("language (python 或 bash)"))?,
        content: pick(&input.content, base.map(|b| &b.content)).ok_or_else(|| need("content"))?,
        timeout: input
            .timeout
            .or(base.map(|b| b.timeout))
            .unwrap_or(default_timeout),
        retry_policy: input
            .retry_policy
            .clone()
            .or_else(|| base.map(|b| b.retry_policy.clone()))
            .unwrap_or_default(),
        parameters: input
            .parameters
            .clone()
            .or_else(|| base.map(|b| b.parameters.clone()))
            .unwrap_or_default(),
        triggers: input
            .triggers
            .clone()
            .or_else(|| base.map(|b| b.triggers.clone()))
            .unwrap_or_default(),
    })
}

/// How a definition change comes in: who, whether it acknowledges findings,
/// what note its version gets, and the template it was made from.
struct Change<'a> {
    by: &'a str,
    status: Option<JobStatus>,
    acknowledge: bool,
    reason: Option<String>,
    note: String,
    template: Option<u64>,
}

impl Jobs {
    fn default_timeout(&self) -> f64 {
        self.settings.job_default_timeout_s as f64
    }

    pub async fn create(self: &Arc<Self>, input: JobInput, by: &str) -> Result<JobRec, JobError> {
        let spec = merged(&input, None, self.default_timeout())?;
        let change = Change {
            by,
            status: input.status,
            acknowledge: input.acknowledge_danger,
            reason: input.acknowledge_reason,
            note: "创建".to_string(),
            template: None,
        };
        self.save_new(spec, change).await
    }

    pub async fn update(
        self: &Arc<Self>,
        id: u64,
        input: JobInput,
        by: &str,
    ) -> Result<JobRec, JobError> {
        let _edit = self.edits.lock().await;
        let rec = self.job(id).await?;
        let spec = merged(&input, Some(&rec.spec), self.default_timeout())?;
        let change = Change {
            by,
            status: input.status,
            acknowledge: input.acknowledge_danger,
            reason: input.acknowledge_reason,
            note: "更新".to_string(),
            template: None,
        };
        self.save_change(rec, spec, change).await
    }

    pub async fn job(&self, id: u64) -> Result<JobRec, JobError> {
        self.blocking(move |s| s.job(id))
            .await?
            .ok_or(JobError::NotFound(id))
    }

    pub async fn jobs(&self) -> Result<Vec<JobRec>, JobError> {
        self.blocking(|s| s.jobs()).await
    }

    pub async fn delete(self: &Arc<Self>, id: u64) -> Result<JobRec, JobError> {
        let _edit = self.edits.lock().await;
        let rec = self.job(id).await?;
        self.triggers.disarm(id);
        self.blocking(move |s| s.delete_job(id)).await?;
        Ok(rec)
    }

    async fn save_new(
        self: &Arc<Self>,
        spec: JobSpec,
        change: Change<'_>,
    ) -> Result<JobRec, JobError> {
        let _edit = self.edits.lock().await;
        let count = self.blocking(|s| s.job_count()).await?;
        if count >= self.settings.job_max_scripts as u64 {
            return Err(JobError::Conflict(format!(
                "脚本数量已达上限 {}",
                self.settings.job_max_scripts
            )));
        }
        self.check_definition(&spec, None).await?;
        let now = vwed_base::clock::local_now();
        let mut rec = JobRec {
            id: 0,
            status: JobStatus::Draft,
            version: 1,
            spec: spec.clone(),
            template_id: change.template,
            ack: None,
            history: Vec::new(),
            created_by: change.by.to_string(),
            created_at: now.clone(),
            updated_by: change.by.to_string(),
            updated_at: now.clone(),
        };
        self.apply_status(&mut rec, &change)?;
        let first = VersionRec {
            version: 1,
            spec,
            by: change.by.to_string(),
            at: now,
            note: change.note,
        };
        let rec = match change.template {
            Some(t) => {
                self.blocking(move |s| s.create_job_from_template(t, rec, first))
                    .await?
            }
            None => self.blocking(move |s| s.create_job(rec, first)).await?,
        };
        self.triggers.arm(self, &rec, true);
        Ok(rec)
    }

    /// Saves `spec` as the job's definition (a new version when it changed) and
    /// applies the status and acknowledgement of the change.
    async fn save_change(
        self: &Arc<Self>,
        mut rec: JobRec,
        spec: JobSpec,
        change: Change<'_>,
    ) -> Result<JobRec, JobError> {
        let changed = spec != rec.spec;
        let version = if changed {
            self.check_definition(&spec, Some(rec.id)).await?;
            rec.version += 1;
            rec.spec = spec.clone();
            Some(VersionRec {
                version: rec.version,
                spec,
                by: change.by.to_string(),
                at: vwed_base::clock::local_now(),
                note: change.note.clone(),
            })
        } else {
            None
        };
        let was = rec.status;
        self.apply_status(&mut rec, &change)?;
        if !changed && was == rec.status && !change.acknowledge {
            return Ok(rec);
        }
        rec.updated_by = change.by.to_string();
        rec.updated_at = vwed_base::clock::local_now();
        let keep = self.settings.job_max_versions;
        let saved = rec.clone();
        self.blocking(move |s| s.save_job(&saved, version.as_ref(), keep))
            .await?;
        if changed || was != rec.status {
            self.triggers.arm(self, &rec, true);
        }
        Ok(rec)
    }

    /// The status the change asks for, refused when dangerous commands of the
    /// version would run unacknowledged; records acknowledgement and status in
    /// the job's history.
    fn apply_status(&self, rec: &mut JobRec, change: &Change<'_>) -> Result<(), JobError> {
        let found = view::findings(rec.spec.language, &rec.spec.content);
        if change.acknowledge && !found.is_empty() {
            self.record_ack(rec, change.by, change.reason.clone(), found.len());
        }
        let to = change.status.unwrap_or(rec.status);
        if to == JobStatus::Active && view::unacknowledged(rec, &found) {
            return Err(JobError::Dangerous(found));
        }
        if to != rec.status {
            let from = rec.status;
            rec.status = to;
            rec.note(
                change.by,
                "status",
                format!("{} → {}", from.as_str(), to.as_str()),
            );
        }
        Ok(())
    }

    fn record_ack(&self, rec: &mut JobRec, by: &str, reason: Option<String>, findings: usize) {
        let ack = Ack {
            version: rec.version,
            by: by.to_string(),
            at: vwed_base::clock::local_now(),
            reason: reason.unwrap_or_default(),
            findings,
        };
        // The audit log gets it from the API (api/jobs.rs `Caller::audit_ack`),
        // which knows the caller's role and address besides the name.
        rec.note(
            by,
            "acknowledge_danger",
            format!(
                "确认版本 {} 的 {findings} 处危险命令: {}",
                ack.version, ack.reason
            ),
        );
        rec.ack = Some(ack);
    }

    /// `POST /api/v1/scripts/{id}/acknowledge`.
    pub async fn acknowledge(
        self: &Arc<Self>,
        id: u64,
        reason: Option<String>,
        by: &str,
    ) -> Result<JobRec, JobError> {
        let _edit = self.edits.lock().await;
        let mut rec = self.job(id).await?;
        let found = view::findings(rec.spec.language, &rec.spec.content);
        if found.is_empty() {
            return Err(JobError::Conflict(
                "脚本当前版本没有需要确认的危险命令".to_string(),
            ));
        }
        self.record_ack(&mut rec, by, reason, found.len());
        rec.updated_by = by.to_string();
        rec.updated_at = vwed_base::clock::local_now();
        let (saved, keep) = (rec.clone(), self.settings.job_max_versions);
        self.blocking(move |s| s.save_job(&saved, None, keep))
            .await?;
        Ok(rec)
    }

    /// Valid, with a unique name, and (Python) compiles / (Bash) parses.
    async fn check_definition(&self, spec: &JobSpec, own_id: Option<u64>) -> Result<(), JobError> {
        spec::check_spec(
            spec,
            &self.settings,
            self.engine_cfg.engine.max_script_bytes,
        )
        .map_err(JobError::Invalid)?;
        let name = spec.name.trim().to_string();
        let taken = self
            .jobs()
            .await?
            .into_iter()
            .any(|j| Some(j.id) != own_id && j.spec.name.trim() == name);
        if taken {
            return Err(JobError::Conflict(format!("脚本名称 {name} 已存在")));
        }
        match spec.language {
            Language::Python => self.check_python(&spec.content).await,
            Language::Bash => {
                super::bash::check_syntax(&self.settings.job_bash_path, &spec.content)
                    .await
                    .map_err(JobError::Invalid)
            }
        }
    }

    async fn check_python(&self, source: &str) -> Result<(), JobError> {
        let engine = self
            .engine
            .upgrade()
            .ok_or_else(|| JobError::Unavailable("运行时正在停止".into()))?;
        let analysis: Analysis = engine
            .analyzer
            .analyze(source)
            .await
            .map_err(|e| JobError::Unavailable(format!("语法检查不可用: {e}")))?;
        match analysis.syntax_error {
            Some(s) => Err(JobError::Invalid(format!("Python 语法错误: {}", s.message))),
            None => Ok(()),
        }
    }

    // ---------------------------------------------------------------- versions

    pub async fn versions(&self, id: u64) -> Result<Vec<VersionRec>, JobError> {
        self.job(id).await?;
        self.blocking(move |s| s.versions(id)).await
    }

    pub async fn version(&self, id: u64, version: u64) -> Result<VersionRec, JobError> {
        self.job(id).await?;
        self.blocking(move |s| s.version(id, version))
            .await?
            .ok_or(JobError::VersionNotFound { job: id, version })
    }

    pub async fn diff(&self, id: u64, from: u64, to: u64) -> Result<Value, JobError> {
        let a = self.version(id, from).await?;
        let b = self.version(id, to).await?;
        let mut d = super::diff::diff(&a.spec, &b.spec);
        d["from"] = json!(from);
        d["to"] = json!(to);
        Ok(d)
    }

    /// A new version with the definition of `version`.
    pub async fn rollback(
        self: &Arc<Self>,
        id: u64,
        version: u64,
        acknowledge: bool,
        reason: Option<String>,
        by: &str,
    ) -> Result<JobRec, JobError> {
        let _edit = self.edits.lock().await;
        let old = self.version(id, version).await?;
        let rec = self.job(id).await?;
        if old.spec == rec.spec {
            return Err(JobError::Conflict(format!(
                "当前版本 {} 与版本 {version} 相同, 无需回滚",
                rec.version
            )));
        }
        let change = Change {
            by,
            status: None,
            acknowledge,
            reason,
            note: format!("回滚到版本 {version}"),
            template: None,
        };
        let mut rec = self.save_change(rec, old.spec, change).await?;
        rec.note(
            by,
            "rollback",
            format!("回滚到版本 {version}, 新版本 {}", rec.version),
        );
        let (saved, keep) = (rec.clone(), self.settings.job_max_versions);
        self.blocking(move |s| s.save_job(&saved, None, keep))
            .await?;
        Ok(rec)
    }

    // --------------------------------------------------------------- templates

    pub async fn templates(&self) -> Result<Vec<TemplateRec>, JobError> {
        self.blocking(|s| s.templates()).await
    }

    pub async fn template(&self, id: u64) -> Result<TemplateRec, JobError> {
        self.blocking(move |s| s.template(id))
            .await?
            .ok_or(JobError::TemplateNotFound(id))
    }

    pub async fn create_template(
        &self,
        input: TemplateSpec,
        by: &str,
    ) -> Result<TemplateRec, JobError> {
        spec::check_name(&input.name).map_err(JobError::Invalid)?;
        spec::check_params(&input.parameters).map_err(JobError::Invalid)?;
        let as_job = JobSpec {
            name: input.name.clone(),
            description: input.description.clone(),
            category: input.category.clone(),
            tags: Vec::new(),
            language: input.language,
            content: input.content.clone(),
            timeout: input.timeout.unwrap_or(self.default_timeout()),
            retry_policy: RetryPolicy::default(),
            parameters: input.parameters.clone(),
            triggers: input.triggers.clone(),
        };
        spec::check_spec(
            &as_job,
            &self.settings,
            self.engine_cfg.engine.max_script_bytes,
        )
        .map_err(JobError::Invalid)?;
        if self
            .templates()
            .await?
            .iter()
            .any(|t| t.spec.name == input.name)
        {
            return Err(JobError::Conflict(format!(
                "模板名称 {} 已存在",
                input.name
            )));
        }
        let rec = TemplateRec {
            id: 0,
            spec: input,
            builtin: false,
            usage_count: 0,
            created_by: by.to_string(),
            created_at: vwed_base::clock::local_now(),
        };
        self.blocking(move |s| s.put_template(rec)).await
    }

    pub async fn delete_template(&self, id: u64) -> Result<TemplateRec, JobError> {
        let t = self.template(id).await?;
        if t.builtin {
            return Err(JobError::Conflict(format!(
                "内置模板 {} 不能删除",
                t.spec.name
            )));
        }
        self.blocking(move |s| s.delete_template(id)).await?;
        Ok(t)
    }

    /// A new job (a draft unless asked otherwise) from a template and values.
    pub async fn from_template(
        self: &Arc<Self>,
        template: u64,
        req: ToJob,
        by: &str,
    ) -> Result<JobRec, JobError> {
        let t = self.template(template).await?;
        let parameters =
            templates::with_values(&t.spec.parameters, &req.values).map_err(JobError::Invalid)?;
        let spec = JobSpec {
            name: req.name.unwrap_or_else(|| t.spec.name.clone()),
            description: req
                .description
                .unwrap_or_else(|| t.spec.description.clone()),
            category: req.category.unwrap_or_else(|| t.spec.category.clone()),
            tags: req.tags.unwrap_or_default(),
            language: t.spec.language,
            content: t.spec.content.clone(),
            timeout: req
                .timeout
                .or(t.spec.timeout)
                .unwrap_or(self.default_timeout()),
            retry_policy: req.retry_policy.unwrap_or_default(),
            parameters,
            triggers: req.triggers.unwrap_or_else(|| t.spec.triggers.clone()),
        };
        let change = Change {
            by,
            status: req.status,
            acknowledge: req.acknowledge_danger,
            reason: req.acknowledge_reason,
            note: format!("由模板 {} ({}) 创建", t.id, t.spec.name),
            template: Some(t.id),
        };
        self.save_new(spec, change).await
    }
}
