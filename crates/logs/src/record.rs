//! One log line: how it travels from a script to the writer, and how it is stored.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vwed_ipc::Level;

use vwed_base::clock::iso_utc;
use vwed_db::DbError;

/// A line on its way to the database and the WebSocket clients.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub seq: u64,
    pub ts_ms: u64,
    pub script_id: Arc<str>,
    pub script_path: Arc<str>,
    pub level: Level,
    /// stdout, stderr, log or system.
    pub stream: &'static str,
    pub message: String,
    /// JSON object text, or empty when the line has no fields.
    pub fields: String,
}

/// The stored form; borrowed so that writing a line does not copy it again.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    seq: u64,
    ts_ms: u64,
    script_id: &'a str,
    script_path: &'a str,
    level: u8,
    stream: &'a str,
    message: &'a str,
    fields: &'a str,
}

pub fn level_code(l: Level) -> u8 {
    match l {
        Level::Debug => 0,
        Level::Info => 1,
        Level::Warning => 2,
        Level::Error => 3,
    }
}

fn level_from_code(c: u8) -> Level {
    match c {
        0 => Level::Debug,
        1 => Level::Info,
        2 => Level::Warning,
        _ => Level::Error,
    }
}

impl LogLine {
    /// Bytes this line is counted while it waits for the writer.
    pub fn queued_bytes(&self) -> u64 {
        (self.message.len() + self.fields.len() + 96) as u64
    }

    /// About the bytes this line takes in a stored chunk.
    pub fn stored_bytes(&self) -> usize {
        self.message.len() + self.fields.len() + self.script_id.len() + self.script_path.len() + 32
    }

    pub fn encode(&self) -> Result<Vec<u8>, DbError> {
        vwed_db::encode(&Stored {
            seq: self.seq,
            ts_ms: self.ts_ms,
            script_id: &self.script_id,
            script_path: &self.script_path,
            level: level_code(self.level),
            stream: self.stream,
            message: &self.message,
            fields: &self.fields,
        })
    }

    /// Appends this line to a chunk: a little-endian u32 length, then the record.
    pub fn encode_into(&self, chunk: &mut Vec<u8>) -> Result<(), DbError> {
        let b = self.encode()?;
        chunk.extend_from_slice(&(b.len() as u32).to_le_bytes());
        chunk.extend_from_slice(&b);
        Ok(())
    }
}

/// Bytes a stored chunk is charged against `log_max_bytes`: the pages its
/// record and key take in the file (redb gives a value larger than a page a
/// power-of-two number of pages), and its entries in the per-script and
/// per-path indexes.
pub fn chunk_charge(chunk_len: usize, index_entries: usize) -> u64 {
    let stored = chunk_len + 8 + 32;
    let pages = if stored <= PAGE {
        stored
    } else {
        stored.div_ceil(PAGE).next_power_of_two() * PAGE
    };
    (pages + INDEX_ENTRY_CHARGE * index_entries) as u64
}

/// redb's page size.
const PAGE: usize = 4096;

/// Bytes one index entry of a chunk is charged.
pub const INDEX_ENTRY_CHARGE: usize = 16;

/// Stable across runs (the indexes are keyed by it), unlike std's hasher. Used
/// for script ids and script paths alike; each has its own index table.
pub fn script_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The records of a chunk: each a little-endian u32 length, then the record.
fn records(mut bytes: &[u8]) -> impl Iterator<Item = Result<&[u8], DbError>> {
    std::iter::from_fn(move || {
        if bytes.len() < 4 {
            return None;
        }
        let (len, rest) = bytes.split_at(4);
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if rest.len() < len {
            bytes = &[];
            return Some(Err(DbError::Corrupt(
                postcard::Error::DeserializeUnexpectedEnd,
            )));
        }
        let (rec, rest) = rest.split_at(len);
        bytes = rest;
        Some(Ok(rec))
    })
}

/// What pruning and indexing need from a chunk, read without copying any text.
#[derive(Debug, Default, PartialEq)]
pub struct ChunkMeta {
    pub lines: usize,
    pub newest_ms: u64,
    /// Hashes of the script ids and of the script paths of its lines.
    pub scripts: Vec<u64>,
    pub paths: Vec<u64>,
}

impl ChunkMeta {
    /// Counts one line of the chunk.
    pub fn add(&mut self, ts_ms: u64, script_id: &str, script_path: &str) {
        self.lines += 1;
        self.newest_ms = self.newest_ms.max(ts_ms);
        for (list, text) in [
            (&mut self.scripts, script_id),
            (&mut self.paths, script_path),
        ] {
            let h = script_hash(text);
            if !list.contains(&h) {
                list.push(h);
            }
        }
    }

    pub fn index_entries(&self) -> usize {
        self.scripts.len() + self.paths.len()
    }
}

pub fn chunk_meta(bytes: &[u8]) -> Result<ChunkMeta, DbError> {
    let mut meta = ChunkMeta::default();
    for rec in records(bytes) {
        let s: Stored<'_> = postcard::from_bytes(rec?)?;
        meta.add(s.ts_ms, s.script_id, s.script_path);
    }
    Ok(meta)
}

/// The lines of one chunk, in commit order.
pub fn decode_chunk(bytes: &[u8]) -> Result<Vec<LogEntry>, DbError> {
    records(bytes).map(|rec| LogEntry::decode(rec?)).collect()
}

/// A line read back from the database.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub seq: u64,
    pub ts_ms: u64,
    pub script_id: String,
    pub script_path: String,
    pub level: Level,
    pub stream: String,
    pub message: String,
    pub fields: String,
}

impl LogEntry {
    pub fn decode(bytes: &[u8]) -> Result<LogEntry, DbError> {
        let s: Stored<'_> = postcard::from_bytes(bytes)?;
        Ok(LogEntry {
            seq: s.seq,
            ts_ms: s.ts_ms,
            script_id: s.script_id.to_string(),
            script_path: s.script_path.to_string(),
            level: level_from_code(s.level),
            stream: s.stream.to_string(),
            message: s.message.to_string(),
            fields: s.fields.to_string(),
        })
    }

    pub fn fields_json(&self) -> Option<Value> {
        if self.fields.is_empty() {
            return None;
        }
        serde_json::from_str(&self.fields).ok()
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "seq": self.seq,
            "timestamp": iso_utc(self.ts_ms),
            "ts_ms": self.ts_ms,
            "script_id": self.script_id,
            "script_path": self.script_path,
            "level": self.level.as_str(),
            "stream": self.stream,
            "message": self.message,
        });
        if let Some(f) = self.fields_json() {
            v["fields"] = f;
        }
        v
    }

    /// One line of the text export.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{} {:<7} [{}] {}: {}",
            iso_utc(self.ts_ms),
            self.level.as_str(),
            self.script_id,
            self.stream,
            self.message
        );
        if !self.fields.is_empty() {
            s.push(' ');
            s.push_str(&self.fields);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let line = LogLine {
            seq: 7,
            ts_ms: 1_726_059_000_123,
            script_id: Arc::from("a.py_1_x"),
            script_path: Arc::from("p/a.py"),
            level: Level::Warning,
            stream: "log",
            message: "温度过高".into(),
            fields: r#"{"t":90}"#.into(),
        };
        let mut chunk = Vec::new();
        line.encode_into(&mut chunk).expect("encode");
        line.encode_into(&mut chunk).expect("encode");
        let v = decode_chunk(&chunk).expect("decode");
        assert_eq!(v.len(), 2);
        let e = &v[1];
        assert_eq!(e.seq, 7);
        assert_eq!(e.message, "温度过高");
        assert_eq!(e.level, Level::Warning);
        assert_eq!(e.to_json()["fields"]["t"], 90);
        assert_eq!(e.to_json()["timestamp"], "2024-09-11T12:50:00.123Z");
    }
}
