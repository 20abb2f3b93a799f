//! What the agent needs from whatever runs scripts: start and stop them, tell how
//! they are, call their functions. The runtime's engine is one host; a host that
//! only pretends (the fleet benchmark runs a thousand agents in one process) is
//! another.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use vwed_base::sync::Locked;

use serde_json::{Value, json};

use crate::auth::audit::Entry;
use crate::engine::{Engine, Instance, StartError, StartRequest, State};

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

pub trait ScriptHost: Send + Sync + 'static {
    /// Stops every script that runs from one of these projects.
    fn stop_projects(&self, projects: &[String]) -> impl Future<Output = ()> + Send;
    /// Starts `script` (`<project>/<path>`); Ok(script id) once its boot succeeded,
    /// also when it was running already.
    fn start(
        &self,
        script: &str,
        params: &Value,
    ) -> impl Future<Output = Result<String, String>> + Send;
    fn stop(&self, script: &str) -> impl Future<Output = Result<(), String>> + Send;
    fn restart(&self, script: &str) -> impl Future<Output = Result<String, String>> + Send;
    fn status(&self, script: &str) -> ScriptStatus;
    /// Every script the host knows of.
    fn statuses(&self) -> Vec<ScriptStatus>;
    fn call(
        &self,
        function: &str,
        args: &Value,
        timeout_ms: u64,
    ) -> impl Future<Output = Result<Value, String>> + Send;
    /// The newest `lines` lines of a script's output.
    fn logs(&self, script: &str, lines: usize) -> Result<Vec<Value>, String>;
    /// Records a remote call in the audit log; done once it is durable.
    fn audit(&self, entry: Entry) -> impl Future<Output = ()> + Send;
}

/// The runtime's engine as a host.
#[derive(Clone)]
pub struct EngineHost(pub Arc<Engine>);

impl EngineHost {
    /// The script's live instance, else its crashed one.
    fn instance(&self, script: &str) -> Option<Arc<Instance>> {
        let all: Vec<_> = self
            .0
            .instances()
            .into_iter()
            .filter(|i| i.script_path == script)
            .collect();
        all.iter()
            .find(|i| i.state().occupies_path())
            .or(all.first())
            .cloned()
    }
}

fn in_projects(script: &str, projects: &[String]) -> bool {
    super::switch::in_projects(script, projects.iter().map(String::as_str))
}

impl ScriptHost for EngineHost {
    async fn stop_projects(&self, projects: &[String]) {
        for i in self.0.instances() {
            if in_projects(&i.script_path, projects) {
                let _ = self.0.stop(&i.script_id).await;
            }
        }
    }

    async fn start(&self, script: &str, params: &Value) -> Result<String, String> {
        let req = StartRequest {
            script_path: Some(script.to_string()),
            file_id: None,
            start_params: params.clone(),
            restart_policy: None,
            resume: None,
        };
        match self.0.start(req).await {
            Ok(ok) => Ok(ok.script_id),
            Err(StartError::AlreadyRunning { script_id, .. }) => Ok(script_id),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn stop(&self, script: &str) -> Result<(), String> {
        let inst = self
            .instance(script)
            .ok_or_else(|| format!("脚本 {script} 未运行"))?;
        self.0
            .stop(&inst.script_id)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn restart(&self, script: &str) -> Result<String, String> {
        let inst = self
            .instance(script)
            .ok_or_else(|| format!("脚本 {script} 未运行"))?;
        self.0
            .restart(&inst.script_id)
            .await
            .map(|(_, started)| started.script_id)
            .map_err(|e| e.to_string())
    }

    fn status(&self, script: &str) -> ScriptStatus {
        match self.instance(script) {
            Some(i) => instance_status(&i),
            None => ScriptStatus::stopped(script),
        }
    }

    fn statuses(&self) -> Vec<ScriptStatus> {
        self.0
            .instances()
            .iter()
            .map(|i| instance_status(i))
            .collect()
    }

    async fn call(&self, function: &str, args: &Value, timeout_ms: u64) -> Result<Value, String> {
        self.0
            .call_function(None, function, args, Some(timeout_ms))
            .await
            .map_err(|e| e.to_string())
    }

    fn logs(&self, script: &str, lines: usize) -> Result<Vec<Value>, String> {
        let inst = self
            .instance(script)
            .ok_or_else(|| format!("脚本 {script} 没有运行记录"))?;
        let out = inst.output.locked();
        Ok(out
            .tail(0, lines, self.0.cfg.output_max_bytes)
            .0
            .into_iter()
            .map(|l| serde_json::to_value(l).unwrap_or(Value::Null))
            .collect())
    }

    async fn audit(&self, entry: Entry) {
        if let Err(e) = self.0.auth.audit.record(entry).await {
            tracing::error!("audit record lost: {e}");
        }
    }
}

fn instance_status(i: &Instance) -> ScriptStatus {
    let state = i.state();
    ScriptStatus {
        script: i.script_path.clone(),
        state: state.as_str(),
        script_id: Some(i.script_id.to_string()),
        detail: match state {
            State::Crashed(exit) => Some(format!("脚本进程异常退出 ({exit})")),
            _ => None,
        },
    }
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

    async fn start(&self, script: &str, _params: &Value) -> Result<String, String> {
        let mut r = self.running();
        let id = r
            .entry(script.to_string())
            .or_insert_with(|| format!("{script}_{}", crate::clock::unix_ms()));
        Ok(id.clone())
    }

    async fn stop(&self, script: &str) -> Result<(), String> {
        self.running()
            .remove(script)
            .map(|_| ())
            .ok_or_else(|| format!("脚本 {script} 未运行"))
    }

    async fn restart(&self, script: &str) -> Result<String, String> {
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

    async fn call(&self, function: &str, args: &Value, _timeout_ms: u64) -> Result<Value, String> {
        Ok(json!({"function": function, "args": args}))
    }

    fn logs(&self, _script: &str, _lines: usize) -> Result<Vec<Value>, String> {
        Ok(Vec::new())
    }

    async fn audit(&self, _entry: Entry) {}
}
