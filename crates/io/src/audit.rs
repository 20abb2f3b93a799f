//! Who wrote what: every write to a device, by a script or over HTTP, goes to
//! the runtime log and, for scripts, to the writing script's own log and the
//! audit log (HTTP writes are in the audit log through their route).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use vwed_base::sync::Locked;

use serde_json::{Value, json};
use vwed_ipc::Level;

use super::IoOpError;
use vwed_auth::audit::Entry;

/// The caller of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Script(String),
    /// An HTTP client, by remote address.
    Http(String),
}

impl Who {
    /// The name of this caller's queue on each bus. Every script gets its own
    /// so the bus master serves scripts fairly; HTTP clients share one.
    pub fn queue_name(&self) -> String {
        match self {
            Who::Script(id) => id.clone(),
            Who::Http(_) => "http".to_string(),
        }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Script(id) => f.write_str(id),
            Who::Http(ip) => write!(f, "http:{ip}"),
        }
    }
}

/// Writes kept for `/api/io/writes`.
const RECENT: usize = 256;

/// The most recent writes, newest last; older ones stay in the logs.
#[derive(Default)]
pub struct Recent {
    entries: Mutex<VecDeque<Value>>,
}

impl Recent {
    fn push(&self, v: Value) {
        let mut q = self.entries.locked();
        if q.len() >= RECENT {
            q.pop_front();
        }
        q.push_back(v);
    }

    pub fn to_json(&self) -> Vec<Value> {
        let q = self.entries.locked();
        q.iter().cloned().collect()
    }
}

impl super::IoRuntime {
    /// Runs a write and records who did it, whatever the outcome. `target` is a
    /// tag, `device/bus/unit/address` for raw Modbus writes, `robot:<name>.<command>`
    /// or `serial:<device>`.
    pub(super) async fn audited<T>(
        &self,
        who: &Who,
        target: &str,
        value: &Value,
        write: impl Future<Output = Result<T, IoOpError>>,
    ) -> Result<T, IoOpError> {
        let r = write.await;
        self.record_write(who, target, value, r.as_ref().err());
        r
    }

    fn record_write(&self, who: &Who, target: &str, value: &Value, error: Option<&IoOpError>) {
        match error {
            None => tracing::info!(writer = %who, target, %value, "I/O write ok"),
            Some(e) => {
                tracing::warn!(writer = %who, target, %value, error = %e, "I/O write refused or failed")
            }
        }
        self.recent_writes.push(json!({
            "timestamp": super::json::iso(std::time::SystemTime::now()),
            "writer": who.to_string(),
            "target": target,
            "value": value,
            "ok": error.is_none(),
            "error": error.map(ToString::to_string),
        }));
        let (Who::Script(id), Some(host)) = (who, self.host.upgrade()) else {
            return;
        };
        let result = error.map_or(Ok(()), |e| Err(e.to_string()));
        host.audit(Entry::io_write(id, target, value, &result));
        match error {
            None => host.note(
                id,
                Level::Info,
                format!("I/O 写入 {target} = {value} 成功 (写入者 {who})"),
            ),
            Some(e) => host.note(
                id,
                Level::Warning,
                format!("I/O 写入 {target} = {value} 失败 (写入者 {who}): {e}"),
            ),
        }
    }
}
