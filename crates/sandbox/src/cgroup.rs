//! CPU, memory and task limits per worker through a delegated cgroup v2 (systemd
//! `Delegate=yes`). The supervisor moves itself into `<own>/supervisor`, enables
//! the controllers below its own cgroup, and puts every worker into a leaf
//! `<own>/workers/w<n>` with `cpu.max`, `memory.max` and `pids.max`; `workers`
//! also gets a low `cpu.weight`, so that scripts share what the supervisor leaves.
//! Without delegation nothing here is used and workers only run at a lower priority.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Controllers used; `cpu` and `memory` are required, `pids` when there.
const WANTED: [&str; 3] = ["cpu", "memory", "pids"];
/// Relative CPU weight of all workers together against the supervisor's 100.
const WORKERS_WEIGHT: &str = "20";
/// `cpu.max` period, in µs.
const PERIOD_US: u64 = 100_000;

pub struct Cgroup {
    workers: PathBuf,
    limits: Limits,
    pids: bool,
    next: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Percent of one core; 0 = no quota.
    pub cpu_percent: u32,
    pub memory_bytes: Option<u64>,
    /// 0 = no limit.
    pub max_tasks: u32,
}

/// Why workers get no cgroup leaf of their own (they then only run at a lower
/// priority); logged once at start.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// `/proc/self/cgroup` or `/proc/self/mountinfo` could not be read.
    #[error(transparent)]
    Proc(io::Error),
    #[error("no cgroup v2 membership")]
    NotMember,
    #[error("the runtime runs in the root cgroup (no Delegate=yes)")]
    RootCgroup,
    #[error("cgroup v2 is not mounted")]
    NotMounted,
    #[error("{}: {source}", dir.display())]
    Controllers {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} has no {controller} controller", dir.display())]
    NoController {
        dir: PathBuf,
        controller: &'static str,
    },
    /// Taking over the delegated cgroup failed.
    #[error(transparent)]
    Setup(io::Error),
    /// The process never set one up (unit tests, tools).
    #[error("not set up")]
    NotSetUp,
}

/// The runtime's own cgroup directory, if it is one it may manage; else why not.
pub fn detect() -> Result<PathBuf, CgroupError> {
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(CgroupError::Proc)?;
    let rel = unified_path(&own).ok_or(CgroupError::NotMember)?;
    if rel == "/" {
        return Err(CgroupError::RootCgroup);
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").map_err(CgroupError::Proc)?;
    let mount = cgroup2_mount(&mounts).ok_or(CgroupError::NotMounted)?;
    let dir = mount.join(rel.trim_start_matches('/'));
    let controllers = match std::fs::read_to_string(dir.join("cgroup.controllers")) {
        Ok(c) => c,
        Err(source) => return Err(CgroupError::Controllers { dir, source }),
    };
    for controller in &WANTED[..2] {
        if !controllers.split_whitespace().any(|x| x == *controller) {
            return Err(CgroupError::NoController { dir, controller });
        }
    }
    Ok(dir)
}

/// `0::<path>` of /proc/self/cgroup.
fn unified_path(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

/// Mount point of the cgroup2 file system in /proc/self/mountinfo.
fn cgroup2_mount(text: &str) -> Option<PathBuf> {
    text.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

impl Cgroup {
    /// Takes over `dir` (see the module comment). Every process already in `dir`
    /// moves to `supervisor`: a cgroup with processes cannot delegate controllers.
    pub fn setup(dir: &Path, limits: Limits) -> io::Result<Cgroup> {
        let supervisor = dir.join("supervisor");
        std::fs::create_dir_all(&supervisor)?;
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.split_whitespace() {
            // A process that exited meanwhile cannot move; that is fine.
            let _ = write(&supervisor.join("cgroup.procs"), pid);
        }
        write(
            &supervisor.join("cgroup.procs"),
            &std::process::id().to_string(),
        )?;
        let available = std::fs::read_to_string(dir.join("cgroup.controllers"))?;
        let pids = available.split_whitespace().any(|c| c == "pids");
        let enable: Vec<String> = WANTED
            .iter()
            .filter(|c| available.split_whitespace().any(|a| a == **c))
            .map(|c| format!("+{c}"))
            .collect();
        write(&dir.join("cgroup.subtree_control"), &enable.join(" "))?;
        let workers = dir.join("workers");
        std::fs::create_dir_all(&workers)?;
        write(&workers.join("cgroup.subtree_control"), &enable.join(" "))?;
        write(&workers.join("cpu.weight"), WORKERS_WEIGHT)?;
        Ok(Cgroup {
            workers,
            limits,
            pids,
            next: AtomicU64::new(1),
        })
    }

    /// A fresh leaf for one worker, its limits set; returns its `cgroup.procs`,
    /// which the worker writes itself into before it runs anything.
    pub fn leaf(&self) -> io::Result<PathBuf> {
        self.sweep();
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self.workers.join(format!("w{n}"));
        std::fs::create_dir_all(&dir)?;
        if self.limits.cpu_percent > 0 {
            let quota = PERIOD_US * u64::from(self.limits.cpu_percent) / 100;
            write(&dir.join("cpu.max"), &format!("{quota} {PERIOD_US}"))?;
        }
        if let Some(bytes) = self.limits.memory_bytes {
            write(&dir.join("memory.max"), &bytes.to_string())?;
            // Swap would only make a runaway slower to stop.
            let _ = write(&dir.join("memory.swap.max"), "0");
        }
        if self.pids && self.limits.max_tasks > 0 {
            write(&dir.join("pids.max"), &self.limits.max_tasks.to_string())?;
        }
        Ok(dir.join("cgroup.procs"))
    }

    /// Removes the leaves of workers that have exited: removing a cgroup that still
    /// has processes fails, so only empty ones go.
    fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.workers) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }

    /// The tasks of each leaf are bounded (`pids.max`), and by how many.
    pub fn max_tasks(&self) -> Option<u32> {
        (self.pids && self.limits.max_tasks > 0).then_some(self.limits.max_tasks)
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.limits.cpu_percent > 0 {
            parts.push(format!("cpu.max {}%", self.limits.cpu_percent));
        }
        if let Some(b) = self.limits.memory_bytes {
            parts.push(format!("memory.max {} MiB", b / (1024 * 1024)));
        }
        if self.pids && self.limits.max_tasks > 0 {
            parts.push(format!("pids.max {}", self.limits.max_tasks));
        }
        format!("cgroup ({})", parts.join(", "))
    }
}

/// How often the kernel's OOM killer ended a process in the cgroup `dir`
/// (`oom_kill` of its `memory.events`); 0 when unknown.
pub fn oom_kills(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("memory.events"))
        .map(|t| oom_kill_count(&t))
        .unwrap_or(0)
}

fn oom_kill_count(events: &str) -> u64 {
    events
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kills_are_read_from_memory_events() {
        let events = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(oom_kill_count(events), 1);
        assert_eq!(oom_kill_count("low 0\nmax 0\n"), 0);
        assert_eq!(oom_kills(Path::new("/nonexistent")), 0);
    }

    #[test]
    fn the_unified_hierarchy_and_its_mount_are_found() {
        let own = "12:pids:/x\n1:name=systemd:/system.slice/vwed.service\n0::/system.slice/vwed.service\n";
        assert_eq!(unified_path(own), Some("/system.slice/vwed.service"));
        assert_eq!(unified_path("1:cpu:/\n"), None);
        let mounts = "22 1 0:21 / /proc rw - proc proc rw\n\
                      35 25 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(mounts), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(cgroup2_mount("22 1 0:21 / /proc rw - proc proc rw\n"), None);
    }

    #[test]
    fn leaves_get_their_limits_and_empty_ones_are_swept() {
        let root = std::env::temp_dir().join(format!("vwed-cg-{}", std::process::id()));
        let workers = root.join("workers");
        std::fs::create_dir_all(workers.join("w0")).expect("dir");
        let cg = Cgroup {
            workers: workers.clone(),
            limits: Limits {
                cpu_percent: 50,
                memory_bytes: Some(256 << 20),
                max_tasks: 32,
            },
            pids: true,
            next: AtomicU64::new(1),
        };
        let procs = cg.leaf().expect("leaf");
        assert_eq!(procs, workers.join("w1/cgroup.procs"));
        assert!(!workers.join("w0").exists(), "the empty leaf is swept");
        let read = |f: &str| std::fs::read_to_string(workers.join("w1").join(f)).expect(f);
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("memory.max"), (256u64 << 20).to_string());
        assert_eq!(read("pids.max"), "32");
        assert!(cg.describe().contains("cpu.max 50%"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
