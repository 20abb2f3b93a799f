//! One attempt's process, Python worker or bash alike: it runs in its own process
//! group; a timeout or a cancel ends the whole group (SIGTERM, then SIGKILL after
//! the grace period), and whatever it left running is killed when it ends.

use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Child;
use tokio::sync::watch;
use vwed_ipc::SandboxReport;

use super::model::ExecStatus;

/// How an attempt ended, as recorded.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: ExecStatus,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub exception: Option<String>,
    pub error: Option<String>,
    pub result: Option<Value>,
    pub traceback: Option<String>,
    /// What confinement the attempt's process ran under, as it reported it.
    pub sandbox: Option<SandboxReport>,
}

impl Outcome {
    pub fn new(status: ExecStatus) -> Outcome {
        Outcome {
            status,
            exit_code: None,
            signal: None,
            exception: None,
            error: None,
            result: None,
            traceback: None,
            sandbox: None,
        }
    }

    pub fn failed(error: impl Into<String>) -> Outcome {
        let mut o = Outcome::new(ExecStatus::Failed);
        o.error = Some(error.into());
        o
    }

    /// A process that ended on its own: exit code 0 is success.
    pub fn exited(status: Option<ExitStatus>) -> Outcome {
        let code = status.and_then(|s| s.code());
        let signal = status.and_then(|s| s.signal());
        let mut o = Outcome::new(if code == Some(0) {
            ExecStatus::Succeeded
        } else {
            ExecStatus::Failed
        });
        o.exit_code = code;
        o.signal = signal;
        if let Some(s) = signal {
            o.error = Some(format!("作业进程被信号 {s} 结束"));
        } else if code.is_some_and(|c| c != 0) {
            o.error = Some(format!("退出码 {}", code.unwrap_or_default()));
        }
        o
    }

    /// The same outcome, with the confinement the attempt ran (or was to run) under.
    pub fn under(mut self, sandbox: SandboxReport) -> Outcome {
        self.sandbox = Some(sandbox);
        self
    }

    pub fn timed_out(timeout: Duration) -> Outcome {
        let mut o = Outcome::new(ExecStatus::Timeout);
        o.error = Some(format!(
            "执行超时 ({} 秒), 已结束作业进程",
            timeout.as_secs_f64()
        ));
        o
    }

    pub fn cancelled(by: &str) -> Outcome {
        let mut o = Outcome::new(ExecStatus::Cancelled);
        o.error = Some(format!("已被 {by} 取消"));
        o
    }
}

/// What ended the wait for an attempt.
pub enum Ending<T> {
    /// The worker answered (Python jobs).
    Answered(T),
    /// The process exited first.
    Exited(Option<ExitStatus>),
    TimedOut,
    Cancelled(String),
}

/// Waits for the answer, the exit, the timeout or a cancel, whichever is first.
/// `answer` yields `None` when no answer can come any more (then the exit decides).
pub async fn supervise<T>(
    child: &mut Child,
    answer: impl Future<Output = Option<T>>,
    timeout: Duration,
    cancel: &mut watch::Receiver<Option<String>>,
) -> Ending<T> {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline, answer);
    let mut answer_open = true;
    loop {
        tokio::select! {
            a = &mut answer, if answer_open => match a {
                Some(v) => return Ending::Answered(v),
                None => answer_open = false,
            },
            s = child.wait() => return Ending::Exited(s.ok()),
            () = &mut deadline => return Ending::TimedOut,
            by = cancelled(cancel) => return Ending::Cancelled(by),
        }
    }
}

/// Ends the attempt's process group as `ending` requires and says how it went;
/// `answered` turns a worker's answer into the outcome.
pub async fn conclude<T>(
    ending: Ending<T>,
    child: &mut Child,
    pid: u32,
    grace: Duration,
    timeout: Duration,
    answered: impl FnOnce(T) -> Outcome,
) -> Outcome {
    match ending {
        Ending::Answered(answer) => {
            // The job is over; its worker (and anything it started) goes now.
            end_group(child, pid, grace).await;
            answered(answer)
        }
        Ending::Exited(status) => {
            // Background processes the job left behind end with it.
            signal_group(pid, libc::SIGKILL);
            Outcome::exited(status)
        }
        Ending::TimedOut => {
            end_group(child, pid, grace).await;
            Outcome::timed_out(timeout)
        }
        Ending::Cancelled(by) => {
            end_group(child, pid, grace).await;
            Outcome::cancelled(&by)
        }
    }
}

/// Resolves when someone asks to cancel, with who it was; never if nobody can.
async fn cancelled(cancel: &mut watch::Receiver<Option<String>>) -> String {
    let by = match cancel.wait_for(Option::is_some).await {
        Ok(by) => by.clone(),
        Err(_) => None,
    };
    match by {
        Some(by) => by,
        None => std::future::pending().await,
    }
}

/// Sends `sig` to the process group led by `pid`.
pub fn signal_group(pid: u32, sig: libc::c_int) {
    if let Ok(pgid) = libc::pid_t::try_from(pid)
        && pgid > 1
    {
        // SAFETY: kill(2) on the job's own process group.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Ends the group: SIGTERM, `grace` for the leader to exit, then SIGKILL to
/// everyone left. Returns the leader's exit status.
pub async fn end_group(child: &mut Child, pid: u32, grace: Duration) -> Option<ExitStatus> {
    signal_group(pid, libc::SIGTERM);
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(s) => s.ok(),
        Err(_) => None,
    };
    signal_group(pid, libc::SIGKILL);
    match status {
        Some(s) => Some(s),
        None => child.wait().await.ok(),
    }
}

/// Waits (bounded) for the output readers to drain what the group wrote; a
/// process that left the group and keeps the pipe open is not waited for.
pub async fn drain(readers: Vec<tokio::task::JoinHandle<()>>) {
    for mut r in readers {
        if tokio::time::timeout(Duration::from_secs(2), &mut r)
            .await
            .is_err()
        {
            r.abort();
        }
    }
}
