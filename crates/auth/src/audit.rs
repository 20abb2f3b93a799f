//! The audit log: who did what, from where, with what result, and when, for
//! every state-changing call and every refused one. Kept in `auth.redb`,
//! bounded by size and age like the script logs, written by one thread that
//! commits whatever has arrived as one durable transaction (group commit), so
//! that `record(..).await` returning means the entry survives a power cut.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use vwed_base::sync::Locked;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc::{Receiver, Sender, channel};
use tokio::sync::oneshot;

use super::{Principal, Role};
use vwed_db::{DbError, decode, encode};

/// seq → `Entry`.
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// "bytes": the sum of stored entry sizes.
const AUDIT_META: TableDefinition<&str, u64> = TableDefinition::new("audit_meta");

/// Entries waiting for the writer; `record_nowait` drops (and counts) past it.
const QUEUE: usize = 4_096;
/// Most entries one pruning pass deletes.
const PRUNE_BATCH: usize = 5_000;
/// Most entries one query looks at, so a filter that matches little stays cheap.
pub const MAX_SCAN: usize = 50_000;
pub const MAX_PAGE: usize = 500;
/// Longest text kept in any field of an entry.
const MAX_FIELD: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("审计日志写入线程已停止")]
    WriterGone,
    #[error("审计日志写入失败: {0}")]
    Commit(String),
    #[error("cannot start the audit writer thread: {0}")]
    Thread(std::io::Error),
}

vwed_db::from_redb_errors!(AuditError);

/// One recorded call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub time_ms: u64,
    /// User name, token name, `script:<id>`, `cli` or `-` when nobody proved who.
    pub user: String,
    pub role: Option<Role>,
    /// How the caller proved who it is: session, token#<id>, cli, no-auth, script, none.
    pub via: String,
    /// Client address (`ip:port`), `admin.sock`, or empty.
    pub addr: String,
    /// `METHOD /path` or an action name such as `user.add`, `io.write`.
    pub action: String,
    pub target: String,
    /// HTTP status, or the status the action would have answered with.
    pub status: u16,
    pub detail: String,
}

impl Entry {
    /// An entry for `principal` (None: no valid credential) calling `action`.
    pub fn new(principal: Option<&Principal>, addr: &str, action: &str, target: &str) -> Entry {
        let (user, role, via) = match principal {
            Some(p) => (p.name.clone(), Some(p.role), p.via.label()),
            None => ("-".to_string(), None, "none".to_string()),
        };
        Entry {
            user,
            role,
            via,
            addr: clip(addr),
            action: clip(action),
            target: clip(target),
            ..Entry::default()
        }
    }

    pub fn status(mut self, status: u16) -> Entry {
        self.status = status;
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Entry {
        self.detail = clip(&detail.into());
        self
    }

    /// An entry for a caller that is no account and no token, but proved who
    /// it is another way: `via` says how (`script`, `fleet`).
    pub fn by(user: &str, via: &str, addr: &str, action: &str, target: &str) -> Entry {
        let mut e = Entry::new(None, addr, action, target);
        e.user = clip(user);
        e.via = clip(via);
        e
    }

    /// An I/O write by a script (HTTP writes are audited by their route): what
    /// `io::audit::write` feeds in with `record_nowait`, so a script never waits
    /// for the audit commit.
    pub fn io_write(
        script_id: &str,
        target: &str,
        value: &Value,
        result: &Result<(), String>,
    ) -> Entry {
        let e = Entry::by(
            &format!("script:{script_id}"),
            "script",
            "",
            "io.write",
            target,
        );
        match result {
            Ok(()) => e.status(200).detail(value.to_string()),
            Err(err) => e.status(409).detail(format!("{value}: {err}")),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "seq": self.seq,
            "time": vwed_base::clock::iso_utc(self.time_ms),
            "time_ms": self.time_ms,
            "user": self.user,
            "role": self.role.map(Role::as_str),
            "via": self.via,
            "addr": self.addr,
            "action": self.action,
            "target": self.target,
            "status": self.status,
            "result": Outcome::of(self.status).as_str(),
            "detail": self.detail,
        })
    }
}

fn clip(s: &str) -> String {
    if s.len() <= MAX_FIELD {
        return s.to_string();
    }
    let mut end = MAX_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The result classes a query filters by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// 401, 403, 429: refused by access control.
    Denied,
    Error,
}

impl Outcome {
    pub fn of(status: u16) -> Outcome {
        match status {
            s if s < 400 => Outcome::Ok,
            401 | 403 | 429 => Outcome::Denied,
            _ => Outcome::Error,
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "ok" => Some(Outcome::Ok),
            "denied" => Some(Outcome::Denied),
            "error" => Some(Outcome::Error),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_age_ms: u64,
}

/// A page request: newest first, below `before` (a seq) when given.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub user: Option<String>,
    /// Substring of the action.
    pub action: Option<String>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    pub outcome: Option<Outcome>,
    pub status: Option<u16>,
    pub before: Option<u64>,
    pub limit: usize,
}

impl Query {
    fn matches(&self, e: &Entry) -> bool {
        self.user.as_ref().is_none_or(|u| *u == e.user)
            && self
                .action
                .as_ref()
                .is_none_or(|a| e.action.contains(a.as_str()))
            && self.since_ms.is_none_or(|t| e.time_ms >= t)
            && self.until_ms.is_none_or(|t| e.time_ms < t)
            && self.outcome.is_none_or(|o| Outcome::of(e.status) == o)
            && self.status.is_none_or(|s| e.status == s)
    }
}

pub struct Page {
    pub entries: Vec<Entry>,
    /// Pass as `before` for the next page; None when nothing older is left.
    pub next: Option<u64>,
}

/// Told the seq once committed, or why not.
type Done = Option<oneshot::Sender<Result<u64, String>>>;

enum Msg {
    Record(Entry, Done),
    Close,
}

#[derive(Default)]
pub struct Stats {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
    pub pruned: AtomicU64,
}

pub struct AuditLog {
    db: Arc<Database>,
    tx: Sender<Msg>,
    pub stats: Arc<Stats>,
    limits: Limits,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl AuditLog {
    pub fn open(db: Arc<Database>, limits: Limits) -> Result<Arc<AuditLog>, AuditError> {
        let w = db.begin_write()?;
        w.open_table(AUDIT)?;
        w.open_table(AUDIT_META)?;
        w.commit()?;
        let next = {
            let r = db.begin_read()?;
            r.open_table(AUDIT)?
                .last()?
                .map_or(1, |(k, _)| k.value() + 1)
        };
        let stats = Arc::new(Stats::default());
        let (tx, rx) = channel(QUEUE);
        let writer = Writer {
            db: db.clone(),
            stats: stats.clone(),
            limits: limits.clone(),
            next,
        };
        let handle = std::thread::Builder::new()
            .name("vwed-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(AuditError::Thread)?;
        Ok(Arc::new(AuditLog {
            db,
            tx,
            stats,
            limits,
            writer: Mutex::new(Some(handle)),
        }))
    }

    /// Records `entry` and returns its seq once it is committed durably.
    pub async fn record(&self, entry: Entry) -> Result<u64, AuditError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Msg::Record(entry, Some(done)))
            .await
            .map_err(|_| AuditError::WriterGone)?;
        match rx.await {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(e)) => Err(AuditError::Commit(e)),
            Err(_) => Err(AuditError::WriterGone),
        }
    }

    /// `record` for blocking contexts (the offline CLI).
    pub fn record_blocking(&self, entry: Entry) -> Result<u64, AuditError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .blocking_send(Msg::Record(entry, Some(done)))
            .map_err(|_| AuditError::WriterGone)?;
        match rx.blocking_recv() {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(e)) => Err(AuditError::Commit(e)),
            Err(_) => Err(AuditError::WriterGone),
        }
    }

    /// Queues `entry` without waiting (for writers that must not block, such as
    /// a script's I/O write); a full queue drops it and counts the drop.
    pub fn record_nowait(&self, entry: Entry) {
        if self.tx.try_send(Msg::Record(entry, None)).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs `handler`, records the outcome durably, then hands back the answer:
    /// what the route table wraps around every state-changing route. If the
    /// record cannot be written the answer still goes out (the action happened)
    /// and the failure is logged and counted.
    pub async fn around<F, B>(&self, entry: Entry, handler: F) -> http::Response<B>
    where
        F: Future<Output = http::Response<B>>,
    {
        let resp = handler.await;
        let entry = entry.status(resp.status().as_u16());
        if let Err(e) = self.record(entry).await {
            tracing::error!("audit record lost: {e}");
        }
        resp
    }

    pub fn query(&self, q: &Query) -> Result<Page, AuditError> {
        let limit = q.limit.clamp(1, MAX_PAGE);
        let r = self.db.begin_read()?;
        let t = r.open_table(AUDIT)?;
        let upper = q.before.unwrap_or(u64::MAX);
        let mut entries = Vec::new();
        let mut next = None;
        for (scanned, row) in t.range(..upper)?.rev().enumerate() {
            let (k, v) = row?;
            let seq = k.value();
            // One row past a full page (or the scan bound) proves there is more.
            if entries.len() >= limit || scanned >= MAX_SCAN {
                next = Some(seq + 1);
                break;
            }
            let e: Entry = decode(v.value())?;
            // Entries are in time order: nothing below this one is newer. (A
            // backwards clock jump can break that; then such a page ends early.)
            if q.since_ms.is_some_and(|s| e.time_ms < s) {
                break;
            }
            if q.matches(&e) {
                entries.push(e);
            }
        }
        Ok(Page { entries, next })
    }

    pub fn stats_json(&self) -> Value {
        let (count, bytes) = self.extent().unwrap_or((0, 0));
        let s = &self.stats;
        json!({
            "entries": count,
            "bytes": bytes,
            "max_bytes": self.limits.max_bytes,
            "max_age_days": self.limits.max_age_ms as f64 / 86_400_000.0,
            "written": s.written.load(Ordering::Relaxed),
            "dropped": s.dropped.load(Ordering::Relaxed),
            "failed": s.failed.load(Ordering::Relaxed),
            "pruned": s.pruned.load(Ordering::Relaxed),
        })
    }

    fn extent(&self) -> Result<(u64, u64), AuditError> {
        let r = self.db.begin_read()?;
        let n = r.open_table(AUDIT)?.len()?;
        let b = r
            .open_table(AUDIT_META)?
            .get("bytes")?
            .map_or(0, |v| v.value());
        Ok((n, b))
    }

    /// Commits what is queued and stops the writer.
    pub fn close(&self) {
        let _ = self.tx.blocking_send(Msg::Close);
        let handle = self.writer.locked().take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

struct Writer {
    db: Arc<Database>,
    stats: Arc<Stats>,
    limits: Limits,
    next: u64,
}

impl Writer {
    fn run(mut self, mut rx: Receiver<Msg>) {
        let mut batch = Vec::new();
        loop {
            let Some(first) = rx.blocking_recv() else {
                return;
            };
            let mut closing = false;
            let mut next = Some(first);
            while let Some(m) = next {
                match m {
                    Msg::Record(e, done) => batch.push((e, done)),
                    Msg::Close => closing = true,
                }
                if closing || batch.len() >= 1024 {
                    break;
                }
                next = rx.try_recv().ok();
            }
            if !batch.is_empty() {
                self.commit(&mut batch);
            }
            if closing {
                return;
            }
        }
    }

    fn commit(&mut self, batch: &mut Vec<(Entry, Done)>) {
        let first = self.next;
        let now = vwed_base::clock::unix_ms();
        let result = self.write(batch, first, now);
        if result.is_ok() {
            self.next = first + batch.len() as u64;
            self.stats
                .written
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        } else {
            self.stats
                .failed
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        for (i, (_, done)) in batch.drain(..).enumerate() {
            if let Some(done) = done {
                let _ = done.send(match &result {
                    Ok(()) => Ok(first + i as u64),
                    Err(e) => Err(e.to_string()),
                });
            }
        }
        if let Err(e) = &result {
            tracing::error!("cannot write the audit log: {e}");
        }
        match prune(&self.db, &self.limits, now) {
            Ok(n) => {
                self.stats.pruned.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => tracing::error!("audit log pruning failed: {e}"),
        }
    }

    fn write(&self, batch: &mut [(Entry, Done)], first: u64, now: u64) -> Result<(), AuditError> {
        let mut w = self.db.begin_write()?;
        w.set_durability(Durability::Immediate)
            .map_err(|e| AuditError::Commit(e.to_string()))?;
        {
            let mut t = w.open_table(AUDIT)?;
            let mut added = 0u64;
            for (i, (e, _)) in batch.iter_mut().enumerate() {
                e.seq = first + i as u64;
                if e.time_ms == 0 {
                    e.time_ms = now;
                }
                let bytes = encode(e)?;
                added += bytes.len() as u64;
                t.insert(e.seq, bytes.as_slice())?;
            }
            let mut m = w.open_table(AUDIT_META)?;
            let total = m.get("bytes")?.map_or(0, |v| v.value()) + added;
            m.insert("bytes", total)?;
        }
        w.commit()?;
        Ok(())
    }
}

/// Deletes the oldest entries while the log is over its size (down to 90 % of
/// it) or they are older than the age limit; at most `PRUNE_BATCH` per pass.
fn prune(db: &Database, limits: &Limits, now_ms: u64) -> Result<u64, AuditError> {
    let cutoff = now_ms.saturating_sub(limits.max_age_ms);
    let w = db.begin_write()?;
    let mut deleted = 0u64;
    {
        let mut m = w.open_table(AUDIT_META)?;
        let mut bytes = m.get("bytes")?.map_or(0, |v| v.value());
        let target = if bytes > limits.max_bytes {
            limits.max_bytes / 10 * 9
        } else {
            u64::MAX
        };
        let mut t = w.open_table(AUDIT)?;
        while (deleted as usize) < PRUNE_BATCH {
            let Some((k, len, time)) = t.first()?.map(|(k, v)| {
                let time = decode::<Entry>(v.value()).map_or(0, |e| e.time_ms);
                (k.value(), v.value().len() as u64, time)
            }) else {
                break;
            };
            if bytes <= target && time >= cutoff {
                break;
            }
            t.remove(k)?;
            bytes = bytes.saturating_sub(len);
            deleted += 1;
        }
        m.insert("bytes", bytes)?;
    }
    if deleted > 0 {
        w.commit()?;
    } else {
        w.abort()?;
    }
    Ok(deleted)
}
