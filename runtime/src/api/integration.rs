//! The central task server's script block (seed 001 §6.1) and the task variables
//! it leaves behind.
//!
//! `POST /api/script/integration/execute` runs one block; `GET
//! /api/script/integration/tasks/{task_id}/variables` reads a task's variables.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;

use super::body::parse_json;
use super::reply::{ApiError, Resp, finish, json_response, ok_data};
use super::scripts::fn_error_status;
use crate::engine::Engine;
use crate::integrations::task_block::{self, Block, MAX_RETRIES, Mode};
use crate::integrations::task_vars::{self, TaskVarsError};

#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Num(serde_json::Number),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecBody {
    #[serde(default)]
    block_type: Option<String>,
    #[serde(default)]
    execution_mode: Option<String>,
    #[serde(default)]
    function_name: Option<String>,
    #[serde(default)]
    function_args: Value,
    #[serde(default)]
    script_id: Option<String>,
    #[serde(default)]
    task_id: Option<Id>,
    #[serde(default)]
    task_variables: Option<Map<String, Value>>,
    /// Milliseconds, per attempt.
    #[serde(default)]
    timeout: Option<u64>,
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

fn block_of(b: ExecBody) -> Result<Block, ApiError> {
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

async fn variables(task_id: String, engine: Arc<Engine>) -> Resp {
    let task_id = path_param(task_id);
    finish(
        async {
            let vars =
                crate::integrations::task_variables(engine.store.db().clone(), task_id.clone())
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

async fn delete_variables(task_id: String, engine: Arc<Engine>) -> Resp {
    let task_id = path_param(task_id);
    finish(
        async {
            let store = crate::integrations::task_vars::TaskVars::new(engine.store.db().clone());
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

pub fn routes(engine: Arc<Engine>, limit: u64) -> BoxedFilter<(Resp,)> {
    let e = warp::any().map(move || engine.clone());
    let api = || warp::path("api").and(warp::path("script"));
    let exec = api()
        .and(warp::path!("integration" / "execute"))
        .and(warp::post())
        .and(e.clone())
        .and(super::body::limited(limit))
        .then(execute);
    let vars_path = move || api().and(warp::path!("integration" / "tasks" / String / "variables"));
    let vars = vars_path().and(warp::get()).and(e.clone()).then(variables);
    let del = vars_path()
        .and(warp::delete())
        .and(e)
        .then(delete_variables);
    exec.or(vars).unify().or(del).unify().boxed()
}
