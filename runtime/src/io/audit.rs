//! Who wrote what: every write to a device, by a script or over HTTP, goes to
//! the runtime log and, for scripts, to the writing script's own log.

use std::fmt;

use serde_json::Value;
use vwed_ipc::Level;

use crate::engine::Engine;

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

/// Records one write. `target` is a tag, or `bus/unit/table/address` for raw
/// Modbus writes.
pub fn write(engine: &Engine, who: &Who, target: &str, value: &Value, result: &Result<(), String>) {
    match result {
        Ok(()) => tracing::info!(writer = %who, target, %value, "I/O write ok"),
        Err(e) => {
            tracing::warn!(writer = %who, target, %value, error = %e, "I/O write refused or failed")
        }
    }
    if let Who::Script(id) = who
        && let Some(inst) = engine.instance(id)
    {
        match result {
            Ok(()) => inst.note(
                Level::Info,
                format!("I/O 写入 {target} = {value} 成功 (写入者 {who})"),
            ),
            Err(e) => inst.note(
                Level::Warning,
                format!("I/O 写入 {target} = {value} 失败 (写入者 {who}): {e}"),
            ),
        }
    }
}
