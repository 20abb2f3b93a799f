//! What every worker gets at spawn, before it knows its script: a clean
//! environment (no secret of the supervisor's reaches a script), `/` as working
//! directory, core dumps off, open-file and file-size limits, a lower CPU priority
//! and, with a delegated cgroup, its own cgroup leaf. The project-specific part
//! (Landlock, seccomp) follows in the worker when `Boot` arrives.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;

use tokio::process::Command;

use vwed_sandbox::machine;

/// Variables a worker keeps from the supervisor's environment: where Python is (an
/// embedded interpreter without PYTHONHOME finds its prefix through PATH), and the
/// locale and time zone scripts format with, and where qemu-user finds the target's
/// loader (a runtime under binfmt emulation re-executes itself for every worker; the
/// variable means nothing to a native process). Nothing else passes.
const KEPT: &[&str] = &[
    "QEMU_LD_PREFIX",
    "PATH",
    "PYTHONHOME",
    "PYTHONPATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
];

/// Prepared in the supervisor, applied in the child between fork and exec.
pub struct SpawnPlan {
    nice: i32,
    open_files: u64,
    file_size: Option<u64>,
    /// `cgroup.procs` of the worker's own cgroup leaf.
    cgroup: Option<CString>,
    /// That leaf, for the supervisor to read its events after the worker ends.
    pub cgroup_dir: Option<std::path::PathBuf>,
}

/// Sets the environment and working directory of `cmd` and prepares the rest.
pub fn prepare(cmd: &mut Command) -> io::Result<SpawnPlan> {
    let machine = machine();
    let s = &machine.settings;
    cmd.env_clear().current_dir("/");
    for name in KEPT {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    cmd.env(vwed_ipc::SUPERVISOR_PID_ENV, std::process::id().to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    if !s.enabled {
        cmd.env(vwed_sandbox::OFF_ENV, "1");
    }
    let procs = match &machine.cgroup {
        Ok(cg) => Some(cg.leaf()?),
        Err(_) => None,
    };
    let cgroup = match &procs {
        Some(p) => Some(
            CString::new(p.as_os_str().as_bytes())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    let cgroup_dir = procs.and_then(|p| p.parent().map(std::path::Path::to_path_buf));
    Ok(SpawnPlan {
        nice: i32::from(s.nice),
        open_files: s.open_files,
        file_size: s.file_size_bytes(),
        cgroup,
        cgroup_dir,
    })
}

/// Runs in the forked child before exec: only async-signal-safe calls.
pub fn in_child(plan: &SpawnPlan) -> io::Result<()> {
    // The supervisor is not dumpable, and until exec neither is this child, so its
    // /proc files belong to root: a runtime running as another user could not set
    // the child's own oom_score_adj. The worker is dumpable after exec anyway.
    // SAFETY: prctl(PR_SET_DUMPABLE) only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 1);
    }
    // A closure, not a function: the resource type differs between C libraries.
    let set_limit = |resource, value: u64| {
        let lim = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit on this (child) process.
        if unsafe { libc::setrlimit(resource, &lim) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    if let Some(procs) = &plan.cgroup {
        // SAFETY: open/write/close of a path prepared before the fork.
        unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let joined = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            libc::close(fd);
            if !joined {
                return Err(io::Error::other("cannot join the worker cgroup"));
            }
        }
    }
    set_limit(libc::RLIMIT_CORE, 0)?;
    if plan.open_files > 0 {
        set_limit(libc::RLIMIT_NOFILE, plan.open_files)?;
    }
    if let Some(bytes) = plan.file_size {
        set_limit(libc::RLIMIT_FSIZE, bytes)?;
        // Past the limit a write must fail with EFBIG (an OSError in the script),
        // not kill the worker; an embedded interpreter does not ignore SIGXFSZ itself.
        // SAFETY: setting a signal disposition is async-signal-safe.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
    }
    // SAFETY: setpriority on this (child) process.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, plan.nice);
    }
    Ok(())
}
