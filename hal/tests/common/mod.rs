//! Shared helpers for integration tests that talk to real peers.
//!
//! Missing peer tools make tests fail loudly: CI installs them (see
//! .ci/apt-packages.txt and tests/requirements.txt) and a silently skipped
//! hardware test would hide exactly the regressions these tests exist for.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("peers")
}

fn python() -> String {
    std::env::var("VWED_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Panics with install instructions unless python3 can import pymodbus
/// and pyserial.
pub fn require_python_peers() {
    let out = std::process::Command::new(python())
        .args(["-c", "import pymodbus, serial"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "peer tool missing: `{} -c 'import pymodbus, serial'` failed ({}). \
             Install with `pip install -r tests/requirements.txt`.",
            python(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "peer tool missing: cannot run {} ({e}). Install python3 and \
             `pip install -r tests/requirements.txt`.",
            python()
        ),
    }
}

pub fn require_socat() {
    match std::process::Command::new("socat").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "peer tool missing: socat not found. Install with `apt-get install socat` \
             (listed in .ci/apt-packages.txt)."
        ),
    }
}

/// A child process killed when dropped, so a failing test leaves nothing
/// running.
pub struct Peer {
    child: Child,
    name: String,
}

impl Peer {
    /// Starts a Python peer script and waits for it to print READY.
    pub async fn python(script: &str, args: &[&str]) -> Peer {
        require_python_peers();
        let path = peers_dir().join(script);
        let mut child = Command::new(python())
            .arg("-u")
            .arg(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(15), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.trim() == "READY" {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            matches!(ready, Ok(true)),
            "peer {script} {args:?} did not become ready"
        );
        // Keep draining stdout so the peer never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Peer {
            child,
            name: script.to_owned(),
        }
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Err(e) = self.child.start_kill() {
            // Already exited is fine; anything else is worth a note.
            if e.kind() != std::io::ErrorKind::InvalidInput {
                eprintln!("could not kill peer {}: {e}", self.name);
            }
        }
    }
}

/// A pair of connected pseudo terminals made by socat, standing in for the
/// two ends of a serial cable.
pub struct PtyPair {
    pub ours: String,
    pub theirs: String,
    _dir: TempDir,
    _socat: Child,
}

impl PtyPair {
    pub async fn new() -> PtyPair {
        require_socat();
        let dir = TempDir::new("pty");
        let ours = dir.path.join("ours");
        let theirs = dir.path.join("theirs");
        let socat = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", ours.display()))
            .arg(format!("pty,raw,echo=0,link={}", theirs.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start socat: {e}"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !(ours.exists() && theirs.exists()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "socat did not create the pty pair"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        PtyPair {
            ours: ours.display().to_string(),
            theirs: theirs.display().to_string(),
            _dir: dir,
            _socat: socat,
        }
    }
}

/// A private directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "vwed-hal-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("local addr").port()
}

/// Polls `check` every 20 ms until it returns true or `limit` passes.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Bounds a whole test so a hang fails instead of stalling CI.
pub async fn bounded<F: std::future::Future<Output = ()>>(limit: Duration, test: F) {
    if tokio::time::timeout(limit, test).await.is_err() {
        panic!("test did not finish within {limit:?}");
    }
}
