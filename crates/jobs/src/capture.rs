//! An execution's output, bounded in bytes: the first quarter of the budget keeps
//! how the run began, the rest its latest lines; what falls between is counted and
//! the cut is marked where it happened.

use std::collections::VecDeque;
use std::sync::Mutex;
use vwed_base::sync::Locked;

use vwed_ipc::lines;

const CUT_NOTE: &str = "…… [输出过长";

pub struct Capture {
    inner: Mutex<Inner>,
}

struct Inner {
    head: String,
    head_cap: usize,
    head_full: bool,
    tail: VecDeque<String>,
    tail_bytes: usize,
    tail_cap: usize,
    cut: u64,
}

impl Capture {
    /// A capture of at most `cap` bytes (plus the cut note), continuing `before`
    /// (the output of earlier attempts, which had `cut` bytes left out).
    pub fn new(cap: usize, before: &str, cut: u64) -> Capture {
        let cap = cap.max(1024);
        let c = Capture {
            inner: Mutex::new(Inner {
                head: String::new(),
                head_cap: cap / 4,
                head_full: cut > 0,
                tail: VecDeque::new(),
                tail_bytes: 0,
                tail_cap: cap - cap / 4,
                cut,
            }),
        };
        for line in before.lines().filter(|l| !l.starts_with(CUT_NOTE)) {
            c.push(line);
        }
        c
    }

    pub fn push(&self, line: &str) {
        let mut g = self.inner.locked();
        // At most half the tail: the line and its cut note always fit.
        let line = lines::cut(line, g.tail_cap / 2).into_owned();
        let cost = line.len() + 1;
        if !g.head_full && g.head.len() + cost <= g.head_cap {
            g.head.push_str(&line);
            g.head.push('\n');
            return;
        }
        g.head_full = true;
        g.tail_bytes += cost;
        g.tail.push_back(line);
        while g.tail_bytes > g.tail_cap {
            let Some(old) = g.tail.pop_front() else { break };
            g.tail_bytes -= old.len() + 1;
            g.cut += old.len() as u64 + 1;
        }
    }

    /// The kept output, and how many bytes were left out.
    pub fn snapshot(&self) -> (String, u64) {
        let g = self.inner.locked();
        let mut out = g.head.clone();
        if g.cut > 0 {
            out.push_str(&format!("{CUT_NOTE}, 此处省略 {} 字节] ……\n", g.cut));
        }
        for l in &g.tail {
            out.push_str(l);
            out.push('\n');
        }
        (out, g.cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_output_keeps_its_start_and_end_and_says_what_was_cut() {
        let c = Capture::new(1024, "", 0);
        for i in 0..1000 {
            c.push(&format!("line {i:04}"));
        }
        let (text, cut) = c.snapshot();
        assert!(text.starts_with("line 0000\n"), "{text}");
        assert!(text.ends_with("line 0999\n"));
        assert!(cut > 0);
        assert!(text.contains(&format!("省略 {cut} 字节")));
        assert!(text.len() < 1200, "{}", text.len());
        // A retry continues the same bounded output.
        let again = Capture::new(1024, &text, cut);
        again.push("attempt 2");
        let (t2, cut2) = again.snapshot();
        assert!(t2.ends_with("attempt 2\n") && cut2 >= cut);
    }
}
