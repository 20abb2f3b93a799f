//! Worker process entry.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::PathBuf;

use pyo3::prelude::*;

/// What the worker process is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Runs one script.
    Script,
    /// Answers syntax checks for the supervisor, which never hosts Python itself.
    Analyzer,
}

pub use vwed_ipc::SUPERVISOR_PID_ENV;

/// The data-dir lock the supervisor hands to script workers (next to the channel).
const LOCK_FD: RawFd = 4;

/// Runs the worker on the already-connected socket `fd`; returns the exit code.
pub fn run(fd: RawFd, mode: Mode) -> i32 {
    die_with_parent();
    close_on_exec(&[fd, LOCK_FD]);
    crate::channel::install(fd);
    locate_python_home();
    use crate::native::_vwed;
    pyo3::append_to_inittab!(_vwed);
    Python::initialize();
    Python::attach(|py| match start(py, mode) {
        Ok(()) => 0,
        Err(e) => {
            e.print(py);
            70
        }
    })
}

fn start(py: Python<'_>, mode: Mode) -> PyResult<()> {
    let code = CString::new(crate::RUNTIME_PY)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    let m = PyModule::from_code(py, &code, c"vwed_runtime.py", c"vwed_runtime")?;
    let entry = match mode {
        Mode::Script => "main",
        Mode::Analyzer => {
            crate::sandbox::enter_analyzer(py);
            "analyzer_main"
        }
    };
    m.getattr(entry)?.call0()?;
    Ok(())
}

/// A worker must never outlive its supervisor, even after `kill -9` of the supervisor:
/// the kernel delivers SIGKILL when the parent thread dies. The check after arming
/// closes the race where the parent died before `prctl`.
fn die_with_parent() {
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    if let Some(expected) = std::env::var(SUPERVISOR_PID_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    {
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() } != expected {
            std::process::exit(0);
        }
    }
}

/// Programs a script starts (`os.system("helper &")`, `subprocess` with
/// `close_fds=False`) must not inherit the channel or the data-dir lock: a helper
/// left running would keep the lock, and after a crash of the runtime the next one
/// could not take its data dir and restore the scripts.
fn close_on_exec(fds: &[RawFd]) {
    for &fd in fds {
        // SAFETY: fcntl on a descriptor number; a number that is not open fails
        // with EBADF and is left alone.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// A bundle ships the stdlib as `<prefix>/lib/python311.zip` next to `<prefix>/bin`;
/// point Python at it unless the operator chose a home explicitly.
fn locate_python_home() {
    if std::env::var_os("PYTHONHOME").is_some() {
        return;
    }
    let Some(prefix) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().and_then(|bin| bin.parent()).map(PathBuf::from))
    else {
        return;
    };
    if prefix.join("lib").join("python311.zip").is_file() {
        // SAFETY: still single-threaded: nothing else reads the environment yet.
        unsafe { std::env::set_var("PYTHONHOME", &prefix) };
    }
}
