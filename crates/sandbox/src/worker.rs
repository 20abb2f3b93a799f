//! A script worker's confinement, put in force by the worker on itself when
//! `Boot` arrives and before any of the script's code runs (a spare worker is
//! started before it knows its script, so nothing project-specific can happen
//! earlier). The Python host calls [`confine`] with the interpreter's search
//! path, the one fact only Python knows.
//!
//! - Landlock (`landlock_rules.rs`): read Python and the system libraries, the
//!   project folder and granted paths; write the scratch folder and granted paths;
//!   TCP connect/bind only to granted ports; signals and abstract sockets scoped.
//! - seccomp (`seccomp.rs`): no processes, no foreign signals or tracing, sockets
//!   only as granted, nothing that administers the machine.
//! - no_new_privs and no capabilities (`privileges.rs`).
//!
//! What the kernel cannot provide is reported, never hidden: the report goes back
//! to the supervisor with the boot outcome, and with `required` the script is not
//! run at all.

use std::path::PathBuf;

use vwed_ipc::{SandboxPolicy, SandboxReport};

use crate::kernel::{ABI_SCOPES, ABI_TCP, KernelSupport};
use crate::landlock_rules::{self, Paths};
use crate::{privileges, seccomp};

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
pub(crate) const NETWORK_READ: &[&str] = &[
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

/// Confines the calling (still single-threaded) worker as `policy` says; `python`
/// is the interpreter's search path as real absolute paths, read as well.
/// Returns what holds and what is missing.
pub fn confine(policy: &SandboxPolicy, python: Vec<PathBuf>) -> SandboxReport {
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
    let paths = paths(policy, python);
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
fn paths(policy: &SandboxPolicy, python: Vec<PathBuf>) -> Paths {
    let protect: Vec<PathBuf> = policy.protect.iter().map(PathBuf::from).collect();
    let allowed = |p: &PathBuf| !protect.iter().any(|x| x.starts_with(p));
    let mut read = python;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rule_covers_a_protected_path() {
        let policy = SandboxPolicy {
            scratch_dir: "/data/scratch/p".into(),
            read: vec!["/data/projects/p".into(), "/".into()],
            write: vec!["/srv/out".into()],
            protect: vec!["/data".into()],
            ..SandboxPolicy::default()
        };
        let p = paths(&policy, vec![PathBuf::from("/usr/lib/python3")]);
        assert!(p.read.contains(&PathBuf::from("/usr/lib/python3")));
        assert!(p.read.contains(&PathBuf::from("/data/projects/p")));
        assert!(!p.read.contains(&PathBuf::from("/")), "/ contains /data");
        assert_eq!(
            p.write,
            vec![PathBuf::from("/data/scratch/p"), PathBuf::from("/srv/out")]
        );
        assert!(
            !p.read.iter().any(|r| r.starts_with("/etc/ssl")),
            "no network, no TLS trust"
        );
    }
}
