//! What a runner (`python.rs`, `bash.rs`) is handed for one attempt; `run.rs`
//! makes it. Its own module, so that the runners do not import the scheduler side.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use vwed_engine::Engine;
use vwed_logs::ScriptLogger;

use super::capture::Capture;
use super::model::{ExecRec, JobSpec};

/// What a runner needs for one attempt.
pub struct AttemptRun {
    pub engine: Arc<Engine>,
    pub exec: ExecRec,
    pub spec: JobSpec,
    pub env: Vec<(String, String)>,
    pub work_dir: PathBuf,
    pub capture: Arc<Capture>,
    pub log: Arc<ScriptLogger>,
    pub cancel: watch::Receiver<Option<String>>,
    pub timeout: Duration,
    pub grace: Duration,
    /// Bash for Bash jobs (`job_bash_path`).
    pub bash: String,
}
