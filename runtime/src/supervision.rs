//! Settings of supervision (`[supervision]`): how a failed script is restarted,
//! how long a worker stuck past a timeout may stay busy, the CPU a worker may use,
//! and when the runtime starts in safe mode. A script's own restart policy comes
//! with its start request; what it leaves out comes from here. See
//! docs/sandbox.md, "Supervision".

use serde::{Deserialize, Serialize};

/// Longest backoff and window a policy may ask for.
const MAX_BACKOFF_MS: u64 = 3_600_000;
const MAX_WINDOW_S: u64 = 7 * 24 * 3600;
/// Shortest first backoff: a crash loop must never spin.
const MIN_BACKOFF_MS: u64 = 100;
const MAX_RESTARTS: u32 = 1000;

/// Whether a script whose worker failed is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartMode {
    Never,
    OnFailure,
}

impl RestartMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartMode::Never => "never",
            RestartMode::OnFailure => "on-failure",
        }
    }
}

/// A script's restart policy, complete (kept in the running set with the script).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    pub mode: RestartMode,
    /// Automatic restarts allowed within `window_s`; one more failure makes the
    /// script `broken`.
    pub max_restarts: u32,
    pub window_s: u64,
    /// Delay before the first restart; it doubles with each restart in the window.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
}

/// `restart_policy` of a start request: every field optional.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicyRequest {
    /// never | on-failure (默认 on-failure)
    pub mode: Option<RestartMode>,
    /// 时间窗口内最多自动重启次数, 超过后脚本为 broken
    pub max_restarts: Option<u32>,
    /// 时间窗口 (秒)
    pub window_s: Option<u64>,
    /// 第一次重启前的等待 (毫秒), 每次重启翻倍
    pub backoff_ms: Option<u64>,
    /// 等待的上限 (毫秒)
    pub max_backoff_ms: Option<u64>,
}

impl RestartPolicyRequest {
    /// The policy with the configured defaults filled in, checked.
    pub fn resolve(&self, defaults: &SupervisionSettings) -> Result<RestartPolicy, String> {
        let d = defaults.default_policy();
        let p = RestartPolicy {
            mode: self.mode.unwrap_or(d.mode),
            max_restarts: self.max_restarts.unwrap_or(d.max_restarts),
            window_s: self.window_s.unwrap_or(d.window_s),
            backoff_ms: self.backoff_ms.unwrap_or(d.backoff_ms),
            max_backoff_ms: self.max_backoff_ms.unwrap_or(d.max_backoff_ms),
        };
        p.check()?;
        Ok(p)
    }
}

impl RestartPolicy {
    pub fn check(&self) -> Result<(), String> {
        if self.max_restarts > MAX_RESTARTS {
            return Err(format!("max_restarts 不能超过 {MAX_RESTARTS}"));
        }
        if !(1..=MAX_WINDOW_S).contains(&self.window_s) {
            return Err(format!("window_s 须在 1 到 {MAX_WINDOW_S} 之间"));
        }
        if !(MIN_BACKOFF_MS..=MAX_BACKOFF_MS).contains(&self.backoff_ms) {
            return Err(format!(
                "backoff_ms 须在 {MIN_BACKOFF_MS} 到 {MAX_BACKOFF_MS} 之间"
            ));
        }
        if !(self.backoff_ms..=MAX_BACKOFF_MS).contains(&self.max_backoff_ms) {
            return Err(format!(
                "max_backoff_ms 须在 backoff_ms 到 {MAX_BACKOFF_MS} 之间"
            ));
        }
        Ok(())
    }

    /// The delay before the restart that follows `earlier` restarts in the window.
    pub fn backoff(&self, earlier: usize) -> std::time::Duration {
        let doublings = u32::try_from(earlier).unwrap_or(u32::MAX).min(32);
        let ms = self
            .backoff_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_backoff_ms);
        std::time::Duration::from_millis(ms)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "mode": self.mode.as_str(),
            "max_restarts": self.max_restarts,
            "window_s": self.window_s,
            "backoff_ms": self.backoff_ms,
            "max_backoff_ms": self.max_backoff_ms,
        })
    }
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
        SupervisionSettings {
            restart: RestartMode::OnFailure,
            max_restarts: 5,
            restart_window_s: 300,
            backoff_ms: 1000,
            max_backoff_ms: 60_000,
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

    pub fn validate(&self) -> Result<(), String> {
        self.default_policy()
            .check()
            .map_err(|e| format!("supervision: {e}"))?;
        if self.cpu_limit_percent > 0 && !(1..=3600).contains(&self.cpu_window_s) {
            return Err("supervision.cpu_window_s must be 1..3600".into());
        }
        if self.stable_after_s == 0 {
            return Err("supervision.stable_after_s must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_per_restart_up_to_its_cap() {
        let p = SupervisionSettings::default().default_policy();
        assert_eq!(p.backoff(0), Duration::from_secs(1));
        assert_eq!(p.backoff(1), Duration::from_secs(2));
        assert_eq!(p.backoff(3), Duration::from_secs(8));
        assert_eq!(p.backoff(10), Duration::from_secs(60));
        assert_eq!(p.backoff(usize::MAX), Duration::from_secs(60));
    }

    #[test]
    fn a_request_fills_in_the_defaults_and_is_checked() {
        let d = SupervisionSettings::default();
        let r = RestartPolicyRequest {
            mode: Some(RestartMode::Never),
            ..Default::default()
        };
        let p = r.resolve(&d).expect("valid");
        assert_eq!(p.mode, RestartMode::Never);
        assert_eq!(p.max_restarts, 5);
        for bad in [
            RestartPolicyRequest {
                backoff_ms: Some(0),
                ..Default::default()
            },
            RestartPolicyRequest {
                max_backoff_ms: Some(10),
                ..Default::default()
            },
            RestartPolicyRequest {
                window_s: Some(0),
                ..Default::default()
            },
            RestartPolicyRequest {
                max_restarts: Some(1_000_000),
                ..Default::default()
            },
        ] {
            assert!(r.resolve(&d).is_ok());
            assert!(bad.resolve(&d).is_err(), "{bad:?}");
        }
        let wrong: Result<RestartPolicyRequest, _> = serde_json::from_str(r#"{"mode": "always"}"#);
        assert!(wrong.is_err());
        let unknown: Result<RestartPolicyRequest, _> = serde_json::from_str(r#"{"retries": 3}"#);
        assert!(unknown.is_err());
    }
}
