//! The per-script end of the log path: stamps each line with a sequence number and
//! time, rate-limits what the script itself writes, and hands the line to the
//! WebSocket hub and the store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use vwed_base::sync::Locked;

use serde_json::{Value, json};
use vwed_ipc::Level;

use super::Logs;
use super::limiter::TokenBucket;
use super::record::LogLine;
use vwed_base::clock::iso_utc;

/// How much one script may log: lines and bytes per second, each with a burst
/// (a rate of 0 never limits). Bytes matter on flash: a script printing long
/// lines within the line rate could still write tens of MB a second.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub lines_per_sec: u32,
    pub lines_burst: u32,
    pub bytes_per_sec: u32,
    pub bytes_burst: u32,
}

impl RateLimit {
    /// A limit on lines only.
    pub fn lines(per_sec: u32, burst: u32) -> RateLimit {
        RateLimit {
            lines_per_sec: per_sec,
            lines_burst: burst,
            bytes_per_sec: 0,
            bytes_burst: 1,
        }
    }
}

struct Limit {
    bucket: TokenBucket,
    bytes: TokenBucket,
    /// Dropped since the last report.
    pending: u64,
}

/// WebSocket topic of every script's `script_status` messages.
pub const STATUS_TOPIC: &str = "status";

pub struct ScriptLogger {
    logs: Arc<Logs>,
    pub script_id: Arc<str>,
    pub script_path: Arc<str>,
    limit: Mutex<Limit>,
    pub accepted: AtomicU64,
    pub rate_dropped: AtomicU64,
}

impl ScriptLogger {
    pub(super) fn new(
        logs: Arc<Logs>,
        script_id: &str,
        script_path: &str,
        rate: RateLimit,
    ) -> Self {
        let now = Instant::now();
        ScriptLogger {
            logs,
            script_id: Arc::from(script_id),
            script_path: Arc::from(script_path),
            limit: Mutex::new(Limit {
                bucket: TokenBucket::new(rate.lines_per_sec, rate.lines_burst, now),
                bytes: TokenBucket::new(rate.bytes_per_sec, rate.bytes_burst, now),
                pending: 0,
            }),
            accepted: AtomicU64::new(0),
            rate_dropped: AtomicU64::new(0),
        }
    }

    fn limit(&self) -> std::sync::MutexGuard<'_, Limit> {
        self.limit.locked()
    }

    /// A line the script wrote (VWED.log, print, a traceback). Returns false when
    /// the rate limit dropped it.
    pub fn script_line(
        &self,
        level: Level,
        stream: &'static str,
        message: String,
        fields: Option<&Value>,
    ) -> bool {
        let pending = {
            let mut l = self.limit();
            let now = Instant::now();
            let size = u32::try_from(message.len()).unwrap_or(u32::MAX);
            if !l.bytes.would_pass_n(size, now) || !l.bucket.take(now) {
                l.pending += 1;
                drop(l);
                self.rate_dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            l.bytes.take_n(size, now);
            std::mem::take(&mut l.pending)
        };
        if pending > 0 {
            self.report_dropped(pending);
        }
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.emit(
            level,
            stream,
            message,
            fields.map(|f| f.to_string()).unwrap_or_default(),
        );
        true
    }

    /// A line of the runtime's own (start, stop, crash): never rate-limited.
    pub fn system(&self, level: Level, message: String) {
        let pending = std::mem::take(&mut self.limit().pending);
        if pending > 0 {
            self.report_dropped(pending);
        }
        self.emit(level, "system", message, String::new());
    }

    /// Reports lines dropped by the rate limit once the limit has lifted, even if
    /// the script wrote nothing since.
    pub fn tick(&self) {
        let pending = {
            let mut l = self.limit();
            let now = Instant::now();
            if l.pending == 0 || !l.bucket.would_pass(now) || !l.bytes.would_pass(now) {
                return;
            }
            std::mem::take(&mut l.pending)
        };
        self.report_dropped(pending);
    }

    fn report_dropped(&self, n: u64) {
        self.emit(
            Level::Warning,
            "system",
            format!("{n} lines dropped by rate limit (日志速率超限, 丢弃了 {n} 行)"),
            json!({"dropped": n, "reason": "rate_limit"}).to_string(),
        );
    }

    fn emit(&self, level: Level, stream: &'static str, message: String, fields: String) {
        let line = LogLine {
            seq: 0,
            ts_ms: vwed_base::clock::unix_ms(),
            script_id: self.script_id.clone(),
            script_path: self.script_path.clone(),
            level,
            stream,
            message,
            fields,
        };
        let hub = &self.logs.hub;
        self.logs.store.append(line, |l| {
            hub.publish_line(l, || script_log_json(l));
        });
    }

    /// `script_status`: started, stopped, crashed; also to the subscribers of
    /// the `status` topic (every script's status, without its log lines).
    pub fn status(&self, status: &str, message: &str) {
        self.logs.hub.publish_script_or_topic(
            &self.script_id,
            &self.script_path,
            STATUS_TOPIC,
            || {
                json!({
                    "type": "script_status",
                    "script_id": &*self.script_id,
                    "script_path": &*self.script_path,
                    "timestamp": vwed_base::clock::utc_now(),
                    "status": status,
                    "message": message,
                })
            },
        );
    }

    /// `function_execution` after a call of a registered function.
    pub fn function_execution(&self, function_name: &str, result: Result<&Value, String>, ms: f64) {
        self.publish("function_execution", || {
            let (kind, res) = match result {
                Ok(v) => (
                    "success",
                    json!({"success": true, "data": v, "execution_time_ms": ms}),
                ),
                Err(e) => (
                    "error",
                    json!({"success": false, "error": e, "execution_time_ms": ms}),
                ),
            };
            json!({
                "function_name": function_name,
                "execution_type": kind,
                "result": res,
            })
        });
    }

    /// A live-only message of type `kind` about this run, to the subscribers of
    /// the run, of its path and of `*`; `details` are built only if one listens.
    fn publish(&self, kind: &str, details: impl FnOnce() -> Value) {
        self.logs
            .hub
            .publish_script(&self.script_id, &self.script_path, || {
                let mut v = json!({
                    "type": kind,
                    "script_id": &*self.script_id,
                    "script_path": &*self.script_path,
                    "timestamp": vwed_base::clock::utc_now(),
                });
                if let (Some(o), Value::Object(more)) = (v.as_object_mut(), details()) {
                    o.extend(more);
                }
                v
            });
    }

    pub fn stats_json(&self) -> Value {
        json!({
            "script_id": &*self.script_id,
            "script_path": &*self.script_path,
            "accepted": self.accepted.load(Ordering::Relaxed),
            "rate_dropped": self.rate_dropped.load(Ordering::Relaxed),
        })
    }
}

pub fn script_log_json(l: &LogLine) -> Value {
    let mut v = json!({
        "type": "script_log",
        "script_id": &*l.script_id,
        "timestamp": iso_utc(l.ts_ms),
        "level": l.level.as_str(),
        "message": l.message,
        "seq": l.seq,
        "stream": l.stream,
        "script_path": &*l.script_path,
    });
    if !l.fields.is_empty()
        && let Ok(f) = serde_json::from_str::<Value>(&l.fields)
    {
        v["fields"] = f;
    }
    v
}
