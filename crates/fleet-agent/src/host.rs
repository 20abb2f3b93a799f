//! What the agent needs from whatever runs scripts: start and stop them, tell how
//! they are, call their functions. The runtime's engine is one host; a host that
//! only pretends (the fleet benchmark runs a thousand agents in one process) is
//! another.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use vwed_base::sync::Locked;

use serde_json::{Value, json};

use vwed_auth::audit::Entry;

use crate::state::in_projects;

/// How one script is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptStatus {
    pub script: String,
    /// running, starting, stopping, crashed or stopped.
    pub state: &'static str,
    pub script_id: Option<String>,
    pub detail: Option<String>,
}

impl ScriptStatus {
    pub fn stopped(script: &str) -> ScriptStatus {
        ScriptStatus {
            script: script.to_string(),
            state: "stopped",
            script_id: None,
            detail: None,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "script": self.script,
            "status": self.state,
            "script_id": self.script_id,
            "detail": self.detail,
        })
    }
}

/// Why a host could not do what the agent asked.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("脚本 {0} 未运行")]
    NotRunning(String),
    #[error("脚本 {0} 没有运行记录")]
    NoRecord(String),
    /// The host's own refusal (a start that failed, a function that raised).
    #[error(transparent)]
    Refused(Box<dyn std::error::Error + Send + Sync>),
}

pub trait ScriptHost: Send + Sync + 'static {
    /// Stops every script that runs from one of these projects.
    fn stop_projects(&self, projects: &[String]) -> impl Future<Output = ()> + Send;
    /// Starts `script` (`<project>/<path>`); Ok(script id) once its boot succeeded,
    /// also when it was running already.
    fn start(
        &self,
        script: &str,
        params: &Value,
    ) -> impl Future<Output = Result<String, HostError>> + Send;
    fn stop(&self, script: &str) -> impl Future<Output = Result<(), HostError>> + Send;
    fn restart(&self, script: &str) -> impl Future<Output = Result<String, HostError>> + Send;
    fn status(&self, script: &str) -> ScriptStatus;
    /// Every script the host knows of.
    fn statuses(&self) -> Vec<ScriptStatus>;
    fn call(
        &self,
        function: &str,
        args: &Value,
        timeout_ms: u64,
    ) -> impl Future<Output = Result<Value, HostError>> + Send;
    /// The newest `lines` lines of a script's output.
    fn logs(&self, script: &str, lines: usize) -> Result<Vec<Value>, HostError>;
    /// Records a remote call in the audit log; done once it is durable.
    fn audit(&self, entry: Entry) -> impl Future<Output = ()> + Send;
}

/// A host that runs nothing: starts succeed, every started script stays
/// "running", a function call answers with its arguments. For agents that only
/// sync and apply files (the fleet benchmark).
#[derive(Default)]
pub struct NullHost {
    running: Mutex<BTreeMap<String, String>>,
}

impl NullHost {
    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.running.locked()
    }
}

impl ScriptHost for NullHost {
    async fn stop_projects(&self, projects: &[String]) {
        self.running().retain(|s, _| !in_projects(s, projects));
    }

    async fn start(&self, script: &str, _params: &Value) -> Result<String, HostError> {
        let mut r = self.running();
        let id = r
            .entry(script.to_string())
            .or_insert_with(|| format!("{script}_{}", vwed_base::clock::unix_ms()));
        Ok(id.clone())
    }

    async fn stop(&self, script: &str) -> Result<(), HostError> {
        self.running()
            .remove(script)
            .map(|_| ())
            .ok_or_else(|| HostError::NotRunning(script.to_string()))
    }

    async fn restart(&self, script: &str) -> Result<String, HostError> {
        self.stop(script).await?;
        self.start(script, &Value::Null).await
    }

    fn status(&self, script: &str) -> ScriptStatus {
        match self.running().get(script) {
            Some(id) => ScriptStatus {
                script: script.to_string(),
                state: "running",
                script_id: Some(id.clone()),
                detail: None,
            },
            None => ScriptStatus::stopped(script),
        }
    }

    fn statuses(&self) -> Vec<ScriptStatus> {
        let names: Vec<String> = self.running().keys().cloned().collect();
        names.iter().map(|s| self.status(s)).collect()
    }

    async fn call(
        &self,
        function: &str,
        args: &Value,
        _timeout_ms: u64,
    ) -> Result<Value, HostError> {
        Ok(json!({"function": function, "args": args}))
    }

    fn logs(&self, _script: &str, _lines: usize) -> Result<Vec<Value>, HostError> {
        Ok(Vec::new())
    }

    async fn audit(&self, _entry: Entry) {}
}
