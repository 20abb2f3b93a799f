//! Settings of supervision (`[supervision]`): the default restart policy, how
//! long a worker stuck past a timeout may stay busy, the CPU a worker may use,
//! and when the runtime starts in safe mode. See docs/sandbox.md, "Supervision".

use serde::{Deserialize, Serialize};

pub use vwed_store::policy::{PolicyError, RestartMode, RestartPolicy, RestartPolicyRequest};

/// Why the `[supervision]` section is refused.
#[derive(Debug, thiserror::Error)]
pub enum SupervisionError {
    #[error("supervision: {0}")]
    Policy(#[from] PolicyError),
    #[error("supervision.cpu_window_s must be 1..3600")]
    CpuWindow,
    #[error("supervision.stable_after_s must be at least 1")]
    StableAfter,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisionSettings {
    /// Restart policy of a script whose start request names none.
    pub restart: RestartMode,
    pub max_restarts: u32,
    pub restart_window_s: u64,
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// After a call to a script timed out, how long its worker has to become free
    /// (finish or give up the handler) before it is ended as hung (0 = never).
    pub busy_grace_ms: u64,
    /// A worker that used more than this share of one core, averaged over
    /// `cpu_window_s`, is ended (0 = no limit).
    pub cpu_limit_percent: u32,
    pub cpu_window_s: u64,
    /// Unclean starts in a row, each soon after restoring scripts, after which the
    /// runtime starts without restoring them (0 = never).
    pub safe_mode_after: u32,
    /// How long the runtime must run after restoring scripts to count as stable.
    pub stable_after_s: u64,
}

impl Default for SupervisionSettings {
    fn default() -> Self {
        let p = RestartPolicy::default();
        SupervisionSettings {
            restart: p.mode,
            max_restarts: p.max_restarts,
            restart_window_s: p.window_s,
            backoff_ms: p.backoff_ms,
            max_backoff_ms: p.max_backoff_ms,
            busy_grace_ms: 5000,
            cpu_limit_percent: 90,
            cpu_window_s: 60,
            safe_mode_after: 3,
            stable_after_s: 60,
        }
    }
}

impl SupervisionSettings {
    pub fn default_policy(&self) -> RestartPolicy {
        RestartPolicy {
            mode: self.restart,
            max_restarts: self.max_restarts,
            window_s: self.restart_window_s,
            backoff_ms: self.backoff_ms,
            max_backoff_ms: self.max_backoff_ms,
        }
    }

    pub fn validate(&self) -> Result<(), SupervisionError> {
        self.default_policy().check()?;
        if self.cpu_limit_percent > 0 && !(1..=3600).contains(&self.cpu_window_s) {
            return Err(SupervisionError::CpuWindow);
        }
        if self.stable_after_s == 0 {
            return Err(SupervisionError::StableAfter);
        }
        Ok(())
    }
}
