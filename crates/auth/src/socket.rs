//! The admin socket `<data-dir>/admin.sock` (mode 0600): how `vwed-edge user|token`
//! reaches a running runtime, which holds `auth.redb` open (redb allows one
//! process per file). The file permission is the credential; the peer's uid
//! is checked as well, so a socket briefly left with looser permissions by
//! `bind` opens nothing.
//!
//! Protocol: one JSON command (`admin::Command`) on one line, one answer line
//! `{"ok": true, "data": ...}` or `{"ok": false, "status": 409, "error": "..."}`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::admin::Command;
use super::{Auth, AuthError};

pub const SOCKET_FILE: &str = "admin.sock";
/// Longest command line accepted.
pub const MAX_LINE: usize = 64 * 1024;
const AT_ONCE: usize = 4;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// Runs `f` with a path to the socket that fits `sockaddr_un` (108 bytes): a
/// deep data dir is reached through a descriptor of it (`/proc/self/fd/N/`).
pub fn with_short_path<T>(
    data_dir: &Path,
    f: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    use std::os::fd::AsRawFd;
    let full = path(data_dir);
    if full.as_os_str().len() < 100 {
        return f(&full);
    }
    let dir = std::fs::File::open(data_dir)?;
    f(Path::new(&format!(
        "/proc/self/fd/{}/{SOCKET_FILE}",
        dir.as_raw_fd()
    )))
}

/// Binds the socket and serves it until the runtime exits. The caller holds
/// the data-dir lock, so a socket file left there is a dead runtime's.
pub fn serve(auth: Arc<Auth>) -> Result<tokio::task::JoinHandle<()>, AuthError> {
    use std::os::unix::fs::PermissionsExt;
    let p = path(auth.data_dir());
    let err = |e| AuthError::Socket(p.display().to_string(), e);
    match std::fs::remove_file(&p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener =
        with_short_path(auth.data_dir(), |short| UnixListener::bind(short)).map_err(err)?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    let slots = Arc::new(Semaphore::new(AT_ONCE));
    Ok(tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("admin socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue; // dropped: the client sees the connection closed
            };
            let auth = auth.clone();
            tokio::spawn(async move {
                let _slot = slot;
                if let Err(e) = serve_one(auth, stream).await {
                    tracing::warn!("admin socket: {e}");
                }
            });
        }
    }))
}

/// Removes the socket file (at shutdown).
pub fn remove(data_dir: &Path) {
    let _ = std::fs::remove_file(path(data_dir));
}

async fn serve_one(auth: Arc<Auth>, stream: UnixStream) -> std::io::Result<()> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let peer = stream.peer_cred()?.uid();
    let (r, mut w) = stream.into_split();
    if peer != me && peer != 0 {
        let answer = failure(403, &format!("uid {peer} 无权管理此运行时"));
        return write_line(&mut w, &answer).await;
    }
    let mut line = Vec::new();
    let mut reader = BufReader::new(r).take(MAX_LINE as u64 + 1);
    let read = tokio::time::timeout(READ_TIMEOUT, reader.read_until(b'\n', &mut line)).await;
    let answer = match read {
        Err(_) => failure(408, "读取命令超时"),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(_)) if line.len() > MAX_LINE => failure(413, "命令过长"),
        Ok(Ok(_)) => match serde_json::from_slice::<Command>(&line) {
            Err(e) => failure(400, &format!("命令无效: {e}")),
            Ok(cmd) => {
                let me = auth.clone();
                let done =
                    tokio::task::spawn_blocking(move || me.run_audited(cmd, SOCKET_FILE)).await;
                match done {
                    Ok(Ok(data)) => json!({"ok": true, "data": data}),
                    Ok(Err(e)) => failure(e.status(), &e.to_string()),
                    Err(e) => failure(500, &e.to_string()),
                }
            }
        },
    };
    write_line(&mut w, &answer).await
}

fn failure(status: u16, error: &str) -> Value {
    json!({"ok": false, "status": status, "error": error})
}

async fn write_line(w: &mut tokio::net::unix::OwnedWriteHalf, v: &Value) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes.push(b'\n');
    w.write_all(&bytes).await?;
    w.shutdown().await
}
