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

use crate::config::Config;

pub struct Logs {
    pub store: Arc<LogStore>,
    pub hub: Arc<Hub>,
    rate: RateLimit,
    loggers: Mutex<Vec<Weak<ScriptLogger>>>,
}

impl Logs {
    /// Opens `<data_dir>/logs.redb` with the configured limits.
    pub fn open(cfg: &Config) -> Result<Arc<Logs>, LogStoreError> {
        let limits = StoreLimits {
            max_bytes: cfg.log_max_bytes,
            max_age_ms: cfg.log_max_age_days.saturating_mul(86_400_000),
            queue_lines: cfg.log_queue_lines,
            queue_bytes: cfg.log_queue_bytes,
            prune_interval: Duration::from_secs(cfg.log_prune_interval_s.max(1)),
            prune_batch: 10_000,
        };
        let store = LogStore::open(&cfg.data_dir.join("logs.redb"), cfg.db_cache_bytes, limits)?;
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
