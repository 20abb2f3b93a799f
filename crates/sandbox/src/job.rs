//! The supervisor's side of a Bash job's confinement: which user the job runs
//! as, how its processes are bounded, where its folder is, and what it may reach.
//! The job's process puts it in force itself between fork and exec
//! (`shell.rs`).
//!
//! Processes: a shell must fork, so seccomp cannot stop a fork bomb and cannot
//! count. The bound is a delegated cgroup's `pids.max` when there is one, else
//! `RLIMIT_NPROC`, which the kernel does not apply to root: a root runtime runs
//! Bash jobs as `sandbox.job_user` (default `nobody`). That user cannot reach the
//! runtime's private data dir, so its jobs' folders are in a folder of their own
//! under the system's temporary directory ([`work_root`]).

use std::ffi::CString;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::JOB_GRANTS;
use crate::machine::{Machine, machine};
use crate::settings::{ProjectGrant, SandboxSettings};
use crate::shell::{JobUser, ShellPolicy, TaskLimit};

/// Why a root runtime's `sandbox.job_user` gives no user to run Bash jobs as
/// (they then run as root without capabilities).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobUserError {
    #[error("sandbox.job_user is empty")]
    Empty,
    #[error("sandbox.job_user {0:?}: not a name")]
    NotAName(String),
    #[error("sandbox.job_user {0:?}: no such user")]
    NoSuchUser(String),
    #[error("sandbox.job_user {0:?} is root")]
    Root(String),
}

/// The user Bash jobs run as: `None` when they run as the runtime's own user
/// (it is not root, the sandbox is off, or no job user is set), an error when a
/// root runtime's job user does not resolve (they then run as root).
pub fn job_user(s: &SandboxSettings) -> Result<Option<JobUser>, JobUserError> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let name = s.job_user.trim();
    if !root || !s.enabled {
        return Ok(None);
    }
    if name.is_empty() {
        return Err(JobUserError::Empty);
    }
    let user = match numeric(name) {
        Some((uid, gid)) => JobUser {
            name: name.to_string(),
            uid,
            gid,
        },
        None => lookup(name)?,
    };
    if user.uid == 0 {
        return Err(JobUserError::Root(name.to_string()));
    }
    Ok(Some(user))
}

/// `uid` or `uid:gid` (a lone uid is its own gid).
fn numeric(text: &str) -> Option<(u32, u32)> {
    match text.split_once(':') {
        Some((u, g)) => Some((u.parse().ok()?, g.parse().ok()?)),
        None => text.parse().ok().map(|u| (u, u)),
    }
}

fn lookup(name: &str) -> Result<JobUser, JobUserError> {
    let c = CString::new(name).map_err(|_| JobUserError::NotAName(name.to_string()))?;
    // SAFETY: an all-zero passwd is a valid value to be filled in.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; the strings it sets point into `buf`.
    let r = unsafe {
        libc::getpwnam_r(
            c.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if r != 0 || found.is_null() {
        return Err(JobUserError::NoSuchUser(name.to_string()));
    }
    Ok(JobUser {
        name: name.to_string(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

/// Tasks (threads of every process) whose real user is `uid`: what
/// `RLIMIT_NPROC` counts.
pub fn tasks_of(uid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter_map(|status| threads_of(&status, uid))
        .sum()
}

/// `Threads:` of a `/proc/<pid>/status` whose real uid is `uid`.
fn threads_of(status: &str, uid: u32) -> Option<u64> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    (field("Uid:")? == u64::from(uid)).then(|| field("Threads:"))?
}

/// How the processes of a job that runs as `uid` are bounded here.
pub fn task_limit(machine: &Machine, uid: u32) -> TaskLimit {
    let allowance = machine.settings.max_threads;
    if allowance == 0 {
        return TaskLimit::Unbounded("sandbox.max_threads = 0".into());
    }
    if let Ok(cg) = &machine.cgroup
        && let Some(n) = cg.max_tasks()
    {
        return TaskLimit::Cgroup(n);
    }
    if uid != 0 {
        // The user's other tasks count against the limit too: the job gets its
        // allowance on top of what there is now.
        return TaskLimit::Nproc {
            limit: tasks_of(uid) + u64::from(allowance),
            allowance,
        };
    }
    let why = match &machine.job_user {
        Err(e) => e.to_string(),
        Ok(_) => "the runtime runs as root".into(),
    };
    TaskLimit::Unbounded(format!(
        "the job runs as root ({why}) without a delegated cgroup: RLIMIT_NPROC does not bind root"
    ))
}

/// Where a Bash job's folder is made: `<data-dir>/jobs/work`, or, for a job that
/// runs as another user (who cannot enter the runtime's data dir),
/// `<tmp>/vwed-edge-jobs`, which only the runtime's user may write and nobody
/// may list. Folders are named by execution id, unique across runtimes.
pub fn work_root(data_dir: &Path) -> io::Result<PathBuf> {
    if !matches!(machine().job_user, Ok(Some(_))) {
        return Ok(data_dir.join("jobs").join("work"));
    }
    let root = std::env::temp_dir().join("vwed-edge-jobs");
    private_dir(&root)?;
    Ok(root)
}

/// Makes `dir` (mode 0711) unless it exists, and checks that it is a directory
/// of this process's user that nobody else may write: `/tmp` is everyone's, and
/// a folder planted there beforehand must not be used.
fn private_dir(dir: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o711).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let m = std::fs::symlink_metadata(dir)?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !m.is_dir() || m.uid() != me || m.mode() & 0o022 != 0 {
        return Err(io::Error::other(format!(
            "{} is not a folder of the runtime's user, or others may write it",
            dir.display()
        )));
    }
    Ok(())
}

/// Hands the job's folder and what is in it (its script) to the user it runs
/// as; nobody else may enter the folder.
pub fn give_work_dir(dir: &Path) -> io::Result<()> {
    let Ok(Some(u)) = &machine().job_user else {
        return Ok(());
    };
    for entry in std::fs::read_dir(dir)? {
        std::os::unix::fs::lchown(entry?.path(), Some(u.uid), Some(u.gid))?;
    }
    std::os::unix::fs::chown(dir, Some(u.uid), Some(u.gid))?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
}

/// What a Bash job in `work_dir` run by `program` may reach, by the grants of
/// `settings` (`[sandbox.projects._jobs]`); `data_dir` stays out of reach.
pub fn policy(
    settings: &SandboxSettings,
    data_dir: &Path,
    work_dir: &Path,
    program: &Path,
) -> io::Result<ShellPolicy> {
    let machine = machine();
    let grant = settings.projects.get(JOB_GRANTS);
    let paths =
        |f: fn(&ProjectGrant) -> &Vec<PathBuf>| grant.map(|g| f(g).clone()).unwrap_or_default();
    let mut protect = vec![std::fs::canonicalize(data_dir)?];
    protect.extend(settings.config_file.clone());
    let user = machine.job_user.as_ref().ok().and_then(Clone::clone);
    // SAFETY: geteuid has no preconditions.
    let uid = user.as_ref().map_or(unsafe { libc::geteuid() }, |u| u.uid);
    // SAFETY: getpgrp has no preconditions.
    let group = unsafe { libc::getpgrp() };
    Ok(ShellPolicy {
        work_dir: std::fs::canonicalize(work_dir)?,
        program: std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf()),
        read: paths(|g| &g.read),
        write: paths(|g| &g.write),
        protect,
        network: settings.network(JOB_GRANTS),
        tasks: task_limit(machine, uid),
        user,
        supervisor: std::process::id(),
        supervisor_group: u32::try_from(group).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_user_is_a_name_or_numbers() {
        assert_eq!(numeric("65534"), Some((65534, 65534)));
        assert_eq!(numeric("1001:1002"), Some((1001, 1002)));
        assert_eq!(numeric("nobody"), None);
        assert_eq!(numeric("1:x"), None);
        assert_eq!(
            lookup("no-such-user-here").map(|u| u.uid),
            Err(JobUserError::NoSuchUser("no-such-user-here".into()))
        );
        assert_eq!(lookup("root").map(|u| u.uid), Ok(0));
    }

    #[test]
    fn tasks_are_counted_by_real_user() {
        let status = "Name:\tbash\nUid:\t65534\t65534\t65534\t65534\nThreads:\t3\n";
        assert_eq!(threads_of(status, 65534), Some(3));
        assert_eq!(threads_of(status, 0), None);
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        assert!(tasks_of(me) >= 1, "this test's own threads count");
    }
}
