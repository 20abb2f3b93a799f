//! Services for scripts beyond the core: task variables and the central task
//! server (`VWED.task`), warehouse locations (`VWED.storage`), outgoing HTTP
//! (`VWED.http`) and mail (`VWED.mail`). The engine's dispatcher hands every
//! `task.*`, `storage.*`, `http.*` and `mail.*` request to [`call`].

pub mod http_client;
pub mod locations;
pub mod mail;
pub mod task_block;
pub mod task_server;
pub mod task_vars;

use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::engine::{Engine, Instance};
use locations::{Locations, LockOutcome};
use task_server::Op;
use task_vars::TaskVars;

/// Does [`call`] answer this service name?
pub fn handles(service: &str) -> bool {
    ["task.", "storage.", "http.", "mail."]
        .iter()
        .any(|p| service.starts_with(p))
}

fn parse<T: DeserializeOwned>(args: &str) -> Result<T, String> {
    serde_json::from_str(args).map_err(|e| format!("参数错误: {e}"))
}

/// Task ids arrive as strings or numbers (the seed uses `task_id=123`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Num(serde_json::Number),
}

impl Id {
    fn into_string(self) -> String {
        match self {
            Id::Text(s) => s,
            Id::Num(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct TaskIdArgs {
    task_id: Id,
}

#[derive(Deserialize)]
struct SetVarArgs {
    task_id: Id,
    name: String,
    #[serde(default)]
    value: Value,
}

#[derive(Deserialize)]
struct CreateArgs {
    task_label: String,
    #[serde(default)]
    input_params: Value,
}

#[derive(Deserialize)]
struct ExecuteArgs {
    task_id: Id,
    #[serde(default)]
    input_params: Value,
}

#[derive(Deserialize)]
struct LocationArgs {
    location_code: String,
}

#[derive(Deserialize)]
struct LockArgs {
    location_code: String,
    task_id: Id,
}

#[derive(Deserialize)]
struct UnlockArgs {
    location_code: String,
    #[serde(default)]
    task_id: Option<Id>,
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize)]
struct ListArgs {
    #[serde(default)]
    area: Option<String>,
    #[serde(default)]
    locked: Option<bool>,
    #[serde(default)]
    limit: Option<usize>,
}

/// Runs blocking store work off the executor threads.
async fn blocking<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Performs one `task.*`, `storage.*`, `http.*` or `mail.*` call for a script.
pub async fn call(
    engine: &Arc<Engine>,
    inst: &Arc<Instance>,
    service: &str,
    args: &str,
) -> Result<String, String> {
    let db = engine.store.db().clone();
    let cfg = engine.cfg.clone();
    let v: Value = match service {
        "task.get_variables" => {
            let a: TaskIdArgs = parse(args)?;
            let id = a.task_id.into_string();
            blocking(move || TaskVars::new(db).get(&id))
                .await?
                .map_or_else(|| json!({}), Value::Object)
        }
        "task.set_variable" => {
            let a: SetVarArgs = parse(args)?;
            let id = a.task_id.into_string();
            blocking(move || TaskVars::new(db).set(&id, &a.name, a.value)).await?;
            Value::Null
        }
        "task.create" | "task.get_status" | "task.stop" | "task.execute" => {
            let op = match service {
                "task.create" => {
                    let a: CreateArgs = parse(args)?;
                    Op::Create {
                        task_label: a.task_label,
                        input_params: a.input_params,
                    }
                }
                "task.get_status" => Op::Status {
                    task_id: parse::<TaskIdArgs>(args)?.task_id.into_string(),
                },
                "task.stop" => Op::Stop {
                    task_id: parse::<TaskIdArgs>(args)?.task_id.into_string(),
                },
                _ => {
                    let a: ExecuteArgs = parse(args)?;
                    Op::Execute {
                        task_id: a.task_id.into_string(),
                        input_params: a.input_params,
                    }
                }
            };
            task_server::call(&cfg, &inst.script_id, op)
                .await
                .map_err(|e| e.to_string())?
        }
        "storage.get_location" => {
            let a: LocationArgs = parse(args)?;
            blocking(move || Locations::new(db).get(&a.location_code))
                .await?
                .unwrap_or(Value::Null)
        }
        "storage.list_locations" => {
            let a: ListArgs = parse(args)?;
            let limit = a.limit.unwrap_or(1_000).min(10_000);
            let (list, _) =
                blocking(move || Locations::new(db).list(a.area.as_deref(), a.locked, limit))
                    .await?;
            Value::Array(list)
        }
        "storage.lock_location" => {
            let a: LockArgs = parse(args)?;
            let id = a.task_id.into_string();
            let out = blocking(move || Locations::new(db).lock(&a.location_code, &id)).await?;
            Value::Bool(matches!(
                out,
                LockOutcome::Locked | LockOutcome::AlreadyHeld
            ))
        }
        "storage.unlock_location" => {
            let a: UnlockArgs = parse(args)?;
            let id = a.task_id.map(Id::into_string);
            Value::Bool(
                blocking(move || {
                    Locations::new(db).unlock(&a.location_code, id.as_deref(), a.force)
                })
                .await?,
            )
        }
        "http.request" => {
            let a: http_client::HttpArgs = parse(args)?;
            let out = http_client::prepare(&cfg, a).map_err(|e| e.to_string())?;
            let f = http_client::send(out).await.map_err(|e| e.to_string())?;
            http_client::to_script(&f)
        }
        "mail.send" => {
            let a: mail::MailArgs = parse(args)?;
            mail::send(&cfg, a).await.map_err(|e| e.to_string())?
        }
        "mail.attachment_dir" => {
            let dir = mail::attachment_dir(&cfg);
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| format!("无法创建 {}: {e}", dir.display()))?;
            let dir = tokio::fs::canonicalize(&dir).await.unwrap_or(dir);
            Value::String(dir.to_string_lossy().into_owned())
        }
        other => return Err(format!("未知的服务调用: {other}")),
    };
    Ok(v.to_string())
}

/// The variables of a task, for the HTTP API.
pub async fn task_variables(
    engine: &Arc<Engine>,
    task_id: String,
) -> Result<Option<Map<String, Value>>, task_vars::TaskVarsError> {
    let store = TaskVars::new(engine.store.db().clone());
    tokio::task::spawn_blocking(move || store.get(&task_id))
        .await
        .map_err(|e| task_vars::TaskVarsError::Internal(e.to_string()))?
}
