//! A script's recent output (print, tracebacks, VWED.log, lifecycle notes) in a
//! bounded in-memory ring, so the newest lines can be shown without touching disk.

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
}

pub struct OutputRing {
    lines: VecDeque<OutLine>,
    cap: usize,
    next_seq: u64,
    dropped: u64,
}

impl OutputRing {
    pub fn new(cap: usize) -> Self {
        OutputRing {
            lines: VecDeque::with_capacity(cap.min(256)),
            cap,
            next_seq: 1,
            dropped: 0,
        }
    }

    pub fn push(
        &mut self,
        level: Level,
        stream: &'static str,
        message: String,
        fields: Option<Value>,
    ) -> OutLine {
        if self.lines.len() == self.cap {
            self.lines.pop_front();
            self.dropped += 1;
        }
        let line = OutLine {
            seq: self.next_seq,
            timestamp: crate::clock::utc_now(),
            level: level.as_str(),
            stream,
            message,
            fields,
        };
        self.next_seq += 1;
        self.lines.push_back(line.clone());
        line
    }

    /// Lines with `seq > after`, at most `limit` of the newest.
    pub fn tail(&self, after: u64, limit: usize) -> Vec<OutLine> {
        let newer: Vec<&OutLine> = self.lines.iter().filter(|l| l.seq > after).collect();
        let skip = newer.len().saturating_sub(limit);
        newer.into_iter().skip(skip).cloned().collect()
    }

    /// Lines that fell out of the ring.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn text(&self, limit: usize) -> String {
        self.tail(0, limit)
            .iter()
            .map(|l| l.message.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_and_counts_the_rest() {
        let mut r = OutputRing::new(3);
        for i in 0..5 {
            r.push(Level::Info, "stdout", format!("l{i}"), None);
        }
        let t = r.tail(0, 10);
        assert_eq!(
            t.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(),
            ["l2", "l3", "l4"]
        );
        assert_eq!(r.dropped(), 2);
        assert_eq!(r.tail(4, 10).len(), 1);
        assert_eq!(r.tail(0, 1)[0].message, "l4");
    }
}
