//! Restart by policy: what happens after a script's worker ends without being
//! asked to. Each script path that was started has one [`Supervised`] record (its
//! policy, start parameters and recent restarts) shared by the instances of that
//! path, so that a restarted script keeps both, and a crash loop is counted
//! across instances: restarts back off exponentially, and past `max_restarts`
//! within the window the script is `broken` and left alone.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vwed_base::sync::Locked;

use serde_json::{Value, json};
use vwed_ipc::Level;

use super::instance::{ExitInfo, Instance, State};
use super::{Engine, StartError, StartRequest};
use crate::supervision::{RestartMode, RestartPolicy};

/// Why a worker ended without a stop request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// It exited or was killed by something other than the supervisor.
    Exited(ExitInfo),
    /// A call timed out and the worker was still busy after the grace period.
    Hung {
        work: &'static str,
        timeout_ms: u64,
        grace_ms: u64,
    },
    /// It used more CPU than allowed, averaged over the window.
    Cpu {
        percent: u64,
        window_s: u64,
        limit: u32,
    },
    /// The kernel ended it at its cgroup's `memory.max`.
    Memory { limit_bytes: u64 },
    /// An automatic restart did not start.
    StartFailed(String),
}

impl EndReason {
    pub fn kind(&self) -> &'static str {
        match self {
            EndReason::Exited(_) => "crashed",
            EndReason::Hung { .. } => "hung",
            EndReason::Cpu { .. } => "cpu_limit",
            EndReason::Memory { .. } => "memory_limit",
            EndReason::StartFailed(_) => "start_failed",
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"kind": self.kind(), "message": self.to_string()})
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::Exited(e) => write!(f, "脚本进程异常退出 ({e})"),
            EndReason::Hung {
                work,
                timeout_ms,
                grace_ms,
            } => write!(
                f,
                "处理 {work} 超时 ({timeout_ms} ms) 后 {grace_ms} ms 内仍未空闲, 已结束脚本进程"
            ),
            EndReason::Cpu {
                percent,
                window_s,
                limit,
            } => write!(
                f,
                "CPU 占用 {percent}% (最近 {window_s} 秒平均, 上限 {limit}%), 已结束脚本进程"
            ),
            EndReason::Memory { limit_bytes } => write!(
                f,
                "内存超过上限 ({} MiB), 脚本进程被内核结束",
                limit_bytes / (1024 * 1024)
            ),
            EndReason::StartFailed(e) => write!(f, "自动重启失败: {e}"),
        }
    }
}

/// One script path under supervision.
pub struct Supervised {
    pub script_path: String,
    pub policy: RestartPolicy,
    pub start_params: Value,
    record: Mutex<Record>,
}

#[derive(Default)]
struct Record {
    /// Automatic restarts within the policy's window.
    restarts: VecDeque<Instant>,
    total: u64,
    last_failure: Option<Failure>,
    next_restart_at: Option<String>,
    broken_since: Option<String>,
    /// Stopped or started anew by someone: a pending restart must not happen.
    cancelled: bool,
}

struct Failure {
    at: String,
    kind: &'static str,
    reason: String,
}

/// What a failure leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Restart {
        after: Duration,
        attempt: usize,
    },
    /// Policy `never`, or supervision was cancelled.
    Stay,
    Broken,
}

impl Supervised {
    pub fn new(script_path: String, policy: RestartPolicy, start_params: Value) -> Supervised {
        Supervised {
            script_path,
            policy,
            start_params,
            record: Mutex::new(Record::default()),
        }
    }

    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.locked()
    }

    /// Counts a failure and decides; `permanent` failures (the file is gone, no
    /// longer compiles) make the script broken at once.
    pub fn on_failure(&self, reason: &EndReason, permanent: bool, now: Instant) -> Decision {
        let mut r = self.record();
        r.last_failure = Some(Failure {
            at: vwed_base::clock::local_now(),
            kind: reason.kind(),
            reason: reason.to_string(),
        });
        r.next_restart_at = None;
        if r.cancelled || self.policy.mode == RestartMode::Never {
            return Decision::Stay;
        }
        let window = Duration::from_secs(self.policy.window_s);
        while r
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            r.restarts.pop_front();
        }
        let earlier = r.restarts.len();
        if permanent || earlier >= self.policy.max_restarts as usize {
            r.broken_since = Some(vwed_base::clock::local_now());
            return Decision::Broken;
        }
        let after = self.policy.backoff(earlier);
        r.restarts.push_back(now);
        r.total += 1;
        let at = vwed_base::clock::unix_ms().saturating_add(after.as_millis() as u64);
        r.next_restart_at = vwed_base::clock::local_at(at);
        Decision::Restart {
            after,
            attempt: earlier + 1,
        }
    }

    pub fn cancel(&self) {
        let mut r = self.record();
        r.cancelled = true;
        r.next_restart_at = None;
    }

    pub fn is_cancelled(&self) -> bool {
        self.record().cancelled
    }

    pub fn is_broken(&self) -> bool {
        self.record().broken_since.is_some()
    }

    /// The supervision fields of a running-list entry.
    pub fn to_json(&self) -> Value {
        let r = self.record();
        json!({
            "restart_policy": self.policy.to_json(),
            "restarts": r.restarts.len(),
            "restarts_total": r.total,
            "last_failure": r.last_failure.as_ref().map(|f| json!({"at": f.at, "kind": f.kind, "reason": f.reason})),
            "next_restart_at": r.next_restart_at,
            "broken_since": r.broken_since,
        })
    }
}

/// Start failures that no retry can cure.
pub fn permanent(e: &StartError) -> bool {
    matches!(
        e,
        StartError::NotFound(_)
            | StartError::NoBoot
            | StartError::Syntax(_)
            | StartError::BadParams
            | StartError::Store(vwed_store::StoreError::OutsideProject(_))
    )
}

impl Engine {
    /// The record of `path`, if supervision still holds exactly `sup`.
    pub(super) fn is_current(&self, sup: &Arc<Supervised>) -> bool {
        !sup.is_cancelled()
            && self
                .supervised()
                .get(&sup.script_path)
                .is_some_and(|s| Arc::ptr_eq(s, sup))
    }

    /// Ends supervision of `path`: nothing restarts it any more.
    pub(super) fn forget_supervision(&self, path: &str) {
        if let Some(s) = self.supervised().remove(path) {
            s.cancel();
        }
    }

    /// Ends the supervision `inst` belongs to, unless a newer start replaced it.
    pub(super) fn end_supervision(&self, inst: &Instance) {
        if self.is_current(&inst.supervised) {
            self.forget_supervision(&inst.script_path);
        }
    }

    /// Ends a worker for `reason`; the exit is then handled as a failure.
    pub(super) fn end_worker(&self, inst: &Instance, reason: EndReason) {
        if inst.state() != State::Running {
            return;
        }
        tracing::warn!("script {}: {reason}", inst.script_id);
        inst.set_end_reason(reason);
        inst.kill();
    }

    /// After `inst` failed (its worker ended on its own, was ended by a limit, or
    /// its automatic restart did not start): restart it later, or leave it
    /// crashed or broken, by its policy.
    pub(super) fn after_failure(self: &Arc<Self>, inst: &Arc<Instance>, permanent: bool) {
        if self.is_shutting_down() {
            return;
        }
        let sup = inst.supervised.clone();
        let reason = inst
            .end_reason()
            .unwrap_or_else(|| EndReason::StartFailed("未知原因".into()));
        match sup.on_failure(&reason, permanent, Instant::now()) {
            Decision::Restart { after, attempt } => {
                inst.note(
                    Level::Warning,
                    format!(
                        "将在 {:.1} 秒后自动重启 (窗口内第 {attempt} 次, 上限 {})",
                        after.as_secs_f64(),
                        sup.policy.max_restarts
                    ),
                );
                self.schedule_restart(sup, after);
            }
            Decision::Stay => self.drop_from_running_set(&inst.script_path),
            Decision::Broken => {
                let why = format!(
                    "{} 秒内已自动重启 {} 次仍失败, 不再重启 (broken), 需手动启动",
                    sup.policy.window_s, sup.policy.max_restarts
                );
                inst.note(Level::Error, why.clone());
                inst.log.status("broken", &why);
                tracing::error!("script {} is broken: {reason}", inst.script_path);
                self.emit_lifecycle(
                    "script_broken",
                    inst,
                    json!({"reason": reason.kind(), "message": reason.to_string()}),
                );
                self.drop_from_running_set(&inst.script_path);
            }
        }
    }

    fn drop_from_running_set(&self, path: &str) {
        let set = self.running_set.clone();
        let path = path.to_string();
        tokio::task::spawn_blocking(move || set.remove(&path));
    }

    fn schedule_restart(self: &Arc<Self>, sup: Arc<Supervised>, after: Duration) {
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let Some(e) = engine.upgrade() else { return };
            if e.is_shutting_down() || !e.is_current(&sup) {
                return;
            }
            let req = StartRequest {
                script_path: Some(sup.script_path.clone()),
                file_id: None,
                start_params: sup.start_params.clone(),
                restart_policy: Some(sup.policy.clone()),
                resume: Some(sup.clone()),
            };
            match e.start(req).await {
                Ok(ok) => tracing::info!("restarted {} as {}", sup.script_path, ok.script_id),
                // Someone started or stopped it meanwhile.
                Err(StartError::AlreadyRunning { .. } | StartError::Superseded) => {}
                // A failed boot was handled with its instance (see `start`); this
                // failed before there was one: count it on the crashed one.
                Err(err) => e.restart_failed_early(&sup, &err),
            }
        });
    }

    fn restart_failed_early(self: &Arc<Self>, sup: &Arc<Supervised>, err: &StartError) {
        let crashed = self
            .scripts()
            .values()
            .find(|i| i.script_path == sup.script_path && matches!(i.state(), State::Crashed(_)))
            .cloned();
        match crashed {
            Some(inst) => {
                inst.set_end_reason(EndReason::StartFailed(err.to_string()));
                self.after_failure(&inst, permanent(err));
            }
            None => {
                tracing::error!("could not restart {}: {err}", sup.script_path);
                self.forget_supervision(&sup.script_path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervision::SupervisionSettings;

    fn boom() -> EndReason {
        EndReason::Exited(ExitInfo {
            code: Some(3),
            signal: None,
        })
    }

    fn policy(max_restarts: u32) -> RestartPolicy {
        RestartPolicy {
            max_restarts,
            ..SupervisionSettings::default().default_policy()
        }
    }

    #[test]
    fn restarts_back_off_and_too_many_in_the_window_make_the_script_broken() {
        let s = Supervised::new("p/a.py".into(), policy(3), Value::Null);
        let t0 = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..3 {
            match s.on_failure(&boom(), false, t0) {
                Decision::Restart { after, .. } => delays.push(after.as_millis()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delays, [1000, 2000, 4000]);
        assert_eq!(s.on_failure(&boom(), false, t0), Decision::Broken);
        assert!(s.is_broken());
        assert_eq!(s.to_json()["restarts_total"], json!(3));
        assert_eq!(s.to_json()["last_failure"]["kind"], json!("crashed"));
        assert_eq!(
            s.to_json()["last_failure"]["reason"],
            json!("脚本进程异常退出 (exit code 3)")
        );
    }

    #[test]
    fn restarts_older_than_the_window_no_longer_count() {
        let s = Supervised::new("p/a.py".into(), policy(1), Value::Null);
        let t0 = Instant::now();
        assert!(matches!(
            s.on_failure(&boom(), false, t0),
            Decision::Restart { .. }
        ));
        let later = t0 + Duration::from_secs(301);
        assert_eq!(
            s.on_failure(&boom(), false, later),
            Decision::Restart {
                after: Duration::from_secs(1),
                attempt: 1
            }
        );
    }

    #[test]
    fn never_cancelled_and_permanent_failures_do_not_restart() {
        let never = RestartPolicy {
            mode: RestartMode::Never,
            ..policy(5)
        };
        let s = Supervised::new("p/a.py".into(), never, Value::Null);
        assert_eq!(s.on_failure(&boom(), false, Instant::now()), Decision::Stay);
        let s = Supervised::new("p/a.py".into(), policy(5), Value::Null);
        assert_eq!(
            s.on_failure(&boom(), true, Instant::now()),
            Decision::Broken
        );
        let s = Supervised::new("p/a.py".into(), policy(5), Value::Null);
        s.cancel();
        assert_eq!(s.on_failure(&boom(), false, Instant::now()), Decision::Stay);
    }
}
