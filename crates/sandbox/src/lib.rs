//! Confinement of VWED Edge's script workers and jobs, without Python: the
//! supervisor's side (the `[sandbox]` settings, the policy each worker gets with
//! its `Boot`, the delegated cgroup v2, the Bash job profile, the facts it logs at
//! start) and the walls themselves (Landlock rules, a seccomp filter from a small
//! BPF assembler, dropped privileges), which a worker puts in force on itself and
//! a Bash job's process between fork and exec.
//!
//! The supervisor links this crate and not the Python host: the one thing only
//! Python knows (its search path) is handed to [`worker::confine`] by the host.

mod bpf;
pub mod cgroup;
pub mod job;
mod kernel;
mod landlock_rules;
mod machine;
mod policy;
mod privileges;
mod seccomp;
pub mod settings;
pub mod shell;
pub mod worker;

pub use kernel::KernelSupport;
pub use machine::{Machine, machine, probe, status_json};
pub use policy::{Folders, PolicyError, policy, scratch_dir};
pub use settings::{SandboxSettings, SettingsError};
pub use worker::off;

/// Environment variable by which the supervisor tells a worker that kernel
/// confinement is turned off (`sandbox.enabled = false`).
pub const OFF_ENV: &str = "VWED_SANDBOX_OFF";

/// `[sandbox.projects._jobs]`: what jobs (Python and Bash) may read, write and
/// reach besides their own folder.
pub const JOB_GRANTS: &str = "_jobs";
