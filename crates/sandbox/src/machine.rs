//! This machine as the supervisor found it, fixed for its life:
//! what the kernel offers (probed once at start and logged), the delegated cgroup
//! if there is one, the user Bash jobs run as, and the limits every worker gets
//! at spawn. From them, the `sandbox` entry of a running script.

use std::sync::OnceLock;

use serde_json::{Value, json};
use vwed_ipc::SandboxReport;

use crate::cgroup::{self, CgroupError};
use crate::job::{self, JobUserError};
use crate::{KernelSupport, SandboxSettings, shell};

/// This machine as the supervisor found it at start: what the kernel offers, the
/// delegated cgroup, the Bash jobs' user, and the limits every worker gets.
pub struct Machine {
    pub kernel: KernelSupport,
    pub cgroup: Result<cgroup::Cgroup, CgroupError>,
    /// The spawn-time limits (what the binary's `worker/confine.rs` sets).
    pub settings: SandboxSettings,
    pub memory_bytes: Option<u64>,
    /// The user Bash jobs run as (see `job.rs`).
    pub job_user: Result<Option<shell::JobUser>, JobUserError>,
}

static MACHINE: OnceLock<Machine> = OnceLock::new();

/// Probes the kernel, takes over a delegated cgroup, and logs what confinement
/// scripts will get. Called once, before the first worker is spawned, with the
/// `[sandbox]` settings and the memory limit of one worker (`worker_memory_mb`,
/// a setting of the supervisor's: it also bounds workers without a cgroup).
pub fn probe(settings: &SandboxSettings, memory_bytes: Option<u64>) -> &'static Machine {
    MACHINE.get_or_init(|| {
        let kernel = KernelSupport::probe();
        let limits = cgroup::Limits {
            cpu_percent: settings.cpu_percent,
            memory_bytes,
            max_tasks: settings.max_threads,
        };
        let cgroup = cgroup::detect()
            .and_then(|dir| cgroup::Cgroup::setup(&dir, limits).map_err(CgroupError::Setup));
        let machine = Machine {
            kernel,
            cgroup,
            job_user: job::job_user(settings),
            settings: settings.clone(),
            memory_bytes,
        };
        machine.log();
        machine
    })
}

/// The machine as probed; a process that never called [`probe`] (unit tests, tools) gets
/// the defaults without a cgroup.
pub fn machine() -> &'static Machine {
    MACHINE.get_or_init(|| Machine {
        kernel: KernelSupport::probe(),
        cgroup: Err(CgroupError::NotSetUp),
        settings: SandboxSettings::default(),
        memory_bytes: None,
        job_user: Ok(None),
    })
}

impl Machine {
    fn log(&self) {
        let s = &self.settings;
        if !s.enabled {
            tracing::warn!("sandbox: turned off (sandbox.enabled = false): scripts run unconfined");
        } else {
            let missing = self.kernel.missing(&vwed_ipc::NetworkGrant::default());
            tracing::info!(
                "sandbox: filesystem {}, processes/signals/sockets {}",
                self.kernel.filesystem(),
                if self.kernel.seccomp {
                    "seccomp"
                } else {
                    "none"
                },
            );
            for m in &missing {
                tracing::warn!("sandbox: not available: {m}");
            }
            if s.required && !missing.is_empty() {
                tracing::error!("sandbox.required = true: no script will start on this kernel");
            }
        }
        match &self.job_user {
            Ok(Some(u)) => tracing::info!("sandbox: Bash jobs run as {} ({})", u.name, u.uid),
            Ok(None) => {}
            Err(why) => tracing::warn!(
                "sandbox: Bash jobs run as root without capabilities ({why}); \
                 without a delegated cgroup their processes are not bounded"
            ),
        }
        match &self.cgroup {
            Ok(cg) => tracing::info!("sandbox: cpu and memory per worker by {}", cg.describe()),
            Err(why) => tracing::warn!(
                "sandbox: no delegated cgroup v2 ({why}): workers run at nice {} without a CPU quota",
                s.nice
            ),
        }
    }

    /// How a worker's CPU is limited.
    pub fn cpu(&self) -> String {
        match &self.cgroup {
            Ok(cg) => format!("{}, nice {}", cg.describe(), self.settings.nice),
            Err(_) => format!("nice {}", self.settings.nice),
        }
    }

    /// Why a script of `project` would not be fully confined here, before spawning.
    pub fn refusal(&self, project: &str) -> Option<String> {
        if !self.settings.required {
            return None;
        }
        let missing = self.kernel.missing(&self.settings.network(project));
        (!missing.is_empty()).then(|| missing.join("; "))
    }
}

/// The `sandbox` entry of a running script: what its worker reported, plus the
/// limits the supervisor set when it spawned it.
pub fn status_json(report: Option<&SandboxReport>) -> Value {
    let machine = machine();
    let s = &machine.settings;
    let mut v = match report {
        Some(r) => json!({
            "filesystem": r.filesystem,
            "network": r.network,
            "processes": r.processes,
            "signals": r.signals,
            "privileges": r.privileges,
            "complete": r.missing.is_empty(),
            "missing": r.missing,
        }),
        None => json!({"complete": false, "missing": ["not reported yet"]}),
    };
    v["cpu"] = json!(machine.cpu());
    v["memory_bytes"] = json!(machine.memory_bytes);
    v["open_files"] = json!((s.open_files > 0).then_some(s.open_files));
    v["file_size_bytes"] = json!(s.file_size_bytes());
    v
}
