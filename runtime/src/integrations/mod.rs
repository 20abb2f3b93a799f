//! Services for scripts beyond the core: task variables and the central task
//! server (`VWED.task`), warehouse locations (`VWED.storage`), outgoing HTTP
//! (`VWED.http`) and mail (`VWED.mail`). The engine's dispatcher calls the typed
//! functions here; none of them needs the engine.

pub mod http_client;
pub mod locations;
pub mod mail;
pub mod task_block;
pub mod task_server;
pub mod task_vars;

use serde_json::{Map, Value, json};
use vwed_ipc::HttpRequest;

use crate::config::Config;
use crate::db::Db;
use http_client::HttpError;
use locations::{LocationError, Locations, LockOutcome};
use task_vars::{TaskVars, TaskVarsError};

/// Locations one `list_locations` answers at most.
const MAX_LIST: u32 = 10_000;

/// `VWED.task.get_variables`: `{}` for a task without variables.
pub fn get_variables(db: Db, task_id: &str) -> Result<Value, TaskVarsError> {
    Ok(TaskVars::new(db)
        .get(task_id)?
        .map_or_else(|| json!({}), Value::Object))
}

pub fn set_variable(
    db: Db,
    task_id: &str,
    name: &str,
    value: Value,
) -> Result<Value, TaskVarsError> {
    TaskVars::new(db).set(task_id, name, value)?;
    Ok(Value::Null)
}

/// The location, or `null` for an unknown code.
pub fn get_location(db: Db, code: &str) -> Result<Value, LocationError> {
    Ok(Locations::new(db).get(code)?.unwrap_or(Value::Null))
}

pub fn list_locations(
    db: Db,
    area: Option<&str>,
    locked: Option<bool>,
    limit: Option<u32>,
) -> Result<Value, LocationError> {
    let limit = limit.unwrap_or(1_000).min(MAX_LIST) as usize;
    let (list, _) = Locations::new(db).list(area, locked, limit)?;
    Ok(Value::Array(list))
}

/// True when `task_id` holds the lock now (also when it already did).
pub fn lock_location(db: Db, code: &str, task_id: &str) -> Result<Value, LocationError> {
    let out = Locations::new(db).lock(code, task_id)?;
    Ok(Value::Bool(matches!(
        out,
        LockOutcome::Locked | LockOutcome::AlreadyHeld
    )))
}

pub fn unlock_location(
    db: Db,
    code: &str,
    task_id: Option<&str>,
    force: bool,
) -> Result<Value, LocationError> {
    Ok(Value::Bool(
        Locations::new(db).unlock(code, task_id, force)?,
    ))
}

/// `VWED.http.request`: checked against the allow-list, then sent.
pub async fn http_request(cfg: &Config, r: HttpRequest) -> Result<Value, HttpError> {
    let out = http_client::prepare(cfg, r)?;
    let f = http_client::send(cfg, out).await?;
    Ok(http_client::to_script(&f))
}

/// The variables of a task, for the HTTP API.
pub async fn task_variables(
    db: Db,
    task_id: String,
) -> Result<Option<Map<String, Value>>, TaskVarsError> {
    let store = TaskVars::new(db);
    tokio::task::spawn_blocking(move || store.get(&task_id))
        .await
        .map_err(|e| TaskVarsError::Internal(e.to_string()))?
}
