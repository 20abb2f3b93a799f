//! A script's recent output (print, tracebacks, VWED.log, lifecycle notes) in an
//! in-memory ring bounded by lines and by bytes, so the newest lines can be shown
//! without touching disk.

use std::collections::VecDeque;

use serde::Serialize;
use serde_json::Value;
use vwed_ipc::Level;

#[derive(Debug, Clone, Serialize)]
pub struct OutLine {
    pub seq: u64,
    pub timestamp: String,
    pub level: &'static str,
    /// stdout, stderr, log or system.
    pub stream: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Value>,
    /// Bytes this line is counted against the ring's budget.
    #[serde(skip)]
    charge: usize,
}

/// Bytes a line is counted beside its text: its record, time stamp and slot.
const LINE_OVERHEAD: usize = 128;

/// Bytes of JSON text `v` takes, without building the text.
fn json_bytes(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

pub struct OutputRing {
    lines: VecDeque<OutLine>,
    cap: usize,
    max_bytes: usize,
    bytes: usize,
    next_seq: u64,
    dropped: u64,
}

impl OutputRing {
    /// At most `cap` lines and about `max_bytes` bytes (a single line longer than
    /// that is still kept, alone).
    pub fn new(cap: usize, max_bytes: usize) -> Self {
        OutputRing {
            lines: VecDeque::with_capacity(cap.min(256)),
            cap,
            max_bytes,
            bytes: 0,
            next_seq: 1,
            dropped: 0,
        }
    }

    fn evict_until(&mut self, lines: usize, bytes: usize) {
        while self.lines.len() > lines || (self.bytes > bytes && !self.lines.is_empty()) {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.charge;
                self.dropped += 1;
            }
        }
    }

    /// The run ended: keeps only the newest `max_bytes` and gives the rest of the
    /// memory back, so that ended runs cost little while their output stays
    /// queryable.
    pub fn retire(&mut self, max_bytes: usize) {
        self.evict_until(self.cap, max_bytes);
        self.lines.shrink_to_fit();
    }

    /// Bytes the kept lines are counted.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn push(
        &mut self,
        level: Level,
        stream: &'static str,
        message: String,
        fields: Option<Value>,
    ) {
        let charge = message.len() + fields.as_ref().map_or(0, json_bytes) + LINE_OVERHEAD;
        let line = OutLine {
            seq: self.next_seq,
            timestamp: vwed_base::clock::utc_now(),
            level: level.as_str(),
            stream,
            message,
            fields,
            charge,
        };
        self.next_seq += 1;
        self.bytes += charge;
        self.lines.push_back(line);
        self.evict_until(self.cap, self.max_bytes);
    }

    /// Lines with `seq > after`: the newest that fit in `limit` lines and
    /// `max_bytes` bytes (at least one), and how many older ones were left out.
    pub fn tail(&self, after: u64, limit: usize, max_bytes: usize) -> (Vec<OutLine>, usize) {
        let mut newest: Vec<OutLine> = Vec::new();
        let mut bytes = 0;
        let mut newer = 0;
        for l in self.lines.iter().rev().take_while(|l| l.seq > after) {
            newer += 1;
            let fits = newest.len() < limit && (newest.is_empty() || bytes + l.charge <= max_bytes);
            if fits && newest.len() == newer - 1 {
                bytes += l.charge;
                newest.push(l.clone());
            }
        }
        newest.reverse();
        let omitted = newer - newest.len();
        (newest, omitted)
    }

    /// Lines that fell out of the ring.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn text(&self, limit: usize) -> String {
        self.tail(0, limit, self.max_bytes)
            .0
            .iter()
            .map(|l| l.message.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(lines: &[OutLine]) -> Vec<&str> {
        lines.iter().map(|l| l.message.as_str()).collect()
    }

    #[test]
    fn ring_keeps_the_newest_and_counts_the_rest() {
        let mut r = OutputRing::new(3, 1 << 20);
        for i in 0..5 {
            r.push(Level::Info, "stdout", format!("l{i}"), None);
        }
        let (t, omitted) = r.tail(0, 10, usize::MAX);
        assert_eq!(messages(&t), ["l2", "l3", "l4"]);
        assert_eq!(omitted, 0);
        assert_eq!(r.dropped(), 2);
        assert_eq!(r.tail(4, 10, usize::MAX).0.len(), 1);
        let (t, omitted) = r.tail(0, 1, usize::MAX);
        assert_eq!((messages(&t), omitted), (vec!["l4"], 2));
    }

    #[test]
    fn script_output_has_a_byte_bound_in_the_ring_and_its_answer() {
        let line = "x".repeat(1000);
        let each = line.len() + LINE_OVERHEAD;
        let mut r = OutputRing::new(10_000, 10 * each);
        for _ in 0..1000 {
            r.push(Level::Info, "stdout", line.clone(), None);
        }
        assert_eq!(r.bytes(), 10 * each, "bounded by bytes, not only lines");
        assert_eq!(r.dropped(), 990);
        let (t, omitted) = r.tail(0, 10_000, 3 * each);
        assert_eq!((t.len(), omitted), (3, 7), "the answer has its own budget");
        // One line larger than the answer's budget still comes, alone.
        assert_eq!(r.tail(0, 10, 1).0.len(), 1);
        r.retire(2 * each);
        assert_eq!(r.bytes(), 2 * each);
        assert_eq!(r.tail(0, 10, usize::MAX).0.len(), 2);
    }
}
