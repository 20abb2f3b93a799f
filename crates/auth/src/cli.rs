//! `vwed-edge user|token ...`: through the admin socket of a running runtime,
//! or, when none runs, on `auth.redb` directly while holding the data-dir lock
//! (so a runtime starting meanwhile waits instead of failing to open the store).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::admin::Command;
use super::{Auth, AuthSettings, Settings, socket};

/// How long to wait for a runtime that holds the lock but has no socket yet
/// (starting or stopping).
const WAIT_FOR_RUNTIME: Duration = Duration::from_secs(15);
/// Hashing a password takes a moment; a runtime under load more.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("数据目录 {0} 不存在 (用 --data-dir 指定)")]
    NoDataDir(String),
    #[error("无法连接管理套接字 {0}: {1} (需以运行时的用户身份执行)")]
    Connect(String, std::io::Error),
    #[error("管理套接字通信失败: {0}")]
    Io(#[from] std::io::Error),
    #[error("运行时的回答无效: {0}")]
    BadAnswer(String),
    #[error("数据目录被另一个进程锁定, 但没有可用的管理套接字; 请稍后再试")]
    Busy,
    #[error("{1}")]
    Refused(u16, String),
    #[error("{0}")]
    Auth(#[from] super::AuthError),
}

/// Which way a command went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Socket,
    Offline,
}

/// Runs `cmd` for the data dir of `cfg` and returns its answer's data.
pub fn run(cfg: &AuthSettings, dir: &Path, cmd: Command) -> Result<(Value, Route), CliError> {
    if !dir.is_dir() {
        return Err(CliError::NoDataDir(dir.display().to_string()));
    }
    let sock = socket::path(dir);
    let start = Instant::now();
    loop {
        match socket::with_short_path(dir, |short| UnixStream::connect(short)) {
            Ok(s) => return Ok((over_socket(s, &cmd)?, Route::Socket)),
            Err(e) if gone(&e) => {}
            Err(e) => return Err(CliError::Connect(sock.display().to_string(), e)),
        }
        if let Some(lock) = try_lock(dir)? {
            let out = offline(cfg, dir, cmd);
            drop(lock);
            return Ok((out?, Route::Offline));
        }
        if start.elapsed() > WAIT_FOR_RUNTIME {
            return Err(CliError::Busy);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// No runtime listens: the file is missing or left behind by a dead one.
fn gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
    )
}

fn over_socket(mut s: UnixStream, cmd: &Command) -> Result<Value, CliError> {
    s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    s.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    let mut line = serde_json::to_vec(cmd).map_err(|e| CliError::BadAnswer(e.to_string()))?;
    line.push(b'\n');
    s.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    let v: Value = serde_json::from_str(&answer)
        .map_err(|e| CliError::BadAnswer(format!("{e}: {answer:?}")))?;
    if v["ok"] == Value::Bool(true) {
        Ok(v["data"].clone())
    } else {
        let status = v["status"].as_u64().unwrap_or(500) as u16;
        let msg = v["error"].as_str().unwrap_or("未知错误").to_string();
        Err(CliError::Refused(status, msg))
    }
}

fn offline(cfg: &AuthSettings, dir: &Path, cmd: Command) -> Result<Value, CliError> {
    let store = dir.join(super::STORE_FILE);
    let created = !store.exists();
    let auth = Auth::open(dir, Settings::resolve(cfg, false))?;
    if created {
        give_to_dir_owner(&store, dir);
    }
    let out = auth
        .run_audited(cmd, "offline")
        .map_err(|e| CliError::Refused(e.status(), e.to_string()));
    auth.close();
    out
}

/// Root running the CLI for a runtime that runs as another user: the store it
/// just created must belong to that user, or the runtime cannot open it.
fn give_to_dir_owner(file: &Path, dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let Ok(meta) = std::fs::metadata(dir) else {
        return;
    };
    if let Err(e) = std::os::unix::fs::chown(file, Some(meta.uid()), Some(meta.gid())) {
        tracing::warn!(
            "cannot give {} to the data dir's owner: {e}",
            file.display()
        );
    }
}

/// The data-dir lock if it is free now (see `lock.rs`), else None.
fn try_lock(dir: &Path) -> Result<Option<OwnedFd>, CliError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("vwed-edge.lock"))?;
    let fd = OwnedFd::from(file);
    // SAFETY: flock on an fd we own.
    let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(Some(fd));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(e.into())
    }
}

/// The answer as a person reads it (`--json` prints it as it is).
pub fn render(data: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let mut out = String::new();
    match data {
        Value::Array(rows) if rows.iter().all(|r| r.get("hint").is_some()) => {
            out.push_str("ID\tNAME\tROLE\tSTATE\tEXPIRES\tLAST USED\tTOKEN\n");
            for r in rows {
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                    r["id"],
                    s(&r["name"]),
                    s(&r["role"]),
                    s(&r["state"]),
                    s(&r["expires_at"]),
                    s(&r["last_used_at"]),
                    s(&r["hint"])
                ));
            }
        }
        Value::Array(rows) => {
            out.push_str("NAME\tROLE\tSTATE\tLAST LOGIN\n");
            for r in rows {
                let state = if r["disabled"] == Value::Bool(true) {
                    "disabled"
                } else {
                    "enabled"
                };
                out.push_str(&format!(
                    "{}\t{}\t{state}\t{}\n",
                    s(&r["name"]),
                    s(&r["role"]),
                    s(&r["last_login_at"])
                ));
            }
        }
        v if v["token"].is_string() => out.push_str(&format!(
            "token #{} \"{}\" ({}) created; it is shown only this once:\n{}\n",
            v["id"],
            s(&v["name"]),
            s(&v["role"]),
            s(&v["token"])
        )),
        v if v["password"].is_string() => out.push_str(&format!(
            "user {} ({}): password (shown only this once):\n{}\n",
            s(&v["name"]),
            s(&v["role"]),
            s(&v["password"])
        )),
        v => out.push_str(&format!("ok: {v}\n")),
    }
    out
}
