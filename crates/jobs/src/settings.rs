//! The jobs' settings (`job_*`): top-level keys of the runtime's configuration.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct JobSettings {
    /// Job executions that run at once (the seed's MAX_CONCURRENT_SCRIPTS). They
    /// also count against `max_running_scripts` together with service scripts:
    /// a job waits while services and jobs use all of it.
    pub job_max_concurrent: usize,
    /// Executions waiting for a free slot; a new one beyond is refused (and recorded).
    pub job_queue_len: usize,
    /// Timeout of a job that names none, in seconds (the seed's SCRIPT_TIMEOUT).
    pub job_default_timeout_s: u64,
    pub job_max_timeout_s: u64,
    /// Retries a job's policy may ask for.
    pub job_max_retries: u32,
    /// After SIGTERM on timeout or cancel, how long a job has before SIGKILL.
    pub job_kill_grace_ms: u64,
    /// Bash for Bash jobs; an absolute path.
    pub job_bash_path: String,
    /// Output kept per execution (its start and its end; the middle is cut).
    pub job_output_bytes: u64,
    /// Executions kept in the history; the oldest finished ones go first.
    pub job_history_max: usize,
    /// Versions kept per job; the oldest go first.
    pub job_max_versions: usize,
    /// Jobs that may be defined.
    pub job_max_scripts: usize,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            job_max_concurrent: 10,
            job_queue_len: 100,
            job_default_timeout_s: 300,
            job_max_timeout_s: 86_400,
            job_max_retries: 10,
            job_kill_grace_ms: 2_000,
            job_bash_path: "/bin/bash".to_string(),
            job_output_bytes: 64 * 1024,
            job_history_max: 10_000,
            job_max_versions: 200,
            job_max_scripts: 1_000,
        }
    }
}
