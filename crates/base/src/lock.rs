//! One runtime per data dir. The lock is also inherited by every worker, so it is
//! only free again once the previous runtime *and all its workers* are gone: a
//! restarted runtime never runs a script while an old copy still drives its I/O.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WAIT_FOR_OLD_WORKERS: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open lock file {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "data dir {0} is in use by another vwed-edge (or workers of one that is still exiting)"
    )]
    InUse(PathBuf),
}

pub async fn acquire(data_dir: &Path) -> Result<OwnedFd, LockError> {
    let path = data_dir.join("vwed-edge.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LockError::Open {
            path: path.clone(),
            source,
        })?;
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
            return Err(LockError::Lock { path, source: err });
        }
        if start.elapsed() > WAIT_FOR_OLD_WORKERS {
            return Err(LockError::InUse(data_dir.to_path_buf()));
        }
        if !warned {
            tracing::warn!("data dir is locked; waiting for a previous runtime's workers to exit");
            warned = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
