//! What the running kernel offers for confinement, probed when asked: the
//! supervisor logs it once at start and checks `sandbox.required` against it, a
//! worker and a shell job name what it lacks in their reports.

use vwed_ipc::NetworkGrant;

use crate::{landlock_rules, seccomp};

/// Landlock ABI that limits truncation (3) and TCP ports (4).
pub(crate) const ABI_FILES: i32 = 3;
pub(crate) const ABI_TCP: i32 = 4;
/// Landlock ABI that scopes signals and abstract sockets (seccomp already covers
/// both; the scope is a second wall).
pub(crate) const ABI_SCOPES: i32 = 6;

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
