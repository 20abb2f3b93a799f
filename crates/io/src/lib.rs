//! I/O for scripts: the supervisor owns the HAL (`vwed_hal::Io`) started from
//! the device config, forwards point changes to script listeners (`io.<tag>`)
//! and to WebSocket subscribers, and performs scripts' and HTTP clients' reads
//! and writes.
//!
//! Nothing is dropped silently: the HAL counts change records its channel could
//! not take (and `seq` shows the gap), the forwarder counts the gaps it sees and
//! tells scripts with an `io:overflow` event, and each listener's bounded queue
//! counts its own drops (see `engine::events`).

mod audit;
mod callers;
mod devices;
mod error;
mod json;
mod points;
mod raw;
mod robots;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use vwed_boards::Setup;
use vwed_hal::{Change, Io};

pub use audit::Who;
pub use error::IoOpError;
pub use json::{change_json, points_envelope, snapshot_json};
pub use raw::{RawArgs, RawOp};

use serde::{Deserialize, Serialize};

/// What the I/O needs from the rest of the runtime. The engine provides it; a test
/// can provide a fake, so nothing here needs an `Engine`.
pub trait IoHost: Send + Sync {
    /// Is this script still running? Bus queues of scripts that are gone are dropped.
    fn is_running(&self, script_id: &str) -> bool;
    /// A line in the script's own log.
    fn note(&self, script_id: &str, level: vwed_ipc::Level, text: String);
    /// Delivers an event to its listeners; returns how many got it.
    fn emit(&self, event: &str, data: &Value) -> usize;
    /// Is any WebSocket client connected? Saves building messages nobody reads.
    fn has_subscribers(&self) -> bool;
    /// Sends to WebSocket subscribers of any of `topics`; `build` runs only if
    /// one of them listens.
    fn publish(&self, topics: &[&str], build: &dyn Fn() -> Value);
    /// Queues an audit record without waiting for it (a script's write must
    /// not wait for the audit commit).
    fn audit(&self, entry: vwed_auth::audit::Entry);
}

/// Event scripts receive when change records were lost before reaching them.
pub const OVERFLOW_EVENT: &str = "io:overflow";

#[derive(Debug, thiserror::Error)]
pub enum IoStartError {
    #[error("I/O 配置无效: {0}")]
    Load(#[from] vwed_boards::LoadError),
    #[error("I/O 启动失败: {0}")]
    Start(#[from] vwed_hal::IoError),
}

/// Counters of the change forwarder.
#[derive(Default)]
pub struct ForwardStats {
    pub forwarded: AtomicU64,
    /// Records the HAL produced but the forwarder never saw (seq gaps).
    pub lost: AtomicU64,
    /// Listener deliveries queued (one change can reach many listeners).
    pub delivered: AtomicU64,
}

/// The running I/O of this runtime.
pub struct IoRuntime {
    pub io: Io,
    pub setup: Setup,
    pub config_path: PathBuf,
    pub stats: ForwardStats,
    pub recent_writes: audit::Recent,
    callers: callers::Callers,
    host: Weak<dyn IoHost>,
}

/// Where the device config lives: `io_config` as given, relative paths below
/// the data dir (one rule whether it came from the file, the environment or a
/// flag).
pub fn config_path(cfg: &IoSettings, data_dir: &Path) -> Option<PathBuf> {
    let p = cfg.io_config.trim();
    if p.is_empty() {
        return None;
    }
    let p = Path::new(p);
    Some(if p.is_absolute() {
        p.to_path_buf()
    } else {
        data_dir.join(p)
    })
}

/// Loads the device config (if any), starts the HAL and the change forwarder.
/// Must run inside the Tokio runtime.
pub fn start<H: IoHost + 'static>(
    cfg: &IoSettings,
    data_dir: &Path,
    host: &Arc<H>,
) -> Result<Option<Arc<IoRuntime>>, IoStartError> {
    let board = Some(cfg.board.trim()).filter(|b| !b.is_empty());
    let Some(path) = config_path(cfg, data_dir) else {
        if let Some(b) = board {
            // A misspelt board fails now, not when the device config is added.
            let profile = vwed_boards::BoardProfile::load(b)?;
            tracing::warn!(
                "board {} selected but io_config is empty: running without I/O",
                profile.name
            );
        }
        return Ok(None);
    };
    let setup = vwed_boards::load(&path, board)?;
    let (io, changes) = Io::start(setup.devices.to_io_spec())?;
    tracing::info!(
        "I/O started from {} (board {}): {} buses, {} points, {} robots",
        path.display(),
        setup.board.name,
        setup.devices.buses.len(),
        setup.devices.points.len(),
        setup.devices.robots.len(),
    );
    let rt = Arc::new(IoRuntime {
        io,
        setup,
        config_path: path,
        stats: ForwardStats::default(),
        recent_writes: audit::Recent::default(),
        callers: callers::Callers::default(),
        host: Arc::downgrade(&(host.clone() as Arc<dyn IoHost>)),
    });
    tokio::spawn(forward(Arc::downgrade(&rt), changes));
    // Parsing a large device config (10,000 points are megabytes of TOML and
    // spans) leaves freed pages inside the allocator.
    vwed_base::heap::give_back_free_pages();
    Ok(Some(rt))
}

/// Turns HAL change records into events and WebSocket messages. Never waits on
/// a consumer: `emit` and `publish` only queue or count a drop.
async fn forward(rt: Weak<IoRuntime>, mut rx: mpsc::Receiver<Change>) {
    let mut gaps = SeqGaps::default();
    while let Some(change) = rx.recv().await {
        let Some(rt) = rt.upgrade() else {
            return;
        };
        let Some(host) = rt.host.upgrade() else {
            return;
        };
        if let Some(gap) = gaps.observe(change.seq) {
            let total = rt.stats.lost.fetch_add(gap, Ordering::Relaxed) + gap;
            tracing::warn!(
                "I/O change records lost: {gap} (total {total}); point table still current"
            );
            host.emit(
                OVERFLOW_EVENT,
                &json!({"lost": gap, "total_lost": total, "hint": "VWED.io.read() gives current values"}),
            );
        }
        let data = change_json(&change);
        let n = host.emit(&format!("io.{}", change.tag), &data);
        rt.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        rt.stats.delivered.fetch_add(n as u64, Ordering::Relaxed);
        publish_point(&*host, &change.tag, &data);
    }
}

/// Finds records the HAL produced but never delivered: its `seq` starts at 0
/// and grows by one per record, dropped or not.
#[derive(Default)]
struct SeqGaps {
    next: u64,
}

impl SeqGaps {
    /// How many records went missing right before `seq`.
    fn observe(&mut self, seq: u64) -> Option<u64> {
        let gap = seq.checked_sub(self.next).filter(|g| *g > 0);
        self.next = self.next.max(seq + 1);
        gap
    }
}

/// WebSocket topic of all point changes; `io:<tag>` carries one point.
pub const WS_TOPIC_ALL: &str = "io:*";

fn publish_point(host: &dyn IoHost, tag: &str, data: &Value) {
    if !host.has_subscribers() {
        return;
    }
    let topic = format!("io:{tag}");
    host.publish(&[WS_TOPIC_ALL, &topic], &|| {
        let mut m = data.clone();
        m["type"] = json!("io_point");
        m
    });
}

impl IoRuntime {
    /// Poller and forwarder counters for `/api/io/status`.
    pub fn stats_json(&self) -> Value {
        let p = self.io.poller().stats();
        json!({
            "config": self.config_path.display().to_string(),
            "board": self.setup.board.name,
            "points": self.setup.devices.points.len(),
            "poller": p,
            "forwarder": {
                "forwarded": self.stats.forwarded.load(Ordering::Relaxed),
                "lost": self.stats.lost.load(Ordering::Relaxed),
                "listener_deliveries": self.stats.delivered.load(Ordering::Relaxed),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::SeqGaps;

    #[test]
    fn sequence_gaps_are_counted_from_the_first_record() {
        let mut g = SeqGaps::default();
        assert_eq!(g.observe(0), None);
        assert_eq!(g.observe(1), None);
        assert_eq!(g.observe(5), Some(3));
        assert_eq!(g.observe(6), None);
        let mut late = SeqGaps::default();
        assert_eq!(
            late.observe(2),
            Some(2),
            "records lost before the first one seen"
        );
    }
}

/// Device I/O settings, top-level keys of the runtime's configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IoSettings {
    /// Board profile for I/O: a built-in name (`vwed-edge serve --board`) or a
    /// profile file. Empty: the device config's own `board` key, else linux-sim.
    pub board: String,
    /// Device config (buses, devices, points, robots; TOML). Empty: no I/O.
    /// A relative path is taken below `data_dir`.
    pub io_config: String,
}
