//! The engine as the fleet agent's script host, and the runtime's agent: the
//! wiring between `vwed-fleet-agent` (which knows no engine) and the engine.

use std::sync::Arc;

use serde_json::Value;
use vwed_base::sync::Locked;

use vwed_auth::audit::Entry;
use vwed_engine::{Engine, Instance, StartError, StartRequest, State};
use vwed_fleet_agent::{Agent, FleetError, HostError, ScriptHost, ScriptStatus, in_projects};

/// The runtime's agent, over its engine, when `[fleet]` is configured.
pub fn runtime_agent(
    engine: &Arc<Engine>,
    cfg: &crate::config::Config,
) -> Result<Option<Agent<EngineHost>>, FleetError> {
    if !cfg.fleet.enabled() {
        return Ok(None);
    }
    let settings = cfg.fleet.resolve()?;
    let agent = Agent::new(
        settings,
        engine.store.db().clone(),
        engine.store.clone(),
        &cfg.data_dir,
        EngineHost(engine.clone()),
    )?;
    Ok(Some(agent))
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

impl ScriptHost for EngineHost {
    async fn stop_projects(&self, projects: &[String]) {
        for i in self.0.instances() {
            if in_projects(&i.script_path, projects) {
                let _ = self.0.stop(&i.script_id).await;
            }
        }
    }

    async fn start(&self, script: &str, params: &Value) -> Result<String, HostError> {
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
            Err(e) => Err(HostError::Refused(Box::new(e))),
        }
    }

    async fn stop(&self, script: &str) -> Result<(), HostError> {
        let inst = self
            .instance(script)
            .ok_or_else(|| HostError::NotRunning(script.to_string()))?;
        self.0
            .stop(&inst.script_id)
            .await
            .map(|_| ())
            .map_err(|e| HostError::Refused(Box::new(e)))
    }

    async fn restart(&self, script: &str) -> Result<String, HostError> {
        let inst = self
            .instance(script)
            .ok_or_else(|| HostError::NotRunning(script.to_string()))?;
        self.0
            .restart(&inst.script_id)
            .await
            .map(|(_, started)| started.script_id)
            .map_err(|e| HostError::Refused(Box::new(e)))
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

    async fn call(
        &self,
        function: &str,
        args: &Value,
        timeout_ms: u64,
    ) -> Result<Value, HostError> {
        self.0
            .call_function(None, function, args, Some(timeout_ms))
            .await
            .map_err(|e| HostError::Refused(Box::new(e)))
    }

    fn logs(&self, script: &str, lines: usize) -> Result<Vec<Value>, HostError> {
        let inst = self
            .instance(script)
            .ok_or_else(|| HostError::NoRecord(script.to_string()))?;
        let out = inst.output.locked();
        Ok(out
            .tail(0, lines, self.0.cfg.engine.output_max_bytes)
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
