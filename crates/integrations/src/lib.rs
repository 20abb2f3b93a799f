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

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use vwed_ipc::HttpRequest;

use http_client::HttpError;
use locations::{LocationError, Locations, LockOutcome};
use task_vars::{TaskVars, TaskVarsError};
use vwed_db::Db;

/// What the services here are configured with: their own settings, the TLS
/// roots outgoing connections trust, and the data dir (mail attachments).
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub settings: IntegrationSettings,
    pub tls: vwed_tls::TlsSettings,
    pub data_dir: std::path::PathBuf,
}

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
pub async fn http_request(cfg: &Setup, r: HttpRequest) -> Result<Value, HttpError> {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IntegrationSettings {
    /// Base URL of the central task server for `VWED.task.create/get_status/stop`;
    /// empty = not configured.
    pub task_server_url: String,
    /// Timeout of one request to the task server.
    pub task_server_timeout_ms: u64,
    /// Hosts `VWED.http` may reach: `host` (any port) or `host:port`. Empty = none.
    /// As an environment variable, a comma-separated list.
    #[serde(deserialize_with = "vwed_base::lists::host_list")]
    pub http_allow_hosts: Vec<String>,
    /// Timeout of a `VWED.http` request that names none.
    pub http_timeout_ms: u64,
    /// Upper bound for a script-supplied `VWED.http` timeout.
    pub http_max_timeout_ms: u64,
    /// Largest response body `VWED.http` (and the task server client) reads.
    pub http_max_response_bytes: u64,
    /// SMTP server for `VWED.mail`; empty = mail not configured.
    pub smtp_host: String,
    pub smtp_port: u16,
    /// Sender address, e.g. `"VWED Edge <edge@example.com>"`.
    pub smtp_from: String,
    /// AUTH user; empty = no authentication.
    pub smtp_username: String,
    pub smtp_password: String,
    /// Upgrade the SMTP connection with STARTTLS (required: a server that does
    /// not offer it is refused); the certificate is checked against the system's
    /// roots and `tls_ca_file`.
    pub smtp_starttls: bool,
    pub smtp_timeout_ms: u64,
    /// Largest file `VWED.mail.send_with_attachment` attaches.
    pub mail_max_attachment_bytes: u64,
    /// Read `smtp_password` from this file (e.g. a systemd credential; a relative
    /// path is taken below `$CREDENTIALS_DIRECTORY` when that is set).
    pub smtp_password_file: String,
}

impl Default for IntegrationSettings {
    fn default() -> Self {
        IntegrationSettings {
            task_server_url: String::new(),
            task_server_timeout_ms: 10_000,
            http_allow_hosts: Vec::new(),
            http_timeout_ms: 10_000,
            http_max_timeout_ms: 120_000,
            http_max_response_bytes: 4 * 1024 * 1024,
            smtp_host: String::new(),
            smtp_port: 25,
            smtp_from: String::new(),
            smtp_username: String::new(),
            smtp_password: String::new(),
            smtp_starttls: false,
            smtp_timeout_ms: 15_000,
            mail_max_attachment_bytes: 10 * 1024 * 1024,
            smtp_password_file: String::new(),
        }
    }
}
