//! `vwed_sandbox` wired into this runtime: the parts of `Config` it is given (the
//! `[sandbox]` settings, the data dir and its mail outbox, the memory limit of a
//! worker), so that the crate knows no `Config` and its callers here keep
//! passing one. The worker applies the policy itself (`vwed_sandbox::worker`,
//! called by the Python host); spawning sets what does not depend on the
//! project (`worker/confine.rs`).

use vwed_ipc::SandboxPolicy;

use crate::config::Config;

pub use vwed_sandbox::{JOB_GRANTS, cgroup, machine, status_json};

/// Probes the kernel, takes over a delegated cgroup and logs what scripts get;
/// once, before the first worker is spawned.
pub fn probe(cfg: &Config) -> &'static vwed_sandbox::Machine {
    vwed_sandbox::probe(&cfg.sandbox, cfg.worker_memory_limit())
}

/// The confinement of a script of `project`; makes its scratch folder and the
/// mail outbox below the data dir.
pub fn policy(cfg: &Config, project: &str) -> std::io::Result<SandboxPolicy> {
    let folders = vwed_sandbox::Folders {
        data_dir: &cfg.data_dir,
        attachments: crate::integrations::mail::ATTACHMENT_DIR,
    };
    Ok(vwed_sandbox::policy(&cfg.sandbox, folders, project)?)
}

pub mod shell {
    //! A Bash job's folder, by the runtime's data dir.

    use std::path::PathBuf;

    use crate::config::Config;

    /// Where a Bash job's folder is made (see `vwed_sandbox::job::work_root`).
    pub fn work_root(cfg: &Config) -> std::io::Result<PathBuf> {
        vwed_sandbox::job::work_root(&cfg.data_dir)
    }
}

#[cfg(test)]
mod tests {
    /// The packages `cargo tree` lists for `args`, one per line, without versions.
    fn tree(args: &[&str]) -> Vec<String> {
        let out = std::process::Command::new(env!("CARGO"))
            .args(["tree", "--offline", "-e", "normal", "--prefix", "none"])
            .args(["--format", "{p}"])
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo tree runs");
        assert!(
            out.status.success(),
            "cargo tree {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }

    /// Only the Python host links pyo3: the supervisor's library (the package
    /// without its `worker` feature, which only main.rs's worker entry uses) and
    /// the confinement it shares with the worker do not.
    #[test]
    fn the_supervisor_links_no_python() {
        let edge = tree(&["-p", "vwed-edge", "--no-default-features"]);
        assert!(edge.iter().any(|p| p == "vwed-sandbox"), "{edge:?}");
        for package in ["pyo3", "vwed-pyhost"] {
            assert!(
                !edge.iter().any(|p| p == package),
                "vwed-edge's library links {package}"
            );
        }
        let sandbox = tree(&["-p", "vwed-sandbox"]);
        assert!(
            !sandbox.iter().any(|p| p.starts_with("pyo3")),
            "{sandbox:?}"
        );
        // The check sees pyo3 where it is: the binary's worker entry.
        let binary = tree(&["-p", "vwed-edge"]);
        assert!(binary.iter().any(|p| p == "pyo3"), "{binary:?}");
    }
}
