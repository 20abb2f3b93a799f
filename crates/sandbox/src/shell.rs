//! Confinement of a shell job (a Bash job): the walls of a script worker, cut for
//! a process that starts programs. It is prepared in the supervisor (the Landlock
//! ruleset, the seccomp program, the report of what will hold) and put in force
//! in the forked child right before exec by [`Prepared::apply`], which makes
//! system calls only: the supervisor has threads, so between fork and exec
//! nothing may allocate or take a lock. Landlock, seccomp, no_new_privs, the
//! dropped capabilities and the user hold across exec and for everything the
//! shell starts.
//!
//! Signals: Landlock's signal scope (ABI 6) confines them to the job's own
//! processes; the seccomp filter keeps the supervisor out of reach on any kernel.
//! Processes: seccomp cannot count them; the supervisor chooses the bound (a
//! cgroup's `pids.max`, or `RLIMIT_NPROC` for a user other than root) and says so
//! in [`TaskLimit`].

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use libc::sock_filter;
use vwed_ipc::{NetworkGrant, SandboxReport};

use crate::kernel::{ABI_SCOPES, KernelSupport};
use crate::landlock_rules::{self, Paths};
use crate::worker::NETWORK_READ;
use crate::{privileges, seccomp};

/// Programs and the libraries they load. Executables of the system; nothing here
/// is secret.
const SYSTEM_EXEC: &[&str] = &[
    "/bin", "/sbin", "/usr", "/lib", "/lib32", "/lib64", "/libx32",
];

/// What common tools read besides their libraries: the loader's cache, the time
/// zone, the CPU count, randomness. Not `/etc/passwd` or `/etc/group`: a job has
/// no business listing the machine's accounts (`whoami` and `ls -l` show numbers).
const SYSTEM_READ: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/timezone",
    "/sys/devices/system/cpu",
    "/dev/urandom",
    "/dev/random",
];

const DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full"];

/// The user a job runs as when the runtime runs as root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// How the number of the job's processes (and threads) is bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskLimit {
    /// `pids.max` of the job's cgroup leaf, joined at spawn.
    Cgroup(u32),
    /// `RLIMIT_NPROC`: the tasks its user already had plus `allowance`.
    Nproc { limit: u64, allowance: u32 },
    /// Not bounded, and why.
    Unbounded(String),
}

impl TaskLimit {
    fn describe(&self) -> String {
        match self {
            TaskLimit::Cgroup(n) => format!("cgroup pids.max {n}"),
            TaskLimit::Nproc { limit, allowance } => {
                format!("RLIMIT_NPROC {limit} ({allowance} for this job)")
            }
            TaskLimit::Unbounded(_) => "unbounded".into(),
        }
    }
}

/// What a shell job may reach, chosen by the supervisor (paths absolute).
#[derive(Debug, Clone)]
pub struct ShellPolicy {
    /// The job's own folder: written, programs run from; its working directory.
    pub work_dir: PathBuf,
    /// The shell itself (it may live outside the system's folders).
    pub program: PathBuf,
    /// Granted paths: read (and programs run from them), and written.
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    /// Paths no rule may cover (data dir, config file).
    pub protect: Vec<PathBuf>,
    pub network: NetworkGrant,
    /// The user to become, when not the runtime's own.
    pub user: Option<JobUser>,
    pub tasks: TaskLimit,
    /// The supervisor's pid and process group, which the job may never signal.
    pub supervisor: u32,
    pub supervisor_group: u32,
}

/// A confinement ready to be put in force in a child process.
#[derive(Debug)]
pub struct Prepared {
    ruleset: Option<OwnedFd>,
    filter: Vec<sock_filter>,
    user: Option<(u32, u32)>,
    nproc: Option<u64>,
    /// What will hold once [`Prepared::apply`] succeeded.
    pub report: SandboxReport,
}

/// Builds the ruleset and the filter for `policy` and says what they will hold.
pub fn prepare(policy: &ShellPolicy) -> Prepared {
    let kernel = KernelSupport::probe();
    let mut missing = kernel.missing(&policy.network);
    let (ruleset, landlock) = match landlock_rules::prepare(&paths(policy), &policy.network) {
        Ok((fd, outcome)) => (fd, Some(outcome)),
        Err(e) => {
            missing.push(format!("filesystem: {e}"));
            (None, None)
        }
    };
    let profile = seccomp::Profile::Shell {
        supervisor: policy.supervisor,
        supervisor_group: policy.supervisor_group,
    };
    let filter = if kernel.seccomp {
        match seccomp::filter(profile, &policy.network) {
            Ok(f) => f,
            Err(e) => {
                missing.push(format!("seccomp: {e}"));
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let abi = landlock.as_ref().map_or(0, |o| o.abi);
    let scoped = landlock.as_ref().is_some_and(|o| o.scoped);
    if !scoped {
        missing.push(format!(
            "signals: Landlock ABI {abi} cannot scope signals (need {ABI_SCOPES}, Linux 6.12): \
             the job can signal other processes of its user, except the supervisor"
        ));
    }
    if let TaskLimit::Unbounded(why) = &policy.tasks {
        missing.push(format!("processes: {why}"));
    }
    missing.dedup();
    let seccomp_on = !filter.is_empty();
    let tcp = landlock.as_ref().is_some_and(|o| o.tcp);
    let report = SandboxReport {
        filesystem: if abi > 0 {
            format!("landlock v{abi}")
        } else {
            "none".into()
        },
        network: layers(&[(seccomp_on, "seccomp"), (tcp, "landlock")]),
        processes: format!(
            "{}, {}",
            if seccomp_on {
                "seccomp (no namespaces)"
            } else {
                "no filter"
            },
            policy.tasks.describe()
        ),
        signals: layers(&[(scoped, "landlock scope"), (seccomp_on, "seccomp")]),
        privileges: match &policy.user {
            Some(u) => format!("no_new_privs, no capabilities, user {} ({})", u.name, u.uid),
            None => "no_new_privs, no capabilities".into(),
        },
        missing,
    };
    Prepared {
        ruleset,
        filter,
        user: policy.user.as_ref().map(|u| (u.uid, u.gid)),
        nproc: match policy.tasks {
            TaskLimit::Nproc { limit, .. } => Some(limit),
            _ => None,
        },
        report,
    }
}

/// `a+b` of the layers in force, `none` without any.
fn layers(parts: &[(bool, &str)]) -> String {
    let on: Vec<&str> = parts.iter().filter(|p| p.0).map(|p| p.1).collect();
    if on.is_empty() {
        "none".into()
    } else {
        on.join("+")
    }
}

impl Prepared {
    /// Puts the confinement in force in this (forked, single-threaded) process,
    /// in the order the kernel needs: the task limit and the bounding set while
    /// still privileged, then the user, no capabilities, no_new_privs (which
    /// Landlock and seccomp require), Landlock, and seccomp last (it would refuse
    /// what comes after it). System calls only.
    pub fn apply(&self) -> io::Result<()> {
        if let Some(n) = self.nproc {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: setrlimit on this process.
            if unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &lim) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        privileges::drop_bounding_set();
        if let Some((uid, gid)) = self.user {
            privileges::become_user(uid, gid)?;
        }
        privileges::drop_capabilities()?;
        privileges::no_new_privs()?;
        if let Some(fd) = &self.ruleset {
            landlock_rules::restrict_self_raw(fd.as_raw_fd())?;
        }
        if !self.filter.is_empty() {
            seccomp::install(&self.filter)?;
        }
        Ok(())
    }
}

/// Every path the job may open, by kind of access; none that contains a
/// protected path.
fn paths(policy: &ShellPolicy) -> Paths {
    let allowed = |p: &PathBuf| !policy.protect.iter().any(|x| x.starts_with(p));
    let mut exec: Vec<PathBuf> = SYSTEM_EXEC.iter().map(PathBuf::from).collect();
    exec.push(policy.program.clone());
    exec.extend(policy.read.iter().cloned());
    let mut read: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
    if policy.network.tcp() || policy.network.udp {
        read.extend(NETWORK_READ.iter().map(PathBuf::from));
    }
    Paths {
        read: read.into_iter().filter(allowed).collect(),
        exec: exec.into_iter().filter(allowed).collect(),
        write: policy
            .write
            .iter()
            .filter(|p| allowed(p))
            .cloned()
            .collect(),
        workspace: vec![policy.work_dir.clone()],
        devices: DEVICES.iter().map(PathBuf::from).collect(),
    }
}
