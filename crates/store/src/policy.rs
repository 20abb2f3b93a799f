//! A script's restart policy: whether and how often a script whose worker
//! failed is started again. It comes with the start request (what the request
//! leaves out comes from the configured defaults) and is kept in the running
//! set with the script. See docs/sandbox.md, "Supervision".

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

/// Why a restart policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("max_restarts 不能超过 {MAX_RESTARTS}")]
    MaxRestarts,
    #[error("window_s 须在 1 到 {MAX_WINDOW_S} 之间")]
    Window,
    #[error("backoff_ms 须在 {MIN_BACKOFF_MS} 到 {MAX_BACKOFF_MS} 之间")]
    Backoff,
    #[error("max_backoff_ms 须在 backoff_ms 到 {MAX_BACKOFF_MS} 之间")]
    MaxBackoff,
}

/// The policy of a script whose start request names none, unless
/// `[supervision]` says otherwise.
impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            mode: RestartMode::OnFailure,
            max_restarts: 5,
            window_s: 300,
            backoff_ms: 1000,
            max_backoff_ms: 60_000,
        }
    }
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
    pub fn resolve(&self, d: &RestartPolicy) -> Result<RestartPolicy, PolicyError> {
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
    pub fn check(&self) -> Result<(), PolicyError> {
        if self.max_restarts > MAX_RESTARTS {
            return Err(PolicyError::MaxRestarts);
        }
        if !(1..=MAX_WINDOW_S).contains(&self.window_s) {
            return Err(PolicyError::Window);
        }
        if !(MIN_BACKOFF_MS..=MAX_BACKOFF_MS).contains(&self.backoff_ms) {
            return Err(PolicyError::Backoff);
        }
        if !(self.backoff_ms..=MAX_BACKOFF_MS).contains(&self.max_backoff_ms) {
            return Err(PolicyError::MaxBackoff);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_per_restart_up_to_its_cap() {
        let p = RestartPolicy::default();
        assert_eq!(p.backoff(0), Duration::from_secs(1));
        assert_eq!(p.backoff(1), Duration::from_secs(2));
        assert_eq!(p.backoff(3), Duration::from_secs(8));
        assert_eq!(p.backoff(10), Duration::from_secs(60));
        assert_eq!(p.backoff(usize::MAX), Duration::from_secs(60));
    }

    #[test]
    fn a_request_fills_in_the_defaults_and_is_checked() {
        let d = RestartPolicy::default();
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
