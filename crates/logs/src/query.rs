//! Reading history back: filters, pages and the opaque cursor.

use redb::{ReadableDatabase, TableDefinition};
use vwed_ipc::Level;

use super::record::{LogEntry, decode_chunk, script_hash};
use super::store::{BY_PATH, BY_SCRIPT, CHUNKS, LogStore, LogStoreError};

/// Most lines one page returns.
pub const MAX_LIMIT: usize = 1000;
/// Most stored lines one page looks at; a selective filter over a large log then
/// answers with a partial page and a cursor instead of a long scan.
const SCAN_BUDGET: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Newest first (the default).
    Desc,
    Asc,
}

#[derive(Debug, Clone)]
pub struct LogQuery {
    pub script_id: Option<String>,
    /// Every run of one script (`<project>/<file path>`), across restarts.
    pub script_path: Option<String>,
    pub min_level: Level,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    pub q: Option<String>,
    pub limit: usize,
    pub order: Order,
    /// Continue after this seq (exclusive), in `order`.
    pub after: Option<u64>,
}

impl Default for LogQuery {
    fn default() -> Self {
        LogQuery {
            script_id: None,
            script_path: None,
            min_level: Level::Debug,
            since_ms: None,
            until_ms: None,
            q: None,
            limit: 100,
            order: Order::Desc,
            after: None,
        }
    }
}

impl LogQuery {
    pub fn matches(&self, e: &LogEntry) -> bool {
        e.level >= self.min_level
            && self.since_ms.is_none_or(|s| e.ts_ms >= s)
            && self.until_ms.is_none_or(|u| e.ts_ms <= u)
            && self.script_id.as_deref().is_none_or(|s| e.script_id == s)
            && self
                .script_path
                .as_deref()
                .is_none_or(|p| e.script_path == p)
            && self
                .q
                .as_deref()
                .is_none_or(|q| e.message.contains(q) || e.fields.contains(q))
    }

    /// The index that narrows this query to the chunks of one script, with the
    /// hash to look up there.
    fn index(&self) -> Option<(IndexTable, u64)> {
        match (&self.script_id, &self.script_path) {
            (Some(id), _) => Some((BY_SCRIPT, script_hash(id))),
            (None, Some(path)) => Some((BY_PATH, script_hash(path))),
            (None, None) => None,
        }
    }

    /// The chunk keys a page may read: a descending page continues below its
    /// cursor, an ascending one from the chunk holding the cursor (which starts at
    /// or before it; `chunk_at` finds it).
    fn key_bounds(
        &self,
        chunk_at: impl FnOnce(u64) -> Result<Option<u64>, LogStoreError>,
    ) -> Result<(u64, u64), LogStoreError> {
        Ok(match (self.order, self.after) {
            (Order::Desc, Some(a)) => (0, a.saturating_sub(1)),
            (Order::Asc, Some(a)) => (chunk_at(a)?.unwrap_or(0), u64::MAX),
            (_, None) => (0, u64::MAX),
        })
    }
}

type IndexTable = TableDefinition<'static, (u64, u64), ()>;

#[derive(Debug)]
pub struct Page {
    pub entries: Vec<LogEntry>,
    /// Seq to continue after; `None` when the history is exhausted.
    pub next: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("cursor 无效")]
pub struct BadCursor;

/// `d<hex>` / `a<hex>`: the order travels with the cursor, so a page can only be
/// continued the way it was started.
pub fn encode_cursor(order: Order, seq: u64) -> String {
    let c = if order == Order::Desc { 'd' } else { 'a' };
    format!("{c}{seq:x}")
}

pub fn decode_cursor(s: &str) -> Result<(Order, u64), BadCursor> {
    let order = match s.get(..1) {
        Some("d") => Order::Desc,
        Some("a") => Order::Asc,
        _ => return Err(BadCursor),
    };
    let seq = u64::from_str_radix(s.get(1..).ok_or(BadCursor)?, 16).map_err(|_| BadCursor)?;
    Ok((order, seq))
}

/// Fills one page from the chunks it is shown, in the page's order.
struct Pager<'q> {
    q: &'q LogQuery,
    limit: usize,
    entries: Vec<LogEntry>,
    scanned: usize,
    last_seq: Option<u64>,
    exhausted: bool,
}

impl<'q> Pager<'q> {
    fn new(q: &'q LogQuery) -> Pager<'q> {
        let limit = q.limit.clamp(1, MAX_LIMIT);
        Pager {
            q,
            limit,
            entries: Vec::with_capacity(limit.min(256)),
            scanned: 0,
            last_seq: None,
            exhausted: true,
        }
    }

    /// Lines strictly beyond the cursor, in the page's order.
    fn beyond(&self, seq: u64) -> bool {
        match (self.q.order, self.q.after) {
            (_, None) => true,
            (Order::Desc, Some(a)) => seq < a,
            (Order::Asc, Some(a)) => seq > a,
        }
    }

    /// Visits one chunk; false once the page is full or the scan budget spent.
    fn visit(&mut self, bytes: &[u8]) -> Result<bool, LogStoreError> {
        let mut lines = decode_chunk(bytes)?;
        if self.q.order == Order::Desc {
            lines.reverse();
        }
        for e in lines {
            if !self.beyond(e.seq) {
                continue;
            }
            self.scanned += 1;
            self.last_seq = Some(e.seq);
            if self.q.matches(&e) {
                self.entries.push(e);
            }
            if self.entries.len() >= self.limit || self.scanned >= SCAN_BUDGET {
                self.exhausted = false;
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn finish(self) -> Page {
        let next = if self.exhausted { None } else { self.last_seq };
        Page {
            entries: self.entries,
            next,
        }
    }
}

/// Runs `f` over `items` in `order` until it says stop.
fn walk<T, E>(
    items: impl DoubleEndedIterator<Item = Result<T, E>>,
    order: Order,
    mut f: impl FnMut(T) -> Result<bool, LogStoreError>,
) -> Result<(), LogStoreError>
where
    LogStoreError: From<E>,
{
    let items: Box<dyn Iterator<Item = Result<T, E>>> = match order {
        Order::Desc => Box::new(items.rev()),
        Order::Asc => Box::new(items),
    };
    for item in items {
        if !f(item?)? {
            break;
        }
    }
    Ok(())
}

impl LogStore {
    /// One page of history, read in one read transaction. A query for one script
    /// (by id or by path) reads only the chunks its index names.
    pub fn page(&self, q: &LogQuery) -> Result<Page, LogStoreError> {
        let mut pager = Pager::new(q);
        if q.order == Order::Desc && q.after == Some(0) {
            return Ok(pager.finish());
        }
        let r = self.db().begin_read()?;
        let chunks = r.open_table(CHUNKS)?;
        match q.index() {
            Some((table, h)) => {
                let idx = r.open_table(table)?;
                let (lo, hi) = q.key_bounds(|a| {
                    let at = idx.range((h, 0)..=(h, a))?.next_back().transpose()?;
                    Ok(at.map(|(k, _)| k.value().1))
                })?;
                let keys = idx
                    .range((h, lo)..=(h, hi))?
                    .map(|item| item.map(|(k, _)| k.value().1));
                walk(keys, q.order, |key| match chunks.get(key)? {
                    Some(v) => pager.visit(v.value()),
                    // Pruned between the index and the chunk: skip it.
                    None => Ok(true),
                })?;
            }
            None => {
                let (lo, hi) = q.key_bounds(|a| {
                    let at = chunks.range(..=a)?.next_back().transpose()?;
                    Ok(at.map(|(k, _)| k.value()))
                })?;
                walk(chunks.range(lo..=hi)?, q.order, |(_, v)| {
                    pager.visit(v.value())
                })?;
            }
        }
        Ok(pager.finish())
    }

    /// The newest `n` lines `q` selects, oldest first.
    pub fn last_lines(&self, q: LogQuery, n: usize) -> Result<Vec<LogEntry>, LogStoreError> {
        let q = LogQuery {
            limit: n.clamp(1, MAX_LIMIT),
            order: Order::Desc,
            after: None,
            ..q
        };
        let mut v = self.page(&q)?.entries;
        v.reverse();
        Ok(v)
    }
}
