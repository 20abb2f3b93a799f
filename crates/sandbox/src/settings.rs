//! `[sandbox]` settings: confinement and limits of script workers, and what each
//! project is granted beyond its own folders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vwed_ipc::NetworkGrant;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSettings {
    /// Kernel confinement (Landlock, seccomp, no privileges) of every script worker.
    /// Turn off only to measure what it costs.
    pub enabled: bool,
    /// Refuse to start a script whose confinement is not complete (a kernel without
    /// Landlock or seccomp) instead of running it less confined.
    pub required: bool,
    /// Files and sockets one worker may hold open (RLIMIT_NOFILE; 0 = inherit).
    pub open_files: u64,
    /// Largest file one worker may write, in MiB (RLIMIT_FSIZE; 0 = no limit).
    pub file_size_mb: u64,
    /// Nice value of workers (0..19): a busy script yields the CPU to the supervisor
    /// and so never slows the API.
    pub nice: u8,
    /// A worker that uses more than this share of one core (over a quarter of a
    /// second, in stretches of 5 ms or more per call it answers) runs at idle
    /// priority until it has been calm for 5 s: it then only gets CPU time that
    /// nothing else wants, so a runaway script cannot delay the API or another
    /// script's routes (0 = never).
    pub idle_above_percent: u32,
    /// With a delegated cgroup v2 (systemd `Delegate=yes`): CPU of one worker, in
    /// percent of one core (cpu.max; 0 = no quota). Memory is `worker_memory_mb`.
    pub cpu_percent: u32,
    /// Tasks (threads) of one worker, and processes and threads of one Bash job
    /// (with a delegated cgroup v2: pids.max; a Bash job without one:
    /// RLIMIT_NPROC; 0 = no limit).
    pub max_threads: u32,
    /// The user Bash jobs run as when the runtime runs as root (a name, or
    /// `uid[:gid]`): RLIMIT_NPROC does not bind root, and file permissions are a
    /// second wall. Empty: they run as root without capabilities.
    pub job_user: String,
    /// Per project (by name): paths it may also read or write, and network access:
    /// `"tcp:502"` (connect to port 502 on any host), `"tcp:*"`, `"listen:8080"`,
    /// `"udp"` (any UDP; the kernel cannot limit UDP ports).
    pub projects: BTreeMap<String, ProjectGrant>,
    /// The configuration file, which no grant may expose (set when loading).
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

/// Why `[sandbox]` settings are refused; the text names the setting.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("sandbox.required needs sandbox.enabled")]
    RequiredOff,
    #[error("sandbox.nice must be 0..19, not {0}")]
    Nice(u8),
    #[error("sandbox.projects.{project}: path {} must be absolute", path.display())]
    Relative { project: String, path: PathBuf },
    #[error(
        "sandbox.projects.{project}: path {} would expose {}",
        path.display(),
        protected.display()
    )]
    Exposes {
        project: String,
        path: PathBuf,
        protected: PathBuf,
    },
    #[error("sandbox.projects.{project}.network: {source}")]
    Network {
        project: String,
        #[source]
        source: NetworkError,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectGrant {
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub network: Vec<String>,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        SandboxSettings {
            enabled: true,
            required: false,
            open_files: 256,
            file_size_mb: 64,
            nice: 10,
            idle_above_percent: 25,
            cpu_percent: 100,
            max_threads: 64,
            job_user: "nobody".into(),
            projects: BTreeMap::new(),
            config_file: None,
        }
    }
}

impl SandboxSettings {
    /// Checks every grant; `data_dir` and the config file must stay out of reach.
    pub fn validate(&self, data_dir: &Path) -> Result<(), SettingsError> {
        if self.required && !self.enabled {
            return Err(SettingsError::RequiredOff);
        }
        if self.nice > 19 {
            return Err(SettingsError::Nice(self.nice));
        }
        let mut protected = vec![absolute(data_dir)];
        protected.extend(self.config_file.as_deref().map(absolute));
        for (name, grant) in &self.projects {
            let project = || name.clone();
            for p in grant.read.iter().chain(&grant.write) {
                if !p.is_absolute() {
                    return Err(SettingsError::Relative {
                        project: project(),
                        path: p.clone(),
                    });
                }
                if let Some(x) = protected.iter().find(|x| x.starts_with(absolute(p))) {
                    return Err(SettingsError::Exposes {
                        project: project(),
                        path: p.clone(),
                        protected: x.clone(),
                    });
                }
            }
            parse_network(&grant.network).map_err(|source| SettingsError::Network {
                project: project(),
                source,
            })?;
        }
        Ok(())
    }

    /// What `project` may reach on the network (validated at load).
    pub fn network(&self, project: &str) -> NetworkGrant {
        self.projects
            .get(project)
            .and_then(|g| parse_network(&g.network).ok())
            .unwrap_or_default()
    }

    pub fn file_size_bytes(&self) -> Option<u64> {
        (self.file_size_mb > 0).then(|| self.file_size_mb.saturating_mul(1024 * 1024))
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// A network grant that is not one of `tcp:<port>`, `tcp:*`, `listen:<port>`, `udp`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("{0:?}: not a port number")]
    Port(String),
    #[error(
        "{0:?}: expected tcp:<port>, tcp:*, listen:<port> or udp (the kernel \
         sees ports, not host names; VWED.http has http_allow_hosts for hosts)"
    )]
    Form(String),
}

/// `tcp:<port>`, `tcp:*`, `listen:<port>`, `udp`.
pub fn parse_network(entries: &[String]) -> Result<NetworkGrant, NetworkError> {
    let mut g = NetworkGrant::default();
    for e in entries {
        let port = |s: &str| {
            s.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| NetworkError::Port(e.clone()))
        };
        match e.trim().split_once(':') {
            None if e.trim() == "udp" => g.udp = true,
            Some(("tcp", "*")) => g.any_tcp = true,
            Some(("tcp", p)) => g.connect_tcp.push(port(p)?),
            Some(("listen", p)) => g.bind_tcp.push(port(p)?),
            _ => return Err(NetworkError::Form(e.clone())),
        }
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_grants_parse_ports_and_refuse_hosts() {
        let g =
            parse_network(&["tcp:502".into(), "listen:8080".into(), "udp".into()]).expect("valid");
        assert_eq!(g.connect_tcp, vec![502]);
        assert_eq!(g.bind_tcp, vec![8080]);
        assert!(g.udp && !g.any_tcp);
        assert!(parse_network(&["tcp:*".into()]).expect("any").any_tcp);
        for bad in ["plc.local:502", "tcp:0", "tcp:70000", "http"] {
            assert!(parse_network(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_grant_that_would_expose_the_data_dir_is_refused() {
        let mut s = SandboxSettings::default();
        let grant = ProjectGrant {
            read: vec![PathBuf::from("/srv")],
            ..ProjectGrant::default()
        };
        s.projects.insert("line1".into(), grant);
        let e = s
            .validate(Path::new("/srv/vwed/data"))
            .expect_err("refused");
        assert_eq!(
            e.to_string(),
            "sandbox.projects.line1: path /srv would expose /srv/vwed/data"
        );
        assert!(s.validate(Path::new("/var/lib/vwed")).is_ok());
        s.projects.get_mut("line1").expect("grant").read = vec![PathBuf::from("rel")];
        assert!(matches!(
            s.validate(Path::new("/var/lib/vwed")),
            Err(SettingsError::Relative { .. })
        ));
    }

    #[test]
    fn a_bad_grant_is_named_with_its_project() {
        let mut s = SandboxSettings::default();
        let grant = ProjectGrant {
            network: vec!["plc.local:502".into()],
            ..ProjectGrant::default()
        };
        s.projects.insert("line1".into(), grant);
        let e = s.validate(Path::new("/var/lib/vwed")).expect_err("refused");
        assert!(
            e.to_string().starts_with(
                "sandbox.projects.line1.network: \"plc.local:502\": expected tcp:<port>"
            ),
            "{e}"
        );
        assert_eq!(
            parse_network(&["tcp:0".into()]),
            Err(NetworkError::Port("tcp:0".into()))
        );
    }
}
