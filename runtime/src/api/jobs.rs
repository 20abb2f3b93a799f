//! `/api/v1/scripts/*` (seed 002): jobs, the one-shot scripts of the
//! orchestration service, with their versions, executions, templates and
//! statistics. The envelope is the project's (`{success, message?, data?,
//! error?}`); lists are `data: {items, total, skip, limit}`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use warp::Filter;
use warp::http::StatusCode;

use super::answers;
use super::body;
use super::body::parse_json;
use super::query::{self, query_u64};
use super::reply::{ApiError, Envelope, Failure, Resp, finish, json_response, ok_data, ok_message};
use super::route::{self, Route};
use crate::api::guard::{addr_text, caller};
use vwed_auth::audit::{AuditLog, Entry};
use vwed_auth::{Principal, Role};
use vwed_engine::Engine;
use vwed_jobs::{
    ExecFilter, ExecStatus, JobError, JobInput, JobRec, JobStatus, Jobs, Language, TemplateSpec,
    ToJob, TriggerKind,
};

const SCRIPTS: &str = "/api/v1/scripts";

// long: the area's part of the route table, one entry per endpoint
pub fn routes(s: &super::Services) -> Vec<Route> {
    let (engine, jobs) = (&s.engine, s.jobs.clone());
    let e = warp::any().map(move || jobs.clone());
    let (b, w) = (body(s), who(engine));
    vec![
        route::get("/api/v1/scripts/statistics/overview", Role::Viewer)
            .to(|at| at.and(e.clone()).then(overview)),
        route::get("/api/v1/scripts/executions", Role::Viewer).to(|at| {
            at.and(e.clone())
                .and(query::known::<AllExecQuery>())
                .then(all_executions)
        }),
        route::get("/api/v1/scripts/executions/{execution_id}", Role::Viewer)
            .to1(|at| at.and(e.clone()).then(execution)),
        route::post(
            "/api/v1/scripts/executions/{execution_id}/cancel",
            Role::Operator,
        )
        .no_body()
        .to1(|at| at.and(e.clone()).and(w.clone()).then(cancel)),
        route::get("/api/v1/scripts/templates", Role::Viewer)
            .to(|at| at.and(e.clone()).then(templates)),
        route::post("/api/v1/scripts/templates", Role::Engineer).to(|at| {
            at.and(e.clone())
                .and(b.clone())
                .and(w.clone())
                .then(create_template)
        }),
        route::get("/api/v1/scripts/templates/{template_id}", Role::Viewer)
            .to1(|at| at.and(e.clone()).then(template)),
        route::delete("/api/v1/scripts/templates/{template_id}", Role::Engineer)
            .to1(|at| at.and(e.clone()).then(delete_template)),
        route::post(
            "/api/v1/scripts/templates/{template_id}/instantiate",
            Role::Engineer,
        )
        .to1(|at| {
            at.and(e.clone())
                .and(b.clone())
                .and(w.clone())
                .then(instantiate)
        }),
        route::post(SCRIPTS, Role::Engineer)
            .to(|at| at.and(e.clone()).and(b.clone()).and(w.clone()).then(create)),
        route::get(SCRIPTS, Role::Viewer).to(|at| {
            at.and(e.clone())
                .and(query::known::<ListQuery>())
                .then(list)
        }),
        route::get("/api/v1/scripts/{script_id}", Role::Viewer)
            .to1(|at| at.and(e.clone()).then(get)),
        route::put("/api/v1/scripts/{script_id}", Role::Engineer)
            .to1(|at| at.and(e.clone()).and(b.clone()).and(w.clone()).then(update)),
        route::delete("/api/v1/scripts/{script_id}", Role::Engineer)
            .to1(|at| at.and(e.clone()).then(delete)),
        route::post("/api/v1/scripts/{script_id}/execute", Role::Operator).to1(|at| {
            at.and(e.clone())
                .and(b.clone())
                .and(w.clone())
                .then(execute)
        }),
        route::get("/api/v1/scripts/{script_id}/executions", Role::Viewer).to1(|at| {
            at.and(e.clone())
                .and(query::known::<ExecQuery>())
                .then(executions)
        }),
        route::get("/api/v1/scripts/{script_id}/versions", Role::Viewer)
            .to1(|at| at.and(e.clone()).then(versions)),
        route::get(
            "/api/v1/scripts/{script_id}/versions/{version}",
            Role::Viewer,
        )
        .to2(|at| at.and(e.clone()).then(version)),
        route::get("/api/v1/scripts/{script_id}/diff", Role::Viewer).to1(|at| {
            at.and(e.clone())
                .and(query::known::<DiffQuery>())
                .then(diff)
        }),
        route::post("/api/v1/scripts/{script_id}/rollback", Role::Engineer).to1(|at| {
            at.and(e.clone())
                .and(b.clone())
                .and(w.clone())
                .then(rollback)
        }),
        route::post("/api/v1/scripts/{script_id}/acknowledge", Role::Engineer)
            .to1(|at| at.and(e).and(b).and(w).then(acknowledge)),
    ]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    overview,
    all_executions,
    execution,
    cancel,
    templates,
    create_template,
    template,
    delete_template,
    instantiate,
    create,
    list,
    get,
    update,
    delete,
    execute,
    executions,
    versions,
    version,
    diff,
    rollback,
    acknowledge
))]
pub struct Doc;

/// Who made a request its route admitted. Its name (the account, or the API
/// token's name) is what `created_by`, `triggered_by`, `cancelled_by` and the
/// job's history say; the route table audits the request itself.
struct Caller {
    p: Principal,
    addr: String,
    audit: Arc<AuditLog>,
}

impl Caller {
    fn name(&self) -> &str {
        &self.p.name
    }

    /// An acknowledgement of dangerous commands that this request made (it
    /// `asked` for one and the saved version carries one by this caller) gets
    /// an audit record of its own, durably before the answer: who, which job
    /// and version, how many findings, why.
    async fn audit_ack(&self, rec: &JobRec, asked: bool) {
        let Some(ack) = rec.ack.as_ref() else {
            return;
        };
        if !asked || ack.version != rec.version || ack.by != self.p.name {
            return;
        }
        let target = format!("job:{} {}", rec.id, rec.spec.name);
        let entry = Entry::new(Some(&self.p), &self.addr, "job.acknowledge_danger", &target)
            .status(200)
            .detail(format!(
                "版本 {} 的 {} 处危险命令: {}",
                ack.version, ack.findings, ack.reason
            ));
        if let Err(e) = self.audit.record(entry).await {
            tracing::error!("audit record lost: {e}");
        }
    }
}

fn who(
    engine: &Arc<Engine>,
) -> impl Filter<Extract = (Caller,), Error = warp::Rejection> + Clone + use<> {
    let audit = engine.auth.audit.clone();
    caller(engine.auth.clone())
        .and(crate::server::client_addr())
        .map(move |p: Principal, addr| Caller {
            p,
            addr: addr_text(addr),
            audit: audit.clone(),
        })
}

fn job_error(e: JobError) -> ApiError {
    let status = match &e {
        JobError::NotFound(_)
        | JobError::ExecNotFound(_)
        | JobError::TemplateNotFound(_)
        | JobError::VersionNotFound { .. } => StatusCode::NOT_FOUND,
        JobError::Invalid(_) => StatusCode::BAD_REQUEST,
        JobError::Conflict(_) | JobError::Dangerous(_) => StatusCode::CONFLICT,
        JobError::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
        JobError::Stopping | JobError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        JobError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let data = match &e {
        JobError::Dangerous(f) => Some(json!({"findings": f})),
        JobError::QueueFull { execution_id, len } => {
            Some(json!({"execution_id": execution_id, "queued": len}))
        }
        _ => None,
    };
    ApiError {
        status,
        message: e.to_string(),
        data,
    }
}

fn jobs_of(jobs: Option<Arc<Jobs>>) -> Result<Arc<Jobs>, ApiError> {
    jobs.ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "作业服务未启动"))
}

/// Runs `f` with the jobs service; its errors become the envelope.
async fn with_jobs<F, Fut>(jobs: Option<Arc<Jobs>>, f: F) -> Resp
where
    F: FnOnce(Arc<Jobs>) -> Fut,
    Fut: Future<Output = Result<Resp, JobError>>,
{
    finish(match jobs_of(jobs) {
        Ok(j) => f(j).await.map_err(job_error),
        Err(e) => Err(e),
    })
}

/// The body as `T`, or the 400 it deserves.
fn body_of<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, JobError> {
    parse_json(body).map_err(|e| JobError::Invalid(e.message))
}

fn page(items: Vec<Value>, total: usize, skip: usize, limit: usize) -> Resp {
    ok_data(json!({"items": items, "total": total, "skip": skip, "limit": limit}))
}

/// `skip` and `limit` (default 100, at most 1000).
fn paging(q: &HashMap<String, String>) -> Result<(usize, usize), JobError> {
    let get = |k| query_u64(q, k).map_err(|e| JobError::Invalid(e.message));
    let skip = get("skip")?.unwrap_or(0) as usize;
    let limit = get("limit")?.unwrap_or(100).clamp(1, 1000) as usize;
    Ok((skip, limit))
}

// -------------------------------------------------------------------- scripts

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ListQuery {
    /// 只要此分类
    category: Option<String>,
    /// 只要带此标签的
    tag: Option<String>,
    /// draft, active, disabled 或 archived
    status: Option<String>,
    /// python 或 bash
    language: Option<String>,
    /// 名称、描述或标签中包含的文字 (不区分大小写)
    search: Option<String>,
    /// 跳过的条数, 默认 0
    skip: Option<u64>,
    /// 最多返回的条数, 默认 100, 上限 1000
    limit: Option<u64>,
}

/// Creates a job (a `draft` unless `status` says otherwise). Body: `name`,
/// `language` (python/bash), `content`, and optionally `description`,
/// `category`, `tags`, `timeout` (s), `retry_policy`, `parameters`, `triggers`,
/// `status`, `acknowledge_danger`, `acknowledge_reason`.
#[utoipa::path(
    post,
    path = "/api/v1/scripts",
    tag = "jobs",
    request_body(content = JobInput, description = "脚本定义"),
    responses(
        (status = 200, description = "message, data: the script with its content", body = Envelope<answers::JobView>),
        (status = 400, description = "定义无效或语法错误", body = Failure),
        (status = 409, description = "名称已存在, 或危险命令未确认就要激活 (data.findings)", body = Failure),
    )
)]
async fn create(jobs: Option<Arc<Jobs>>, body: Bytes, by: Caller) -> Resp {
    with_jobs(jobs, |jobs| async move {
        let input: JobInput = body_of(&body)?;
        let asked = input.acknowledge_danger;
        let rec = jobs.create(input, by.name()).await?;
        by.audit_ack(&rec, asked).await;
        Ok(ok_message(
            format!("脚本 {} 已创建 (版本 1)", rec.spec.name),
            Some(vwed_jobs::view_job(&rec, true)),
        ))
    })
    .await
}

/// Jobs, filtered; without their content.
#[utoipa::path(
    get,
    path = "/api/v1/scripts",
    tag = "jobs",
    params(ListQuery),
    responses((status = 200, description = "data: {items, total, skip, limit}", body = Envelope<answers::Page<answers::JobView>>))
)]
async fn list(jobs: Option<Arc<Jobs>>, q: HashMap<String, String>) -> Resp {
    with_jobs(jobs, |jobs| async move {
        let (skip, limit) = paging(&q)?;
        let status = parse_opt(&q, "status", JobStatus::parse)?;
        let language = parse_opt(&q, "language", |s| match s {
            "python" => Some(Language::Python),
            "bash" => Some(Language::Bash),
            _ => None,
        })?;
        let search = q.get("search").map(|s| s.to_lowercase());
        let all: Vec<_> = jobs
            .jobs()
            .await?
            .into_iter()
            .filter(|j| status.is_none_or(|s| j.status == s))
            .filter(|j| language.is_none_or(|l| j.spec.language == l))
            .filter(|j| q.get("category").is_none_or(|c| &j.spec.category == c))
            .filter(|j| q.get("tag").is_none_or(|t| j.spec.tags.contains(t)))
            .filter(|j| {
                search.as_ref().is_none_or(|s| {
                    j.spec.name.to_lowercase().contains(s)
                        || j.spec.description.to_lowercase().contains(s)
                        || j.spec.tags.iter().any(|t| t.to_lowercase().contains(s))
                })
            })
            .collect();
        let total = all.len();
        let items = all
            .iter()
            .skip(skip)
            .take(limit)
            .map(|j| vwed_jobs::view_job(j, false))
            .collect();
        Ok(page(items, total, skip, limit))
    })
    .await
}

/// A query value parsed by `parse`, refused with the values it takes.
fn parse_opt<T>(
    q: &HashMap<String, String>,
    key: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, JobError> {
    q.get(key)
        .map(|v| parse(v).ok_or_else(|| JobError::Invalid(format!("参数 {key} 的值无效: {v}"))))
        .transpose()
}

/// One job, with its content, danger findings and history.
#[utoipa::path(
    get,
    path = "/api/v1/scripts/{script_id}",
    tag = "jobs",
    params(("script_id" = u64, Path, description = "脚本ID")),
    responses(
        (status = 200, description = "data: the script", body = Envelope<answers::JobView>),
        (status = 404, description = "脚本不存在", body = Failure),
    )
)]
async fn get(id: u64, jobs: Option<Arc<Jobs>>) -> Resp {
    with_jobs(jobs, |jobs| async move {
        Ok(ok_data(vwed_jobs::view_job(&jobs.job(id).await?, true)))
    })
    .await
}

/// Changes a job: any field of the create body; a change of the definition is a
/// new version, a change of `status` alone is not.
#[utoipa::path(
    put,
    path = "/api/v1/scripts/{script_id}",
    tag = "jobs",
    params(("script_id" = u64, Path, description = "脚本ID")),
    request_body(content = JobInput, description = "要修改的字段"),
    responses(
        (status = 200, description = "message, data: the script", body = Envelope<answers::JobView>),
        (status = 400, description = "定义无效", body = Failure),
        (status = 404, description = "脚本不存在", body = Failure),
        (status = 409, description = "名称已存在, 或危险命令未确认 (data.findings)", body = Failure),
    )
)]
async fn update(id: u64, jobs: Option<Arc<Jobs>>, body: Bytes, by: Caller) -> Resp {
    with_jobs(jobs, |jobs| async move {
        let input: JobInput = body_of(&body)?;
        let asked = input.acknowledge_danger;
        let rec = jobs.update(id, input, by.name()).await?;
        by.audit_ack(&rec, asked).await;
        Ok(ok_message(
            format!(
                "脚本 {} 已保存 (版本 {}, 状态 {})",
                rec.spec.name,
                rec.version,
                rec.status.as_str()
            ),
            Some(vwed_jobs::view_job(&rec, true)),
        ))
    })
    .await
}

/// Deletes a job and its versions; its executions stay in the history.
#[utoipa::path(
    delete,
    path = "/api/v1/scripts/{script_id}",
    tag = "jobs",
    params(("script_id" = u64, Path, description = "脚本ID")),
    responses(
        (status = 200, description = "message", body = Envelope<answers::Removed>),
        (status = 404, description = "脚本不存在", body = Failure),
    )
)]
async fn delete(id: u64, jobs: Option<Arc<Jobs>>) -> Resp {
    with_jobs(jobs, |jobs| async move {
        let rec = jobs.delete(id).await?;
        Ok(ok_message(
            format!("脚本 {} 已删除", rec.spec.name),
            Some(json!({"id": id})),
        ))
    })
    .await
}

// ----------------------------------------------------------------- execution

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ExecuteBody {
    #[serde(default)]
    input_parameters: Value,
    #[serde(default)]
    environment_vars: Value,
    /// `manual` (a person, e.g. from the UI) or `api` (default).
    #[serde(default)]
    trigger: Option<String>,
}

/// Queues an execution and answers at once with its id (202). Body:
/// `input_parameters`, `environment_vars` (seed), `trigger` (manual or api).
#[utoipa::path(
    post,
    path = "/api/v1/scripts/{script_id}/execute",
    tag = "jobs",
    params(("script_id" = u64, Path, description = "脚本ID")),
    request_body = ExecuteBody,
    responses(
        (status = 202, description = "message, data: {execution_id, status, ...}", body = Envelope<answers::ExecutionView>),
        (status = 400, description = "参数不符合脚本的参数定义", body = Failure),
        (status = 404, description = "脚本不存在", body = Failure),
        (status = 409, description = "已归档, 或危险命令未确认", body = Failure),
        (status = 429, description = "执行队列已满 (已记录, data.execution_id)", body = Failure),
    )
)]
async fn execute(id: u64, jobs: Option<Arc<Jobs>>, body: Bytes, by: Caller) -> Resp {
    with_jobs(jobs, |jobs| async move {
        let b: ExecuteBody = body_of(&body)?;
        let kind = match b.trigger.as_deref() {
            None | Some("api") => TriggerKind::Api,
            Some("manual") => TriggerKind::Manual,
            Some(other) => {
                return Err(JobError::Invalid(format!(
                    "trigger 只能是 manual 或 api, 得到 {other}"
                )));
            }
        };
        let rec = jobs
            .execute(id, b.input_parameters, b.environment_vars, kind, by.name())
            .await?;
        let envelope = Envelope {
            success: true,
            message: Some(format!("执行已排队: {}", rec.id)),
            data: Some(vwed_jobs::view_exec(&rec, None)),
            error: None,
        };
        Ok(json_response(StatusCode::ACCEPTED, &envelope))
    })
    .await
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ExecQuery {
    /// queued, running, succeeded, failed, timeout, cancelled 或 interrupted
    status: Option<String>,
    /// manual, api, cron 或 event
    trigger: Option<String>,
    /// 只要此时刻及之后排队的: 本地时间 2025-09-11T12:00:00 或 Unix 毫秒
    since: Option<String>,
    /// 只要此时刻及之前排队的
    until: Option<String>,
    skip: Option<u64>,
    /// 默认 100, 上限 1000
    limit: Option<u64>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct AllExecQuery {
    /// 只要此脚本的执行
    script_id: Option<u64>,
    status: Option<String>,
    trigger: Option<String>,
    since: Option<String>,
    until: Option<String>,
    skip: Option<u64>,
    limit: Option<u64>,
}

/// `2025-09-11T12:00:00` (local), `2025-09-11`, or unix ms.
fn time_ms(q: &HashMap<String, String>, key: &str) -> Result<Option<u64>, JobError> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone};
    let Some(v) = q.get(key) else {
        return Ok(None);
    };
    if let Ok(ms) = v.parse::<u64>() {
        return Ok(Some(ms));
    }
    let naive = NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
        });
    naive
        .and_then(|n| chrono::Local.from_local_datetime(&n).earliest())
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
        .map(Some)
        .ok_or_else(|| {
            JobError::Invalid(format!(
                "参数 {key} 必须是 2025-09-11T12:00:00 这样的本地时间或 Unix 毫秒, 得到 {v}"
            ))
        })
}

fn exec_filter(q: &HashMap<String, String>, job: Option<u64>) -> Result<ExecFilter, JobError> {
    let job = match job {
        Some(j) => Some(j),
        None => query_u64(q, "script_id").map_err(|e| JobError::Invalid(e.message))?,
    };
    Ok(ExecFilter {
        job_id: job,
        status: parse_opt(q, "status", ExecStatus::parse)?,
        trigger: parse_opt(q, "trigger", TriggerKind::parse)?,
        since_ms: time_ms(q, "since")?,
        until_ms: time_ms(q, "until")?,
    })
}

async fn list_execs(
    jobs: Arc<Jobs>,
    q: HashMap<String, String>,
    job: Option<u64>,
) -> Result<Resp, JobError> {
    let filter = exec_filter(&q, job)?;
    let (skip, limit) = paging(&q)?;
    let (list, total) = jobs.executions(filter, skip, limit).await?;
    let items = list.iter().map(|e| vwed_jobs::view_exec(e, None)).collect();
    Ok(page(items, total, skip, limit))
}

/// A job's executions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/scripts/{script_id}/executions",
    tag = "jobs",
    params(("script_id" = u64, Path, description = "脚本ID"), ExecQuery),
    responses(
        (status = 200, description = "data: {items, total, skip, limit}", body = Envelope<answers::Page<answers::ExecutionView>>),
        (status = 404, description = "脚本不存在", body = Failure),
    )
)]
async fn executions(id: u64, jobs: Option<Arc<Jobs>>, q: HashMap<String, String>) -> Resp {
    with_jobs(jobs, |jobs| list_execs(jobs, q, Some(id))).await
}

/// Every execution, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/scripts/executions",
    tag = "jobs",
    params(AllExecQuery),
    responses((status = 200, description = "data: {items, total, skip, limit}", body = Envelope<answers::Page<answers::ExecutionView>>))
)]
async fn all_executions(jobs: Option<Arc<Jobs>>, q: HashMap<String, String>) -> Resp {
    with_jobs(jobs, |jobs| list_execs(jobs, q, None)).await
}

/// One execution: status, attempts, exit code or exception, result, output
/// (live while it runs), duration, trigger and who.
#[utoipa::path(
    get,
    path = "/api/v1/scripts/executions/{execution_id}",
    tag = "jobs",
    params(("execution_id" = String, Path, description = "执行ID")),
    responses(
        (status = 200, description = "data: the execution", body = Envelope<answers::ExecutionView>),
        (status = 404, description = "执行记录不存在", body = Failure),
    )
)]
async fn execution(id: String, jobs: Option<Arc<Jobs>>) -> Resp {
    with_jobs(jobs, |jobs| async move {
        let (rec, detail) = jobs.execution(&id).await?;
        Ok(ok_data(vwed_jobs::view_exec(&rec, Some(&detail))))
    })
    .await
}

/// Cancels a queued, waiting or running execution (a running one is killed
/// with its process group); answers when it has ended.
#[utoipa::path(
    post,
    path = "/api/v1/scripts/executions/{execution_id}/cancel",
    tag = "jobs",
    params(("execution_id" = String, Path, description = "执行ID")),
    responses(
        (status = 200, description = "message, data: the execution", body = Envelope<answers::ExecutionView>),
        (status = 404, description = "执行记录不存在", body = Failure),
        (status = 409, description = "执行已结束", body = Failure),
    )
)]
async fn cancel(id: String, jobs: Option<Arc<Jobs>>, by: Caller) -> Resp {
    with_jobs(jobs, |jobs| async move {
        let rec = jobs.cancel(&id, by.name()).await?;
        Ok(ok_message(
            format!("执行 {id} 已取消 ({})", rec.status.as_str()),
            Some(vwed_jobs::view_exec(&rec, None)),
        ))
    })
    .await
}

// ------------------------------------------------------------------ versions

/// A job's versions, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/scripts/{script_id}/versions",
    tag = "jobs",
    params(("script_id" = u64, Path, description = "脚本ID")),
    responses(
        (status = 200, description = "data: {versions, current}", body = Envelope<answers::JobVersions>),
        (status = 404, description = "脚本不存在", body = Failure),
    )
)]
async fn versions(id: u64, jobs: Option<Arc<Jobs>>) -> Resp {
    with_jobs(jobs, |jobs| async move {
        let current = jobs.job(id).await?.version;
        let list: Vec<Value> = jobs
            .versions(id)
            .await?
            .iter()
            .map(|v| vwed_jobs::view_version(v, false))
            .collect();
        Ok(ok_data(json!({"versions": list, "current": current})))
    })
    .await
}

/// One version, with its whole definition.
#[utoipa::path(
    get,
    path = "/api/v1/scripts/{script_id}/versions/{version}",
    tag = "jobs",
    params(
        ("script_id" = u64, Path, description = "脚本ID"),
        ("version" = u64, Path, description = "版本号"),
    ),
    responses(
        (status = 200, description = "data: the version", body = Envelope<answers::JobVersionView>),
        (status = 404, description = "脚本或版本不存在", body = Failure),
    )
)]
async fn version(id: u64, n: u64, jobs: Option<Arc<Jobs>>) -> Resp {
    with_jobs(jobs, |jobs| async move {
        Ok(ok_data(vwed_jobs::view_version(
            &jobs.version(id, n).await?,
            true,
        )))
    })
    .await
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct DiffQuery {
    /// 旧版本号
    from: Option<u64>,
    /// 新版本号, 默认当前版本
    to: Option<u64>,
}

/// What changed from version `from` to `to`: fields, and a line diff of the content.
#[utoipa::path(
    get,
    path = "/api/v1/scripts/{script_id}/diff",
    tag = "jobs",
    params(("script_id" = u64, Path, description = "脚本ID"), DiffQuery),
    responses(
        (status = 200, description = "data: {from, to, changed_fields, content_changed, content_diff}", body = Envelope<answers::JobDiff>),
        (status = 400, description = "缺少 from", body = Failure),
        (status = 404, description = "脚本或版本不存在", body = Failure),
    )
)]
async fn diff(id: u64, jobs: Option<Arc<Jobs>>, q: HashMap<String, String>) -> Resp {
    with_jobs(jobs, |jobs| async move {
        let get = |k| query_u64(&q, k).map_err(|e| JobError::Invalid(e.message));
        let from = get("from")?.ok_or_else(|| JobError::Invalid("缺少参数 from".into()))?;
        let to = match get("to")? {
            Some(t) => t,
            None => jobs.job(id).await?.version,
        };
        Ok(ok_data(jobs.diff(id, from, to).await?))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    version: u64,
    #[serde(default)]
    acknowledge_danger: bool,
    #[serde(default)]
    acknowledge_reason: Option<String>,
}

/// Makes the definition of an earlier version the current one, as a new version.
#[utoipa::path(
    post,
    path = "/api/v1/scripts/{script_id}/rollback",
    tag = "jobs",
    params(("script_id" = u64, Path, description = "脚本ID")),
    request_body = RollbackBody,
    responses(
        (status = 200, description = "message, data: the script", body = Envelope<answers::JobView>),
        (status = 404, description = "脚本或版本不存在", body = Failure),
        (status = 409, description = "已是该版本的内容, 或危险命令未确认", body = Failure),
    )
)]
async fn rollback(id: u64, jobs: Option<Arc<Jobs>>, body: Bytes, by: Caller) -> Resp {
    with_jobs(jobs, |jobs| async move {
        let b: RollbackBody = body_of(&body)?;
        let rec = jobs
            .rollback(
                id,
                b.version,
                b.acknowledge_danger,
                b.acknowledge_reason,
                by.name(),
            )
            .await?;
        by.audit_ack(&rec, b.acknowledge_danger).await;
        Ok(ok_message(
            format!("已回滚到版本 {} 的内容, 新版本 {}", b.version, rec.version),
            Some(vwed_jobs::view_job(&rec, true)),
        ))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    reason: Option<String>,
}

/// An engineer acknowledges the dangerous commands of the current version, so
/// that it may be activated and run; recorded in the job's history.
#[utoipa::path(
    post,
    path = "/api/v1/scripts/{script_id}/acknowledge",
    tag = "jobs",
    params(("script_id" = u64, Path, description = "脚本ID")),
    request_body = AckBody,
    responses(
        (status = 200, description = "message, data: the script", body = Envelope<answers::JobView>),
        (status = 404, description = "脚本不存在", body = Failure),
        (status = 409, description = "没有需要确认的危险命令", body = Failure),
    )
)]
async fn acknowledge(id: u64, jobs: Option<Arc<Jobs>>, body: Bytes, by: Caller) -> Resp {
    with_jobs(jobs, |jobs| async move {
        let b: AckBody = body_of(&body)?;
        let rec = jobs.acknowledge(id, b.reason, by.name()).await?;
        by.audit_ack(&rec, true).await;
        Ok(ok_message(
            format!("已确认版本 {} 的危险命令", rec.version),
            Some(vwed_jobs::view_job(&rec, true)),
        ))
    })
    .await
}

// ----------------------------------------------------------------- templates

/// Templates, built-in and user-made, with their typed parameters and use counts.
#[utoipa::path(
    get,
    path = "/api/v1/scripts/templates",
    tag = "jobs",
    responses((status = 200, description = "data: {items, total}", body = Envelope<answers::Templates>))
)]
async fn templates(jobs: Option<Arc<Jobs>>) -> Resp {
    with_jobs(jobs, |jobs| async move {
        let list: Vec<Value> = jobs
            .templates()
            .await?
            .iter()
            .map(vwed_jobs::view_template)
            .collect();
        Ok(ok_data(json!({"total": list.len(), "items": list})))
    })
    .await
}

/// Creates a template: `name`, `language`, `content`, `parameters` (typed), and
/// optionally `description`, `category`, `triggers`, `timeout`.
#[utoipa::path(
    post,
    path = "/api/v1/scripts/templates",
    tag = "jobs",
    request_body(content = TemplateSpec, description = "模板定义"),
    responses(
        (status = 200, description = "message, data: the template", body = Envelope<answers::TemplateView>),
        (status = 400, description = "定义无效", body = Failure),
        (status = 409, description = "名称已存在", body = Failure),
    )
)]
async fn create_template(jobs: Option<Arc<Jobs>>, body: Bytes, by: Caller) -> Resp {
    with_jobs(jobs, |jobs| async move {
        let input: TemplateSpec = body_of(&body)?;
        let t = jobs.create_template(input, by.name()).await?;
        Ok(ok_message(
            format!("模板 {} 已创建", t.spec.name),
            Some(vwed_jobs::view_template(&t)),
        ))
    })
    .await
}

/// One template.
#[utoipa::path(
    get,
    path = "/api/v1/scripts/templates/{template_id}",
    tag = "jobs",
    params(("template_id" = u64, Path, description = "模板ID")),
    responses(
        (status = 200, description = "data: the template", body = Envelope<answers::TemplateView>),
        (status = 404, description = "模板不存在", body = Failure),
    )
)]
async fn template(id: u64, jobs: Option<Arc<Jobs>>) -> Resp {
    with_jobs(jobs, |jobs| async move {
        Ok(ok_data(vwed_jobs::view_template(&jobs.template(id).await?)))
    })
    .await
}

/// Deletes a user-made template (built-in ones stay).
#[utoipa::path(
    delete,
    path = "/api/v1/scripts/templates/{template_id}",
    tag = "jobs",
    params(("template_id" = u64, Path, description = "模板ID")),
    responses(
        (status = 200, description = "message", body = Envelope<answers::Removed>),
        (status = 404, description = "模板不存在", body = Failure),
        (status = 409, description = "内置模板不能删除", body = Failure),
    )
)]
async fn delete_template(id: u64, jobs: Option<Arc<Jobs>>) -> Resp {
    with_jobs(jobs, |jobs| async move {
        let t = jobs.delete_template(id).await?;
        Ok(ok_message(
            format!("模板 {} 已删除", t.spec.name),
            Some(json!({"id": id})),
        ))
    })
    .await
}

/// Makes a job from a template: `values` for its parameters (they become the
/// job's parameter defaults, never pasted into the code), and optionally the
/// job's `name`, `description`, `category`, `tags`, `timeout`, `retry_policy`,
/// `triggers`, `status`. Counts one use of the template.
#[utoipa::path(
    post,
    path = "/api/v1/scripts/templates/{template_id}/instantiate",
    tag = "jobs",
    params(("template_id" = u64, Path, description = "模板ID")),
    request_body(content = ToJob, description = "模板的参数值, 及新脚本自己的字段"),
    responses(
        (status = 200, description = "message, data: the new script", body = Envelope<answers::JobView>),
        (status = 400, description = "参数值不符合模板的参数定义", body = Failure),
        (status = 404, description = "模板不存在", body = Failure),
        (status = 409, description = "名称已存在", body = Failure),
    )
)]
async fn instantiate(id: u64, jobs: Option<Arc<Jobs>>, body: Bytes, by: Caller) -> Resp {
    with_jobs(jobs, |jobs| async move {
        let req: ToJob = body_of(&body)?;
        let asked = req.acknowledge_danger;
        let rec = jobs.from_template(id, req, by.name()).await?;
        by.audit_ack(&rec, asked).await;
        Ok(ok_message(
            format!("已由模板 {id} 创建脚本 {}", rec.spec.name),
            Some(vwed_jobs::view_job(&rec, true)),
        ))
    })
    .await
}

// ---------------------------------------------------------------- statistics

/// Totals, active jobs, executions by status and trigger, success rate, average
/// and p95 duration, running and queued now, template use.
#[utoipa::path(
    get,
    path = "/api/v1/scripts/statistics/overview",
    tag = "jobs",
    responses((status = 200, description = "data: {scripts, executions, templates}", body = Envelope<answers::JobsOverview>))
)]
async fn overview(jobs: Option<Arc<Jobs>>) -> Resp {
    with_jobs(
        jobs,
        |jobs| async move { Ok(ok_data(jobs.overview().await?)) },
    )
    .await
}
