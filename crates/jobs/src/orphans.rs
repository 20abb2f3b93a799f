//! After a crash of the runtime its job workers die with it (parent-death signal),
//! but what a job started in the background may live on. Each job's processes
//! carry `VWED_EXECUTION_ID` in their environment; at the next start, processes
//! of executions that were running are found by it and killed, so that a retry
//! never runs beside its interrupted first attempt. The same happens when a Bash
//! attempt ends, for processes that left the job's process group (`setsid`).

/// Kills every process whose environment names one of `ids`.
pub fn sweep<'a>(ids: impl Iterator<Item = &'a str>) {
    let wanted: Vec<Vec<u8>> = ids
        .map(|id| format!("VWED_EXECUTION_ID={id}").into_bytes())
        .collect();
    if wanted.is_empty() {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    let me = std::process::id();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Another user's processes are unreadable here: they are not ours.
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| wanted.iter().any(|w| var == w.as_slice()))
        {
            tracing::warn!("killing process {pid} left behind by a job execution");
            if let Ok(p) = libc::pid_t::try_from(pid) {
                // SAFETY: kill(2) of a process that carries our job's marker.
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                }
            }
        }
    }
}
