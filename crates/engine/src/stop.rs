use std::sync::Arc;
use std::time::Duration;

use vwed_ipc::{Level, ToWorker};

use super::instance::{Instance, State};
use super::{Engine, StartError, StartOk, StartRequest};
use vwed_registry::Counts;

#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error("脚本 {0} 未运行")]
    NotRunning(String),
}

/// What a stop did, for the response.
pub struct Stopped {
    pub script_path: String,
    pub counts: Counts,
    pub killed: bool,
}

impl Engine {
    /// Stops a script. Always succeeds for a known script: the worker gets a stop
    /// request, then SIGKILL after the grace period.
    pub async fn stop(self: &Arc<Self>, script_id: &str) -> Result<Stopped, StopError> {
        let inst = self
            .instance(script_id)
            .ok_or_else(|| StopError::NotRunning(script_id.to_string()))?;
        let state = inst.state();
        // Stopped by someone: nothing restarts it (a crashed one may be waiting
        // for its restart).
        self.end_supervision(&inst);
        if state.ended() {
            self.retire(&inst);
            if !self.is_shutting_down() {
                self.remove_from_running_set(&inst).await;
            }
            return Ok(Stopped {
                script_path: inst.script_path.clone(),
                counts: Counts::default(),
                killed: false,
            });
        }
        inst.set_state(State::Stopping);
        // Withdraw first: no new request reaches a script that is going away.
        let counts = self.registry.remove_script(&inst.script_id);
        if let Some(conn) = inst.conn() {
            let _ = conn.send(&ToWorker::Stop);
        }
        let grace = Duration::from_millis(self.cfg.engine.stop_grace_ms);
        let mut killed = false;
        if inst.wait_exit(grace).await.is_none() {
            killed = true;
            inst.kill();
            if inst.wait_exit(Duration::from_secs(5)).await.is_none() {
                tracing::error!(
                    "worker {} of {} did not die after SIGKILL",
                    inst.pid(),
                    inst.script_id
                );
            }
        }
        inst.set_state(State::Stopped);
        if !self.is_shutting_down() {
            self.remove_from_running_set(&inst).await;
        }
        inst.note(
            Level::Info,
            if killed {
                "脚本已停止 (宽限期后强制结束)"
            } else {
                "脚本已停止"
            },
        );
        self.emit_lifecycle(
            "script_stopped",
            &inst,
            serde_json::json!({"killed": killed}),
        );
        inst.log.status(
            "stopped",
            if killed {
                "脚本已停止 (宽限期后强制结束)"
            } else {
                "脚本已停止"
            },
        );
        self.retire(&inst);
        Ok(Stopped {
            script_path: inst.script_path.clone(),
            counts,
            killed,
        })
    }

    async fn remove_from_running_set(&self, inst: &Instance) {
        let set = self.running_set.clone();
        let path = inst.script_path.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || set.remove(&path)).await {
            tracing::error!("cannot update the running set: {e}");
        }
    }

    /// Stops a script and starts the same file with the same parameters and
    /// restart policy.
    pub async fn restart(
        self: &Arc<Self>,
        script_id: &str,
    ) -> Result<(Stopped, StartOk), StartError> {
        let inst = self
            .instance(script_id)
            .ok_or_else(|| StartError::NotFound(script_id.to_string()))?;
        let stopped = self
            .stop(script_id)
            .await
            .map_err(|e| StartError::NotFound(e.to_string()))?;
        let started = self
            .start(StartRequest {
                script_path: Some(inst.script_path.clone()),
                start_params: inst.start_params.clone(),
                restart_policy: Some(inst.supervised.policy.clone()),
                ..StartRequest::default()
            })
            .await?;
        Ok((stopped, started))
    }
}
