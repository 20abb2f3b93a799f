//! `/api/script/scripts/*` (seed 001 §3): start, stop, restart, the running
//! set, a script's output, function calls; and `/api/script/events/emit`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use vwed_base::sync::Locked;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use warp::Filter;
use warp::http::StatusCode;

use super::answers;
use super::body::parse_json;
use super::query::{self, query_u64};
use super::reply::{ApiError, Envelope, Failure, Resp, finish, json_response, ok_data};
use super::route::{self, Route};
use super::{body, with_engine};
use vwed_auth::Role;
use vwed_engine::supervision::RestartPolicyRequest;
use vwed_engine::{Engine, FnCallError, StartError, StartOk, StartRequest};
use vwed_registry::Counts;

pub fn routes(s: &super::Services) -> Vec<Route> {
    let engine = &s.engine;
    let (e, b) = (with_engine(engine), body(s));
    vec![
        route::post("/api/script/scripts/start", Role::Operator)
            .to(|at| at.and(e.clone()).and(b.clone()).then(start)),
        route::get("/api/script/scripts/running", Role::Viewer)
            .to(|at| at.and(e.clone()).then(running)),
        route::post("/api/script/scripts/execute-function", Role::Operator)
            .to(|at| at.and(e.clone()).and(b.clone()).then(execute_function)),
        route::post("/api/script/scripts/{script_id}/stop", Role::Operator)
            .no_body()
            .to1(|at| at.and(e.clone()).then(stop)),
        route::post("/api/script/scripts/{script_id}/restart", Role::Operator)
            .no_body()
            .to1(|at| at.and(e.clone()).then(restart)),
        route::get("/api/script/scripts/{script_id}/output", Role::Viewer).to1(|at| {
            at.and(e.clone())
                .and(query::known::<OutputQuery>())
                .then(output)
        }),
        route::post("/api/script/safe-mode/exit", Role::Operator)
            .to(|at| at.and(e.clone()).and(b.clone()).then(exit_safe_mode)),
        route::post("/api/script/events/emit", Role::Operator)
            .to(|at| at.and(e).and(b).then(emit_event)),
    ]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    start,
    running,
    execute_function,
    stop,
    restart,
    output,
    exit_safe_mode,
    emit_event
))]
pub struct Doc;

/// Which script to start: its path (`project/file.py`) or its file id.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StartBody {
    /// 脚本相对路径, 例如 my_project/main.py
    #[serde(default)]
    script_path: Option<String>,
    #[serde(default)]
    file_id: Option<u64>,
    /// 传给 boot() 的启动参数 (JSON 对象)
    #[serde(default)]
    start_params: Value,
    /// 进程异常结束后的重启策略 (可选, 未给的字段取配置的默认值)
    #[serde(default)]
    restart_policy: Option<RestartPolicyRequest>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct OutputQuery {
    /// 只要序号大于此值的行
    after: Option<u64>,
    /// 最多返回的行数, 默认 200, 上限 10000
    limit: Option<u64>,
}

fn start_error(e: StartError) -> ApiError {
    let status = match &e {
        StartError::NotFound(_) => StatusCode::NOT_FOUND,
        StartError::AlreadyRunning { .. } | StartError::Conflict(_) => StatusCode::CONFLICT,
        StartError::NoBoot | StartError::Syntax(_) | StartError::BadParams => {
            StatusCode::BAD_REQUEST
        }
        StartError::Busy(_) | StartError::Sandbox(_) => StatusCode::SERVICE_UNAVAILABLE,
        StartError::Superseded => StatusCode::CONFLICT,
        StartError::Store(
            vwed_store::StoreError::Invalid(_)
            | vwed_store::StoreError::Path(_)
            | vwed_store::StoreError::OutsideProject(_),
        ) => StatusCode::BAD_REQUEST,
        StartError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        StartError::BootFailed { .. }
        | StartError::BootTimeout { .. }
        | StartError::WorkerDied { .. }
        | StartError::Spawn(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let data = match &e {
        StartError::AlreadyRunning { script_id, .. } => Some(json!({"script_id": script_id})),
        StartError::Conflict(c) => Some(json!({"owner_script_id": c.owner()})),
        StartError::Syntax(s) => Some(json!({"line": s.line, "offset": s.offset, "detail": s.msg})),
        StartError::BootFailed {
            script_id,
            traceback,
            ..
        } => Some(json!({"script_id": script_id, "traceback": traceback})),
        StartError::BootTimeout { script_id, .. } => Some(json!({"script_id": script_id})),
        StartError::WorkerDied {
            script_id, output, ..
        } => Some(json!({"script_id": script_id, "output": output})),
        _ => None,
    };
    let mut err = ApiError::new(status, e);
    err.data = data;
    err
}

fn started_response(ok: &StartOk, extra: Option<(&str, Value)>) -> Resp {
    let c = ok.counts;
    let mut body = json!({
        "success": true,
        "script_id": ok.script_id,
        "script_path": ok.script_path,
        "message": format!(
            "脚本服务启动成功，已注册 {} 个接口，{} 个函数，{} 个事件监听器",
            c.apis, c.functions, c.events
        ),
        "registrations": c.to_json(),
        "data": {"script_id": ok.script_id, "script_path": ok.script_path, "registrations": c.to_json()},
    });
    if let Some((k, v)) = extra {
        body[k] = v.clone();
        body["data"][k] = v;
    }
    json_response(StatusCode::OK, &body)
}

/// Starts a script: runs its `boot()` and commits what it registered.
#[utoipa::path(
    post,
    path = "/api/script/scripts/start",
    tag = "scripts",
    request_body = StartBody,
    responses(
        (status = 200, description = "message, script_id, script_path, registrations (后三者也在 data 中)", body = answers::Started),
        (status = 400, description = "缺少参数, 语法错误或没有 boot()", body = Failure),
        (status = 404, description = "脚本文件不存在", body = Failure),
        (status = 409, description = "已在运行, 或接口已被其他脚本注册", body = Failure),
        (status = 500, description = "boot() 失败; data 中有 traceback", body = Failure),
    )
)]
async fn start(engine: Arc<Engine>, body: Bytes) -> Resp {
    finish(
        async {
            let b: StartBody = parse_json(&body)?;
            if b.script_path.as_deref().is_none_or(str::is_empty) && b.file_id.is_none() {
                return Err(ApiError::bad_request("缺少script_path参数"));
            }
            let restart_policy = match &b.restart_policy {
                Some(p) => Some(
                    p.resolve(&engine.cfg.supervision.default_policy())
                        .map_err(|e| ApiError::bad_request(format!("restart_policy 无效: {e}")))?,
                ),
                None => None,
            };
            let ok = engine
                .start(StartRequest {
                    script_path: b.script_path,
                    file_id: b.file_id,
                    start_params: b.start_params,
                    restart_policy,
                    ..StartRequest::default()
                })
                .await
                .map_err(start_error)?;
            Ok(started_response(&ok, None))
        }
        .await,
    )
}

fn stopped_message(path: &str, c: Counts) -> String {
    format!(
        "脚本服务已停止 ({path})，已清理 {} 个接口、{} 个函数、{} 个事件监听器",
        c.apis, c.functions, c.events
    )
}

/// A script_id taken from a URL path, percent-decoded: file names, and so ids, may
/// hold spaces or non-ASCII characters.
fn path_id(raw: String) -> String {
    super::script_api::percent_decode(&raw).unwrap_or(raw)
}

/// Stops a running script and withdraws its registrations.
#[utoipa::path(
    post,
    path = "/api/script/scripts/{script_id}/stop",
    tag = "scripts",
    params(("script_id" = String, Path, description = "启动时返回的 script_id")),
    responses(
        (status = 200, description = "message, registrations, data: {script_id, registrations, killed}", body = answers::Stopped),
        (status = 404, description = "脚本未运行", body = Failure),
    )
)]
async fn stop(script_id: String, engine: Arc<Engine>) -> Resp {
    let script_id = path_id(script_id);
    finish(async {
        let s = engine
            .stop(&script_id)
            .await
            .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e))?;
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "success": true,
                "message": stopped_message(&s.script_path, s.counts),
                "registrations": s.counts.to_json(),
                "data": {"script_id": script_id, "registrations": s.counts.to_json(), "killed": s.killed},
            }),
        ))
    }
    .await)
}

/// Stops a running script and starts it again from its current source.
#[utoipa::path(
    post,
    path = "/api/script/scripts/{script_id}/restart",
    tag = "scripts",
    params(("script_id" = String, Path, description = "启动时返回的 script_id")),
    responses(
        (status = 200, description = "as start, plus old_script_id", body = answers::Started),
        (status = 404, description = "脚本未运行", body = Failure),
    )
)]
async fn restart(script_id: String, engine: Arc<Engine>) -> Resp {
    let script_id = path_id(script_id);
    finish(
        async {
            if engine.instance(&script_id).is_none() {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("脚本 {script_id} 未运行"),
                ));
            }
            let (_, ok) = engine.restart(&script_id).await.map_err(start_error)?;
            Ok(started_response(
                &ok,
                Some(("old_script_id", json!(script_id))),
            ))
        }
        .await,
    )
}

/// The running scripts, with their restart policy and restarts, a handler
/// running past its timeout (`busy`), and why a crashed one ended. Next to
/// `data`: `safe_mode`, and in safe mode why and the scripts not restored.
#[utoipa::path(
    get,
    path = "/api/script/scripts/running",
    tag = "scripts",
    responses((status = 200, description = "data: list of running scripts; safe_mode (+ safe_mode_reason, safe_mode_since, held_scripts)", body = answers::Running))
)]
async fn running(engine: Arc<Engine>) -> Resp {
    let mut body = json!({"success": true, "data": engine.running_json()});
    if let (Some(b), Value::Object(safe)) = (body.as_object_mut(), engine.safe_mode.to_json()) {
        b.extend(safe);
    }
    json_response(StatusCode::OK, &body)
}

/// Body of `safe-mode/exit`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SafeModeExit {
    /// true (默认): 启动被保留的脚本; false: 不再恢复它们 (移出运行集合)
    #[serde(default = "yes")]
    restore: bool,
}

fn yes() -> bool {
    true
}

/// Leaves safe mode: starts the scripts it held back, or forgets them.
#[utoipa::path(
    post,
    path = "/api/script/safe-mode/exit",
    tag = "scripts",
    request_body = SafeModeExit,
    responses(
        (status = 200, description = "message, data: {restored | forgotten: [script_path]}", body = Envelope<answers::SafeModeLeft>),
        (status = 409, description = "运行时不在安全模式", body = Failure),
    )
)]
async fn exit_safe_mode(engine: Arc<Engine>, body: Bytes) -> Resp {
    finish(
        async {
            let b: SafeModeExit = if body.is_empty() {
                SafeModeExit { restore: true }
            } else {
                parse_json(&body)?
            };
            let held = engine
                .leave_safe_mode(b.restore)
                .await
                .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "运行时不在安全模式"))?;
            let (key, message) = if b.restore {
                (
                    "restored",
                    format!("已退出安全模式, 已恢复 {} 个脚本", held.len()),
                )
            } else {
                (
                    "forgotten",
                    format!("已退出安全模式, {} 个脚本不再恢复", held.len()),
                )
            };
            Ok(json_response(
                StatusCode::OK,
                &json!({"success": true, "message": message, "data": {key: held}}),
            ))
        }
        .await,
    )
}

/// The recent stdout/stderr/log lines of a live or recently ended script.
#[utoipa::path(
    get,
    path = "/api/script/scripts/{script_id}/output",
    tag = "scripts",
    params(("script_id" = String, Path, description = "script_id"), OutputQuery),
    responses(
        (status = 200, description = "data: {script_id, status, lines, omitted, dropped}: the newest lines after `after`, at most `limit` and `output_max_bytes`; omitted = newer lines left out by those bounds, dropped = lines that fell out of memory", body = Envelope<answers::ScriptOutput>),
        (status = 404, description = "脚本不存在或已过期", body = Failure),
    )
)]
async fn output(script_id: String, engine: Arc<Engine>, q: HashMap<String, String>) -> Resp {
    let script_id = path_id(script_id);
    finish(
        async {
            let inst = engine.any_instance(&script_id).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("脚本 {script_id} 不存在或已过期"),
                )
            })?;
            let after = query_u64(&q, "after")?.unwrap_or(0);
            let limit = query_u64(&q, "limit")?.unwrap_or(200).min(10_000) as usize;
            let ring = inst.output.locked();
            let (lines, omitted) = ring.tail(after, limit, engine.cfg.engine.output_max_bytes);
            Ok(ok_data(json!({
                "script_id": script_id,
                "status": inst.status(),
                "lines": lines,
                "omitted": omitted,
                "dropped": ring.dropped(),
            })))
        }
        .await,
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct FunctionCallBody {
    /// 不给时在所有运行中的脚本里找这个函数
    #[serde(default)]
    script_id: Option<String>,
    function_name: Option<String>,
    #[serde(default)]
    function_args: Value,
    /// 超时 (毫秒), 不超过配置的上限
    #[serde(default)]
    timeout_ms: Option<u64>,
}

pub fn fn_error_status(e: &FnCallError) -> StatusCode {
    match e {
        FnCallError::ScriptNotRunning(_) | FnCallError::NotRegistered(_) => StatusCode::NOT_FOUND,
        FnCallError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        FnCallError::Gone(_) | FnCallError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        FnCallError::ArgumentMismatch { .. } => StatusCode::BAD_REQUEST,
        FnCallError::Failed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Calls a function a script registered. The answer is not the usual envelope:
/// `{success, result, execution_time_ms}` or `{success: false, error, execution_time_ms}`.
#[utoipa::path(
    post,
    path = "/api/script/scripts/execute-function",
    tag = "scripts",
    request_body = FunctionCallBody,
    responses(
        (status = 200, description = "success, result, execution_time_ms", body = answers::FunctionCalled),
        (status = 400, description = "请求无效, 或函数不接受这些参数", body = answers::FunctionRefused),
        (status = 404, description = "脚本未运行或函数未注册", body = answers::FunctionCalled),
        (status = 500, description = "函数执行失败", body = answers::FunctionCalled),
        (status = 503, description = "脚本进程忙或已结束", body = answers::FunctionCalled),
        (status = 504, description = "函数执行超时", body = answers::FunctionCalled),
    )
)]
async fn execute_function(engine: Arc<Engine>, body: Bytes) -> Resp {
    let t0 = Instant::now();
    let b: FunctionCallBody = match parse_json(&body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let Some(name) = b.function_name.filter(|n| !n.is_empty()) else {
        return ApiError::bad_request("缺少function_name参数").into_response();
    };
    let script_id = b.script_id.filter(|s| !s.is_empty());
    let r = engine
        .call_function(script_id.as_deref(), &name, &b.function_args, b.timeout_ms)
        .await;
    let ms = (t0.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    match r {
        Ok(result) => json_response(
            StatusCode::OK,
            &json!({"success": true, "result": result, "execution_time_ms": ms}),
        ),
        Err(e) => json_response(
            fn_error_status(&e),
            &json!({"success": false, "error": e.to_string(), "execution_time_ms": ms}),
        ),
    }
}

#[derive(Deserialize, ToSchema)]
struct EmitBody {
    /// 事件名 (也可写作 name), 不超过 200 个字符
    #[serde(alias = "name")]
    event_name: String,
    #[serde(default)]
    data: Value,
}

/// The central server (or a technician) emits an event to the scripts' listeners.
#[utoipa::path(
    post,
    path = "/api/script/events/emit",
    tag = "scripts",
    request_body = EmitBody,
    responses((status = 200, description = "message, data: {event_name, listeners}", body = Envelope<answers::EventEmitted>))
)]
async fn emit_event(engine: Arc<Engine>, body: Bytes) -> Resp {
    finish(
        async {
            let b: EmitBody = parse_json(&body)?;
            if b.event_name.is_empty() || b.event_name.len() > 200 {
                return Err(ApiError::bad_request(
                    "event_name 不能为空且不超过 200 个字符",
                ));
            }
            let n = engine.emit(&b.event_name, &b.data);
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "success": true,
                    "message": format!("事件 {} 已发送给 {n} 个监听器", b.event_name),
                    "data": {"event_name": b.event_name, "listeners": n},
                }),
            ))
        }
        .await,
    )
}
