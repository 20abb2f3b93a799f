//! The supervisor's side of script confinement: what the kernel offers (probed once
//! at start and logged), the policy each script's worker gets with its `Boot`, the
//! delegated cgroup if there is one, and the `sandbox` entry of a running script.
//! The worker applies the policy itself (`vwed_pyhost::sandbox`); spawning sets the
//! process attributes that do not depend on the project (`worker/confine.rs`).

pub mod cgroup;
pub mod settings;
pub mod shell;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Value, json};
use vwed_ipc::{SandboxPolicy, SandboxReport};
use vwed_pyhost::sandbox::KernelSupport;

use crate::config::Config;

pub use settings::SandboxSettings;

/// `[sandbox.projects._jobs]`: what jobs (Python and Bash) may read, write and
/// reach besides their own folder.
pub const JOB_GRANTS: &str = "_jobs";

/// Facts about this process and kernel, fixed for the life of the runtime.
pub struct Host {
    pub kernel: KernelSupport,
    pub cgroup: Result<cgroup::Cgroup, String>,
    /// The spawn-time limits (see `worker/confine.rs`).
    pub settings: SandboxSettings,
    pub memory_bytes: Option<u64>,
    /// The user Bash jobs run as (see `shell.rs`).
    pub job_user: Result<Option<vwed_pyhost::sandbox::shell::JobUser>, String>,
}

static HOST: OnceLock<Host> = OnceLock::new();

/// Probes the kernel, takes over a delegated cgroup, and logs what confinement
/// scripts will get. Called once, before the first worker is spawned.
pub fn init(cfg: &Config) -> &'static Host {
    HOST.get_or_init(|| {
        let kernel = KernelSupport::probe();
        let limits = cgroup::Limits {
            cpu_percent: cfg.sandbox.cpu_percent,
            memory_bytes: cfg.worker_memory_limit(),
            max_tasks: cfg.sandbox.max_threads,
        };
        let cgroup = cgroup::detect()
            .and_then(|dir| cgroup::Cgroup::setup(&dir, limits).map_err(|e| e.to_string()));
        let host = Host {
            kernel,
            cgroup,
            job_user: shell::job_user(&cfg.sandbox),
            settings: cfg.sandbox.clone(),
            memory_bytes: cfg.worker_memory_limit(),
        };
        host.log();
        host
    })
}

/// The host facts; a process that never called [`init`] (unit tests, tools) gets
/// the defaults without a cgroup.
pub fn host() -> &'static Host {
    HOST.get_or_init(|| Host {
        kernel: KernelSupport::probe(),
        cgroup: Err("not set up".into()),
        settings: SandboxSettings::default(),
        memory_bytes: None,
        job_user: Ok(None),
    })
}

impl Host {
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

/// The confinement of a script of `project`; creates its scratch folder.
pub fn policy(cfg: &Config, project: &str) -> std::io::Result<SandboxPolicy> {
    let data = std::fs::canonicalize(&cfg.data_dir)?;
    let scratch = scratch_dir(&data, project);
    std::fs::create_dir_all(&scratch)?;
    // The shared outbox of VWED.mail.send_with_attachment.
    let attachments = crate::integrations::mail::attachment_dir(&cfg.data_dir);
    std::fs::create_dir_all(&attachments)?;
    let grant = cfg.sandbox.projects.get(project);
    let paths = |f: fn(&settings::ProjectGrant) -> &Vec<PathBuf>| {
        grant
            .map(|g| f(g).iter().map(|p| text(p)).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut read = vec![text(&data.join("projects").join(project))];
    read.extend(paths(|g| &g.read));
    let mut write = vec![text(&std::fs::canonicalize(&attachments)?)];
    write.extend(paths(|g| &g.write));
    let mut protect = vec![text(&data)];
    protect.extend(cfg.sandbox.config_file.as_deref().map(text));
    Ok(SandboxPolicy {
        enabled: cfg.sandbox.enabled,
        required: cfg.sandbox.required,
        scratch_dir: text(&scratch),
        read,
        write,
        protect,
        network: cfg.sandbox.network(project),
    })
}

/// `<data-dir>/scratch/<project>`: the one folder a project's scripts may write.
pub fn scratch_dir(data_dir: &Path, project: &str) -> PathBuf {
    data_dir.join("scratch").join(project)
}

fn text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The `sandbox` entry of a running script: what its worker reported, plus the
/// limits the supervisor set when it spawned it.
pub fn status_json(report: Option<&SandboxReport>) -> Value {
    let host = host();
    let s = &host.settings;
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
    v["cpu"] = json!(host.cpu());
    v["memory_bytes"] = json!(host.memory_bytes);
    v["open_files"] = json!((s.open_files > 0).then_some(s.open_files));
    v["file_size_bytes"] = json!(s.file_size_bytes());
    v
}
