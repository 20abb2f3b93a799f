//! The engine's settings (top-level keys of the runtime's configuration) and
//! what else of the configuration it is given.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineSettings {
    /// Default timeout of a route handler or function call.
    pub call_timeout_ms: u64,
    /// Upper bound for a caller-supplied `timeout_ms`.
    pub max_call_timeout_ms: u64,
    /// How long `boot()` may take before the start fails.
    pub boot_timeout_ms: u64,
    /// How long a stopping worker gets before SIGKILL.
    pub stop_grace_ms: u64,
    /// Largest script source accepted.
    pub max_script_bytes: u64,
    /// Lines of stdout/stderr/log kept in memory per script.
    pub output_lines: usize,
    /// Scripts that may run at once.
    pub max_running_scripts: usize,
    /// Start again, after a restart of the runtime, every script that was running.
    pub restore_on_start: bool,
    /// Events waiting per listener; more are dropped, counted and reported.
    pub event_queue_len: usize,
    /// Keep one worker started ahead of need, so that starting a script does not
    /// wait for the interpreter to come up. Costs one idle worker's memory.
    pub spare_worker: bool,
    /// Registrations (routes, functions, listeners, timers) one run of a script may
    /// make: a script registering in a loop must not exhaust the supervisor.
    pub max_registrations: usize,
    /// Heap and anonymous memory one script's worker may use, in MiB (0: no limit).
    /// Past it the script gets a MemoryError; the runtime and other scripts go on.
    pub worker_memory_mb: u64,
    /// Longest line of script output, `VWED.log` message or traceback, in bytes;
    /// a longer one is cut (in the worker already) and ends with a marker.
    pub max_line_bytes: usize,
    /// Bytes of output kept in memory per running script, beside `output_lines`.
    pub output_max_bytes: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            call_timeout_ms: 30_000,
            max_call_timeout_ms: 600_000,
            boot_timeout_ms: 30_000,
            stop_grace_ms: 3_000,
            max_script_bytes: 2 * 1024 * 1024,
            output_lines: 2_000,
            max_running_scripts: 64,
            restore_on_start: true,
            event_queue_len: 1024,
            spare_worker: true,
            max_registrations: 10_000,
            worker_memory_mb: 512,
            max_line_bytes: 64 * 1024,
            output_max_bytes: 1024 * 1024,
        }
    }
}

impl EngineSettings {
    pub fn worker_memory_limit(&self) -> Option<u64> {
        (self.worker_memory_mb > 0).then(|| self.worker_memory_mb.saturating_mul(1024 * 1024))
    }
}

/// What the engine is configured with: its own settings and the parts of the
/// runtime's configuration it acts on.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub engine: EngineSettings,
    pub data_dir: std::path::PathBuf,
    pub sandbox: vwed_sandbox::SandboxSettings,
    pub supervision: crate::supervision::SupervisionSettings,
    /// `serve --safe`: start without restoring the scripts that ran.
    pub safe_start: bool,
}
