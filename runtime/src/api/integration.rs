//! The central task server's script block (seed 001 §6.1) and the task variables
//! it leaves behind.
//!
//! `POST /api/script/integration/execute` runs one block; `GET
//! /api/script/integration/tasks/{task_id}/variables` reads a task's variables.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use warp::Filter;
use warp::http::StatusCode;

use super::answers;
use super::body::parse_json;
use super::reply::{ApiError, Envelope, Failure, Resp, finish, json_response, ok_data};
use super::route::{self, Route};
use super::scripts::fn_error_status;
use super::{body, with_engine};
use vwed_auth::Role;
use vwed_engine::Engine;
use vwed_integrations::task_block::{self, Block, MAX_RETRIES, Mode};
use vwed_integrations::task_vars::{self, TaskVarsError};

pub fn routes(s: &super::Services) -> Vec<Route> {
    let engine = &s.engine;
    let (e, b) = (with_engine(engine), body(s));
    let vars = "/api/script/integration/tasks/{task_id}/variables";
    vec![
        route::post("/api/script/integration/execute", Role::Operator)
            .to(|at| at.and(e.clone()).and(b).then(execute)),
        route::get(vars, Role::Viewer).to1(|at| at.and(e.clone()).then(variables)),
        route::delete(vars, Role::Operator).to1(|at| at.and(e).then(delete_variables)),
    ]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(execute, variables, delete_variables))]
pub struct Doc;

/// A task id: text or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Num(serde_json::Number),
}

/// One script block of a task (seed 001 §6.1).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TaskBlockBody {
    /// 只支持 script
    #[serde(default)]
    block_type: Option<String>,
    /// function_call (SCRIPT, 默认) 或 set_task_variables (SET_TASK_VARIABLES)
    #[serde(default)]
    execution_mode: Option<String>,
    #[serde(default)]
    function_name: Option<String>,
    #[serde(default)]
    function_args: Value,
    #[serde(default)]
    script_id: Option<String>,
    /// 任务ID (文本或数字); 给出时任务变量保存在此任务下
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    task_id: Option<Id>,
    /// 任务变量; 保存在任务下, 函数通过 VWED.task 读取
    #[serde(default)]
    task_variables: Option<Map<String, Value>>,
    /// Milliseconds, per attempt.
    #[serde(default)]
    timeout: Option<u64>,
    /// 失败后的重试次数
    #[serde(default)]
    retry_count: Option<u32>,
}

fn vars_error(e: TaskVarsError) -> ApiError {
    let status = match e {
        TaskVarsError::BadTaskId | TaskVarsError::BadName | TaskVarsError::TooLarge(_) => {
            StatusCode::BAD_REQUEST
        }
        TaskVarsError::Db(_) | TaskVarsError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e)
}

fn block_of(b: TaskBlockBody) -> Result<Block, ApiError> {
    if let Some(t) = &b.block_type
        && !t.eq_ignore_ascii_case("script")
    {
        return Err(ApiError::bad_request(format!(
            "不支持的 block_type {t}, 只支持 script"
        )));
    }
    let mode = match b.execution_mode.as_deref() {
        None | Some("") => Mode::FunctionCall,
        Some(m) => Mode::parse(m).ok_or_else(|| {
            ApiError::bad_request(format!(
                "不支持的 execution_mode {m}, 可选 function_call (SCRIPT) 或 set_task_variables (SET_TASK_VARIABLES)"
            ))
        })?,
    };
    let function_name = b
        .function_name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("缺少function_name参数"))?;
    let task_id = b.task_id.map(|id| match id {
        Id::Text(s) => s,
        Id::Num(n) => n.to_string(),
    });
    if let Some(id) = &task_id {
        task_vars::check_task_id(id).map_err(vars_error)?;
    }
    let task_variables = b.task_variables.unwrap_or_default();
    if task_variables
        .keys()
        .any(|k| k.is_empty() || k.len() > task_vars::MAX_NAME_BYTES)
    {
        return Err(vars_error(TaskVarsError::BadName));
    }
    let retry_count = b.retry_count.unwrap_or(0);
    if retry_count > MAX_RETRIES {
        return Err(ApiError::bad_request(format!(
            "retry_count 不能超过 {MAX_RETRIES}"
        )));
    }
    if b.timeout == Some(0) {
        return Err(ApiError::bad_request("timeout 必须大于 0 (毫秒)"));
    }
    Ok(Block {
        mode,
        function_name,
        function_args: b.function_args,
        script_id: b.script_id.filter(|s| !s.is_empty()),
        task_id,
        task_variables,
        timeout_ms: b.timeout,
        retry_count,
    })
}

/// Runs one script block of a task: calls the function (with retries) or sets
/// task variables. The answer adds `result: {data, execution_time_ms}` beside
/// the envelope.
#[utoipa::path(
    post,
    path = "/api/script/integration/execute",
    tag = "integration",
    request_body = TaskBlockBody,
    responses(
        (status = 200, description = "success, result, message, data: {task_id, execution_mode, attempts, set_variables, task_variables}", body = answers::BlockRun),
        (status = 400, description = "参数无效, 或函数不接受这些参数", body = answers::BlockRefused),
        (status = 404, description = "函数未注册", body = answers::BlockRun),
        (status = 500, description = "函数执行失败, 或任务变量保存失败", body = answers::BlockRefused),
        (status = 503, description = "脚本进程忙或已结束", body = answers::BlockRun),
        (status = 504, description = "函数执行超时", body = answers::BlockRun),
    )
)]
async fn execute(engine: Arc<Engine>, body: Bytes) -> Resp {
    finish(
        async {
            let block = block_of(parse_json(&body)?)?;
            let (task_id, mode) = (block.task_id.clone(), block.mode);
            let out = task_block::run(&*engine, engine.store.db().clone(), block)
                .await
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("任务变量保存失败: {e}"),
                    )
                })?;
            let data = json!({
                "task_id": task_id,
                "execution_mode": mode.as_str(),
                "attempts": out.attempts,
                "set_variables": out.set_variables,
                "task_variables": out.task_variables,
            });
            Ok(match out.result {
                Ok(v) => json_response(
                    StatusCode::OK,
                    &json!({
                        "success": true,
                        "result": {"data": v, "execution_time_ms": out.execution_time_ms},
                        "message": "脚本函数执行成功",
                        "data": data,
                    }),
                ),
                Err(e) => json_response(
                    fn_error_status(&e),
                    &json!({
                        "success": false,
                        "error": e.to_string(),
                        "message": "脚本函数执行失败",
                        "result": {"data": null, "execution_time_ms": out.execution_time_ms},
                        "data": data,
                    }),
                ),
            })
        }
        .await,
    )
}

/// Ids in URL paths may be percent-encoded (non-ASCII task ids and codes).
pub(super) fn path_param(raw: String) -> String {
    super::script_api::percent_decode(&raw).unwrap_or(raw)
}

/// The variables a task's blocks left.
#[utoipa::path(
    get,
    path = "/api/script/integration/tasks/{task_id}/variables",
    tag = "integration",
    params(("task_id" = String, Path, description = "任务ID")),
    responses(
        (status = 200, description = "data: {task_id, variables}", body = Envelope<answers::TaskVariables>),
        (status = 404, description = "任务没有任务变量", body = Failure),
    )
)]
async fn variables(task_id: String, engine: Arc<Engine>) -> Resp {
    let task_id = path_param(task_id);
    finish(
        async {
            let vars =
                vwed_integrations::task_variables(engine.store.db().clone(), task_id.clone())
                    .await
                    .map_err(vars_error)?
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::NOT_FOUND,
                            format!("任务 {task_id} 没有任务变量"),
                        )
                    })?;
            Ok(ok_data(json!({"task_id": task_id, "variables": vars})))
        }
        .await,
    )
}

/// Forgets a task's variables (when the task has ended).
#[utoipa::path(
    delete,
    path = "/api/script/integration/tasks/{task_id}/variables",
    tag = "integration",
    params(("task_id" = String, Path, description = "任务ID")),
    responses((status = 200, description = "data: {task_id, deleted}", body = Envelope<answers::TaskVariablesDeleted>))
)]
async fn delete_variables(task_id: String, engine: Arc<Engine>) -> Resp {
    let task_id = path_param(task_id);
    finish(
        async {
            let store = vwed_integrations::task_vars::TaskVars::new(engine.store.db().clone());
            let id = task_id.clone();
            let existed = tokio::task::spawn_blocking(move || store.delete(&id))
                .await
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?
                .map_err(vars_error)?;
            Ok(ok_data(json!({"task_id": task_id, "deleted": existed})))
        }
        .await,
    )
}
