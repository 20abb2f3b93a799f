//! `vwed_sandbox` wired into the engine: the parts of its configuration the
//! sandbox is given (the `[sandbox]` settings, the data dir and its mail
//! outbox, the memory limit of a worker). The worker applies the policy itself (`vwed_sandbox::worker`,
//! called by the Python host); spawning sets what does not depend on the
//! project (`worker/confine.rs`).

use vwed_ipc::SandboxPolicy;

use crate::EngineConfig;

pub use vwed_sandbox::{JOB_GRANTS, cgroup, machine, status_json};

/// Probes the kernel, takes over a delegated cgroup and logs what scripts get;
/// once, before the first worker is spawned.
pub fn probe(cfg: &EngineConfig) -> &'static vwed_sandbox::Machine {
    vwed_sandbox::probe(&cfg.sandbox, cfg.engine.worker_memory_limit())
}

/// The confinement of a script of `project`; makes its scratch folder and the
/// mail outbox below the data dir.
pub fn policy(cfg: &EngineConfig, project: &str) -> std::io::Result<SandboxPolicy> {
    let folders = vwed_sandbox::Folders {
        data_dir: &cfg.data_dir,
        attachments: vwed_integrations::mail::ATTACHMENT_DIR,
    };
    Ok(vwed_sandbox::policy(&cfg.sandbox, folders, project)?)
}

pub mod shell {
    //! A Bash job's folder, by the runtime's data dir.

    use std::path::PathBuf;

    use crate::EngineConfig;

    /// Where a Bash job's folder is made (see `vwed_sandbox::job::work_root`).
    pub fn work_root(cfg: &EngineConfig) -> std::io::Result<PathBuf> {
        vwed_sandbox::job::work_root(&cfg.data_dir)
    }
}
