//! Kernel confinement of a worker, put in force when `Boot` arrives and before any
//! of the script's code runs (a spare worker is started before it knows its
//! script, so nothing project-specific can happen earlier).
//!
//! - Landlock (`landlock_rules.rs`): read Python and the system libraries, the
//!   project folder and granted paths; write the scratch folder and granted paths;
//!   TCP connect/bind only to granted ports; signals and abstract sockets scoped.
//! - seccomp (`seccomp.rs`): no processes, no foreign signals or tracing, sockets
//!   only as granted, nothing that administers the machine.
//! - no_new_privs and no capabilities (`privileges.rs`).
//!
//! A shell job (a Bash job) is not a worker: `shell.rs` prepares the same walls,
//! cut for a process that starts programs, for the supervisor to put in force
//! in the job's process before it execs the shell.
//!
//! What the kernel cannot provide is reported, never hidden: the report goes back
//! to the supervisor with the boot outcome, and with `required` the script is not
//! run at all.

mod bpf;
mod landlock_rules;
mod privileges;
mod seccomp;
pub mod shell;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pyo3::prelude::*;
use vwed_ipc::{BootOutcome, NetworkGrant, SandboxPolicy, SandboxReport};

use landlock_rules::Paths;

/// Environment variable by which the supervisor tells a worker that kernel
/// confinement is turned off (`sandbox.enabled = false`).
pub const OFF_ENV: &str = "VWED_SANDBOX_OFF";

/// Shared libraries, time zones, the CPU count and randomness: what CPython and its C extensions
/// read at run time besides their own search path. Nothing here is secret.
const SYSTEM_READ: &[&str] = &[
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/usr/share/zoneinfo",
    // How many CPUs there are (os.cpu_count, thread pools of C libraries).
    "/sys/devices/system/cpu",
    "/dev/urandom",
    "/dev/random",
];

/// Name resolution and TLS trust, for a project granted network access.
const NETWORK_READ: &[&str] = &[
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/host.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/ssl",
];

const DEVICES: &[&str] = &["/dev/null"];

/// Landlock ABI that limits truncation (3) and TCP ports (4).
const ABI_FILES: i32 = 3;
const ABI_TCP: i32 = 4;
/// Landlock ABI that scopes signals and abstract sockets (seccomp already covers
/// both; the scope is a second wall).
const ABI_SCOPES: i32 = 6;

static REPORT: Mutex<Option<SandboxReport>> = Mutex::new(None);
static SCRATCH: Mutex<Option<String>> = Mutex::new(None);

/// What the running kernel offers, for the supervisor's start-up report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSupport {
    /// Landlock ABI version, 0 without Landlock.
    pub landlock_abi: i32,
    pub seccomp: bool,
}

impl KernelSupport {
    pub fn probe() -> KernelSupport {
        KernelSupport {
            landlock_abi: landlock_rules::kernel_abi(),
            seccomp: seccomp::available(),
        }
    }

    /// The parts of the confinement this kernel cannot give a worker whose project
    /// is granted `net`, each with the reason.
    pub fn missing(&self, net: &NetworkGrant) -> Vec<String> {
        let mut out = Vec::new();
        if self.landlock_abi < ABI_FILES {
            out.push(format!(
                "filesystem: Landlock ABI {} (need {ABI_FILES}, Linux 6.2)",
                self.landlock_abi
            ));
        }
        if self.landlock_abi < ABI_TCP && !(net.connect_tcp.is_empty() && net.bind_tcp.is_empty()) {
            out.push(format!(
                "network: Landlock ABI {} cannot limit TCP ports (need {ABI_TCP}, Linux 6.7)",
                self.landlock_abi
            ));
        }
        if !self.seccomp {
            out.push("processes, signals, sockets: the kernel has no seccomp filters".into());
        }
        out
    }

    pub fn filesystem(&self) -> String {
        if self.landlock_abi > 0 {
            format!("landlock v{}", self.landlock_abi)
        } else {
            "none".into()
        }
    }
}

/// Confines this worker for the script in `policy`. Returns the outcome to report
/// instead of running the script when the policy requires a confinement that is
/// not complete.
pub fn enter(py: Python<'_>, policy: &SandboxPolicy) -> Option<BootOutcome> {
    let mut report = if policy.enabled {
        confine(py, policy)
    } else {
        off()
    };
    if !policy.scratch_dir.is_empty()
        && let Err(e) = make_home(py, &policy.scratch_dir)
    {
        report
            .missing
            .push(format!("scratch folder {}: {e}", policy.scratch_dir));
    }
    let refused = (policy.required && !report.missing.is_empty()).then(|| BootOutcome::Failed {
        message: format!(
            "脚本沙箱不完整, 按配置 (sandbox.required) 拒绝运行: {}",
            report.missing.join("; ")
        ),
        traceback: String::new(),
    });
    *REPORT.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
    refused
}

/// The analyzer parses sources and runs none: it gets Python and nothing else.
pub fn enter_analyzer(py: Python<'_>) {
    let policy = SandboxPolicy {
        enabled: std::env::var_os(OFF_ENV).is_none(),
        ..SandboxPolicy::default()
    };
    let _ = enter(py, &policy);
}

/// What [`enter`] put in force (empty before it ran).
pub fn report() -> SandboxReport {
    REPORT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default()
}

/// `VWED.util.scratch_dir()`: the one folder this script may write.
#[pyfunction]
pub fn scratch_dir() -> Option<String> {
    SCRATCH.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The scratch folder becomes the working directory, `HOME` and `TMPDIR`, so that
/// relative paths and `tempfile` land where writing is allowed.
fn make_home(py: Python<'_>, dir: &str) -> PyResult<()> {
    let os = py.import("os")?;
    os.call_method1("chdir", (dir,))?;
    let environ = os.getattr("environ")?;
    environ.set_item("HOME", dir)?;
    environ.set_item("TMPDIR", dir)?;
    *SCRATCH.lock().unwrap_or_else(|p| p.into_inner()) = Some(dir.to_string());
    Ok(())
}

/// The report of a process the sandbox was turned off for.
pub fn off() -> SandboxReport {
    SandboxReport {
        filesystem: "off".into(),
        network: "off".into(),
        processes: "off".into(),
        signals: "off".into(),
        privileges: "off".into(),
        missing: vec!["sandbox turned off (sandbox.enabled = false)".into()],
    }
}

fn confine(py: Python<'_>, policy: &SandboxPolicy) -> SandboxReport {
    let kernel = KernelSupport::probe();
    let mut missing = kernel.missing(&policy.network);
    let threads = privileges::thread_count();
    if threads > 1 {
        missing.push(format!(
            "the worker already runs {threads} threads: file rules and dropped capabilities cover only one"
        ));
    }
    let privileges = match privileges::no_new_privs().and_then(|()| privileges::drop_capabilities())
    {
        Ok(()) => "no_new_privs, no capabilities".to_string(),
        Err(e) => {
            missing.push(format!("privileges: {e}"));
            format!("incomplete: {e}")
        }
    };
    let paths = paths(py, policy);
    let landlock = match landlock_rules::restrict(&paths, &policy.network) {
        Ok(o) => Some(o),
        Err(e) => {
            missing.push(format!("filesystem: {e}"));
            None
        }
    };
    let worker = seccomp::Profile::Worker {
        pid: std::process::id(),
    };
    let filter = seccomp::filter(worker, &policy.network)
        .map_err(|e| e.to_string())
        .and_then(|p| seccomp::install(&p).map_err(|e| e.to_string()));
    if let Err(e) = &filter {
        missing.push(format!("seccomp: {e}"));
    }
    missing.dedup();
    describe(
        &kernel,
        landlock.as_ref(),
        filter.is_ok(),
        privileges,
        missing,
    )
}

fn describe(
    kernel: &KernelSupport,
    landlock: Option<&landlock_rules::Outcome>,
    seccomp: bool,
    privileges: String,
    missing: Vec<String>,
) -> SandboxReport {
    let abi = landlock.map_or(0, |o| o.abi);
    let tcp = landlock.is_some_and(|o| o.tcp && o.abi >= ABI_TCP);
    let scoped = landlock.is_some_and(|o| o.scoped && o.abi >= ABI_SCOPES);
    let with = |base: &str, extra: bool| match (seccomp, extra) {
        (true, true) => format!("{base}+landlock"),
        (true, false) => base.to_string(),
        (false, true) => "landlock".to_string(),
        (false, false) => "none".to_string(),
    };
    SandboxReport {
        filesystem: if abi > 0 {
            kernel.filesystem()
        } else {
            "none".into()
        },
        network: with("seccomp", tcp),
        processes: with("seccomp", false),
        signals: with("seccomp", scoped),
        privileges,
        missing,
    }
}

/// Every path the worker may open, by kind of access.
fn paths(py: Python<'_>, policy: &SandboxPolicy) -> Paths {
    let protect: Vec<PathBuf> = policy.protect.iter().map(PathBuf::from).collect();
    let allowed = |p: &PathBuf| !protect.iter().any(|x| x.starts_with(p));
    let mut read: Vec<PathBuf> = python_paths(py);
    read.extend(SYSTEM_READ.iter().map(PathBuf::from));
    if policy.network.tcp() || policy.network.udp {
        read.extend(NETWORK_READ.iter().map(PathBuf::from));
    }
    read.extend(policy.read.iter().map(PathBuf::from));
    let mut write: Vec<PathBuf> = Vec::new();
    if !policy.scratch_dir.is_empty() {
        write.push(PathBuf::from(&policy.scratch_dir));
    }
    write.extend(policy.write.iter().map(PathBuf::from));
    Paths {
        read: read.into_iter().filter(allowed).collect(),
        write: write.into_iter().filter(allowed).collect(),
        devices: DEVICES.iter().map(PathBuf::from).collect(),
        ..Paths::default()
    }
}

/// Python's search path (standard library, lib-dynload, site-packages, a bundle's
/// zip), as real absolute paths.
fn python_paths(py: Python<'_>) -> Vec<PathBuf> {
    let Ok(entries) = py.import("sys").and_then(|s| s.getattr("path")) else {
        return Vec::new();
    };
    let Ok(iter) = entries.try_iter() else {
        return Vec::new();
    };
    iter.filter_map(|e| e.ok()?.extract::<String>().ok())
        .filter(|s| Path::new(s).is_absolute())
        .filter_map(|s| std::fs::canonicalize(s).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_an_older_kernel_lacks_is_named() {
        let full = KernelSupport {
            landlock_abi: 7,
            seccomp: true,
        };
        let ports = NetworkGrant {
            connect_tcp: vec![502],
            ..NetworkGrant::default()
        };
        assert!(full.missing(&ports).is_empty());
        let no_tcp_rules = KernelSupport {
            landlock_abi: 3,
            ..full
        };
        assert!(no_tcp_rules.missing(&NetworkGrant::default()).is_empty());
        let m = no_tcp_rules.missing(&ports);
        assert!(m.len() == 1 && m[0].starts_with("network:"), "{m:?}");
        let bare = KernelSupport {
            landlock_abi: 0,
            seccomp: false,
        };
        let m = bare.missing(&NetworkGrant::default());
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(bare.filesystem(), "none");
        assert_eq!(full.filesystem(), "landlock v7");
    }
}
