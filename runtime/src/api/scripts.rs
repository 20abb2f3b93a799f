use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::StatusCode;

use super::body::parse_json;
use super::query_u64;
use super::reply::{ApiError, Resp, finish, json_response, ok_data};
use crate::engine::{Engine, FnCallError, StartError, StartOk, StartRequest};
use crate::registry::Counts;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    #[serde(default)]
    script_path: Option<String>,
    #[serde(default)]
    file_id: Option<u64>,
    #[serde(default)]
    start_params: Value,
}

fn start_error(e: StartError) -> ApiError {
    let status = match &e {
        StartError::NotFound(_) => StatusCode::NOT_FOUND,
        StartError::AlreadyRunning { .. } | StartError::Conflict(_) => StatusCode::CONFLICT,
        StartError::NoBoot | StartError::Syntax(_) | StartError::BadParams => {
            StatusCode::BAD_REQUEST
        }
        StartError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        StartError::Store(
            crate::store::StoreError::Invalid(_) | crate::store::StoreError::Path(_),
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

pub async fn start(engine: Arc<Engine>, body: Bytes) -> Resp {
    finish(
        async {
            let b: StartBody = parse_json(&body)?;
            if b.script_path.as_deref().is_none_or(str::is_empty) && b.file_id.is_none() {
                return Err(ApiError::bad_request("缺少script_path参数"));
            }
            let ok = engine
                .start(StartRequest {
                    script_path: b.script_path,
                    file_id: b.file_id,
                    start_params: b.start_params,
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

pub async fn stop(script_id: String, engine: Arc<Engine>) -> Resp {
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

pub async fn restart(script_id: String, engine: Arc<Engine>) -> Resp {
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

pub async fn running(engine: Arc<Engine>) -> Resp {
    ok_data(Value::Array(engine.running_json()))
}

pub async fn output(script_id: String, engine: Arc<Engine>, q: HashMap<String, String>) -> Resp {
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
            let ring = inst.output.lock().unwrap_or_else(|p| p.into_inner());
            let lines = ring.tail(after, limit);
            Ok(ok_data(json!({
                "script_id": script_id,
                "status": inst.state().as_str(),
                "lines": lines,
                "dropped": ring.dropped(),
            })))
        }
        .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecBody {
    #[serde(default)]
    script_id: Option<String>,
    function_name: Option<String>,
    #[serde(default)]
    function_args: Value,
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

pub async fn execute_function(engine: Arc<Engine>, body: Bytes) -> Resp {
    let t0 = Instant::now();
    let b: ExecBody = match parse_json(&body) {
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

pub async fn registry_status(engine: Arc<Engine>) -> Resp {
    let reg = &engine.registry;
    let mut routes = serde_json::Map::new();
    for r in reg.routes() {
        routes.insert(
            format!("{}:{}", r.method, r.path),
            json!({
                "path": r.path,
                "method": r.method,
                "script_id": &*r.target.script_id,
                "description": r.description,
                "call_count": r.stats.calls.load(std::sync::atomic::Ordering::Relaxed),
                "error_count": r.stats.errors.load(std::sync::atomic::Ordering::Relaxed),
                "average_response_time_ms": r.stats.average_ms(),
                "registered_at": r.registered_at,
            }),
        );
    }
    let mut functions = serde_json::Map::new();
    for f in reg.functions() {
        let mut v = json!({
            "script_id": &*f.target.script_id,
            "description": f.description,
            "is_async": f.is_async,
            "parameters": f.parameters,
            "tags": f.tags,
            "registered_at": f.registered_at,
        });
        f.stats.add_to(&mut v);
        functions.insert(f.name.clone(), v);
    }
    let mut listeners = serde_json::Map::new();
    for (event, list) in reg.all_listeners() {
        listeners.insert(
            event,
            Value::Array(
                list.iter()
                    .map(|l| {
                        let mut v = json!({
                            "script_id": &*l.target.script_id,
                            "priority": l.priority,
                            "registered_at": l.registered_at,
                            "dropped_count": l.dropped.load(std::sync::atomic::Ordering::Relaxed),
                        });
                        l.stats.add_to(&mut v);
                        v
                    })
                    .collect(),
            ),
        );
    }
    let mut timers = serde_json::Map::new();
    for t in reg.timers() {
        let mut v = json!({
            "script_id": &*t.target.script_id,
            "name": t.name,
            "schedule": t.schedule,
            "registered_at": t.registered_at,
            "skipped_count": t.skipped.load(std::sync::atomic::Ordering::Relaxed),
        });
        t.stats.add_to(&mut v);
        timers.insert(
            format!("{}:timer_{}", t.target.script_id, t.target.handler),
            v,
        );
    }
    let mut active = serde_json::Map::new();
    for i in engine.instances() {
        active.insert(
            i.script_id.to_string(),
            json!({
                "script_path": i.script_path,
                "started_at": i.started_at,
                "status": i.state().as_str(),
                "pid": i.pid(),
                "heartbeat": i.conn().map(|c| c.last_seen_secs()),
            }),
        );
    }
    ok_data(json!({
        "api_routes": routes,
        "registered_functions": functions,
        "event_listeners": listeners,
        "timers": timers,
        "active_scripts": active,
    }))
}

pub async fn integration_functions(engine: Arc<Engine>, q: HashMap<String, String>) -> Resp {
    let wanted: Vec<String> = q
        .get("tags")
        .map(|t| {
            t.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let list: Vec<Value> = engine
        .functions_json()
        .into_iter()
        .filter(|f| {
            wanted.is_empty()
                || f["tags"].as_array().is_some_and(|tags| {
                    tags.iter()
                        .any(|t| t.as_str().is_some_and(|t| wanted.iter().any(|w| w == t)))
                })
        })
        .collect();
    ok_data(Value::Array(list))
}

#[derive(Deserialize)]
struct EmitBody {
    #[serde(alias = "name")]
    event_name: String,
    #[serde(default)]
    data: Value,
}

/// The central server (or a technician) emits an event to the scripts' listeners.
pub async fn emit_event(engine: Arc<Engine>, body: Bytes) -> Resp {
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
