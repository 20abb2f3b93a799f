//! The persisted log: a redb file of its own (so that bursts of log commits never
//! queue behind script data writes), fed by one writer thread that commits
//! whatever has arrived as one transaction (group commit).
//!
//! Lines are stored in chunks of up to `CHUNK_LINES` consecutive lines under the
//! seq of their first line: one B-tree insert per chunk instead of per line is
//! what lets one script's log reach 100,000 lines/s on a small controller.

// tokio's bounded channel allocates its slots as they fill; std's sync_channel
// would hold the whole queue (64k lines) in memory from the start.
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{Receiver, Sender, channel};
use vwed_base::sync::Locked;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction,
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::record::{
    ChunkMeta, INDEX_ENTRY_CHARGE, LogLine, chunk_charge, chunk_meta, decode_chunk,
};
use vwed_db::DbError;

/// seq of the first line → chunk of lines (see `record::decode_chunk`).
pub(super) const CHUNKS: TableDefinition<u64, &[u8]> = TableDefinition::new("log_chunks");
/// (script id hash, chunk key) → (): the chunks holding lines of one run.
pub(super) const BY_SCRIPT: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("log_chunks_by_script");
/// (script path hash, chunk key) → (): the chunks holding lines of one script,
/// whatever its run. Every stored line carries its path; chunks written before
/// this index existed are indexed once when the store is opened.
pub(super) const BY_PATH: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("log_chunks_by_path");
/// Counters kept in step with the chunks: "bytes", "lines"; and `PATH_INDEX`.
const META: TableDefinition<&str, u64> = TableDefinition::new("log_meta");
/// Present once every chunk is in `BY_PATH`.
const PATH_INDEX: &str = "path_index";
/// Which `chunk_charge` the "bytes" counter was summed with; an older one is
/// summed again when the store is opened.
const CHARGE: &str = "charge";
const CHARGE_VERSION: u64 = 2;

/// Most lines and bytes in one transaction (and at most a sixteenth of the
/// store's size): bound the time one commit holds new lines back, and the room
/// one commit needs beside what is stored.
const MAX_BATCH: usize = 16_384;
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
const CHUNK_LINES: usize = 256;
/// A chunk fills at most eight pages of redb (which gives a large value a
/// power-of-two number of pages): a chunk just over this would take sixteen.
const CHUNK_BYTES: usize = 32 * 1024 - 512;

#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("日志写入线程已停止")]
    WriterGone,
    #[error("日志写入失败: {0}")]
    Commit(String),
    #[error("cannot start the log writer thread: {0}")]
    Thread(std::io::Error),
}

vwed_db::from_redb_errors!(LogStoreError);

/// Retention and queue settings.
#[derive(Debug, Clone)]
pub struct StoreLimits {
    pub max_bytes: u64,
    pub max_age_ms: u64,
    pub queue_lines: usize,
    /// Bytes of lines waiting for the writer (see `LogLine::queued_bytes`).
    pub queue_bytes: usize,
    pub prune_interval: Duration,
    /// Most lines one pruning transaction deletes.
    pub prune_batch: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_bytes: 64 * 1024 * 1024,
            max_age_ms: 14 * 86_400_000,
            queue_lines: 65_536,
            queue_bytes: 16 * 1024 * 1024,
            prune_interval: Duration::from_secs(10),
            prune_batch: 10_000,
        }
    }
}

enum Msg {
    Line(LogLine),
    /// Answered once every message before it is committed.
    Flush(oneshot::Sender<Result<u64, String>>),
    #[cfg_attr(not(test), allow(dead_code))]
    Prune(oneshot::Sender<u64>),
    Close,
}

#[derive(Default)]
pub struct Stats {
    pub written: AtomicU64,
    pub batches: AtomicU64,
    pub queue_dropped: AtomicU64,
    pub write_errors: AtomicU64,
    pub pruned: AtomicU64,
    pub bytes: AtomicU64,
    pub last_commit_us: AtomicU64,
    pub max_batch: AtomicU64,
    /// Bytes of lines in the queue, against `StoreLimits::queue_bytes`.
    pub queued_bytes: AtomicU64,
}

pub struct LogStore {
    db: Arc<Database>,
    /// Next seq, locked around the send so that the queue (and so every chunk)
    /// holds lines in seq order, which paging by seq relies on.
    tx: Mutex<(u64, Sender<Msg>)>,
    pub stats: Arc<Stats>,
    limits: StoreLimits,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl LogStore {
    pub fn open(
        path: &Path,
        cache_bytes: usize,
        limits: StoreLimits,
    ) -> Result<Arc<LogStore>, LogStoreError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)?;
        let bytes = prepare_tables(&db)?;
        let db = Arc::new(db);
        let last = {
            let r = db.begin_read()?;
            let t = r.open_table(CHUNKS)?;
            match t.last()? {
                Some((_, v)) => decode_chunk(v.value())?.last().map(|e| e.seq).unwrap_or(0),
                None => 0,
            }
        };
        let stats = Arc::new(Stats::default());
        stats.bytes.store(bytes, Ordering::Relaxed);
        let (tx, rx) = channel(limits.queue_lines.max(16));
        let writer = Writer {
            db: db.clone(),
            path: path.to_path_buf(),
            stats: stats.clone(),
            limits: limits.clone(),
            last_prune: Instant::now(),
        };
        let handle = std::thread::Builder::new()
            .name("vwed-logs".into())
            .spawn(move || writer.run(rx))
            .map_err(LogStoreError::Thread)?;
        Ok(Arc::new(LogStore {
            db,
            tx: Mutex::new((last + 1, tx)),
            stats,
            limits,
            writer: Mutex::new(Some(handle)),
        }))
    }

    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    fn sender(&self) -> Sender<Msg> {
        self.tx.locked().1.clone()
    }

    /// The seq the next line will get.
    #[cfg(test)]
    pub fn next_seq(&self) -> u64 {
        self.tx.locked().0
    }

    /// Numbers the line, lets `publish` see it (so that live clients get the same
    /// seq), and queues it without ever waiting: a full queue drops and counts it.
    pub fn append(&self, mut line: LogLine, publish: impl FnOnce(&LogLine)) -> bool {
        let size = line.queued_bytes();
        let mut g = self.tx.locked();
        line.seq = g.0;
        g.0 += 1;
        publish(&line);
        // Counted before the send, so that the writer never takes away bytes
        // that were not added yet.
        let queued = self.stats.queued_bytes.fetch_add(size, Ordering::AcqRel);
        // A line alone in the queue always fits, whatever its size.
        let over = queued > 0 && queued + size > self.limits.queue_bytes as u64;
        let sent = !over && g.1.try_send(Msg::Line(line)).is_ok();
        drop(g);
        if !sent {
            self.stats.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            self.stats.queue_dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Returns once every line queued before the call is committed (or failed).
    /// Waits for queue space, so call it from a blocking context.
    pub fn flush_blocking(&self) -> Result<u64, LogStoreError> {
        let (done, rx) = oneshot::channel();
        self.sender()
            .blocking_send(Msg::Flush(done))
            .map_err(|_| LogStoreError::WriterGone)?;
        match rx.blocking_recv() {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(LogStoreError::Commit(e)),
            Err(_) => Err(LogStoreError::WriterGone),
        }
    }

    pub async fn flush(self: &Arc<Self>) -> Result<u64, LogStoreError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.flush_blocking())
            .await
            .map_err(|_| LogStoreError::WriterGone)?
    }

    /// Runs one pruning pass now; returns the lines deleted.
    #[cfg(test)]
    pub fn prune_now_blocking(&self) -> Result<u64, LogStoreError> {
        let (done, rx) = oneshot::channel();
        self.sender()
            .blocking_send(Msg::Prune(done))
            .map_err(|_| LogStoreError::WriterGone)?;
        rx.blocking_recv().map_err(|_| LogStoreError::WriterGone)
    }

    /// Commits what is queued and stops the writer.
    pub fn close(&self) {
        let _ = self.sender().blocking_send(Msg::Close);
        let handle = self.writer.locked().take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    pub fn stats_json(&self) -> Value {
        let s = &self.stats;
        let (lines, oldest, newest) = self.extent().unwrap_or((0, None, None));
        json!({
            "lines": lines,
            "oldest_seq": oldest,
            "newest_seq": newest,
            "bytes": s.bytes.load(Ordering::Relaxed),
            "max_bytes": self.limits.max_bytes,
            "max_age_days": self.limits.max_age_ms as f64 / 86_400_000.0,
            "written": s.written.load(Ordering::Relaxed),
            "batches": s.batches.load(Ordering::Relaxed),
            "max_batch": s.max_batch.load(Ordering::Relaxed),
            "last_commit_us": s.last_commit_us.load(Ordering::Relaxed),
            "queue_dropped": s.queue_dropped.load(Ordering::Relaxed),
            "write_errors": s.write_errors.load(Ordering::Relaxed),
            "pruned": s.pruned.load(Ordering::Relaxed),
            "queue_capacity": self.limits.queue_lines,
            "queue_capacity_bytes": self.limits.queue_bytes,
            "queued_bytes": s.queued_bytes.load(Ordering::Relaxed),
        })
    }

    fn extent(&self) -> Result<(u64, Option<u64>, Option<u64>), LogStoreError> {
        let r = self.db.begin_read()?;
        let m = r.open_table(META)?;
        let n = m.get("lines")?.map(|v| v.value()).unwrap_or(0);
        let t = r.open_table(CHUNKS)?;
        let first = t.first()?.map(|(k, _)| k.value());
        let last = match t.last()? {
            Some((_, v)) => decode_chunk(v.value())?.last().map(|e| e.seq),
            None => None,
        };
        Ok((n, first, last))
    }

    #[cfg(test)]
    pub fn get(&self, seq: u64) -> Result<Option<super::record::LogEntry>, LogStoreError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(CHUNKS)?;
        let Some((_, v)) = t.range(..=seq)?.next_back().transpose()? else {
            return Ok(None);
        };
        Ok(decode_chunk(v.value())?.into_iter().find(|e| e.seq == seq))
    }
}

/// Creates the tables, indexes old chunks by path once, and returns the bytes
/// the store holds.
fn prepare_tables(db: &Database) -> Result<u64, LogStoreError> {
    let w = db.begin_write()?;
    w.open_table(CHUNKS)?;
    w.open_table(BY_SCRIPT)?;
    w.open_table(BY_PATH)?;
    let mut meta = w.open_table(META)?;
    let mut bytes = meta.get("bytes")?.map(|v| v.value()).unwrap_or(0);
    if meta.get(PATH_INDEX)?.is_none() {
        let (chunks, added) = index_paths(&w)?;
        if chunks > 0 {
            tracing::info!("indexed {chunks} stored log chunks by script path");
        }
        bytes += added;
        meta.insert("bytes", bytes)?;
        meta.insert(PATH_INDEX, 1)?;
    }
    if meta.get(CHARGE)?.map(|v| v.value()) != Some(CHARGE_VERSION) {
        bytes = recharge(&w)?;
        meta.insert("bytes", bytes)?;
        meta.insert(CHARGE, CHARGE_VERSION)?;
    }
    drop(meta);
    w.commit()?;
    Ok(bytes)
}

/// The bytes every stored chunk is charged by the current `chunk_charge`.
fn recharge(w: &WriteTransaction) -> Result<u64, LogStoreError> {
    let chunks = w.open_table(CHUNKS)?;
    let mut total = 0;
    for item in chunks.iter()? {
        let (_, v) = item?;
        let entries = chunk_meta(v.value()).map_or(0, |m| m.index_entries());
        total += chunk_charge(v.value().len(), entries);
    }
    Ok(total)
}

/// Adds every chunk to `BY_PATH`; returns the chunks seen and the bytes the new
/// index entries are charged.
fn index_paths(w: &WriteTransaction) -> Result<(u64, u64), LogStoreError> {
    let chunks = w.open_table(CHUNKS)?;
    let mut paths = w.open_table(BY_PATH)?;
    let (mut seen, mut added) = (0u64, 0u64);
    for item in chunks.iter()? {
        let (k, v) = item?;
        // A chunk we cannot read is pruned in its turn; nothing to index.
        let Ok(meta) = chunk_meta(v.value()) else {
            continue;
        };
        for h in &meta.paths {
            paths.insert((*h, k.value()), ())?;
        }
        seen += 1;
        added += (INDEX_ENTRY_CHARGE * meta.paths.len()) as u64;
    }
    Ok((seen, added))
}

/// The two indexes of one write transaction, kept in step with the chunks.
struct Indexes<'t> {
    scripts: Table<'t, (u64, u64), ()>,
    paths: Table<'t, (u64, u64), ()>,
}

impl<'t> Indexes<'t> {
    fn open(w: &'t WriteTransaction) -> Result<Indexes<'t>, LogStoreError> {
        Ok(Indexes {
            scripts: w.open_table(BY_SCRIPT)?,
            paths: w.open_table(BY_PATH)?,
        })
    }

    fn insert(&mut self, key: u64, meta: &ChunkMeta) -> Result<(), LogStoreError> {
        for h in &meta.scripts {
            self.scripts.insert((*h, key), ())?;
        }
        for h in &meta.paths {
            self.paths.insert((*h, key), ())?;
        }
        Ok(())
    }

    fn remove(&mut self, key: u64, meta: &ChunkMeta) -> Result<(), LogStoreError> {
        for h in &meta.scripts {
            self.scripts.remove((*h, key))?;
        }
        for h in &meta.paths {
            self.paths.remove((*h, key))?;
        }
        Ok(())
    }
}

/// Cuts a batch into chunks of at most `CHUNK_LINES` lines and, unless a single
/// line is larger, `CHUNK_BYTES` bytes.
fn chunks(lines: &[LogLine]) -> impl Iterator<Item = &[LogLine]> {
    let mut n = 0usize;
    let mut bytes = 0usize;
    lines.chunk_by(move |a, b| {
        if n == 0 {
            (n, bytes) = (1, a.stored_bytes());
        }
        let next = b.stored_bytes();
        if n >= CHUNK_LINES || bytes + next > CHUNK_BYTES {
            (n, bytes) = (1, next);
            false
        } else {
            (n, bytes) = (n + 1, bytes + next);
            true
        }
    })
}

/// What one wait of the writer collected.
#[derive(Default)]
struct Batch {
    lines: Vec<LogLine>,
    flushes: Vec<oneshot::Sender<Result<u64, String>>>,
    prunes: Vec<oneshot::Sender<u64>>,
    closing: bool,
}

struct Writer {
    db: Arc<Database>,
    /// The file, whose size pruning keeps in view.
    path: std::path::PathBuf,
    stats: Arc<Stats>,
    limits: StoreLimits,
    last_prune: Instant,
}

impl Writer {
    fn run(mut self, mut rx: Receiver<Msg>) {
        // Only to wait for the next message with a timeout on this plain thread.
        let Ok(clock) = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        else {
            tracing::error!("the log writer cannot start its clock; logs are not persisted");
            return;
        };
        let mut batch = Batch {
            lines: Vec::with_capacity(1024),
            ..Batch::default()
        };
        loop {
            let every = self.limits.prune_interval;
            let first = match clock.block_on(async { tokio::time::timeout(every, rx.recv()).await })
            {
                Ok(Some(m)) => Some(m),
                Ok(None) => return,
                Err(_) => None,
            };
            let most = MAX_BATCH_BYTES.min(self.limits.max_bytes as usize / 16);
            collect(first, &mut rx, &mut batch, &self.stats, most as u64);
            // Room is made before the lines come in: the file never has to grow
            // for a batch that pruning could have made room for.
            self.prune_if_due(&batch.lines, &mut batch.prunes);
            self.persist(&mut batch);
            if batch.closing {
                return;
            }
        }
    }

    /// Commits the batch's lines and answers its flushes.
    fn persist(&self, batch: &mut Batch) {
        let result = if batch.lines.is_empty() {
            Ok(())
        } else {
            self.commit(&batch.lines)
        };
        let n = batch.lines.len() as u64;
        batch.lines.clear();
        match &result {
            Ok(()) => {
                self.stats.written.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.write_errors.fetch_add(n, Ordering::Relaxed);
                tracing::error!("cannot persist {n} log lines: {e}");
            }
        }
        let written = self.stats.written.load(Ordering::Relaxed);
        for f in batch.flushes.drain(..) {
            let _ = f.send(result.as_ref().map(|()| written).map_err(|e| e.to_string()));
        }
    }

    /// Prunes when `coming` would take the store over its ceiling, when asked,
    /// or every `prune_interval`.
    fn prune_if_due(&mut self, coming: &[LogLine], asked: &mut Vec<oneshot::Sender<u64>>) {
        let incoming: u64 = chunks(coming)
            .map(|c| chunk_charge(c.iter().map(LogLine::stored_bytes).sum(), 2))
            .sum();
        let file_len = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        // Deleting at least twice what comes in keeps a sustained flood from
        // outgrowing the limit, while each pass stays bounded.
        let budget = self.limits.prune_batch.max(2 * coming.len());
        let pass = Pass::new(&self.limits, file_len, incoming, budget);
        let over = pass.over(self.stats.bytes.load(Ordering::Relaxed));
        if !over && asked.is_empty() && self.last_prune.elapsed() < self.limits.prune_interval {
            return;
        }
        self.last_prune = Instant::now();
        let deleted = match prune(&self.db, &self.stats, &self.limits, &pass) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("log pruning failed: {e}");
                0
            }
        };
        for p in asked.drain(..) {
            let _ = p.send(deleted);
        }
    }

    fn commit(&self, lines: &[LogLine]) -> Result<(), LogStoreError> {
        let t0 = Instant::now();
        let mut w = self.db.begin_write()?;
        w.set_durability(Durability::Immediate)
            .map_err(|e| LogStoreError::Commit(e.to_string()))?;
        let mut added = 0u64;
        {
            let mut t = w.open_table(CHUNKS)?;
            let mut idx = Indexes::open(&w)?;
            let mut chunk = Vec::with_capacity(CHUNK_BYTES + 1024);
            for part in chunks(lines) {
                chunk.clear();
                let mut meta = ChunkMeta::default();
                for l in part {
                    l.encode_into(&mut chunk)?;
                    meta.add(l.ts_ms, &l.script_id, &l.script_path);
                }
                let key = part[0].seq;
                t.insert(key, chunk.as_slice())?;
                idx.insert(key, &meta)?;
                added += chunk_charge(chunk.len(), meta.index_entries());
            }
            let mut m = w.open_table(META)?;
            let total = m.get("bytes")?.map(|v| v.value()).unwrap_or(0) + added;
            let count = m.get("lines")?.map(|v| v.value()).unwrap_or(0) + lines.len() as u64;
            m.insert("bytes", total)?;
            m.insert("lines", count)?;
            self.stats.bytes.store(total, Ordering::Relaxed);
        }
        w.commit()?;
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .max_batch
            .fetch_max(lines.len() as u64, Ordering::Relaxed);
        self.stats
            .last_commit_us
            .store(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Takes `first` and whatever else is queued, up to `MAX_BATCH` lines,
/// `most` bytes or a close.
fn collect(
    first: Option<Msg>,
    rx: &mut Receiver<Msg>,
    batch: &mut Batch,
    stats: &Stats,
    most: u64,
) {
    let mut next = first;
    let mut bytes = 0u64;
    while let Some(m) = next {
        match m {
            Msg::Line(l) => {
                let size = l.queued_bytes();
                stats.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                bytes += size;
                batch.lines.push(l);
            }
            Msg::Flush(done) => batch.flushes.push(done),
            Msg::Prune(done) => batch.prunes.push(done),
            Msg::Close => batch.closing = true,
        }
        let full = batch.lines.len() >= MAX_BATCH || bytes >= most;
        if full || batch.closing {
            break;
        }
        next = rx.try_recv().ok();
    }
}

/// The largest size the store lets `logs.redb` reach for `max_bytes`, given
/// its size now: redb grows a file by doubling it (and shrinks it from its end
/// now and then), so the file can reach `file_len` times a power of two; the
/// largest of those within 125 % of `max_bytes`. A file already larger (from
/// an earlier version) only must not grow.
pub(super) fn file_cap(max_bytes: u64, file_len: u64) -> u64 {
    let most = max_bytes.saturating_add(max_bytes / 4);
    let mut cap = file_len.max(1);
    while cap.saturating_mul(2) <= most {
        cap *= 2;
    }
    cap
}

/// How far one pruning pass goes.
pub(super) struct Pass {
    /// Lines it deletes at most.
    pub budget: usize,
    pub now_ms: u64,
    /// Bytes the batch about to be committed will be charged.
    pub incoming: u64,
    /// Above this, with `incoming`, old lines are pruned ...
    pub ceiling: u64,
    /// ... down to this.
    pub down_to: u64,
}

impl Pass {
    /// What the stored chunks may take: 90 % of `max_bytes` or of the file cap,
    /// whichever is less; the rest is for redb's B-tree pages and the pages the
    /// last commits freed, which become free space only a commit later. Kept
    /// below it, the file never has to double past its cap. A pass that has to
    /// make room goes down to 80 %, so that it does not run for every batch.
    pub fn new(limits: &StoreLimits, file_len: u64, incoming: u64, budget: usize) -> Pass {
        let room = limits.max_bytes.min(file_cap(limits.max_bytes, file_len));
        Pass {
            budget,
            now_ms: vwed_base::clock::unix_ms(),
            incoming,
            ceiling: room / 10 * 9,
            down_to: room / 10 * 8,
        }
    }

    fn over(&self, bytes: u64) -> bool {
        bytes + self.incoming > self.ceiling
    }
}

/// One bounded pruning pass: deletes the oldest chunks while the store and the
/// incoming bytes are over the ceiling (down to `Pass::down_to`) or while all
/// their lines are older than the age limit. Stops after about `pass.budget`
/// lines.
pub(super) fn prune(
    db: &Database,
    stats: &Stats,
    limits: &StoreLimits,
    pass: &Pass,
) -> Result<u64, LogStoreError> {
    let (budget, incoming) = (pass.budget, pass.incoming);
    let cutoff = pass.now_ms.saturating_sub(limits.max_age_ms);
    let w = db.begin_write()?;
    let mut deleted = 0u64;
    {
        let mut m = w.open_table(META)?;
        let mut bytes = m.get("bytes")?.map(|v| v.value()).unwrap_or(0);
        let mut lines = m.get("lines")?.map(|v| v.value()).unwrap_or(0);
        let target = if pass.over(bytes) {
            pass.down_to.saturating_sub(incoming)
        } else {
            u64::MAX
        };
        let mut t = w.open_table(CHUNKS)?;
        let mut idx = Indexes::open(&w)?;
        while (deleted as usize) < budget {
            let (key, len, meta) = match t.first()? {
                Some((k, v)) => (k.value(), v.value().len(), chunk_meta(v.value())),
                None => break,
            };
            let Ok(meta) = meta else {
                // A chunk we cannot read only takes space.
                t.remove(key)?;
                bytes = bytes.saturating_sub(chunk_charge(len, 0));
                continue;
            };
            if bytes <= target && meta.newest_ms >= cutoff {
                break;
            }
            t.remove(key)?;
            idx.remove(key, &meta)?;
            bytes = bytes.saturating_sub(chunk_charge(len, meta.index_entries()));
            lines = lines.saturating_sub(meta.lines as u64);
            deleted += meta.lines as u64;
        }
        m.insert("bytes", bytes)?;
        m.insert("lines", lines)?;
        stats.bytes.store(bytes, Ordering::Relaxed);
    }
    if deleted > 0 {
        w.commit()?;
        stats.pruned.fetch_add(deleted, Ordering::Relaxed);
    } else {
        w.abort()?;
    }
    Ok(deleted)
}
