//! A script's recent output (print, tracebacks, VWED.log, lifecycle notes) in a
//! bounded in-memory ring, so the newest lines can be shown without touching disk.

use std::collections::VecDeque;

use serde::Serialize;
use serde_json::Value;
use vwed_ipc::Level;

/// Longest line kept from a script's output. A script printing megabytes in one
/// line must not make the runtime hold, persist and broadcast megabytes per line;
/// the rest of such a line is cut and the cut is said.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// `line`, cut to [`MAX_LINE_BYTES`] (on a character boundary) when longer;
/// `more` counts bytes already dropped before it reached here.
pub fn clip(line: &str, more: usize) -> String {
    if line.len() <= MAX_LINE_BYTES && more == 0 {
        return line.to_string();
    }
    let mut end = line.len().min(MAX_LINE_BYTES);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let cut = line.len() - end + more;
    format!("{}… ({cut} bytes cut)", &line[..end])
}

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

#[cfg(test)]
mod clip_tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_on_a_character_boundary_and_say_so() {
        assert_eq!(clip("short", 0), "short");
        let long = "界".repeat(MAX_LINE_BYTES);
        let cut = clip(&long, 0);
        assert!(cut.len() < MAX_LINE_BYTES + 64, "{}", cut.len());
        let kept = cut.split('…').next().unwrap_or("");
        assert!(kept.chars().all(|c| c == '界'));
        assert!(cut.ends_with(&format!("({} bytes cut)", long.len() - kept.len())));
        assert_eq!(clip("head", 10), "head… (10 bytes cut)");
    }
}
