//! A pty pair made by socat, for serial peers: the runtime opens one end, a peer
//! script the other. socat is killed on drop (also while a failed test unwinds).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{TempDir, wait_until};

pub struct PtyPair {
    socat: Child,
    /// The runtime's end, resolved to the real device path: device configs want
    /// a port name or an absolute /dev path, not a symlink in a temp dir.
    pub ours: String,
    /// The peer's end.
    pub theirs: PathBuf,
    _dir: TempDir,
}

impl PtyPair {
    pub fn start(tag: &str) -> PtyPair {
        let dir = TempDir::new(tag);
        let ours = dir.path().join("ours");
        let theirs = dir.path().join("theirs");
        let socat = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", ours.display()))
            .arg(format!("pty,raw,echo=0,link={}", theirs.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start socat (apt-get install socat): {e}"));
        let mut pair = PtyPair {
            socat,
            ours: String::new(),
            theirs: theirs.clone(),
            _dir: dir,
        };
        wait_until(
            Duration::from_secs(10),
            "socat created the pty pair",
            || ours.exists() && theirs.exists(),
        );
        pair.ours = std::fs::canonicalize(&ours)
            .expect("pty path")
            .display()
            .to_string();
        pair
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}
