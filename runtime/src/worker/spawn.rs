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
    let mut cmd = Command::new(exe);
    cmd.arg("worker");
    if matches!(mode, WorkerMode::Analyzer) {
        cmd.arg("--analyzer");
    }
    // Environment, working directory and spawn-time limits: see confine.rs.
    let plan = super::confine::prepare(&mut cmd)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: only async-signal-safe syscalls run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Own process group: a Ctrl-C meant for the supervisor's terminal must
            // not reach scripts; the supervisor stops them itself.
            libc::setpgid(0, 0);
            super::confine::in_child(&plan)?;
            if let Some(bytes) = memory_limit {
                let lim = libc::rlimit {
                    rlim_cur: bytes,
                    rlim_max: bytes,
                };
                libc::setrlimit(libc::RLIMIT_DATA, &lim);
            }
            // If memory runs out all the same, the kernel should take a worker, not
            // the supervisor that keeps every other script and the API going.
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
            if fd >= 0 {
                libc::write(fd, b"500".as_ptr().cast(), 3);
                libc::close(fd);
            }
            // The lock first: if it sits on fd 3 the channel would overwrite it.
            if let Some(l) = lock_fd {
                let tmp = if l == CHANNEL_FD {
                    let t = libc::dup(l);
                    if t < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    t
                } else {
                    l
                };
                let chan = if child_fd == LOCK_FD {
                    let t = libc::dup(child_fd);
                    if t < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    t
                } else {
                    child_fd
                };
                move_fd(tmp, LOCK_FD)?;
                move_fd(chan, CHANNEL_FD)?;
            } else {
                move_fd(child_fd, CHANNEL_FD)?;
            }
            Ok(())
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
    })
}

/// Resident memory of a process, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
