//! One runtime per data dir. The lock is also inherited by every worker, so it is
//! only free again once the previous runtime *and all its workers* are gone: a
//! restarted runtime never runs a script while an old copy still drives its I/O.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const WAIT_FOR_OLD_WORKERS: Duration = Duration::from_secs(10);

pub async fn acquire(data_dir: &Path) -> anyhow::Result<OwnedFd> {
    let path = data_dir.join("vwed-edge.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    let fd = OwnedFd::from(file);
    let start = Instant::now();
    let mut warned = false;
    loop {
        // SAFETY: flock on an fd we own.
        let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(fd);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(err).with_context(|| format!("cannot lock {}", path.display()));
        }
        if start.elapsed() > WAIT_FOR_OLD_WORKERS {
            bail!(
                "data dir {} is in use by another vwed-edge (or workers of one that is still exiting)",
                data_dir.display()
            );
        }
        if !warned {
            tracing::warn!("data dir is locked; waiting for a previous runtime's workers to exit");
            warned = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
