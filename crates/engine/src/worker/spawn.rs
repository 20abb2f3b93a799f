//! Starting a worker: the same binary in a hidden mode, with one end of a socket
//! pair on fd 3 and the data-dir lock on fd 4.
//!
//! Holding the lock is what keeps a restarted supervisor from running a second copy
//! of a script: the lock is released only when every process holding it has exited,
//! so a new supervisor cannot take the data dir while an old worker still lives.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::process::Stdio;

use tokio::net::UnixStream;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

use super::confine::SpawnPlan;

/// The socket to the supervisor, as the worker sees it.
pub const CHANNEL_FD: RawFd = 3;
/// The inherited data-dir lock.
pub const LOCK_FD: RawFd = 4;

#[derive(Debug, Clone, Copy)]
pub enum WorkerMode {
    Script,
    Analyzer,
}

pub struct SpawnedWorker {
    pub child: Child,
    pub pid: u32,
    pub stream: UnixStream,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    /// Its own cgroup, with a delegated cgroup.
    pub cgroup: Option<std::path::PathBuf>,
}

fn move_fd(from: RawFd, to: RawFd) -> std::io::Result<()> {
    // SAFETY: plain fd syscalls in the forked child, before exec.
    unsafe {
        if from == to {
            let flags = libc::fcntl(to, libc::F_GETFD);
            if flags < 0 || libc::fcntl(to, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        } else if libc::dup2(from, to) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `memory_limit` caps the worker's data segment (heap and anonymous memory), so
/// a runaway script gets a MemoryError instead of driving the controller into the
/// OOM killer; `None` leaves it unlimited.
pub fn spawn_worker(
    exe: &Path,
    mode: WorkerMode,
    lock: Option<&OwnedFd>,
    memory_limit: Option<u64>,
) -> std::io::Result<SpawnedWorker> {
    let (ours, theirs) = StdUnixStream::pair()?;
    let child_fd = theirs.as_raw_fd();
    let lock_fd = lock.map(|l| l.as_raw_fd());
    let (mut cmd, plan) = worker_command(exe, mode)?;
    let cgroup = plan.cgroup_dir.clone();
    // SAFETY: only async-signal-safe syscalls run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Own process group: a Ctrl-C meant for the supervisor's terminal must
            // not reach scripts; the supervisor stops them itself.
            libc::setpgid(0, 0);
            super::confine::in_child(&plan)?;
            if let Some(bytes) = memory_limit {
                limit_data_segment(bytes);
            }
            prefer_as_oom_victim();
            place_fds(child_fd, lock_fd)
        });
    }
    let mut child = cmd.spawn()?;
    drop(theirs);
    ours.set_nonblocking(true)?;
    let stream = UnixStream::from_std(ours)?;
    let pid = child.id().unwrap_or(0);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    Ok(SpawnedWorker {
        child,
        pid,
        stream,
        stdout,
        stderr,
        cgroup,
    })
}

/// The binary in worker mode, with its pipes; its environment, working directory
/// and spawn-time limits come from `confine.rs`, applied in the child by the plan.
fn worker_command(exe: &Path, mode: WorkerMode) -> std::io::Result<(Command, SpawnPlan)> {
    let mut cmd = Command::new(exe);
    cmd.arg("worker");
    if matches!(mode, WorkerMode::Analyzer) {
        cmd.arg("--analyzer");
    }
    let plan = super::confine::prepare(&mut cmd)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    Ok((cmd, plan))
}

/// In the forked child: caps heap and anonymous memory at `bytes`.
pub fn limit_data_segment(bytes: u64) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit on our own process with a valid struct.
    unsafe {
        libc::setrlimit(libc::RLIMIT_DATA, &lim);
    }
}

/// In the forked child: if memory runs out all the same, the kernel should take
/// a worker, not the supervisor that keeps every other script and the API going.
pub fn prefer_as_oom_victim() {
    // SAFETY: open/write/close on a /proc file of our own process.
    unsafe {
        let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
        if fd >= 0 {
            libc::write(fd, b"500".as_ptr().cast(), 3);
            libc::close(fd);
        }
    }
}

/// In the forked child: the channel onto fd 3, the lock (if any) onto fd 4. The
/// lock goes first: if it sits on fd 3 the channel would overwrite it.
fn place_fds(channel: RawFd, lock: Option<RawFd>) -> std::io::Result<()> {
    let Some(l) = lock else {
        return move_fd(channel, CHANNEL_FD);
    };
    let lock_from = if l == CHANNEL_FD { dup(l)? } else { l };
    let channel_from = if channel == LOCK_FD {
        dup(channel)?
    } else {
        channel
    };
    move_fd(lock_from, LOCK_FD)?;
    move_fd(channel_from, CHANNEL_FD)
}

fn dup(fd: RawFd) -> std::io::Result<RawFd> {
    // SAFETY: dup(2) of an fd this process holds.
    let t = unsafe { libc::dup(fd) };
    if t < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(t)
}

/// Resident memory of a process, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
