//! `GET /api/system/info`: what a technician asks first about a controller:
//! version, uptime, disk, database sizes, board, and the effective
//! configuration with its secrets hidden.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use warp::Filter;

use super::answers;
use super::reply::{Envelope, Resp, ok_data};
use super::route::{self, Route};
use super::with_engine;
use crate::config::Config;
use vwed_auth::Role;
use vwed_engine::Engine;

pub fn routes(s: &super::Services) -> Vec<Route> {
    let e = with_engine(&s.engine);
    let (config, started) = (s.config.clone(), s.started);
    let c = warp::any().map(move || (config.clone(), started));
    vec![route::get("/api/system/info", Role::Viewer).to(move |at| at.and(e).and(c).then(info))]
}

#[cfg(test)]
#[derive(utoipa::OpenApi)]
#[openapi(paths(info))]
pub struct Doc;

/// The shown value of a setting that holds a secret.
const HIDDEN: &str = "******";

/// Whether a setting's name says it holds a secret (not a path to one).
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    !k.ends_with("_file")
        && ["password", "secret", "token", "private_key"]
            .iter()
            .any(|s| k.contains(s))
}

/// The configuration as JSON, with every non-empty secret replaced.
pub fn masked(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let hide = is_secret(&k) && !matches!(&v, Value::String(s) if s.is_empty());
                    let v = if hide { json!(HIDDEN) } else { masked(v) };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(masked).collect()),
        other => other,
    }
}

/// Total, free and available bytes of the filesystem holding `path`.
fn disk(path: &Path) -> Value {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return Value::Null;
    };
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Value::Null;
    }
    let f = s.f_frsize as u64;
    json!({
        "path": path.display().to_string(),
        "total_bytes": s.f_blocks as u64 * f,
        "free_bytes": s.f_bfree as u64 * f,
        "available_bytes": s.f_bavail as u64 * f,
    })
}

/// The redb files in the data dir and their sizes.
fn databases(dir: &Path) -> Vec<Value> {
    let mut out: Vec<Value> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let meta = e.metadata().ok()?;
            (name.ends_with(".redb") && meta.is_file())
                .then(|| json!({"name": name, "bytes": meta.len()}))
        })
        .collect();
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    out
}

fn read_trimmed(path: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

fn board(engine: &Engine, config: &Config) -> Value {
    json!({
        "profile": engine.io.get().map(|io| io.setup.board.name.clone())
            .or_else(|| Some(config.io.board.clone()).filter(|b| !b.is_empty())),
        "model": read_trimmed("/proc/device-tree/model"),
        "hostname": read_trimmed("/proc/sys/kernel/hostname"),
        "kernel": read_trimmed("/proc/sys/kernel/osrelease"),
        "arch": std::env::consts::ARCH,
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "mem_total_bytes": read_trimmed("/proc/meminfo").and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
        }),
    })
}

/// Version, uptime, disk, database sizes, board and configuration (secrets hidden).
#[utoipa::path(
    get,
    path = "/api/system/info",
    tag = "system",
    responses((
        status = 200,
        description = "data: {version, uptime_s, pid, rss_bytes, scripts, disk, databases, board, config}",
        body = Envelope<answers::SystemInfo>
    ))
)]
async fn info(engine: Arc<Engine>, (cfg, started): (Arc<Config>, Instant)) -> Resp {
    let dir = cfg.data_dir.clone();
    let config = masked(serde_json::to_value(&*cfg).unwrap_or(Value::Null));
    let pid = std::process::id();
    let (disk, dbs) = tokio::task::spawn_blocking(move || (disk(&dir), databases(&dir)))
        .await
        .unwrap_or((Value::Null, Vec::new()));
    ok_data(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": started.elapsed().as_secs(),
        "pid": pid,
        "rss_bytes": vwed_engine::worker::rss_bytes(pid),
        "scripts": engine.instances().len(),
        "disk": disk,
        "databases": dbs,
        "board": board(&engine, &cfg),
        "config": config,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_and_paths_to_them_are_not() {
        let v = masked(json!({
            "smtp_password": "hunter2",
            "smtp_password_file": "/run/cred/smtp",
            "smtp_username": "edge",
            "empty_token": "",
            "nested": {"api_secret": "x"},
        }));
        assert_eq!(v["smtp_password"], HIDDEN);
        assert_eq!(v["smtp_password_file"], "/run/cred/smtp");
        assert_eq!(v["smtp_username"], "edge");
        assert_eq!(v["empty_token"], "");
        assert_eq!(v["nested"]["api_secret"], HIDDEN);
    }
}
