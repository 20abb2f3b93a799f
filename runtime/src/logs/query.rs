//! Reading history back: filters, pages and the opaque cursor.

use redb::ReadableDatabase;
use vwed_ipc::Level;

use super::record::{LogEntry, decode_chunk, script_hash};
use super::store::{BY_SCRIPT, CHUNKS, LogStore, LogStoreError};

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
                .q
                .as_deref()
                .is_none_or(|q| e.message.contains(q) || e.fields.contains(q))
    }
}

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

impl LogStore {
    /// One page of history, read in one read transaction.
    pub fn page(&self, q: &LogQuery) -> Result<Page, LogStoreError> {
        let limit = q.limit.clamp(1, MAX_LIMIT);
        let r = self.db().begin_read()?;
        let chunks = r.open_table(CHUNKS)?;
        let mut entries = Vec::with_capacity(limit.min(256));
        if q.order == Order::Desc && q.after == Some(0) {
            return Ok(Page {
                entries,
                next: None,
            });
        }
        // Lines strictly beyond the cursor, in the page's order.
        let beyond = |seq: u64| match (q.order, q.after) {
            (_, None) => true,
            (Order::Desc, Some(a)) => seq < a,
            (Order::Asc, Some(a)) => seq > a,
        };
        let mut scanned = 0usize;
        let mut last_seq = None;
        let mut exhausted = true;
        // Visits one chunk; false once the page is full or the budget spent.
        let mut visit = |bytes: &[u8]| -> Result<bool, LogStoreError> {
            let mut lines = decode_chunk(bytes)?;
            if q.order == Order::Desc {
                lines.reverse();
            }
            for e in lines {
                if !beyond(e.seq) {
                    continue;
                }
                scanned += 1;
                last_seq = Some(e.seq);
                if q.matches(&e) {
                    entries.push(e);
                }
                if entries.len() >= limit || scanned >= SCAN_BUDGET {
                    exhausted = false;
                    return Ok(false);
                }
            }
            Ok(true)
        };
        if let Some(sid) = &q.script_id {
            let h = script_hash(sid);
            let idx = r.open_table(BY_SCRIPT)?;
            // The chunk holding the cursor starts at or before it.
            let (lo, hi) = match (q.order, q.after) {
                (Order::Desc, Some(a)) => (0, a.saturating_sub(1)),
                (Order::Asc, Some(a)) => {
                    let start = idx
                        .range((h, 0)..=(h, a))?
                        .next_back()
                        .transpose()?
                        .map(|(k, _)| k.value().1)
                        .unwrap_or(0);
                    (start, u64::MAX)
                }
                (_, None) => (0, u64::MAX),
            };
            let range = idx.range((h, lo)..=(h, hi))?;
            let mut go = |key: u64| -> Result<bool, LogStoreError> {
                match chunks.get(key)? {
                    Some(v) => visit(v.value()),
                    // Pruned between the index and the chunk: skip it.
                    None => Ok(true),
                }
            };
            if q.order == Order::Desc {
                for item in range.rev() {
                    if !go(item?.0.value().1)? {
                        break;
                    }
                }
            } else {
                for item in range {
                    if !go(item?.0.value().1)? {
                        break;
                    }
                }
            }
        } else {
            let (lo, hi) = match (q.order, q.after) {
                (Order::Desc, Some(a)) => (0, a.saturating_sub(1)),
                (Order::Asc, Some(a)) => {
                    let start = chunks
                        .range(..=a)?
                        .next_back()
                        .transpose()?
                        .map(|(k, _)| k.value())
                        .unwrap_or(0);
                    (start, u64::MAX)
                }
                (_, None) => (0, u64::MAX),
            };
            let range = chunks.range(lo..=hi)?;
            if q.order == Order::Desc {
                for item in range.rev() {
                    if !visit(item?.1.value())? {
                        break;
                    }
                }
            } else {
                for item in range {
                    if !visit(item?.1.value())? {
                        break;
                    }
                }
            }
        }
        let next = if exhausted { None } else { last_seq };
        Ok(Page { entries, next })
    }

    /// The newest `n` lines of one script (or of all with `None`), oldest first.
    pub fn last_lines(
        &self,
        script_id: Option<&str>,
        n: usize,
    ) -> Result<Vec<LogEntry>, LogStoreError> {
        let q = LogQuery {
            script_id: script_id.map(str::to_string),
            limit: n.clamp(1, MAX_LIMIT),
            ..LogQuery::default()
        };
        let mut v = self.page(&q)?.entries;
        v.reverse();
        Ok(v)
    }
}
