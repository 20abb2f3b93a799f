//! Script logs: every line a script or the runtime writes about it is persisted
//! (redb, group commit, bounded retention) and pushed live to WebSocket clients.
//!
//! Path of a line: worker frame → `ScriptLogger` (seq, time, rate limit) → the
//! hub (per-connection bounded queues) and the store's bounded queue → the writer
//! thread, which commits everything queued as one transaction.

mod hub;
mod limiter;
mod query;
mod record;
mod script;
mod store;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use vwed_base::sync::Locked;

use serde_json::{Value, json};

pub use hub::{ALL, Conn, Hub, LineFilter};
pub use query::{LogQuery, MAX_LIMIT, Order, decode_cursor, encode_cursor};
pub use script::{RateLimit, ScriptLogger};
pub use store::{LogStore, LogStoreError, StoreLimits};

use serde::{Deserialize, Serialize};

pub struct Logs {
    pub store: Arc<LogStore>,
    pub hub: Arc<Hub>,
    rate: RateLimit,
    loggers: Mutex<Vec<Weak<ScriptLogger>>>,
}

impl Logs {
    /// Opens `<data_dir>/logs.redb` with the configured limits.
    pub fn open(
        cfg: &LogSettings,
        data_dir: &std::path::Path,
        cache_bytes: usize,
    ) -> Result<Arc<Logs>, LogStoreError> {
        let limits = StoreLimits {
            max_bytes: cfg.log_max_bytes,
            max_age_ms: cfg.log_max_age_days.saturating_mul(86_400_000),
            queue_lines: cfg.log_queue_lines,
            queue_bytes: cfg.log_queue_bytes,
            prune_interval: Duration::from_secs(cfg.log_prune_interval_s.max(1)),
            prune_batch: 10_000,
        };
        let store = LogStore::open(&data_dir.join("logs.redb"), cache_bytes, limits)?;
        Ok(Self::new(
            store,
            Hub::new(cfg.ws_client_queue, cfg.ws_client_queue_bytes),
            RateLimit {
                lines_per_sec: cfg.log_rate_per_sec,
                lines_burst: cfg.log_rate_burst,
                bytes_per_sec: cfg.log_bytes_per_sec,
                bytes_burst: cfg.log_bytes_burst,
            },
        ))
    }

    pub fn new(store: Arc<LogStore>, hub: Hub, rate: RateLimit) -> Arc<Logs> {
        Arc::new(Logs {
            store,
            hub: Arc::new(hub),
            rate,
            loggers: Mutex::new(Vec::new()),
        })
    }

    #[cfg(test)]
    pub fn open_at(
        path: &std::path::Path,
        limits: StoreLimits,
        rate: u32,
        burst: u32,
    ) -> Result<Arc<Logs>, LogStoreError> {
        let store = LogStore::open(path, 1024 * 1024, limits)?;
        Ok(Self::new(
            store,
            Hub::new(1024, 4 << 20),
            RateLimit::lines(rate, burst),
        ))
    }

    /// The logger of one started script.
    pub fn script(self: &Arc<Self>, script_id: &str, script_path: &str) -> Arc<ScriptLogger> {
        let l = Arc::new(ScriptLogger::new(
            self.clone(),
            script_id,
            script_path,
            self.rate,
        ));
        let mut v = self.loggers.locked();
        v.retain(|w| w.strong_count() > 0);
        v.push(Arc::downgrade(&l));
        l
    }

    fn live_loggers(&self) -> Vec<Arc<ScriptLogger>> {
        self.loggers
            .locked()
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Once a second: report rate-limit drops of scripts that went quiet.
    pub fn start_ticker(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                let Some(logs) = me.upgrade() else { return };
                for l in logs.live_loggers() {
                    l.tick();
                }
            }
        });
    }

    pub fn stats_json(&self) -> Value {
        let mut scripts: Vec<Value> = self.live_loggers().iter().map(|l| l.stats_json()).collect();
        scripts.sort_by(|a, b| a["script_id"].as_str().cmp(&b["script_id"].as_str()));
        json!({
            "store": self.store.stats_json(),
            "rate_limit": {
                "lines_per_sec": self.rate.lines_per_sec,
                "burst": self.rate.lines_burst,
                "bytes_per_sec": self.rate.bytes_per_sec,
                "bytes_burst": self.rate.bytes_burst,
            },
            "scripts": scripts,
            "websocket": {
                "connections": self.hub.connections().len(),
            },
        })
    }

    /// Commits what is queued and stops the writer thread.
    pub fn close(&self) {
        self.store.close();
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    /// Persisted script logs (logs.redb) are pruned, oldest first, above this size.
    pub log_max_bytes: u64,
    /// Persisted script log lines older than this are pruned.
    pub log_max_age_days: u64,
    /// Lines per second one script may log (VWED.log and print); 0 = no limit.
    pub log_rate_per_sec: u32,
    /// Lines a script may log at once before `log_rate_per_sec` applies.
    pub log_rate_burst: u32,
    /// Bytes of log text per second one script may write (0 = no limit): within
    /// the line rate, long lines could still wear out flash.
    pub log_bytes_per_sec: u32,
    /// Bytes a script may log at once before `log_bytes_per_sec` applies.
    pub log_bytes_burst: u32,
    /// Lines waiting for the log writer; beyond this, lines are dropped and counted.
    pub log_queue_lines: usize,
    /// How often the log pruning pass runs, in seconds.
    pub log_prune_interval_s: u64,
    /// Messages queued per WebSocket client; a slower client skips lines and is told.
    pub ws_client_queue: usize,
    /// Bytes of log lines waiting for the log writer; beyond this, lines are
    /// dropped and counted, like beyond `log_queue_lines`.
    pub log_queue_bytes: usize,
    /// Bytes of messages queued per WebSocket client, beside `ws_client_queue`.
    pub ws_client_queue_bytes: usize,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            log_max_bytes: 64 * 1024 * 1024,
            log_max_age_days: 14,
            log_rate_per_sec: 5_000,
            log_rate_burst: 20_000,
            log_bytes_per_sec: 1024 * 1024,
            log_bytes_burst: 8 * 1024 * 1024,
            log_queue_lines: 65_536,
            log_prune_interval_s: 10,
            ws_client_queue: 1_024,
            log_queue_bytes: 16 * 1024 * 1024,
            ws_client_queue_bytes: 4 * 1024 * 1024,
        }
    }
}
