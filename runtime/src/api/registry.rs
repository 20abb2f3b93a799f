//! `GET /api/script/registry/status` (seed 001 §3.5): everything running
//! scripts registered, with call counters; and `GET
//! /api/script/integration/functions` (§6.2), the functions a task editor offers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use serde_json::{Map, Value, json};
use utoipa::IntoParams;
use warp::Filter;

use super::answers;
use super::query;
use super::reply::{Envelope, Resp, ok_data};
use super::route::{self, Route};
use super::with_engine;
use vwed_auth::Role;
use vwed_engine::Engine;
use vwed_engine::Registry;
use vwed_registry::Stats;

pub fn routes(s: &super::Services) -> Vec<Route> {
    let engine = &s.engine;
    let e = with_engine(engine);
    vec![
        route::get("/api/script/registry/status", Role::Viewer)
            .to(|at| at.and(e.clone()).then(registry_status)),
        route::get("/api/script/integration/functions", Role::Viewer).to(|at| {
            at.and(e)
                .and(query::known::<FunctionsQuery>())
                .then(integration_functions)
        }),
    ]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(registry_status, integration_functions))]
pub struct Doc;

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct FunctionsQuery {
    /// 标签筛选, 多个标签用逗号分隔; 有任一标签即可
    tags: Option<String>,
}

/// Routes, functions, event listeners and timers of the running scripts, and
/// the scripts themselves.
#[utoipa::path(
    get,
    path = "/api/script/registry/status",
    tag = "registry",
    responses((
        status = 200,
        description = "data: {api_routes, registered_functions, event_listeners, timers, active_scripts}",
        body = Envelope<answers::RegistryStatus>
    ))
)]
async fn registry_status(engine: Arc<Engine>) -> Resp {
    let reg = &engine.registry;
    ok_data(json!({
        "api_routes": routes_json(reg),
        "registered_functions": functions_json(reg),
        "event_listeners": listeners_json(reg),
        "timers": timers_json(reg),
        "active_scripts": active_json(&engine),
    }))
}

/// A registration as the status shows it: what is particular to it, its
/// owner, when it came, and its call counters.
fn registration(own: Value, script_id: &str, registered_at: &str, stats: &Stats) -> Value {
    let mut v = own;
    v["script_id"] = json!(script_id);
    v["registered_at"] = json!(registered_at);
    stats.add_to(&mut v);
    v
}

fn routes_json(reg: &Registry) -> Map<String, Value> {
    reg.routes()
        .iter()
        .map(|r| {
            let v = json!({
                "path": r.path,
                "method": r.method,
                "script_id": &*r.target.script_id,
                "description": r.description,
                "public": r.public,
                "call_count": r.stats.calls.load(Relaxed),
                "error_count": r.stats.errors.load(Relaxed),
                "average_response_time_ms": r.stats.average_ms(),
                "registered_at": r.registered_at,
            });
            (format!("{}:{}", r.method, r.path), v)
        })
        .collect()
}

fn functions_json(reg: &Registry) -> Map<String, Value> {
    reg.functions()
        .iter()
        .map(|f| {
            let own = json!({
                "description": f.description,
                "is_async": f.is_async,
                "parameters": f.parameters,
                "tags": f.tags,
            });
            let v = registration(own, &f.target.script_id, &f.registered_at, &f.stats);
            (f.name.clone(), v)
        })
        .collect()
}

fn listeners_json(reg: &Registry) -> Map<String, Value> {
    reg.all_listeners()
        .into_iter()
        .map(|(event, list)| {
            let list = list
                .iter()
                .map(|l| {
                    let own = json!({
                        "priority": l.priority,
                        "dropped_count": l.dropped.load(Relaxed),
                    });
                    registration(own, &l.target.script_id, &l.registered_at, &l.stats)
                })
                .collect();
            (event, Value::Array(list))
        })
        .collect()
}

fn timers_json(reg: &Registry) -> Map<String, Value> {
    reg.timers()
        .iter()
        .map(|t| {
            let next = t.next_run_ms.load(Relaxed);
            let own = json!({
                "name": t.name,
                "schedule": t.schedule,
                "skipped_count": t.skipped.load(Relaxed),
                "next_run": (next > 0).then(|| vwed_base::clock::iso_utc(next)),
            });
            let v = registration(own, &t.target.script_id, &t.registered_at, &t.stats);
            (
                format!("{}:timer_{}", t.target.script_id, t.target.handler),
                v,
            )
        })
        .collect()
}

fn active_json(engine: &Engine) -> Map<String, Value> {
    engine
        .instances()
        .into_iter()
        .map(|i| {
            let v = json!({
                "script_path": i.script_path,
                "started_at": i.started_at,
                "status": i.status(),
                "pid": i.pid(),
                "heartbeat": i.conn().map(|c| c.last_seen_secs()),
            });
            (i.script_id.to_string(), v)
        })
        .collect()
}

/// The functions of the running scripts, with their parameters and counters.
#[utoipa::path(
    get,
    path = "/api/script/integration/functions",
    tag = "registry",
    params(FunctionsQuery),
    responses((status = 200, description = "data: list of functions", body = Envelope<Vec<answers::FunctionInfo>>))
)]
async fn integration_functions(engine: Arc<Engine>, q: HashMap<String, String>) -> Resp {
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
