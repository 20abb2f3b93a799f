//! Events on their way to the broker. An event is written in the same redb
//! transaction as the change it reports and leaves the outbox only when the broker
//! has acknowledged it (QoS 1): delivered at least once, across broker outages and
//! power cuts, each with a sequence number so that the receiver can drop repeats.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde_json::{Value, json};

use vwed_db::{self as db, Db, DbError, META};

const SEQ: &str = "fleet_seq";
const DROPPED: &str = "fleet_outbox_dropped";

/// sequence number → event (JSON text), until the broker has it.
pub const OUTBOX: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("fleet_outbox");

/// What every event carries besides its own fields.
pub struct Stamp<'a> {
    pub device: &'a str,
    /// Events kept at most; the oldest give way and are counted.
    pub max: u64,
}

pub fn append(
    tx: &redb::WriteTransaction,
    mut event: Value,
    s: &Stamp<'_>,
) -> Result<u64, DbError> {
    let seq = db::next_id(tx, SEQ)?;
    if let Value::Object(m) = &mut event {
        m.insert("seq".into(), json!(seq));
        m.insert("device".into(), json!(s.device));
        m.insert("at_ms".into(), json!(vwed_base::clock::unix_ms()));
    }
    let mut t = tx.open_table(OUTBOX)?;
    t.insert(seq, event.to_string().as_bytes())?;
    let mut dropped = 0;
    while t.len()? > s.max {
        if t.pop_first()?.is_none() {
            break;
        }
        dropped += 1;
    }
    if dropped > 0 {
        let mut m = tx.open_table(META)?;
        let n = m.get(DROPPED)?.map(|v| v.value()).unwrap_or(0);
        m.insert(DROPPED, n + dropped)?;
    }
    Ok(seq)
}

/// Up to `n` events with a sequence number above `after`, oldest first.
pub fn after(db: &Db, after: u64, n: usize) -> Result<Vec<(u64, String)>, DbError> {
    let rx = db.begin_read()?;
    let t = rx.open_table(OUTBOX)?;
    let mut out = Vec::with_capacity(n);
    for row in t.range(after.saturating_add(1)..)?.take(n) {
        let (k, v) = row?;
        out.push((k.value(), String::from_utf8_lossy(v.value()).into_owned()));
    }
    Ok(out)
}

/// Forgets events the broker has.
pub fn remove(db: &Db, seqs: &[u64]) -> Result<(), DbError> {
    let tx = db.begin_write()?;
    {
        let mut t = tx.open_table(OUTBOX)?;
        for s in seqs {
            t.remove(*s)?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Events waiting, events dropped since the data dir was made, last sequence number.
pub fn stats(db: &Db) -> Result<(u64, u64, u64), DbError> {
    let rx = db.begin_read()?;
    let waiting = rx.open_table(OUTBOX)?.len()?;
    let m = rx.open_table(META)?;
    let dropped = m.get(DROPPED)?.map(|v| v.value()).unwrap_or(0);
    let seq = m.get(SEQ)?.map(|v| v.value()).unwrap_or(0);
    Ok((waiting, dropped, seq))
}
